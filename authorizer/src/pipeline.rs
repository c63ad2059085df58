//! The checks of PROTOCOL.md section 7 in their order: (1) shape and limits,
//! (2) duplicate, (3) sender resolution, (4) `messageHash`, (5)
//! `messageSign`, (6) the public content and body rules, or the ACL and
//! objects of a private message. The first failure decides the code.
//!
//! Step (2) costs two reads (the hash's claim and its stored row), and a new
//! envelope, nearly every one, needs neither answer in full: taking the claim
//! of its hash at admission fails for a duplicate with the same code. What
//! that claim does not cover is a row stored without one (rows from before
//! claims existed), so the stored row is still read beside steps (3) to (6),
//! except where the admission checks stored rows itself (the embedded file,
//! whose stored row is the claim of its hash). The claim is read only when a
//! later step refuses the envelope, where a duplicate's code must win: the
//! outcome is the one of the steps in their order.

use crate::node::NodeIdentity;
use crate::personas::ParsedKeys;
use crate::rejections::{conflict_rejection, timestamp_rejection, unavailable};
use crate::settings::AuthorizerSettings;
use crate::shape::{self, Kind};
use crate::{private, public, AuthorizerBackends};
use pm_backends::{BackendError, ClaimKey, ClaimOutcome, QueuedMessage, RecordBatch};
use pm_models::api::AcceptedEnvelope;
use pm_models::envelope::Envelope;
use pm_models::keys::VerifyingKey;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::time::Micros;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{MessageHash, Rejection, RejectionCode};

/// An envelope that passed every check: what to claim and who sent it.
pub struct Approved {
    pub message_hash: MessageHash,
    pub claims: Vec<ClaimKey>,
    /// The sender; for a registration, the persona its body describes.
    pub sender: PersonaRecord,
    /// A registration: storing it creates `sender`.
    pub registers: bool,
    pub message_sign: TimestampedSignature,
}

/// Runs steps 1–6 without side effects.
pub async fn check(
    envelope: &Envelope,
    now: Micros,
    node: &NodeIdentity,
    settings: &AuthorizerSettings,
    backends: &AuthorizerBackends,
    keys: &ParsedKeys,
) -> Result<Approved, Rejection> {
    // (1) shape and limits
    let shape = shape::check(envelope, settings)?;
    let hash = shape.message_hash.clone();
    let span = tracing::Span::current();
    span.record("hash", hash.as_str());
    span.record("sender", shape.sender.as_str());

    // (2) duplicate: the stored row beside the later steps, the claim only if
    // one of them refuses (module doc); a duplicate that passes them all
    // loses the claim of its hash at admission.
    let stored = async {
        match backends.admission.stores_records() {
            true => Ok(None),
            false => backends.store.message(&hash).await,
        }
    };
    let (checked, stored) = tokio::join!(after_duplicate(envelope, shape, now, node, settings, backends, keys), stored);
    if stored.map_err(unavailable)?.is_some() {
        return Err(conflict_rejection(&ClaimKey::Message(hash)));
    }
    match checked {
        Ok(approved) => Ok(approved),
        Err(rejection) => {
            refuse_duplicate(&hash, backends).await?;
            Err(rejection)
        }
    }
}

/// Step (2) in full: `DUPLICATE_MESSAGE` when the hash is claimed or stored.
async fn refuse_duplicate(hash: &MessageHash, backends: &AuthorizerBackends) -> Result<(), Rejection> {
    let claim = ClaimKey::Message(hash.clone());
    let (claimed, stored) =
        tokio::try_join!(backends.claims.holder(&claim), backends.store.message(hash)).map_err(unavailable)?;
    match claimed.is_some() || stored.is_some() {
        true => Err(conflict_rejection(&claim)),
        false => Ok(()),
    }
}

