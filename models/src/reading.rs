//! What anyone, and a reader, can check of a stored envelope (PROTOCOL.md
//! sections 4-6 and 8); used by `pm verify` and `pm read`, with no I/O.
//!
//! - [`check_stored`], for anyone: `messageHash`, `messageSign` (its `T`
//!   signed by the node, its signature by the sender), each container's hash
//!   and `containerSign`, the node's acceptance receipt at the stored
//!   acceptance instant, and for a public message its content (dossier hash,
//!   body hash, content signature).
//! - [`open`], for a reader holding its key: the ACL rule that names it, the
//!   message key sealed in it, the AES-256-GCM content and containers, and
//!   every check above plus the content's and the objects' own.
//!
//! Freshness is never checked: a stored `T` was fresh when the node accepted
//! it (section 3). Each check is one line of a [`Report`], so a caller says
//! exactly what holds and what does not.

use crate::codec::{from_msgpack, hash_text, sha256_b64, unb64};
use crate::content::{dossier_hash, MessageContent, DOSSIER_SALT_LEN};
use crate::envelope::Envelope;
use crate::hash::MessageHash;
use crate::keys::{PersonaKey, VerifyingKey};
use crate::time::Micros;
use crate::timestamped_signature::TimestampedSignature;
use crate::{blob, receipt, sealed_box};
use std::fmt;

/// One check and its outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// What was checked, e.g. `messageHash = hash(message)`.
    pub name: String,
    /// Why it does not hold; `None` when it holds.
    pub failure: Option<String>,
}

/// The checks made of one envelope, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn record(&mut self, name: impl Into<String>, outcome: Result<(), String>) {
        self.checks.push(Check { name: name.into(), failure: outcome.err() });
    }

    fn expect_equal(&mut self, name: impl Into<String>, stored: &str, computed: &str) {
        let outcome = match stored == computed {
            true => Ok(()),
            false => Err(format!("stored {stored}, computed {computed}")),
        };
        self.record(name, outcome);
    }

    pub fn checks(&self) -> &[Check] {
        &self.checks
    }

    /// True when every check holds (and there was at least one).
    pub fn holds(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.failure.is_none())
    }

    /// The checks that do not hold.
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| c.failure.is_some())
    }
}

/// One line per check: `ok    NAME` or `FAIL  NAME: WHY`.
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for check in &self.checks {
            match &check.failure {
                None => writeln!(f, "ok    {}", check.name)?,
                Some(why) => writeln!(f, "FAIL  {}: {why}", check.name)?,
            }
        }
        Ok(())
    }
}

/// A stored envelope with what checking it needs.
#[derive(Clone, Copy, Debug)]
pub struct Stored<'a> {
    pub envelope: &'a Envelope,
    /// The sender's key (for a registration, the key it registered).
    pub sender: &'a VerifyingKey,
    /// The node key, which signs every `T` and the receipt.
    pub node: &'a VerifyingKey,
    /// `MessageEnvelope.receipt`; `None` for records stored before receipts.
    pub receipt: Option<&'a str>,
    /// `MessageEnvelope.createdAt`, the acceptance instant the receipt states.
    pub accepted_at: Option<Micros>,
}

/// Every check anyone can make of a stored envelope (module doc).
pub fn check_stored(stored: &Stored) -> Report {
    let mut report = Report::default();
    let envelope = stored.envelope;
    report.expect_equal("messageHash = hash(message)", &envelope.message_hash, &hash_text(&envelope.message));
    report.record(
        "messageSign: the sender's signature over messageHash, with a node-signed T",
        verify_sign(&envelope.message_sign, &envelope.message_hash, stored.sender, stored.node),
    );
    report.record("receipt: the node accepted this messageHash at createdAt", check_receipt(stored));
    for (i, object) in envelope.objects.iter().enumerate() {
        let Some(container) = &object.container else { continue };
        let n = i + 1;
        report.expect_equal(
            format!("object {n}: containerHash = hash(objectContainer)"),
            &container.container_hash,
            &hash_text(&container.object_container),
        );
        report.record(
            format!("object {n}: containerSign: the sender's signature over containerHash, with a node-signed T"),
            verify_sign(&container.container_sign, &container.container_hash, stored.sender, stored.node),
        );
    }
    if envelope.message_type.is_public() {
        match MessageContent::decode_public(&envelope.message) {
            Ok(decoded) => check_content(&mut report, stored, &decoded.content, &decoded.packed),
            Err(e) => report.record("content: the public message decodes", Err(e.to_string())),
        }
    }
    report
}

