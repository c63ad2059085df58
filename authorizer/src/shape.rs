//! Step 1 of PROTOCOL.md section 7: shape and limits. Everything here is
//! decided from the envelope alone: field encodings, the limits of section 5,
//! the message type, and, for public messages, the content and body far
//! enough to read `bodyType` and the registration's key and nickname.

use crate::settings::AuthorizerSettings;
use pm_models::codec::unb64;
use pm_models::content::{BodyMap, DecodedContent, MessageContent, Registration, BODY_INVITATION, BODY_REGISTRATION};
use pm_models::envelope::Envelope;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{Address, Hash32, MessageHash, MessageType, Rejection, RejectionCode};

/// What step 1 learned about a well-formed envelope, each field in its
/// checked form.
pub struct Shape {
    pub sender: Address,
    pub message_hash: MessageHash,
    pub message_sign: TimestampedSignature,
    pub kind: Kind,
}

/// Built once per request and consumed by the pipeline, never stored, so
/// the size difference between variants costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Kind {
    Invitation {
        content: DecodedContent,
        body: BodyMap,
    },
    Registration {
        content: DecodedContent,
        body: Registration,
    },
    /// The ACL's readers, in order.
    Private {
        readers: Vec<Address>,
    },
}

fn too_large(what: &str, limit: usize) -> Rejection {
    Rejection::new(RejectionCode::PayloadTooLarge, format!("{what} exceeds the limit of {limit}"))
}

fn unsupported(what: String) -> Rejection {
    Rejection::new(RejectionCode::UnsupportedMessageType, what)
}

fn hash32(field: &str, value: &str) -> Result<(), Rejection> {
    Hash32::parse(value).map(drop).map_err(|_| Rejection::malformed(format!("{field} is not base64 of 32 bytes")))
}

fn check_limits(envelope: &Envelope, limits: &AuthorizerSettings) -> Result<(), Rejection> {
    if envelope.message.len() > limits.max_message_bytes {
        return Err(too_large("message", limits.max_message_bytes));
    }
    if envelope.acl.len() > limits.max_acl_rules {
        return Err(too_large("ACL", limits.max_acl_rules));
    }
    if envelope.objects.len() > limits.max_objects {
        return Err(too_large("objects", limits.max_objects));
    }
    for object in &envelope.objects {
        if object.meta_hashes.len() > limits.max_meta_hashes {
            return Err(too_large("objects[].metaHashes", limits.max_meta_hashes));
        }
        if object.container.as_ref().is_some_and(|c| c.object_container.len() > limits.max_container_bytes) {
            return Err(too_large("objects[].container.objectContainer", limits.max_container_bytes));
        }
    }
    Ok(())
}

pub fn check(envelope: &Envelope, limits: &AuthorizerSettings) -> Result<Shape, Rejection> {
    check_limits(envelope, limits)?;
    match envelope.message_type {
        MessageType::Registration | MessageType::Assertion | MessageType::Attestation => {}
        other => return Err(unsupported(format!("messageType {other} is not accepted"))),
    }
    let sender = Address::parse(&envelope.sender).map_err(|e| Rejection::malformed(format!("sender: {e}")))?;
    let message_hash = MessageHash::parse(&envelope.message_hash)
        .map_err(|_| Rejection::malformed("messageHash is not base64 of 32 bytes"))?;
    hash32("bodyHash", &envelope.body_hash)?;
    hash32("dossierHash", &envelope.dossier_hash)?;
    let message_sign = TimestampedSignature::parse(&envelope.message_sign)
        .map_err(|_| Rejection::malformed("messageSign is not a timestamped signature"))?;
    unb64(&envelope.message).map_err(|_| Rejection::malformed("message is not strict base64"))?;
    let kind = if envelope.message_type.is_public() { public_kind(envelope)? } else { private_shape(envelope)? };
    Ok(Shape { sender, message_hash, message_sign, kind })
}

fn public_kind(envelope: &Envelope) -> Result<Kind, Rejection> {
    if !envelope.acl.is_empty() {
        return Err(Rejection::malformed("ACL must be empty for a public message"));
    }
    if !envelope.objects.is_empty() {
        return Err(Rejection::malformed("objects must be empty for a public message"));
    }
    let content = MessageContent::decode_public(&envelope.message)
        .map_err(|_| Rejection::malformed("message is not a packed message content"))?;
    let body_type = content.content.body_type;
    if body_type != BODY_INVITATION && body_type != BODY_REGISTRATION {
        return Err(unsupported(format!("bodyType {body_type} is not accepted")));
    }
    let body = BodyMap::decode(&content.content.message_body)
        .map_err(|_| Rejection::malformed("messageBody is not base64 of a msgpack map"))?;
    if body_type == BODY_INVITATION {
        return Ok(Kind::Invitation { content, body });
    }
    let registration = Registration::from_body(&body).map_err(|e| Rejection::malformed(e.to_string()))?;
    Ok(Kind::Registration { content, body: registration })
}

fn private_shape(envelope: &Envelope) -> Result<Kind, Rejection> {
    let mut readers = Vec::with_capacity(envelope.acl.len());
    for (index, rule) in envelope.acl.iter().enumerate() {
        // The sentence names the rule, never echoes the text: it may be megabytes.
        readers
            .push(Address::parse(&rule.reader).map_err(|e| Rejection::malformed(format!("ACL[{index}].reader: {e}")))?);
        if rule.key.is_empty() {
            return Err(Rejection::malformed(format!("ACL[{index}].key must not be empty")));
        }
    }
    for object in &envelope.objects {
        hash32("objects[].objectHash", &object.object_hash)?;
        for meta in &object.meta_hashes {
            hash32("objects[].metaHashes[]", meta)?;
        }
        if let Some(container) = &object.container {
            unb64(&container.object_container)
                .map_err(|_| Rejection::malformed("objects[].container.objectContainer is not strict base64"))?;
        }
    }
    Ok(Kind::Private { readers })
}
