//! Personas written directly to storage by `pm bootstrap` (PROTOCOL.md
//! section 6, "Genesis"): the node persona and the genesis persona, which
//! no invitation precedes. Their key and nickname are claimed like any
//! registration's, so nobody can register them again. Idempotent.

use pm_backends::{BackendError, ClaimKey, ClaimOutcome, ClaimStore, RecordBatch, RecordStore, SearchIndex};
use pm_models::content::nickname_key;
use pm_models::records::PersonaRecord;
use pm_models::time::Micros;
use pm_models::PublicKeyPem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootstrapOutcome {
    Created(PersonaRecord),
    AlreadyPresent(PersonaRecord),
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("address {address} is already stored with nickname {stored:?}, not {requested:?}")]
    DifferentNickname { address: String, stored: String, requested: String },
    #[error("{claim} is already claimed by {holder}")]
    Claimed { claim: String, holder: String },
}

/// Writes the persona of `key` under `nickname` unless it is already stored.
pub async fn ensure_persona(
    store: &dyn RecordStore,
    index: &dyn SearchIndex,
    claims: &dyn ClaimStore,
    key: &PublicKeyPem,
    nickname: &str,
    now: Micros,
) -> Result<BootstrapOutcome, BootstrapError> {
    let address = key.address();
    let by = format!("bootstrap:{address}");
    let keys = [ClaimKey::Key(address.clone()), ClaimKey::Nickname(nickname_key(nickname))];
    if let Some(existing) = store.persona(&address).await? {
        if existing.nickname != nickname {
            return Err(BootstrapError::DifferentNickname {
                address: address.to_string(),
                stored: existing.nickname,
                requested: nickname.to_owned(),
            });
        }
        // Indexing again is harmless, and completes any interrupted run.
        index.index(&RecordBatch { personas: vec![existing.clone()], messages: vec![] }).await?;
        return Ok(BootstrapOutcome::AlreadyPresent(existing));
    }
    if let ClaimOutcome::Conflict(key) = claims.claim(&keys, &by).await? {
        let holder = claims.holder(&key).await?.unwrap_or_default();
        // Claims are taken together, so an earlier run that stopped before
        // the store write holds all of them: carry on where it stopped.
        if holder != by {
            return Err(BootstrapError::Claimed { claim: key.row_key(), holder });
        }
    }
    let record = PersonaRecord::without_registration(key, nickname, now);
    // Indexed, then stored: the store write makes it readable (as the writer does).
    let batch = RecordBatch { personas: vec![record.clone()], messages: vec![] };
    index.index(&batch).await?;
    store.put(&batch).await?;
    Ok(BootstrapOutcome::Created(record))
}