/// A message opened by one of its readers.
#[derive(Clone, Debug)]
pub struct Opened {
    pub content: MessageContent,
    /// The body (`messageBody` decoded), as JSON.
    pub body: serde_json::Value,
    /// The objects in envelope order; `bytes` is `None` for an object
    /// without a container or whose container does not open.
    pub objects: Vec<OpenedObject>,
    /// [`check_stored`] and the reader's own checks.
    pub report: Report,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenedObject {
    pub object_hash: String,
    pub bytes: Option<Vec<u8>>,
}

/// Why a reader cannot open a message at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("{address} is not a reader of this message: no ACL rule names it (readers: {readers})")]
    NotAReader { address: String, readers: String },
    #[error("the ACL rule for {address} does not open with this private key")]
    KeyDoesNotOpen { address: String },
    #[error("the message key in the ACL rule is {0} bytes, not 32")]
    BadMessageKey(usize),
    #[error("the message does not decrypt with the message key (AES-256-GCM, nonce ‖ ciphertext ‖ tag)")]
    DoesNotDecrypt,
    #[error("the decrypted message is not a message content: {0}")]
    NotContent(String),
}

/// Opens `stored` with `reader`'s key and checks everything (module doc).
/// A public message needs no key: its content is decoded as it is.
pub fn open(stored: &Stored, reader: &PersonaKey) -> Result<Opened, OpenError> {
    let envelope = stored.envelope;
    let (packed, message_key) = if envelope.message_type.is_public() {
        let decoded =
            MessageContent::decode_public(&envelope.message).map_err(|e| OpenError::NotContent(e.to_string()))?;
        (decoded.packed, None)
    } else {
        let key = message_key(envelope, reader)?;
        let sealed = unb64(&envelope.message).map_err(|_| OpenError::DoesNotDecrypt)?;
        (blob::open(&key, &sealed).ok_or(OpenError::DoesNotDecrypt)?, Some(key))
    };
    let content: MessageContent = from_msgpack(&packed).map_err(|e| OpenError::NotContent(e.to_string()))?;
    let mut report = check_stored(stored);
    if !envelope.message_type.is_public() {
        // check_stored checks a public content; a private one only now.
        check_content(&mut report, stored, &content, &packed);
    }
    let body = match unb64(&content.message_body).ok().and_then(|b| crate::strict_msgpack::read_value(&b).ok()) {
        Some(value) => {
            report.record("body: messageBody is base64 of one msgpack value", Ok(()));
            msgpack_to_json(&value)
        }
        None => {
            report.record("body: messageBody is base64 of one msgpack value", Err("it does not decode".into()));
            serde_json::Value::Null
        }
    };
    let objects = envelope
        .objects
        .iter()
        .enumerate()
        .map(|(i, object)| {
            let bytes = match (&object.container, &message_key) {
                (Some(container), Some(key)) => {
                    let opened = unb64(&container.object_container).ok().and_then(|b| blob::open(key, &b));
                    let name = format!("object {}: objectHash = SHA-256 of the decrypted container", i + 1);
                    match &opened {
                        Some(bytes) => report.expect_equal(name, &object.object_hash, &sha256_b64(bytes)),
                        None => report.record(name, Err("the container does not decrypt with the message key".into())),
                    }
                    opened
                }
                _ => None,
            };
            OpenedObject { object_hash: object.object_hash.clone(), bytes }
        })
        .collect();
    Ok(Opened { content, body, objects, report })
}

