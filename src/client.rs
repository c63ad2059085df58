//! The client subcommands: a persona's whole flow against a running gateway
//! over GraphQL (invite, register, assert, and the queries of PROTOCOL.md
//! section 10). Envelopes are built by `pm_models::client`; private keys
//! stay on this machine and the invite key is printed once for the inviter.

use anyhow::{anyhow, bail, Context};
use pm_models::client::{
    acl_rule_for, invitation, private_envelope, random_bytes, registration, sealed_object, ContentParts,
};
use pm_models::codec::{b64, unb64};
use pm_models::envelope::Envelope;
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::{Address, MessageType, PublicKeyPem};
use serde_json::{json, Value};
use std::io::Read as _;
use std::path::Path;

/// Every field of `MessageEnvelope`, for queries that return envelopes.
pub const ENVELOPE_FIELDS: &str = "sender { address pubkey nickname createdAt } messageType messageHash messageSign \
    dossierHash bodyHash ACL { reader { address nickname } key } \
    objects { objectHash metaHashes container { containerHash containerSign objectContainer } } message createdAt";

pub const PERSONA_FIELDS: &str = "address pubkey nickname createdAt";

/// A GraphQL client of one gateway.
pub struct GatewayClient {
    http: reqwest::Client,
    url: String,
}

impl GatewayClient {
    pub fn new(url: &str) -> Self {
        Self { http: reqwest::Client::new(), url: url.to_owned() }
    }

    /// Runs a GraphQL operation; GraphQL errors become an error carrying the code.
    pub async fn query(&self, query: &str, variables: Value) -> anyhow::Result<Value> {
        let response = self
            .http
            .post(&self.url)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.url))?;
        let status = response.status();
        let body: Value = response.json().await.with_context(|| format!("gateway answered {status} without JSON"))?;
        if let Some(error) = body["errors"].as_array().and_then(|e| e.first()) {
            let code = error["extensions"]["code"].as_str().unwrap_or("ERROR");
            bail!("{code}: {}", error["message"].as_str().unwrap_or("(no message)"));
        }
        Ok(body["data"].clone())
    }

    pub async fn signed_timestamp(&self) -> anyhow::Result<SignedTimestamp> {
        let data = self.query("{ teleferic { signedTimestamp } }", json!({})).await?;
        let t =
            data["teleferic"]["signedTimestamp"].as_str().ok_or_else(|| anyhow!("gateway gave no signed timestamp"))?;
        SignedTimestamp::parse(t).map_err(|e| anyhow!("gateway gave a bad signed timestamp: {e}"))
    }

    /// The node's address and public key.
    pub async fn node(&self) -> anyhow::Result<(Address, PublicKeyPem)> {
        let data = self.query("{ teleferic { persona { address pubkey } } }", json!({})).await?;
        let persona = &data["teleferic"]["persona"];
        let pubkey = persona["pubkey"].as_str().ok_or_else(|| anyhow!("the node persona is not stored yet"))?;
        let key = PublicKeyPem::parse_wire(pubkey).map_err(|e| anyhow!("node pubkey: {e}"))?;
        Ok((key.address(), key))
    }

    pub async fn persona_key(&self, address: &str) -> anyhow::Result<PublicKeyPem> {
        let data =
            self.query("query($a: Address) { persona(address: $a) { pubkey } }", json!({ "a": address })).await?;
        let pubkey = data["persona"]["pubkey"].as_str().ok_or_else(|| anyhow!("no persona has address {address}"))?;
        PublicKeyPem::parse_wire(pubkey).map_err(|e| anyhow!("pubkey of {address}: {e}"))
    }

    pub async fn send(&self, envelope: &Envelope) -> anyhow::Result<Value> {
        let query =
            format!("mutation($e: MessageEnvelopeInput!) {{ sendMessage(envelope: $e) {{ {ENVELOPE_FIELDS} }} }}");
        let data = self.query(&query, json!({ "e": envelope.to_json_value() })).await?;
        Ok(data["sendMessage"].clone())
    }
}

fn load_key(path: &Path) -> anyhow::Result<PersonaKey> {
    Ok(crate::key_file::load(path)?)
}

pub async fn invite(
    url: &str,
    key: &Path,
    name: &str,
    service_offering_id: &str,
    invite_key_out: Option<&Path>,
) -> anyhow::Result<()> {
    let key = load_key(key)?;
    let client = GatewayClient::new(url);
    let (node_address, _) = client.node().await?;
    let t = client.signed_timestamp().await?;
    let invite = invitation(&key, &node_address, url, name, service_offering_id, &t);
    // The file is created before sending, so a path that cannot be written
    // never leaves an accepted invitation whose key is lost.
    if let Some(path) = invite_key_out {
        crate::key_file::save_secret_new(path, &format!("{}\n", b64(invite.invite_key)))?;
    }
    client.send(&invite.envelope).await?;
    println!("invitation: {}", invite.envelope.message_hash);
    match invite_key_out {
        Some(path) => println!("invite key: written to {} (mode 0600)", path.display()),
        None => println!("invite key: {}", b64(invite.invite_key)),
    }
    println!("invite name: {}", invite.name);
    println!("Give the invitee these three values out of band; the key is not stored anywhere.");
    Ok(())
}

/// Where `pm register` takes the invite key from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InviteKeySource {
    /// `--invite-key BASE64`: visible in `ps` and the shell history.
    Argument(String),
    /// `--invite-key -`: one line of standard input.
    Stdin,
    /// `--invite-key-file FILE`.
    File(std::path::PathBuf),
}