/// Steps (3) to (6).
async fn after_duplicate(
    envelope: &Envelope,
    shape: shape::Shape,
    now: Micros,
    node: &NodeIdentity,
    settings: &AuthorizerSettings,
    backends: &AuthorizerBackends,
    keys: &ParsedKeys,
) -> Result<Approved, Rejection> {
    let hash = &shape.message_hash;
    // (3) sender resolution
    let (sender_key, sender): (VerifyingKey, Option<PersonaRecord>) = match &shape.kind {
        Kind::Registration { body, .. } => {
            if body.public_key.address() != shape.sender {
                return Err(Rejection::new(
                    RejectionCode::SenderAddressMismatch,
                    "sender is not the address of the body's publicKey",
                ));
            }
            (*body.public_key.verifying_key(), None)
        }
        _ => {
            let Some(record) = backends.store.persona(&shape.sender).await.map_err(unavailable)? else {
                return Err(Rejection::new(RejectionCode::UnknownSender, "sender is not a registered persona"));
            };
            let key = keys
                .parse(&record.pubkey)
                .map_err(|e| unavailable(BackendError::Corrupt(format!("stored pubkey of {}: {e}", record.address))))?;
            (key, Some(record))
        }
    };

    // (4) messageHash
    if MessageHash::of_message(&envelope.message) != *hash {
        return Err(Rejection::new(RejectionCode::MessageHashMismatch, "messageHash is not the hash of message"));
    }

    // (5) messageSign: its T, then its signature
    let t = shape.message_sign.timestamp().map_err(timestamp_rejection)?;
    node.verify_timestamp(&t).map_err(timestamp_rejection)?;
    t.check_fresh(now, settings.freshness()).map_err(timestamp_rejection)?;
    shape.message_sign.verify_signature(hash.as_str(), &sender_key).map_err(|_| {
        Rejection::new(RejectionCode::BadSignature, "messageSign does not verify with the sender's key")
    })?;

    // (6) public content and body rules, or ACL and objects
    let mut claims = vec![ClaimKey::Message(hash.clone())];
    let registers = matches!(shape.kind, Kind::Registration { .. });
    let sender = match &shape.kind {
        Kind::Invitation { content, body } => {
            public::check_content(envelope, content, &sender_key, node)?;
            public::check_invitation(body)?;
            sender.expect("a non-registration sender was resolved in step 3")
        }
        Kind::Registration { content, body } => {
            public::check_content(envelope, content, &sender_key, node)?;
            let registration = public::check_registration(body, node, backends).await?;
            claims.extend(registration.claims);
            PersonaRecord::from_registration(body, hash.as_str(), Some(registration.inviter), now)
        }
        Kind::Private { readers } => {
            private::check_acl(readers, backends).await?;
            private::check_objects(envelope, &sender_key, node)?;
            sender.expect("a non-registration sender was resolved in step 3")
        }
    };
    Ok(Approved { message_hash: shape.message_hash, claims, sender, registers, message_sign: shape.message_sign })
}

/// Takes the claims and queues the envelope; the loser of a race for a claim
/// gets the code of the claim it lost.
pub async fn admit(
    envelope: Envelope,
    approved: Approved,
    now: Micros,
    node: &NodeIdentity,
    backends: &AuthorizerBackends,
) -> Result<AcceptedEnvelope, Rejection> {
    let receipt = node.receipt(&approved.message_hash, now);
    let queued = QueuedMessage {
        message_id: approved.message_hash.clone(),
        accepted_at: now,
        receipt: receipt.clone(),
        payload: envelope.to_queue_payload(),
    };
    let admitted = match backends.admission.stores_records() {
        true => {
            let records = records_of(&envelope, &approved, now, &receipt);
            backends.admission.admit_storing(&approved.claims, &queued, records).await
        }
        false => backends.admission.admit(&approved.claims, &queued).await,
    };
    if !matches!(admitted, Ok(ClaimOutcome::Claimed)) {
        node.withdraw_receipt(&queued.message_id);
    }
    match admitted.map_err(unavailable)? {
        ClaimOutcome::Claimed => {
            Ok(AcceptedEnvelope { envelope, sender: approved.sender, created_at: now.to_rfc3339(), receipt })
        }
        ClaimOutcome::Conflict(key) => Err(conflict_rejection(&key)),
    }
}

/// The records the writer stores for `envelope` (PROTOCOL.md section 9),
/// for an admission that stores them itself: the message, and the persona a
/// registration creates.
fn records_of(envelope: &Envelope, approved: &Approved, now: Micros, receipt: &str) -> RecordBatch {
    let message = MessageRecord::accepted(envelope, &approved.sender, &approved.message_sign, now, receipt);
    let personas = if approved.registers { vec![approved.sender.clone()] } else { Vec::new() };
    RecordBatch { personas, messages: vec![message] }
}
