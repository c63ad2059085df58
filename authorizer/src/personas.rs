//! The personas the authorizer has found, kept in memory. A stored persona
//! never changes (PROTOCOL.md section 9: its row is written once, keyed by
//! its address), so a persona found once needs no second trip to the store;
//! an address not found is asked again every time (it may be registered
//! since). This saves the sender's and every ACL reader's lookup on the
//! distributed store, where each is a round trip to HBase.

use async_trait::async_trait;
use pm_backends::{BackendError, RecordBatch, RecordStore};
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::{Address, MessageHash};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Personas kept at most; when full, the memory starts afresh (a simple
/// bound: the active senders and readers are found again at once).
const CAPACITY: usize = 50_000;

/// A [`RecordStore`] that remembers the personas it found.
pub struct KnownPersonas {
    store: Arc<dyn RecordStore>,
    known: Mutex<HashMap<Address, PersonaRecord>>,
}

impl KnownPersonas {
    pub fn new(store: Arc<dyn RecordStore>) -> Self {
        Self { store, known: Mutex::default() }
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<Address, PersonaRecord>> {
        self.known.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl RecordStore for KnownPersonas {
    async fn put(&self, batch: &RecordBatch) -> Result<(), BackendError> {
        self.store.put(batch).await
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, BackendError> {
        let mut found: Vec<Option<PersonaRecord>> = {
            let known = self.known();
            addresses.iter().map(|address| known.get(address).cloned()).collect()
        };
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
        let mut known = self.known();
        if known.len() + fresh.len() > CAPACITY {
            known.clear();
        }
        known.extend(fresh);
        Ok(found)
    }

    async fn messages(&self, hashes: &[MessageHash]) -> Result<Vec<Option<MessageRecord>>, BackendError> {
        self.store.messages(hashes).await
    }

    async fn ping(&self) -> Result<(), BackendError> {
        self.store.ping().await
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
        assert_eq!(known.known().len(), 2);
        // Found ones answer from memory, in the order asked.
        assert_eq!(
            known.personas(&[b.clone(), a.clone(), b]).await.unwrap(),
            [Some(persona(&bob, "bob")), Some(persona(&alice, "alice")), Some(persona(&bob, "bob"))]
        );
    }
}
