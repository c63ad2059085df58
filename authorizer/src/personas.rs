//! The personas the authorizer has found, kept in memory. A stored persona
//! never changes (PROTOCOL.md section 9: its row is written once, keyed by
//! its address), so a persona found once needs no second trip to the store;
//! an address not found is asked again every time (it may be registered
//! since). This saves the sender's and every ACL reader's lookup on the
//! distributed store, where each is a round trip to HBase. Their keys are
//! kept parsed too ([`ParsedKeys`]).

use async_trait::async_trait;
use pm_backends::{BackendError, RecordBatch, RecordStore};
use pm_models::keys::VerifyingKey;
use pm_models::public_key::PublicKeyError;
use pm_models::recent::Recent;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::{Address, MessageHash, PublicKeyPem};
use std::collections::HashMap;
use std::sync::Arc;

/// Personas (and parsed keys) kept at most, the least recently used going
/// first.
const CAPACITY: usize = 50_000;

/// A [`RecordStore`] that remembers the personas it found.
pub struct KnownPersonas {
    store: Arc<dyn RecordStore>,
    known: Recent<Address, PersonaRecord>,
}

impl KnownPersonas {
    pub fn new(store: Arc<dyn RecordStore>) -> Self {
        Self { store, known: Recent::new(CAPACITY) }
    }
}

#[async_trait]
impl RecordStore for KnownPersonas {
    async fn put(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        self.store.put(batch).await
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, BackendError> {
        let mut found: Vec<Option<PersonaRecord>> = self.known.get_all(addresses);
        let missing: Vec<Address> =
            addresses.iter().zip(&found).filter(|(_, hit)| hit.is_none()).map(|(a, _)| a.clone()).collect();
        if missing.is_empty() {
            return Ok(found);
        }
        let looked_up = self.store.personas(&missing).await?;
        let mut fresh: HashMap<Address, PersonaRecord> = HashMap::new();
        for (address, record) in missing.into_iter().zip(looked_up) {
            if let Some(record) = record {
                fresh.insert(address, record);
            }
        }
        for (address, slot) in addresses.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                *slot = fresh.get(address).cloned();
            }
        }
        self.known.put_all(fresh);
        Ok(found)
    }

    async fn messages(&self, hashes: &[MessageHash]) -> Result<Vec<Option<MessageRecord>>, BackendError> {
        self.store.messages(hashes).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.store.ping().await
    }
}

/// Stored public keys, parsed once. Parsing one decompresses its curve
/// point and checks its encoding (two field inversions' worth of work), 2.4 %
/// of `pm serve`'s time under load when done for every envelope (issue 9).
pub struct ParsedKeys {
    parsed: Recent<String, VerifyingKey>,
}

impl Default for ParsedKeys {
    fn default() -> Self {
        Self { parsed: Recent::new(CAPACITY) }
    }
}

impl ParsedKeys {
    /// The key of PEM text as [`PublicKeyPem::parse_lenient`] reads it; a
    /// text that does not parse is not remembered.
    pub fn parse(&self, pem: &str) -> Result<VerifyingKey, PublicKeyError> {
        if let Some(key) = self.parsed.get(pem) {
            return Ok(key);
        }
        let key = *PublicKeyPem::parse_lenient(pem)?.verifying_key();
        self.parsed.put(pem.to_owned(), key);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pm_backends::embedded::EmbeddedBackend;
    use pm_backends::RecordWriter;
    use pm_models::keys::PersonaKey;
    use pm_models::time::Micros;

    fn persona(key: &PersonaKey, nickname: &str) -> PersonaRecord {
        PersonaRecord::without_registration(key.public(), nickname, Micros(1))
    }

    #[test]
    fn a_key_is_parsed_once_as_the_lenient_parser_reads_it_and_a_bad_text_is_not_kept() {
        let keys = ParsedKeys::default();
        let pem = PersonaKey::from_seed([3; 32]).public().as_str().to_owned();
        let crlf = format!("{}\r\n", pem.replace('\n', "\r\n"));
        for text in [&pem, &crlf, &pem] {
            let expected = *PublicKeyPem::parse_lenient(text).unwrap().verifying_key();
            assert_eq!(keys.parse(text), Ok(expected));
        }
        assert_eq!(keys.parsed.len(), 2, "one entry per text");
        assert!(keys.parse("not a key").is_err());
        assert!(keys.parse(&pem.replace("MCow", "MCox")).is_err());
        assert_eq!(keys.parsed.len(), 2, "failures are not kept");
    }

    #[tokio::test]
    async fn a_found_persona_is_remembered_and_a_missing_one_is_asked_again_until_it_exists() {
        let dir = tempfile::tempdir().unwrap();
        let first = EmbeddedBackend::open(&dir.path().join("a.redb")).unwrap();
        let (alice, bob) = (PersonaKey::from_seed([1; 32]), PersonaKey::from_seed([2; 32]));
        first.write(&RecordBatch { personas: vec![persona(&alice, "alice")], messages: vec![] }).await.unwrap();
        let known = KnownPersonas::new(Arc::new(first.clone()));
        let (a, b) = (alice.address(), bob.address());
        assert_eq!(known.personas(&[a.clone(), b.clone()]).await.unwrap(), [Some(persona(&alice, "alice")), None]);

        // Bob registers after the first lookup: he is found, not remembered as missing.
        first.write(&RecordBatch { personas: vec![persona(&bob, "bob")], messages: vec![] }).await.unwrap();
        assert_eq!(known.persona(&b).await.unwrap(), Some(persona(&bob, "bob")));
        assert_eq!(known.known.len(), 2);
        // Found ones answer from memory, in the order asked.
        assert_eq!(
            known.personas(&[b.clone(), a.clone(), b]).await.unwrap(),
            [Some(persona(&bob, "bob")), Some(persona(&alice, "alice")), Some(persona(&bob, "bob"))]
        );
    }
}
