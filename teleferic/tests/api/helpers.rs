//! Test doubles of the sibling services and a gateway spawned on port 0.

use async_trait::async_trait;
use pm_models::api::{AcceptedEnvelope, AuthorizerApi, MessageQuery, PageRequest, PersonaQuery, ReaderApi};
use pm_models::envelope::{AclRule, Container, Envelope, ObjectEntry};
use pm_models::keys::PersonaKey;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::{Address, Hash32, MessageHash, PublicKeyPem, Rejection, RejectionCode};
use pm_teleferic::{Gateway, GatewaySettings};
use serde_json::{json, Value};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub const SIGNED_TIMESTAMP: &str = "c2lnbmVkLXRpbWVzdGFtcA==";
pub const ACCEPTED_AT: &str = "2026-11-22T10:00:00.123456Z";
pub const RECEIPT: &str = "cmVjZWlwdA==";

/// A persona with a real Ed25519 key, derived from `seed`.
pub fn persona(seed: u8, nickname: &str) -> PersonaRecord {
    let key = PersonaKey::from_seed([seed; 32]);
    PersonaRecord {
        address: key.address().as_str().to_owned(),
        pubkey: key.public().as_str().to_owned(),
        nickname: nickname.to_owned(),
        created_at: format!("2026-01-{seed:02}T00:00:00.000000Z"),
        registration_hash: None,
        invite_hash: None,
        inviter: None,
    }
}

/// The wire form of a persona's key: `base64(PEM text)`.
pub fn wire_key(persona: &PersonaRecord) -> String {
    PublicKeyPem::parse_exact(&persona.pubkey).expect("test personas have canonical keys").to_wire()
}

pub fn hash(label: &str) -> String {
    pm_models::codec::hash_text(label)
}

/// A stored assertion from `sender`, readable by `readers`.
pub fn stored_message(label: &str, sender: &PersonaRecord, readers: &[&str], created_at: &str) -> MessageRecord {
    MessageRecord {
        persona_sender: sender.address.clone(),
        persona_pubkey: sender.pubkey.clone(),
        persona_nickname: sender.nickname.clone(),
        message_type: 2,
        hash: hash(label),
        signature: "c2ln".into(),
        timestamp: "dA==".into(),
        dossier_hash: hash(&format!("{label}-dossier")),
        body_hash: hash(&format!("{label}-body")),
        acl: readers
            .iter()
            .map(|reader| AclRule { reader: (*reader).to_owned(), key: format!("key-for-{reader}") })
            .collect(),
        objects: vec![ObjectEntry {
            object_hash: hash(&format!("{label}-object")),
            meta_hashes: vec![hash(&format!("{label}-meta"))],
            container: Some(Container {
                container_hash: hash(&format!("{label}-container")),
                container_sign: "Y29udGFpbmVyLXNpZ24=".into(),
                object_container: "b2JqZWN0".into(),
            }),
        }],
        message: "ZW5jcnlwdGVk".into(),
        created_at: created_at.to_owned(),
        message_sign: format!("bWVzc2FnZS1zaWdu-{label}"),
        receipt: Some(format!("cmVjZWlwdA-{label}")),
    }
}

/// The authorizer's double: accepts every envelope unless told to refuse.
pub struct FakeAuthorizer {
    pub node_address: Address,
    pub refusal: Mutex<Option<Rejection>>,
    pub ready: Mutex<Result<(), Rejection>>,
    /// The sender it reports for accepted envelopes.
    pub accepted_sender: PersonaRecord,
    pub received: Mutex<Vec<Envelope>>,
}

#[async_trait]
impl AuthorizerApi for FakeAuthorizer {
    async fn send_message(&self, envelope: Envelope) -> Result<AcceptedEnvelope, Rejection> {
        self.received.lock().unwrap().push(envelope.clone());
        if let Some(rejection) = self.refusal.lock().unwrap().clone() {
            return Err(rejection);
        }
        Ok(AcceptedEnvelope {
            envelope,
            sender: self.accepted_sender.clone(),
            created_at: ACCEPTED_AT.into(),
            receipt: RECEIPT.into(),
        })
    }

    async fn signed_timestamp(&self) -> Result<String, Rejection> {
        Ok(SIGNED_TIMESTAMP.into())
    }

    async fn node_address(&self) -> Result<Address, Rejection> {
        Ok(self.node_address.clone())
    }

    async fn ready(&self) -> Result<(), Rejection> {
        self.ready.lock().unwrap().clone()
    }
}

/// The reader's double: answers from in-memory records.
pub struct FakeReader {
    pub personas: Vec<PersonaRecord>,
    pub messages: Vec<MessageRecord>,
    pub ready: Mutex<Result<(), Rejection>>,
    /// When set, every lookup is refused with it (a backend outage).
    pub outage: Mutex<Option<Rejection>>,
    pub persona_queries: Mutex<Vec<PersonaQuery>>,
    /// The addresses of each batched `personas` call.
    pub persona_batches: Mutex<Vec<Vec<Address>>>,
    pub message_queries: Mutex<Vec<(MessageQuery, PageRequest)>>,
}

