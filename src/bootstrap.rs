//! `pm bootstrap`: creates what storage needs, the node key if missing, the
//! node persona and the genesis persona (PROTOCOL.md section 6, "Genesis").
//! Running it twice changes nothing and says so.

use crate::serve::NodeStorage;
use crate::settings::Settings;
use anyhow::{bail, Context};
use pm_models::content::{nickname_is_well_formed, nickname_key, NODE_NICKNAME};
use pm_models::keys::PersonaKey;
use pm_models::PublicKeyPem;
use pm_writer::bootstrap::BootstrapOutcome;
use std::path::Path;

/// Reads a public key from a private key file (PKCS#8) or a public key PEM.
pub fn read_public_key(path: &Path) -> anyhow::Result<PublicKeyPem> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    if let Some(key) = PersonaKey::from_pkcs8_pem(&text) {
        return Ok(key.public().clone());
    }
    PublicKeyPem::parse_lenient(&text)
        .with_context(|| format!("{} is neither an Ed25519 private key nor an Ed25519 public key", path.display()))
}

pub async fn bootstrap(settings: &Settings, genesis_key: &Path, nickname: &str) -> anyhow::Result<()> {
    let genesis = read_public_key(genesis_key)?;
    if !nickname_is_well_formed(nickname) {
        bail!("nickname must be 1-64 characters without control characters or surrounding whitespace");
    }
    if nickname_key(nickname) == nickname_key(NODE_NICKNAME) {
        bail!("nickname {NODE_NICKNAME} is reserved for the node");
    }
    let (node, node_outcome) = NodeStorage::open(settings).await?;
    let genesis_outcome = node.ensure_persona(&genesis, nickname).await;
    // Closed before reporting, on success and failure alike: the process
    // ends right after, and a dropped AMQP connection would log an error.
    node.resolver.close().await;
    let genesis_outcome = genesis_outcome?;
    if node.node_key_created {
        println!("created node key {}", settings.node_key_path().display());
    }
    let mut changed = node.node_key_created;
    for (role, outcome) in [("node", node_outcome), ("genesis", genesis_outcome)] {
        match outcome {
            BootstrapOutcome::Created(p) => {
                changed = true;
                println!("created {role} persona {} ({})", p.address, p.nickname);
            }
            BootstrapOutcome::AlreadyPresent(p) => {
                println!("{role} persona {} ({}) already present", p.address, p.nickname)
            }
        }
    }
    if !changed {
        println!("nothing to do: storage, node key and personas already exist");
    }
    Ok(())
}
