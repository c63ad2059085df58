//! `pm read` and `pm verify`: a stored message fetched over GraphQL and
//! checked on this machine by `pm_models::reading` (PROTOCOL.md sections
//! 4-6 and 8).
//!
//! - `pm verify` is for anyone: it checks what needs no reader's key and
//!   prints one line per check; it fails when any check does.
//! - `pm read` is for a reader: it opens the message with the reader's key,
//!   prints the check lines on stderr and, only when every check holds, the
//!   body on stdout (and writes the objects where asked).
//!
//! The node key comes from `{ teleferic { persona { pubkey } } }` unless
//! `--node-pubkey` pins it: a gateway that lied about it could vouch for its
//! own forgeries.

use crate::client::GatewayClient;
use anyhow::{anyhow, bail, Context};
use pm_models::envelope::Envelope;
use pm_models::keys::VerifyingKey;
use pm_models::reading::{self, Report, Stored};
use pm_models::time::Micros;
use pm_models::PublicKeyPem;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;

/// The fields a stored message is checked with.
const STORED_FIELDS: &str = "sender { address pubkey } messageType messageHash messageSign dossierHash bodyHash \
    ACL { reader { address } key } \
    objects { objectHash metaHashes container { containerHash containerSign objectContainer } } \
    message createdAt receipt";

/// A message as the gateway serves it, in the forms the checks take.
pub struct StoredMessage {
    pub envelope: Envelope,
    pub sender: PublicKeyPem,
    pub receipt: Option<String>,
    pub created_at: Option<Micros>,
}

impl StoredMessage {
    /// Reads a `MessageEnvelope` answer (with [`STORED_FIELDS`]).
    pub fn from_answer(answer: &Value) -> anyhow::Result<Self> {
        let sender = answer["sender"]["pubkey"].as_str().ok_or_else(|| anyhow!("the message has no sender key"))?;
        let sender = PublicKeyPem::parse_wire(sender).map_err(|e| anyhow!("the sender's key: {e}"))?;
        let acl = match &answer["ACL"] {
            Value::Array(rules) => rules
                .iter()
                .map(|rule| {
                    let reader = rule["reader"]["address"]
                        .as_str()
                        .ok_or_else(|| anyhow!("an ACL rule's reader is not a stored persona"))?;
                    Ok(json!({ "reader": reader, "key": rule["key"] }))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
            _ => Vec::new(),
        };
        let input = json!({
            "sender": answer["sender"]["address"],
            "messageType": answer["messageType"],
            "messageHash": answer["messageHash"],
            "messageSign": answer["messageSign"],
            "dossierHash": answer["dossierHash"],
            "bodyHash": answer["bodyHash"],
            "ACL": acl,
            "objects": answer["objects"],
            "message": answer["message"],
        });
        let envelope = Envelope::from_json_value(input).map_err(|e| anyhow!("the stored envelope: {e}"))?;
        let created_at = match answer["createdAt"].as_str() {
            Some(text) => Some(Micros::parse_rfc3339(text).ok_or_else(|| anyhow!("createdAt {text:?} is not a date"))?),
            None => None,
        };
        let receipt = answer["receipt"].as_str().map(str::to_owned);
        Ok(Self { envelope, sender, receipt, created_at })
    }

    pub fn stored<'a>(&'a self, node: &'a VerifyingKey) -> Stored<'a> {
        Stored {
            envelope: &self.envelope,
            sender: self.sender.verifying_key(),
            node,
            receipt: self.receipt.as_deref(),
            accepted_at: self.created_at,
        }
    }
}

async fn fetch(client: &GatewayClient, hash: &str) -> anyhow::Result<StoredMessage> {
    let query = format!("query($h: SHA256!) {{ messageByHash(messageHash: $h) {{ {STORED_FIELDS} }} }}");
    let data = client.query(&query, json!({ "h": hash })).await?;
    let answer = &data["messageByHash"];
    if answer.is_null() {
        bail!("no message has hash {hash} (it may still be queued: try again in a moment)");
    }
    StoredMessage::from_answer(answer)
}

async fn node_key(client: &GatewayClient, pinned: Option<&Path>) -> anyhow::Result<PublicKeyPem> {
    match pinned {
        Some(path) => crate::bootstrap::read_public_key(path),
        None => Ok(client.node().await?.1),
    }
}

fn fail_unless_holds(report: &Report) -> anyhow::Result<()> {
    let failed: Vec<&str> = report.failures().map(|c| c.name.as_str()).collect();
    match failed.is_empty() {
        true => Ok(()),
        false => bail!("{} of {} checks fail: {}", failed.len(), report.checks().len(), failed.join("; ")),
    }
}

/// `pm verify --hash H`: every check anyone can make, one line each.
pub async fn verify(url: &str, hash: &str, node_pubkey: Option<&Path>) -> anyhow::Result<()> {
    let client = GatewayClient::new(url);
    let node = node_key(&client, node_pubkey).await?;
    let message = fetch(&client, hash).await?;
    let report = reading::check_stored(&message.stored(node.verifying_key()));
    println!("message {hash} from {}", message.envelope.sender);
    print!("{report}");
    fail_unless_holds(&report)
}

/// `pm read --key FILE --hash H`: opens the message as one of its readers.
pub async fn read(
    url: &str,
    key: &Path,
    hash: &str,
    objects_dir: Option<&Path>,
    node_pubkey: Option<&Path>,
) -> anyhow::Result<()> {
    let reader = crate::key_file::load(key)?;
    let client = GatewayClient::new(url);
    let node = node_key(&client, node_pubkey).await?;
    let message = fetch(&client, hash).await?;
    let opened = reading::open(&message.stored(node.verifying_key()), &reader)
        .map_err(|e| anyhow!("cannot read {hash}: {e}"))?;
    eprint!("{}", opened.report);
    fail_unless_holds(&opened.report).context("the body is not printed")?;
    if let Some(dir) = objects_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    for (i, object) in opened.objects.iter().enumerate() {
        let n = i + 1;
        match (&object.bytes, objects_dir) {
            (Some(bytes), Some(dir)) => {
                let path = dir.join(format!("object-{n}"));
                std::fs::write(&path, bytes).with_context(|| format!("cannot write {}", path.display()))?;
                eprintln!("object {n}: {} bytes written to {}", bytes.len(), path.display());
            }
            (Some(bytes), None) => eprintln!("object {n}: {} bytes (--objects-dir DIR writes it)", bytes.len()),
            (None, _) => eprintln!("object {n}: {} (no container)", object.object_hash),
        }
    }
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", serde_json::to_string_pretty(&opened.body)?)?;
    Ok(())
}
