//! Turns a queued envelope into the records of PROTOCOL.md section 9. The
//! result depends only on the payload, its acceptance time and records that
//! were stored before it was accepted, so a redelivery plans the same writes.

use pm_models::content::{BodyMap, MessageContent, BODY_REGISTRATION};
use pm_models::envelope::Envelope;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::seams::{BackendError, QueuedMessage, RecordStore};
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{MessageType, PublicKeyPem};

#[derive(Debug)]
pub enum PlanError {
    /// Retrying may succeed.
    Transient(BackendError),
    /// The payload can never be written.
    Permanent(String),
}

/// The records one delivery writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePlan {
    /// The persona a registration creates.
    pub persona: Option<PersonaRecord>,
    pub message: MessageRecord,
}

fn permanent(reason: impl Into<String>) -> PlanError {
    PlanError::Permanent(reason.into())
}

pub async fn plan(store: &dyn RecordStore, queued: &QueuedMessage) -> Result<WritePlan, PlanError> {
    let envelope =
        Envelope::from_queue_payload(&queued.payload).map_err(|_| permanent("payload is not a msgpack envelope"))?;
    if envelope.message_hash != queued.message_id {
        return Err(permanent("message_id differs from the payload's messageHash"));
    }
    let sign = TimestampedSignature::parse(&envelope.message_sign)
        .map_err(|_| permanent("messageSign is not a timestamped signature"))?;
    let persona = registered_persona(store, &envelope, queued).await?;
    let (pubkey, nickname) = match &persona {
        Some(p) => (p.pubkey.clone(), p.nickname.clone()),
        None => {
            let sender = store
                .persona(&envelope.sender)
                .await
                .map_err(PlanError::Transient)?
                .ok_or_else(|| permanent(format!("sender {} is not a stored persona", envelope.sender)))?;
            (sender.pubkey, sender.nickname)
        }
    };
    let message = MessageRecord::from_envelope(
        &envelope,
        &pubkey,
        &nickname,
        sign.signature_b64(),
        sign.timestamp_text(),
        queued.accepted_at,
    );
    Ok(WritePlan { persona, message })
}

/// The persona a registration (bodyType 1) describes; `None` for others.
async fn registered_persona(
    store: &dyn RecordStore,
    envelope: &Envelope,
    queued: &QueuedMessage,
) -> Result<Option<PersonaRecord>, PlanError> {
    if envelope.message_type != MessageType::Registration {
        return Ok(None);
    }
    let content = MessageContent::decode_public(&envelope.message)
        .map_err(|_| permanent("message is not a packed message content"))?
        .content;
    if content.body_type != BODY_REGISTRATION {
        return Ok(None);
    }
    let body = BodyMap::decode(&content.message_body).map_err(|_| permanent("messageBody is not a msgpack map"))?;
    let field = |key: &str| body.non_empty_str(key).ok_or_else(|| permanent(format!("registration body lacks {key}")));
    let public_key =
        PublicKeyPem::parse_exact(field("publicKey")?).map_err(|e| permanent(format!("publicKey: {e}")))?;
    let invite_hash = field("inviteMsgID")?.to_owned();
    let inviter = store.message(&invite_hash).await.map_err(PlanError::Transient)?.map(|m| m.persona_sender);
    Ok(Some(PersonaRecord {
        address: public_key.address().to_string(),
        pubkey: public_key.as_str().to_owned(),
        nickname: field("publicNickname")?.to_owned(),
        created_at: queued.accepted_at.to_rfc3339(),
        registration_hash: Some(envelope.message_hash.clone()),
        invite_hash: Some(invite_hash),
        inviter,
    }))
}