/// The message key the ACL rule naming `reader` seals to it.
fn message_key(envelope: &Envelope, reader: &PersonaKey) -> Result<[u8; 32], OpenError> {
    let address = reader.address().to_string();
    let Some(rule) = envelope.acl.iter().find(|rule| rule.reader == address) else {
        let readers = envelope.acl.iter().map(|r| r.reader.as_str()).collect::<Vec<_>>().join(", ");
        return Err(OpenError::NotAReader { address, readers });
    };
    let opened = unb64(&rule.key).ok().and_then(|sealed| sealed_box::open(reader, &sealed));
    let key = opened.ok_or_else(|| OpenError::KeyDoesNotOpen { address: address.clone() })?;
    let len = key.len();
    key.try_into().map_err(|_| OpenError::BadMessageKey(len))
}

/// The content's checks: dossier salt and hash, body hash, content signature.
fn check_content(report: &mut Report, stored: &Stored, content: &MessageContent, packed: &[u8]) {
    let envelope = stored.envelope;
    match unb64(&content.dossier_salt) {
        Ok(salt) if salt.len() == DOSSIER_SALT_LEN => report.expect_equal(
            "dossierHash = HMAC-SHA256(dossierSalt, packed content)",
            &envelope.dossier_hash,
            &dossier_hash(&salt, packed),
        ),
        Ok(salt) => report.record("dossierSalt is 40 bytes", Err(format!("it is {} bytes", salt.len()))),
        Err(_) => report.record("dossierSalt is 40 bytes", Err("it is not base64".into())),
    }
    let body_hash = hash_text(&content.message_body);
    report.expect_equal("bodyHash = hash(messageBody)", &envelope.body_hash, &body_hash);
    report.record(
        "content signature: the sender's signature over bodyHash, with a node-signed T",
        verify_sign(&content.signature, &body_hash, stored.sender, stored.node),
    );
}

fn verify_sign(sign: &str, hash: &str, signer: &VerifyingKey, node: &VerifyingKey) -> Result<(), String> {
    let signature = TimestampedSignature::parse(sign).map_err(|e| e.to_string())?;
    signature.verify(hash, signer, node).map_err(|e| e.to_string())
}

fn check_receipt(stored: &Stored) -> Result<(), String> {
    let receipt = stored.receipt.ok_or("no receipt is stored (a record from before receipts)")?;
    let accepted_at = stored.accepted_at.ok_or("no createdAt is stored")?;
    let hash = MessageHash::parse(&stored.envelope.message_hash).map_err(|e| format!("messageHash: {e}"))?;
    receipt::verify_at(receipt, &hash, accepted_at, stored.node).map_err(|e| e.to_string())
}

