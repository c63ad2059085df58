//! Turns queued envelopes into the records of PROTOCOL.md section 9. The
//! result depends only on the payloads, their acceptance times and records
//! that were stored before they were accepted, so a redelivery plans the
//! same writes. The reads a batch needs (senders, invitations) are one
//! batched read each.

use pm_backends::{BackendError, QueuedMessage, RecordStore};
use pm_models::content::{BodyMap, MessageContent, Registration, BODY_REGISTRATION};
use pm_models::envelope::Envelope;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{Address, MessageHash, MessageType};
use std::collections::HashMap;

/// The records one delivery writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WritePlan {
    /// The persona a registration creates.
    pub persona: Option<PersonaRecord>,
    pub message: MessageRecord,
}

/// A payload read far enough to know what it needs from the store.
struct Decoded<'a> {
    queued: &'a QueuedMessage,
    envelope: Envelope,
    sign: TimestampedSignature,
    /// Set for a registration (bodyType 1): its body and its invitation.
    registration: Option<(Registration, MessageHash)>,
}

/// The plans of `batch`, in order: each a plan, or why its payload can
/// never be written. A store that cannot be read fails the whole batch.
pub async fn plan_batch(
    store: &dyn RecordStore,
    batch: &[&QueuedMessage],
) -> Result<Vec<Result<WritePlan, String>>, BackendError> {
    let decoded: Vec<Result<Decoded, String>> = batch.iter().map(|queued| decode(queued)).collect();
    let mut senders: Vec<Address> = Vec::new();
    let mut invitations: Vec<MessageHash> = Vec::new();
    for item in decoded.iter().flatten() {
        match &item.registration {
            Some((_, invitation)) => invitations.push(invitation.clone()),
            // A sender that is no address finds no persona: `plan_one` says so.
            None => senders.extend(Address::parse(&item.envelope.sender).ok()),
        }
    }
    senders.sort();
    senders.dedup();
    invitations.sort();
    invitations.dedup();
    let personas: HashMap<String, PersonaRecord> =
        store.personas(&senders).await?.into_iter().flatten().map(|p| (p.address.clone(), p)).collect();
    let inviters: HashMap<String, String> =
        store.messages(&invitations).await?.into_iter().flatten().map(|m| (m.hash.clone(), m.persona_sender)).collect();
    Ok(decoded.into_iter().map(|item| plan_one(item?, &personas, &inviters)).collect())
}

/// The plan of one queued message (a batch of one).
pub async fn plan(store: &dyn RecordStore, queued: &QueuedMessage) -> Result<Result<WritePlan, String>, BackendError> {
    Ok(plan_batch(store, &[queued]).await?.pop().expect("one plan per message"))
}

fn decode(queued: &QueuedMessage) -> Result<Decoded<'_>, String> {
    let envelope =
        Envelope::from_queue_payload(&queued.payload).map_err(|_| "payload is not a msgpack envelope".to_owned())?;
    if envelope.message_hash != queued.message_id.as_str() {
        return Err("message_id differs from the payload's messageHash".to_owned());
    }
    let sign = TimestampedSignature::parse(&envelope.message_sign)
        .map_err(|_| "messageSign is not a timestamped signature".to_owned())?;
    let registration = registration(&envelope)?;
    Ok(Decoded { queued, envelope, sign, registration })
}

/// The body of a registration (bodyType 1) and its invitation; `None` for
/// any other message.
fn registration(envelope: &Envelope) -> Result<Option<(Registration, MessageHash)>, String> {
    if envelope.message_type != MessageType::Registration {
        return Ok(None);
    }
    let content = MessageContent::decode_public(&envelope.message)
        .map_err(|_| "message is not a packed message content".to_owned())?
        .content;
    if content.body_type != BODY_REGISTRATION {
        return Ok(None);
    }
    let body = BodyMap::decode(&content.message_body).map_err(|_| "messageBody is not a msgpack map".to_owned())?;
    let registration = Registration::from_body(&body).map_err(|e| e.to_string())?;
    let invitation =
        MessageHash::parse(&registration.invite_msg_id).map_err(|_| "inviteMsgID is not a message hash".to_owned())?;
    Ok(Some((registration, invitation)))
}

fn plan_one(
    item: Decoded,
    personas: &HashMap<String, PersonaRecord>,
    inviters: &HashMap<String, String>,
) -> Result<WritePlan, String> {
    let Decoded { queued, envelope, sign, registration } = item;
    let persona = registration.map(|(registration, invitation)| {
        let inviter = inviters.get(invitation.as_str()).cloned();
        PersonaRecord::from_registration(&registration, queued.message_id.as_str(), inviter, queued.accepted_at)
    });
    let sender = match &persona {
        Some(persona) => persona,
        None => personas
            .get(&envelope.sender)
            .ok_or_else(|| format!("sender {} is not a stored persona", envelope.sender))?,
    };
    let message = MessageRecord::accepted(&envelope, sender, &sign, queued.accepted_at, &queued.receipt);
    Ok(WritePlan { persona, message })
}
