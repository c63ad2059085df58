//! The untimed setup of a run: genesis invites the bench personas through
//! real invitations, they register, and every envelope of the ingest is
//! signed beforehand, so the timed phase measures the node, not the client.

use super::gateway::{request_body, Gateway, GatewayError, KeyLookup, MESSAGE_BY_HASH, PERSONA_BY_ADDRESS};
use super::BenchError;
use futures::StreamExt;
use pm_models::client::{acl_rule_for, invitation, private_envelope, random_bytes, registration, ContentParts};
use pm_models::codec::{b64, hash_text, sha256_b64};
use pm_models::envelope::{Container, Envelope, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::signed_timestamp::SignedTimestamp;
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{MessageType, PublicKeyPem};
use serde::Serialize;
use serde_json::json;
use std::ops::Range;
use std::time::{Duration, Instant};

/// How long invitations and registrations may take to become readable.
const READABLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Setup requests in flight at once.
const SETUP_IN_FLIGHT: usize = 8;
/// Bytes in each envelope's object container (before base64).
const CONTAINER_BYTES: usize = 512;

/// The mutation every ingest request runs; it asks for the hash only, so the
/// answer costs the gateway as little as possible.
pub const SEND_MUTATION: &str = "mutation($e: MessageEnvelopeInput!) { sendMessage(envelope: $e) { messageHash } }";

/// The personas of a run, registered on the node.
pub struct Cast {
    pub genesis: PersonaKey,
    pub personas: Vec<PersonaKey>,
}

impl Cast {
    pub fn addresses(&self) -> Vec<String> {
        self.personas.iter().map(|p| p.address().to_string()).collect()
    }
}

/// A `sendMessage` request ready to go.
pub struct SignedEnvelope {
    pub hash: String,
    pub body: Vec<u8>,
}

/// A distinct body for every assertion.
#[derive(Serialize)]
struct Note {
    text: &'static str,
    nonce: String,
}

/// Invites `count` personas from genesis and registers them; returns once
/// every one is readable.
pub async fn register_personas(gateway: &Gateway, genesis: PersonaKey, count: usize) -> Result<Cast, BenchError> {
    let node = node_key(gateway).await?;
    let run = format!("{:08x}", rand::random::<u32>());
    let t = signed_timestamp(gateway).await?;
    let invitations: Vec<_> = (0..count)
        .map(|i| {
            let name = format!("pm bench {run} invitation {i}");
            invitation(&genesis, &node.address(), gateway.url(), &name, "peer-mountain", &t)
        })
        .collect();
    let bodies = invitations.iter().map(|invite| send_request(&invite.envelope)).collect();
    send_all(gateway, bodies, "an invitation").await?;
    let hashes: Vec<String> = invitations.iter().map(|i| i.envelope.message_hash.clone()).collect();
    wait_until_readable(gateway, &MESSAGE_BY_HASH, "invitations", &hashes).await?;

    let t = signed_timestamp(gateway).await?;
    let personas: Vec<PersonaKey> = (0..count).map(|_| PersonaKey::generate()).collect();
    let registrations = personas.iter().zip(&invitations).enumerate().map(|(i, (key, invite))| {
        let envelope = registration(
            key,
            &format!("bench-{run}-{i}"),
            &invite.envelope.message_hash,
            &invite.invite_key,
            &invite.name,
            node.verifying_key(),
            &t,
        );
        send_request(&envelope)
    });
    send_all(gateway, registrations.collect(), "a registration").await?;
    let cast = Cast { genesis, personas };
    let addresses = cast.addresses();
    wait_until_readable(gateway, &PERSONA_BY_ADDRESS, "registered personas", &addresses).await?;
    Ok(cast)
}

/// The `sendMessage` request of `envelope`.
fn send_request(envelope: &Envelope) -> Vec<u8> {
    request_body(SEND_MUTATION, &json!({ "e": envelope.to_json_value() }))
}

/// Sends every request, a few at once; any refusal stops the setup.
async fn send_all(gateway: &Gateway, bodies: Vec<Vec<u8>>, what: &'static str) -> Result<(), BenchError> {
    let answers: Vec<_> = futures::stream::iter(bodies.into_iter().map(|body| gateway.post(body)))
        .buffer_unordered(SETUP_IN_FLIGHT)
        .collect()
        .await;
    for answer in answers {
        answer.map_err(|source| BenchError::SetupRefused { what, source })?;
    }
    Ok(())
}

/// Polls until `lookup` finds every key or [`READABLE_TIMEOUT`] passes.
async fn wait_until_readable(
    gateway: &Gateway,
    lookup: &KeyLookup,
    what: &'static str,
    keys: &[String],
) -> Result<(), BenchError> {
    let deadline = Instant::now() + READABLE_TIMEOUT;
    let mut pending = keys.to_vec();
    loop {
        let readable = gateway.readable(lookup, &pending, SETUP_IN_FLIGHT).await;
        pending.retain(|key| !readable.contains(key));
        if pending.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BenchError::NotReadable { what, missing: pending.len(), timeout: READABLE_TIMEOUT });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn signed_timestamp(gateway: &Gateway) -> Result<SignedTimestamp, BenchError> {
    let data = gateway.query("{ teleferic { signedTimestamp } }", json!({})).await?;
    let text = data["teleferic"]["signedTimestamp"].as_str().ok_or(GatewayError::Incomplete("signedTimestamp"))?;
    SignedTimestamp::parse(text).map_err(|_| GatewayError::Incomplete("valid signedTimestamp").into())
}

async fn node_key(gateway: &Gateway) -> Result<PublicKeyPem, BenchError> {
    let data = gateway.query("{ teleferic { persona { pubkey } } }", json!({})).await?;
    let pubkey = data["teleferic"]["persona"]["pubkey"].as_str().ok_or(GatewayError::Incomplete("node persona"))?;
    PublicKeyPem::parse_wire(pubkey).map_err(|_| GatewayError::Incomplete("valid node pubkey").into())
}

/// Signs the assertions numbered `range` with `t`, on every core.
///
/// Assertion `i` is sent by persona `i mod N`, readable by its sender and
/// the next persona (genesis when there is one persona), and carries one
/// object with a container.
pub fn sign_assertions(cast: &Cast, range: Range<usize>, t: &SignedTimestamp) -> Vec<SignedEnvelope> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let indices: Vec<usize> = range.collect();
    let chunk = indices.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        let workers: Vec<_> = indices
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(|&i| sign_assertion(cast, i, t)).collect::<Vec<_>>()))
            .collect();
        workers.into_iter().flat_map(|w| w.join().expect("signing never panics")).collect()
    })
}