#[async_trait]
impl ReaderApi for FakeReader {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
        self.persona_queries.lock().unwrap().push(query.clone());
        self.check_outage()?;
        let found = self.personas.iter().find(|p| match &query {
            PersonaQuery::Address(address) => p.address == address.as_str(),
            PersonaQuery::PublicKey(key) => key.as_str() == p.pubkey,
            PersonaQuery::Nickname(nickname) => p.nickname.to_lowercase() == nickname.to_lowercase(),
        });
        Ok(found.cloned())
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, Rejection> {
        self.persona_batches.lock().unwrap().push(addresses.to_vec());
        self.check_outage()?;
        Ok(addresses.iter().map(|a| self.personas.iter().find(|p| p.address == a.as_str()).cloned()).collect())
    }

    async fn message(&self, hash: &MessageHash) -> Result<Option<MessageRecord>, Rejection> {
        self.check_outage()?;
        Ok(self.messages.iter().find(|m| m.hash == hash.as_str()).cloned())
    }

    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
        self.message_queries.lock().unwrap().push((query.clone(), page.clone()));
        if page.after.as_ref().is_some_and(|after| !self.messages.iter().any(|m| m.hash == after.as_str())) {
            return Err(Rejection::bad_query("after is not a stored message"));
        }
        Ok(self
            .messages
            .iter()
            .filter(|m| match &query {
                MessageQuery::Sender(sender) => m.persona_sender == sender.as_str(),
                MessageQuery::Reader(reader) => m.acl.iter().any(|r| r.reader == reader.as_str()),
                MessageQuery::Date(day) => m.created_at.starts_with(&day.to_string()),
                MessageQuery::ContainerHash(_) => false,
            })
            .cloned()
            .collect())
    }

    async fn object(&self, object_hash: &Hash32) -> Result<Option<ObjectEntry>, Rejection> {
        self.check_outage()?;
        let found = self.messages.iter().flat_map(|m| m.objects.iter()).find(|o| o.object_hash == object_hash.as_str());
        Ok(found.cloned())
    }

    async fn ready(&self) -> Result<(), Rejection> {
        self.ready.lock().unwrap().clone()
    }
}

impl FakeReader {
    pub fn new(personas: Vec<PersonaRecord>, messages: Vec<MessageRecord>) -> Self {
        Self {
            personas,
            messages,
            ready: Mutex::new(Ok(())),
            outage: Mutex::new(None),
            persona_queries: Mutex::new(Vec::new()),
            persona_batches: Mutex::new(Vec::new()),
            message_queries: Mutex::new(Vec::new()),
        }
    }

    fn check_outage(&self) -> Result<(), Rejection> {
        match self.outage.lock().unwrap().clone() {
            Some(rejection) => Err(rejection),
            None => Ok(()),
        }
    }
}

/// A gateway on port 0 and handles on its doubles.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub authorizer: Arc<FakeAuthorizer>,
    pub reader: Arc<FakeReader>,
    pub node: PersonaRecord,
    pub alice: PersonaRecord,
    pub bob: PersonaRecord,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(GatewaySettings::default()).await
}

pub async fn spawn_app_with(settings: GatewaySettings) -> TestApp {
    let node = persona(1, "Teleferic");
    let alice = persona(2, "Alice");
    let bob = persona(3, "Bob");
    let newcomer = persona(4, "Newcomer");
    // A valid address no persona has.
    let unknown_reader = persona(9, "Unknown").address;
    let authorizer = Arc::new(FakeAuthorizer {
        node_address: node.address.parse().expect("a test persona has a valid address"),
        refusal: Mutex::new(None),
        ready: Mutex::new(Ok(())),
        accepted_sender: newcomer,
        received: Mutex::new(Vec::new()),
    });
    let reader = Arc::new(FakeReader::new(
        vec![node.clone(), alice.clone(), bob.clone()],
        vec![
            stored_message("first", &alice, &[&bob.address, &unknown_reader], "2026-11-20T08:00:00.000001Z"),
            stored_message("second", &bob, &[&alice.address], "2026-11-21T08:00:00.000002Z"),
        ],
    ));
    let base = spawn_gateway(authorizer.clone(), reader.clone(), settings);
    TestApp { base, client: reqwest::Client::new(), authorizer, reader, node, alice, bob }
}

/// Starts a gateway on port 0 in front of `authorizer` and `reader`; returns
/// its base URL.
pub fn spawn_gateway(
    authorizer: Arc<dyn AuthorizerApi>,
    reader: Arc<dyn ReaderApi>,
    settings: GatewaySettings,
) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("port 0 is always bindable");
    let address = listener.local_addr().expect("a bound listener has an address");
    let server = Gateway::new(authorizer, reader, settings).run(listener).expect("the gateway starts");
    tokio::spawn(server);
    format!("http://{address}")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POSTs a JSON GraphQL request; asserts HTTP 200 and returns the body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        let response = self
            .client
            .post(self.url("/teleferic"))
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("the gateway answers");
        assert_eq!(response.status(), 200, "GraphQL errors are HTTP 200");
        response.json().await.expect("the answer is JSON")
    }
}

/// The `extensions.code` of every error of a GraphQL answer.
pub fn error_codes(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .map(|errors| errors.iter().map(|e| e["extensions"]["code"].as_str().unwrap_or("<none>").to_owned()).collect())
        .unwrap_or_default()
}

pub fn not_ready() -> Rejection {
    Rejection::new(RejectionCode::Unavailable, "the index is unreachable")
}