/// A decoded body as JSON: `bin` as base64 text, map keys as text.
fn msgpack_to_json(value: &rmpv::Value) -> serde_json::Value {
    use rmpv::Value as M;
    use serde_json::Value as J;
    match value {
        M::Nil => J::Null,
        M::Boolean(b) => J::Bool(*b),
        M::Integer(n) => n.as_u64().map(J::from).or_else(|| n.as_i64().map(J::from)).unwrap_or(J::Null),
        M::F32(x) => serde_json::Number::from_f64(f64::from(*x)).map_or(J::Null, J::Number),
        M::F64(x) => serde_json::Number::from_f64(*x).map_or(J::Null, J::Number),
        M::String(s) => J::String(s.as_str().unwrap_or_default().to_owned()),
        M::Binary(b) => J::String(crate::codec::b64(b)),
        M::Array(items) => J::Array(items.iter().map(msgpack_to_json).collect()),
        M::Map(entries) => J::Object(
            entries
                .iter()
                .map(|(k, v)| (k.as_str().map_or_else(|| k.to_string(), str::to_owned), msgpack_to_json(v)))
                .collect(),
        ),
        M::Ext(kind, bytes) => serde_json::json!({ "ext": kind, "data": crate::codec::b64(bytes) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{acl_rule_for, private_envelope, random_bytes, sealed_object, ContentParts};
    use crate::message_type::MessageType;
    use crate::signed_timestamp::SignedTimestamp;

    struct Fixture {
        node: PersonaKey,
        sender: PersonaKey,
        reader: PersonaKey,
        envelope: Envelope,
        receipt: String,
        accepted_at: Micros,
    }

    /// An assertion from `sender` to itself and `reader`, with one object,
    /// accepted at a fixed instant, as `pm assert` builds it.
    fn fixture() -> Fixture {
        let node = PersonaKey::from_seed([1; 32]);
        let sender = PersonaKey::from_seed([2; 32]);
        let reader = PersonaKey::from_seed([3; 32]);
        let t = SignedTimestamp::issue(&node, Micros(1_700_000_000_000_000));
        let message_key: [u8; 32] = random_bytes();
        let acl = [&sender, &reader].iter().map(|k| acl_rule_for(k.public().verifying_key(), &message_key)).collect();
        let objects = vec![sealed_object(&sender, b"the object's bytes", &message_key, &t)];
        let body = serde_json::json!({ "assertion": "it holds" });
        let parts = ContentParts::new(0, &body);
        let envelope =
            private_envelope(&sender, MessageType::Assertion, &parts, &message_key, &random_bytes(), acl, objects, &t);
        let accepted_at = Micros(1_700_000_001_000_000);
        let receipt = receipt::issue(&node, &MessageHash::parse(&envelope.message_hash).unwrap(), accepted_at);
        Fixture { node, sender, reader, envelope, receipt, accepted_at }
    }

    impl Fixture {
        fn stored<'a>(&'a self, envelope: &'a Envelope, receipt: &'a str) -> Stored<'a> {
            Stored {
                envelope,
                sender: self.sender.public().verifying_key(),
                node: self.node.public().verifying_key(),
                receipt: Some(receipt),
                accepted_at: Some(self.accepted_at),
            }
        }
    }

    fn failed(report: &Report) -> Vec<String> {
        report.failures().map(|c| c.name.clone()).collect()
    }

    #[test]
    fn a_reader_opens_the_message_and_every_check_holds() {
        let f = fixture();
        let opened = open(&f.stored(&f.envelope, &f.receipt), &f.reader).unwrap();
        assert!(opened.report.holds(), "{}", opened.report);
        assert_eq!(opened.body, serde_json::json!({ "assertion": "it holds" }));
        assert_eq!(opened.objects[0].bytes.as_deref(), Some(&b"the object's bytes"[..]));
        // messageHash, messageSign, receipt, container hash and sign, dossier,
        // body hash, content signature, body, objectHash.
        assert_eq!(opened.report.checks().len(), 10, "{}", opened.report);
        let sender_opens = open(&f.stored(&f.envelope, &f.receipt), &f.sender).unwrap();
        assert!(sender_opens.report.holds());
    }

    #[test]
    fn a_persona_that_is_not_a_reader_is_refused_by_name() {
        let f = fixture();
        let stranger = PersonaKey::from_seed([9; 32]);
        match open(&f.stored(&f.envelope, &f.receipt), &stranger) {
            Err(OpenError::NotAReader { address, readers }) => {
                assert_eq!(address, stranger.address().to_string());
                assert!(readers.contains(&f.reader.address().to_string()));
            }
            other => panic!("expected NotAReader, got {other:?}"),
        }
        // A rule naming the stranger but sealed to someone else does not open.
        let mut envelope = f.envelope.clone();
        envelope.acl[1].reader = stranger.address().to_string();
        assert!(matches!(open(&f.stored(&envelope, &f.receipt), &stranger), Err(OpenError::KeyDoesNotOpen { .. })));
    }

    #[test]
    fn anyone_checks_the_public_parts_without_a_key() {
        let f = fixture();
        let report = check_stored(&f.stored(&f.envelope, &f.receipt));
        assert!(report.holds(), "{report}");
        assert_eq!(report.checks().len(), 5, "{report}");
    }

    #[test]
    fn a_tampered_receipt_fails_by_name() {
        let f = fixture();
        let stranger = PersonaKey::from_seed([9; 32]);
        let hash = MessageHash::parse(&f.envelope.message_hash).unwrap();
        let forged = receipt::issue(&stranger, &hash, f.accepted_at);
        let later = receipt::issue(&f.node, &hash, Micros(f.accepted_at.0 + 1));
        let other = receipt::issue(&f.node, &MessageHash::of_message("another"), f.accepted_at);
        for (receipt, why) in [
            (forged.as_str(), "not signed by the node"),
            (later.as_str(), "another instant"),
            (other.as_str(), "does not verify"),
        ] {
            let report = check_stored(&f.stored(&f.envelope, receipt));
            assert_eq!(failed(&report), ["receipt: the node accepted this messageHash at createdAt"], "{report}");
            let line = report.to_string();
            assert!(line.contains("FAIL  receipt") && line.contains(why), "{line}");
        }
        let mut missing = f.stored(&f.envelope, &f.receipt);
        missing.receipt = None;
        let report = check_stored(&missing).to_string();
        assert!(report.contains("FAIL  receipt") && report.contains("no receipt is stored"), "{report}");
    }

    #[test]
    fn tampered_signatures_and_hashes_fail_by_name() {
        let f = fixture();
        let t = SignedTimestamp::issue(&f.node, Micros(1_700_000_000_000_000));
        let stranger = PersonaKey::from_seed([9; 32]);

        let mut envelope = f.envelope.clone();
        envelope.message_sign = TimestampedSignature::sign(&stranger, &envelope.message_hash, &t).as_str().into();
        let report = check_stored(&f.stored(&envelope, &f.receipt));
        assert_eq!(failed(&report), ["messageSign: the sender's signature over messageHash, with a node-signed T"]);

        let mut envelope = f.envelope.clone();
        let container = envelope.objects[0].container.as_mut().unwrap();
        container.container_sign = TimestampedSignature::sign(&stranger, &container.container_hash, &t).as_str().into();
        let report = check_stored(&f.stored(&envelope, &f.receipt));
        assert_eq!(
            failed(&report),
            ["object 1: containerSign: the sender's signature over containerHash, with a node-signed T"]
        );

        // A T not signed by the node fails even with the sender's own signature.
        let mut envelope = f.envelope.clone();
        let foreign_t = SignedTimestamp::issue(&stranger, Micros(1_700_000_000_000_000));
        envelope.message_sign =
            TimestampedSignature::sign(&f.sender, &envelope.message_hash, &foreign_t).as_str().into();
        let report = check_stored(&f.stored(&envelope, &f.receipt));
        assert!(report.to_string().contains("not signed by this node"), "{report}");

        // Another body hash: the reader sees the mismatch and the signature still holds over the real one.
        let mut envelope = f.envelope.clone();
        envelope.body_hash = hash_text("something else");
        let opened = open(&f.stored(&envelope, &f.receipt), &f.reader).unwrap();
        assert_eq!(failed(&opened.report), ["bodyHash = hash(messageBody)"]);

        let mut envelope = f.envelope.clone();
        envelope.objects[0].object_hash = sha256_b64(b"another object");
        let opened = open(&f.stored(&envelope, &f.receipt), &f.reader).unwrap();
        assert_eq!(failed(&opened.report), ["object 1: objectHash = SHA-256 of the decrypted container"]);
    }

    #[test]
    fn a_registration_is_checked_without_a_key() {
        let node = PersonaKey::from_seed([1; 32]);
        let inviter = PersonaKey::from_seed([2; 32]);
        let t = SignedTimestamp::issue(&node, Micros(1_700_000_000_000_000));
        let invitation = crate::client::invitation(&inviter, &node.address(), "http://gw", "n", "s", &t);
        let envelope = invitation.envelope;
        let at = Micros(1_700_000_002_000_000);
        let receipt = receipt::issue(&node, &MessageHash::parse(&envelope.message_hash).unwrap(), at);
        let stored = Stored {
            envelope: &envelope,
            sender: inviter.public().verifying_key(),
            node: node.public().verifying_key(),
            receipt: Some(&receipt),
            accepted_at: Some(at),
        };
        let report = check_stored(&stored);
        assert!(report.holds(), "{report}");
        assert!(report.to_string().contains("dossierHash"), "public content is checked: {report}");
        let opened = open(&stored, &PersonaKey::from_seed([7; 32])).unwrap();
        assert_eq!(opened.body["offeringAddr"], inviter.address().to_string());
    }
}