fn sign_assertion(cast: &Cast, i: usize, t: &SignedTimestamp) -> SignedEnvelope {
    let sender = &cast.personas[i % cast.personas.len()];
    let other_reader =
        if cast.personas.len() > 1 { &cast.personas[(i + 1) % cast.personas.len()] } else { &cast.genesis };
    let message_key: [u8; 32] = random_bytes();
    let acl = [sender, other_reader]
        .iter()
        .map(|reader| acl_rule_for(reader.public().verifying_key(), &message_key))
        .collect();
    let body = Note { text: "pm bench asserts", nonce: b64(random_bytes::<16>()) };
    let envelope = private_envelope(
        sender,
        MessageType::Assertion,
        &ContentParts::new(0, &body),
        &message_key,
        &random_bytes(),
        acl,
        vec![object_with_container(sender, t)],
        t,
    );
    let body = send_request(&envelope);
    SignedEnvelope { hash: envelope.message_hash, body }
}

fn object_with_container(signer: &PersonaKey, t: &SignedTimestamp) -> ObjectEntry {
    let bytes: Vec<u8> = (0..CONTAINER_BYTES).map(|_| rand::random::<u8>()).collect();
    let object_container = b64(&bytes);
    let container_hash = hash_text(&object_container);
    ObjectEntry {
        object_hash: sha256_b64(&bytes),
        meta_hashes: vec![b64(random_bytes::<32>())],
        container: Some(Container {
            container_sign: TimestampedSignature::sign(signer, &container_hash, t).as_str().to_owned(),
            container_hash,
            object_container,
        }),
    }
}