impl InviteKeySource {
    /// The invite key's bytes; surrounding whitespace (a final newline) is ignored.
    pub fn read(&self) -> anyhow::Result<Vec<u8>> {
        let (text, from) = match self {
            Self::Argument(text) => {
                eprintln!(
                    "warning: an invite key on the command line shows in `ps` and the shell history; \
                     use --invite-key-file FILE or --invite-key - (standard input)"
                );
                (text.clone(), "--invite-key".to_owned())
            }
            Self::Stdin => {
                let mut text = String::new();
                std::io::Read::read_to_string(&mut std::io::stdin().lock().take(4096), &mut text)
                    .context("cannot read the invite key from standard input")?;
                (text, "standard input".to_owned())
            }
            Self::File(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read the invite key file {}", path.display()))?;
                (text, path.display().to_string())
            }
        };
        let key = unb64(text.trim()).map_err(|_| anyhow!("the invite key from {from} is not base64"))?;
        if key.len() != 32 {
            bail!("the invite key from {from} is {} bytes; an invite key is 32 bytes", key.len());
        }
        Ok(key)
    }
}

pub async fn register(
    url: &str,
    key: &Path,
    nickname: &str,
    invitation_hash: &str,
    invite_key: InviteKeySource,
    invite_name: &str,
) -> anyhow::Result<()> {
    let key = load_key(key)?;
    let invite_key = invite_key.read()?;
    let client = GatewayClient::new(url);
    let (_, node_key) = client.node().await?;
    let t = client.signed_timestamp().await?;
    let envelope =
        registration(&key, nickname, invitation_hash, &invite_key, invite_name, node_key.verifying_key(), &t);
    client.send(&envelope).await?;
    println!("registered {} as {nickname}", key.address());
    println!("registration: {}", envelope.message_hash);
    Ok(())
}

pub async fn assert(
    url: &str,
    key: &Path,
    readers: &[String],
    text: &str,
    object_file: Option<&Path>,
    attestation: bool,
    envelope_out: Option<&Path>,
) -> anyhow::Result<()> {
    let key = load_key(key)?;
    let client = GatewayClient::new(url);
    let t = client.signed_timestamp().await?;
    let message_key: [u8; 32] = random_bytes();
    let own = key.address().to_string();
    let readers: Vec<&str> =
        if readers.is_empty() { vec![own.as_str()] } else { readers.iter().map(String::as_str).collect() };
    let mut acl = Vec::new();
    for reader in readers {
        let reader_key = client.persona_key(reader).await?;
        acl.push(acl_rule_for(reader_key.verifying_key(), &message_key));
    }
    let mut objects = Vec::new();
    if let Some(path) = object_file {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        // Sealed under the message key: only the readers open it (section 5).
        objects.push(sealed_object(&key, &bytes, &message_key, &t));
    }
    let kind = if attestation { MessageType::Attestation } else { MessageType::Assertion };
    let body = json!({ if attestation { "attestation" } else { "assertion" }: text });
    let envelope =
        private_envelope(&key, kind, &ContentParts::new(0, &body), &message_key, &random_bytes(), acl, objects, &t);
    match envelope_out {
        Some(path) => append_json_line(path, &envelope.to_json_value())?,
        None => drop(client.send(&envelope).await?),
    }
    println!("{}: {}", kind.name().to_lowercase(), envelope.message_hash);
    Ok(())
}

/// Appends `value` to `path` as one line of JSON (the file is created if missing).
fn append_json_line(path: &Path, value: &Value) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    writeln!(file, "{value}").with_context(|| format!("cannot write {}", path.display()))
}

pub enum PersonaArg {
    Address(String),
    PublicKey(String),
    Nickname(String),
}

pub async fn persona(url: &str, arg: PersonaArg) -> anyhow::Result<()> {
    let (name, kind, value) = match arg {
        PersonaArg::Address(v) => ("address", "Address", v),
        PersonaArg::PublicKey(v) => ("pubkey", "PublicKey", v),
        PersonaArg::Nickname(v) => ("nickname", "String", v),
    };
    let query = format!("query($v: {kind}) {{ persona({name}: $v) {{ {PERSONA_FIELDS} }} }}");
    let data = GatewayClient::new(url).query(&query, json!({ "v": value })).await?;
    println!("{}", serde_json::to_string_pretty(&data["persona"])?);
    Ok(())
}

pub enum MessageArg {
    Hash(String),
    Sender(String),
    Reader(String),
    Date(String),
}

pub async fn message(url: &str, arg: MessageArg, limit: Option<i64>, after: Option<String>) -> anyhow::Result<()> {
    let client = GatewayClient::new(url);
    let (field, arg, kind, value) = match arg {
        MessageArg::Hash(v) => ("messageByHash", "messageHash", "SHA256!", v),
        MessageArg::Sender(v) => ("messageBySender", "sender", "Address!", v),
        MessageArg::Reader(v) => ("messageByReader", "reader", "Address!", v),
        MessageArg::Date(v) => ("messageByDate", "date", "Date!", v),
    };
    let data = if field == "messageByHash" {
        let query = format!("query($v: {kind}) {{ {field}({arg}: $v) {{ {ENVELOPE_FIELDS} }} }}");
        client.query(&query, json!({ "v": value })).await?
    } else {
        let query = format!(
            "query($v: {kind}, $l: Int, $a: String) {{ {field}({arg}: $v, limit: $l, after: $a) {{ {ENVELOPE_FIELDS} }} }}"
        );
        client.query(&query, json!({ "v": value, "l": limit, "a": after })).await?
    };
    println!("{}", serde_json::to_string_pretty(&data[field])?);
    Ok(())
}
