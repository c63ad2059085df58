//! The GraphQL schema of PROTOCOL.md section 10, type for type and field for
//! field: the contract's names, nullability and arguments, nothing more.
//!
//! Resolvers pass what the client sent to the authorizer or the reader as raw
//! text and turn what comes back into the contract's output shapes. The one
//! check made here is the `persona` query's "exactly one argument" rule
//! (`BAD_QUERY`); every other content check belongs to the services behind
//! the gateway. Guarantees kept on output:
//!
//! - a `PublicKey` is always written as `base64(PEM text)` (section 2);
//! - `messageSign` is the stored `messageSign`, byte for byte;
//! - a lookup that finds nothing is `null` or `[]`, never an error.

use crate::errors::{graphql_error, null_on_rejection};
use crate::live::{LiveFilter, MessageFeed};
use crate::scalars::{Address, AesEncryptedBlob, AesKey, Date, HmacSha256, PublicKey, Sha256, Sign};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, InputObject, Object, Result, Schema, SimpleObject, Subscription};
use futures::{Stream, StreamExt as _};
use pm_models::api::{
    parse_address, parse_day, parse_hash, parse_message_hash, parse_public_key, AcceptedEnvelope, AuthorizerApi,
    MessageQuery, PageRequest, PersonaQuery, ReaderApi, MAX_PERSONAS_PER_CALL,
};
use pm_models::codec::b64;
use pm_models::envelope::{self, Envelope, ObjectEntry};
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::timestamped_signature::TimestampedSignature;
use pm_models::{PublicKeyPem, Rejection};
use std::collections::HashMap;
use std::sync::Arc;

/// The schema the gateway serves.
pub type GatewaySchema = Schema<Query, Mutation, LiveSubscription>;

/// Deepest selection accepted. The introspection query GraphiQL sends is
/// about a dozen levels deep; no legitimate query of this schema is deeper.
const MAX_DEPTH: usize = 16;
/// Highest cost accepted for one request. A field costs 1; a listing costs
/// its `limit` times its selection, an envelope's `ACL` 8 and `objects` 4
/// times theirs, and every alias counts again, so the cost follows what the
/// request makes the node read and write out. One page of 1,000 envelopes
/// with every field (about 100,000) passes; 200 aliases of such a page do not.
pub(crate) const MAX_COMPLEXITY: usize = 250_000;
/// Expected readers per envelope in the cost (a message may have up to 256).
const ACL_WEIGHT: usize = 8;
/// Expected objects per envelope in the cost (a message may have up to 64).
const OBJECTS_WEIGHT: usize = 4;

/// The cost of a listing: `limit` items (default 100, at most 1,000) of
/// `child` each. An out-of-range limit is refused later, with BAD_QUERY.
fn listing_cost(limit: Option<i32>, child: usize) -> usize {
    let items = limit.map_or(PageRequest::DEFAULT_LIMIT, |l| (l.clamp(1, PageRequest::MAX_LIMIT as i32)) as usize);
    items.saturating_mul(child).saturating_add(1)
}

/// The services behind the gateway, shared by every resolver.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) authorizer: Arc<dyn AuthorizerApi>,
    pub(crate) reader: Arc<dyn ReaderApi>,
    /// Where `messageAdded` learns of stored messages; `None`: no live tail.
    pub(crate) feed: Option<Arc<dyn MessageFeed>>,
}

/// Batches the persona lookups of one request (every `sender` and ACL
/// `reader` of a page) into one reader call per batch, each address once.
pub(crate) struct PersonaLoader(pub(crate) Arc<dyn ReaderApi>);

impl Loader<pm_models::Address> for PersonaLoader {
    type Value = PersonaRecord;
    type Error = Rejection;

    async fn load(&self, keys: &[pm_models::Address]) -> Result<HashMap<pm_models::Address, PersonaRecord>, Rejection> {
        let mut found = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(MAX_PERSONAS_PER_CALL) {
            let records = self.0.personas(chunk).await?;
            found.extend(chunk.iter().cloned().zip(records).filter_map(|(address, record)| Some((address, record?))));
        }
        Ok(found)
    }
}

/// The persona loader of one request (see [`PersonaLoader`]).
pub(crate) fn persona_loader(services: &Services) -> DataLoader<PersonaLoader> {
    DataLoader::new(PersonaLoader(services.reader.clone()), tokio::spawn)
}

pub(crate) fn build_schema(services: Services) -> GatewaySchema {
    Schema::build(Query, Mutation, LiveSubscription)
        .data(services)
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .finish()
}

fn services<'a>(ctx: &Context<'a>) -> &'a Services {
    ctx.data_unchecked::<Services>()
}

/// Resolves a persona by address through the request's loader; `None`
/// when no persona has it.
async fn persona_by_address(ctx: &Context<'_>, address: &pm_models::Address) -> Result<Option<Persona>, Rejection> {
    let found = match ctx.data_opt::<DataLoader<PersonaLoader>>() {
        Some(loader) => loader.load_one(address.clone()).await?,
        None => services(ctx).reader.persona(PersonaQuery::Address(address.clone())).await?,
    };
    Ok(found.map(Persona::from))
}

/// Resolves a persona by an address read from a stored record; a stored
/// text that is no address (a row from elsewhere) has no persona.
async fn persona_by_stored_address(ctx: &Context<'_>, address: &str) -> Result<Option<Persona>, Rejection> {
    match pm_models::Address::parse(address) {
        Ok(address) => persona_by_address(ctx, &address).await,
        Err(_) => Ok(None),
    }
}

// ---------------------------------------------------------------- enums

/// The kind of a message (PROTOCOL.md section 6); clients never submit `SYSTEM`.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(name = "MessageType", remote = "pm_models::MessageType")]
pub enum MessageType {
    System,
    Registration,
    Assertion,
    Attestation,
    Service,
    Delegation,
}

// ---------------------------------------------------------------- outputs

/// A registered identity: an Ed25519 key, its address and a nickname.
#[derive(SimpleObject, Clone, Debug)]
pub struct Persona {
    address: Address,
    pubkey: PublicKey,
    nickname: Option<String>,
    created_at: Option<String>,
}

impl From<PersonaRecord> for Persona {
    fn from(record: PersonaRecord) -> Self {
        Self {
            pubkey: PublicKey(pubkey_wire(&record.pubkey)),
            address: Address(record.address),
            nickname: Some(record.nickname),
            created_at: non_empty(record.created_at),
        }
    }
}

/// The wire form of a stored key (section 2): `base64(PEM text)`. Records
/// hold the PEM text; a value that is not a key we can parse is still
/// written as base64 of the stored text, so the output form never varies.
fn pubkey_wire(stored: &str) -> String {
    PublicKeyPem::parse_wire(stored).map(|pem| pem.to_wire()).unwrap_or_else(|_| b64(stored.as_bytes()))
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// This node: its persona and a fresh node-signed timestamp `T` to sign with.
pub struct Teleferic;

#[Object]
impl Teleferic {
    async fn persona(&self, ctx: &Context<'_>) -> Option<Persona> {
        let found = async {
            let address = services(ctx).authorizer.node_address().await?;
            persona_by_address(ctx, &address).await
        };
        null_on_rejection(ctx, found.await)
    }

    async fn signed_timestamp(&self, ctx: &Context<'_>) -> Option<Sign> {
        let issued = services(ctx).authorizer.signed_timestamp().await;
        null_on_rejection(ctx, issued.map(|timestamp| Some(Sign(timestamp))))
    }

    /// What this gateway is: the software's name, its version and the
    /// commit it was built from (when known).
    async fn version(&self) -> Option<Version> {
        Some(Version::of_this_build())
    }
}

/// The software serving the gateway.
#[derive(SimpleObject, Clone, Debug)]
pub struct Version {
    /// The crate's name.
    name: String,
    /// Its version.
    code: String,
    /// The commit it was built from; `null` when built outside a git checkout.
    build_number: Option<String>,
}

impl Version {
    fn of_this_build() -> Self {
        Self {
            name: env!("CARGO_PKG_NAME").to_owned(),
            code: env!("CARGO_PKG_VERSION").to_owned(),
            build_number: option_env!("PM_BUILD_COMMIT").filter(|c| !c.is_empty()).map(str::to_owned),
        }
    }
}

/// One reader of a private message and the message key encrypted for them;
/// `reader` is `null` when the address is not a known persona.
pub struct AclRule {
    reader: String,
    key: String,
}

#[Object(name = "ACLRule")]
impl AclRule {
    async fn reader(&self, ctx: &Context<'_>) -> Option<Persona> {
        null_on_rejection(ctx, persona_by_stored_address(ctx, &self.reader).await)
    }

    async fn key(&self) -> Option<AesKey> {
        Some(AesKey(self.key.clone()))
    }
}

/// An encrypted object container and the sender's signature over its hash.
#[derive(SimpleObject, Clone, Debug)]
pub struct Container {
    container_hash: Sha256,
    container_sign: Sign,
    object_container: AesEncryptedBlob,
}

/// An object a message refers to, by hash, with its meta hashes.
#[derive(SimpleObject, Clone, Debug)]
#[graphql(name = "Object")]
pub struct ObjectOutput {
    object_hash: Sha256,
    meta_hashes: Vec<Option<HmacSha256>>,
    container: Option<Container>,
}

impl From<ObjectEntry> for ObjectOutput {
    fn from(entry: ObjectEntry) -> Self {
        Self {
            object_hash: Sha256(entry.object_hash),
            meta_hashes: entry.meta_hashes.into_iter().map(|hash| Some(HmacSha256(hash))).collect(),
            container: entry.container.map(|c| Container {
                container_hash: Sha256(c.container_hash),
                container_sign: Sign(c.container_sign),
                object_container: AesEncryptedBlob(c.object_container),
            }),
        }
    }
}

/// Where an envelope's `sender` persona comes from.
enum SenderSource {
    /// A stored message: look the sender up, falling back to the persona
    /// columns the message record carries.
    Stored { address: String, pubkey: String, nickname: String },
    /// An accepted envelope: the authorizer already says who sent it (for a
    /// registration, the persona its body describes, not yet stored).
    Known(PersonaRecord),
}

/// A message as sent or stored: its envelope fields, sender persona and
/// acceptance time.
pub struct MessageEnvelope {
    envelope: Envelope,
    sender: SenderSource,
    created_at: Option<String>,
    receipt: Option<String>,
}

impl MessageEnvelope {
    fn from_record(record: MessageRecord) -> Self {
        let mut envelope = record.to_envelope();
        if envelope.message_sign.is_empty() {
            // Rows written by the earlier deployment have no `message_sign`
            // column; its two parts are stored separately (section 9).
            envelope.message_sign = TimestampedSignature::from_parts(&record.signature, &record.timestamp);
        }
        Self {
            envelope,
            sender: SenderSource::Stored {
                address: record.persona_sender,
                pubkey: record.persona_pubkey,
                nickname: record.persona_nickname,
            },
            created_at: non_empty(record.created_at),
            receipt: record.receipt.filter(|r| !r.is_empty()),
        }
    }

    fn from_accepted(accepted: AcceptedEnvelope) -> Self {
        Self {
            envelope: accepted.envelope,
            sender: SenderSource::Known(accepted.sender),
            created_at: non_empty(accepted.created_at),
            receipt: non_empty(accepted.receipt),
        }
    }
}

#[Object]
impl MessageEnvelope {
    /// The sender; for an accepted registration, the persona its body
    /// describes.
    // Non-null: when the persona cannot be looked up, the columns the
    // message record carries stand in (with `createdAt` null), so the
    // envelope keeps its shape.
    async fn sender(&self, ctx: &Context<'_>) -> Persona {
        match &self.sender {
            SenderSource::Known(record) => Persona::from(record.clone()),
            SenderSource::Stored { address, pubkey, nickname } => {
                let found = persona_by_stored_address(ctx, address).await.unwrap_or_else(|rejection| {
                    tracing::warn!(
                        code = rejection.code.as_str(),
                        error = %rejection.error,
                        "sender lookup failed; serving the stored columns"
                    );
                    None
                });
                found.unwrap_or_else(|| Persona {
                    address: Address(address.clone()),
                    pubkey: PublicKey(pubkey_wire(pubkey)),
                    nickname: non_empty(nickname.clone()),
                    created_at: None,
                })
            }
        }
    }

    async fn message_type(&self) -> MessageType {
        self.envelope.message_type.into()
    }

    async fn message_hash(&self) -> Sha256 {
        Sha256(self.envelope.message_hash.clone())
    }

    async fn message_sign(&self) -> Sign {
        Sign(self.envelope.message_sign.clone())
    }

    async fn dossier_hash(&self) -> HmacSha256 {
        HmacSha256(self.envelope.dossier_hash.clone())
    }

    async fn body_hash(&self) -> Sha256 {
        Sha256(self.envelope.body_hash.clone())
    }

    #[graphql(name = "ACL", complexity = "ACL_WEIGHT * child_complexity + 1")]
    async fn acl(&self) -> Option<Vec<Option<AclRule>>> {
        Some(
            self.envelope
                .acl
                .iter()
                .map(|rule| Some(AclRule { reader: rule.reader.clone(), key: rule.key.clone() }))
                .collect(),
        )
    }

    #[graphql(complexity = "OBJECTS_WEIGHT * child_complexity + 1")]
    async fn objects(&self) -> Option<Vec<Option<ObjectOutput>>> {
        Some(self.envelope.objects.iter().cloned().map(|entry| Some(ObjectOutput::from(entry))).collect())
    }

    async fn message(&self) -> AesEncryptedBlob {
        AesEncryptedBlob(self.envelope.message.clone())
    }

    async fn created_at(&self) -> Option<String> {
        self.created_at.clone()
    }

    /// The node's acceptance receipt `R` (section 8): its signature over
    /// `messageHash` at the acceptance instant; `null` only for records
    /// stored before receipts existed.
    async fn receipt(&self) -> Option<Sign> {
        self.receipt.clone().map(Sign)
    }
}

// ---------------------------------------------------------------- inputs

/// One reader of a private message and the message key encrypted for them.
#[derive(InputObject, Debug)]
#[graphql(name = "ACLRuleInput")]
pub struct AclRuleInput {
    reader: Address,
    key: AesKey,
}

/// An encrypted object container and the sender's signature over its hash.
#[derive(InputObject, Debug)]
pub struct ContainerInput {
    container_hash: Sha256,
    container_sign: Sign,
    object_container: AesEncryptedBlob,
}

/// An object a message refers to, by hash, with its meta hashes.
#[derive(InputObject, Debug)]
pub struct ObjectInput {
    object_hash: Sha256,
    meta_hashes: Vec<Option<HmacSha256>>,
    container: Option<ContainerInput>,
}

/// An envelope to submit (PROTOCOL.md section 5); `ACL` and `objects` may be
/// null or omitted for a public message.
#[derive(InputObject, Debug)]
pub struct MessageEnvelopeInput {
    sender: Address,
    message_type: MessageType,
    message_hash: Sha256,
    message_sign: Sign,
    dossier_hash: HmacSha256,
    body_hash: Sha256,
    #[graphql(name = "ACL")]
    acl: Option<Vec<Option<AclRuleInput>>>,
    objects: Option<Vec<Option<ObjectInput>>>,
    message: AesEncryptedBlob,
}

impl TryFrom<MessageEnvelopeInput> for Envelope {
    type Error = Rejection;

    /// Section 5: a null or omitted `ACL`/`objects` is an empty list; a null
    /// item inside a list is a missing field, so `MALFORMED_ENVELOPE`.
    fn try_from(input: MessageEnvelopeInput) -> Result<Self, Rejection> {
        let acl = input
            .acl
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, rule)| {
                let rule = rule.ok_or_else(|| Rejection::malformed(format!("ACL[{i}] is null")))?;
                Ok(envelope::AclRule { reader: rule.reader.0, key: rule.key.0 })
            })
            .collect::<Result<Vec<_>, Rejection>>()?;
        let objects = input
            .objects
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, object)| {
                let object = object.ok_or_else(|| Rejection::malformed(format!("objects[{i}] is null")))?;
                let meta_hashes = object
                    .meta_hashes
                    .into_iter()
                    .enumerate()
                    .map(|(j, hash)| {
                        hash.map(String::from)
                            .ok_or_else(|| Rejection::malformed(format!("objects[{i}].metaHashes[{j}] is null")))
                    })
                    .collect::<Result<Vec<_>, Rejection>>()?;
                Ok(ObjectEntry {
                    object_hash: object.object_hash.0,
                    meta_hashes,
                    container: object.container.map(|c| envelope::Container {
                        container_hash: c.container_hash.0,
                        container_sign: c.container_sign.0,
                        object_container: c.object_container.0,
                    }),
                })
            })
            .collect::<Result<Vec<_>, Rejection>>()?;
        Ok(Envelope {
            sender: input.sender.0,
            message_type: input.message_type.into(),
            message_hash: input.message_hash.0,
            message_sign: input.message_sign.0,
            dossier_hash: input.dossier_hash.0,
            body_hash: input.body_hash.0,
            acl,
            objects,
            message: input.message.0,
        })
    }
}

// ---------------------------------------------------------------- roots

/// Lookups; one that finds nothing is `null` or `[]`.
pub struct Query;

#[Object]
impl Query {
    async fn teleferic(&self) -> Option<Teleferic> {
        Some(Teleferic)
    }

    /// Exactly one argument; a nickname lookup ignores letter case.
    async fn persona(
        &self,
        ctx: &Context<'_>,
        address: Option<Address>,
        pubkey: Option<PublicKey>,
        nickname: Option<String>,
    ) -> Option<Persona> {
        let found = async {
            let query = match (address, pubkey, nickname) {
                (Some(address), None, None) => PersonaQuery::Address(parse_address("address", &address.0)?),
                (None, Some(pubkey), None) => PersonaQuery::PublicKey(parse_public_key("pubkey", &pubkey.0)?),
                (None, None, Some(nickname)) => PersonaQuery::Nickname(nickname),
                _ => return Err(Rejection::bad_query("persona takes exactly one of address, pubkey or nickname")),
            };
            services(ctx).reader.persona(query).await
        };
        null_on_rejection(ctx, found.await.map(|found| found.map(Persona::from)))
    }

    async fn message_by_hash(&self, ctx: &Context<'_>, message_hash: Sha256) -> Option<MessageEnvelope> {
        let found = async {
            let hash = parse_message_hash("messageHash", &message_hash.0)?;
            services(ctx).reader.message(&hash).await
        };
        null_on_rejection(ctx, found.await.map(|found| found.map(MessageEnvelope::from_record)))
    }

    #[graphql(complexity = "listing_cost(limit, child_complexity)")]
    async fn message_by_sender(
        &self,
        ctx: &Context<'_>,
        sender: Address,
        limit: Option<i32>,
        after: Option<String>,
    ) -> Result<Vec<MessageEnvelope>> {
        let sender = parse_address("sender", &sender.0).map_err(graphql_error)?;
        list_messages(ctx, MessageQuery::Sender(sender), limit, after).await
    }

    #[graphql(complexity = "listing_cost(limit, child_complexity)")]
    async fn message_by_reader(
        &self,
        ctx: &Context<'_>,
        reader: Address,
        limit: Option<i32>,
        after: Option<String>,
    ) -> Result<Vec<MessageEnvelope>> {
        let reader = parse_address("reader", &reader.0).map_err(graphql_error)?;
        list_messages(ctx, MessageQuery::Reader(reader), limit, after).await
    }

    #[graphql(complexity = "listing_cost(limit, child_complexity)")]
    async fn message_by_date(
        &self,
        ctx: &Context<'_>,
        date: Date,
        limit: Option<i32>,
        after: Option<String>,
    ) -> Result<Vec<MessageEnvelope>> {
        let day = parse_day("date", &date.0).map_err(graphql_error)?;
        list_messages(ctx, MessageQuery::Date(day), limit, after).await
    }

    async fn object_by_hash(&self, ctx: &Context<'_>, object_hash: Sha256) -> Option<ObjectOutput> {
        let found = async {
            let hash = parse_hash("objectHash", &object_hash.0)?;
            services(ctx).reader.object(&hash).await
        };
        null_on_rejection(ctx, found.await.map(|found| found.map(ObjectOutput::from)))
    }
}

async fn list_messages(
    ctx: &Context<'_>,
    query: MessageQuery,
    limit: Option<i32>,
    after: Option<String>,
) -> Result<Vec<MessageEnvelope>> {
    let page = PageRequest::parse(limit.map(i64::from), after.as_deref()).map_err(graphql_error)?;
    let records = services(ctx).reader.messages(query, page).await.map_err(graphql_error)?;
    Ok(records.into_iter().map(MessageEnvelope::from_record).collect())
}

/// Envelopes one `sendMessages` takes at most (as many as one request may
/// send with aliases of `sendMessage`).
pub const MAX_BATCH: usize = 100;
/// Envelopes of one `sendMessages` checked at once.
const BATCH_CONCURRENCY: usize = 16;

/// Submitting messages.
pub struct Mutation;

#[Object]
impl Mutation {
    /// Returns the accepted envelope once it is queued.
    async fn send_message(&self, ctx: &Context<'_>, envelope: MessageEnvelopeInput) -> Option<MessageEnvelope> {
        let sent = submit(services(ctx), envelope).await;
        null_on_rejection(ctx, sent.map(|accepted| Some(MessageEnvelope::from_accepted(accepted))))
    }

    /// Submits up to 100 envelopes, each on its own: one result per
    /// envelope, in order, with the accepted envelope or its refusal. A
    /// refused envelope never refuses the others.
    #[graphql(complexity = "envelopes.len().saturating_mul(child_complexity).saturating_add(1)")]
    async fn send_messages(&self, ctx: &Context<'_>, envelopes: Vec<MessageEnvelopeInput>) -> Result<Vec<SendResult>> {
        if envelopes.len() > MAX_BATCH {
            let sentence =
                format!("sendMessages takes at most {MAX_BATCH} envelopes; this one has {}", envelopes.len());
            crate::metrics::refused(pm_models::RejectionCode::MalformedEnvelope);
            return Err(graphql_error(Rejection::malformed(sentence)));
        }
        let services = services(ctx);
        let results = futures::stream::iter(envelopes)
            .map(|envelope| submit(services, envelope))
            .buffered(BATCH_CONCURRENCY)
            .map(SendResult::from)
            .collect()
            .await;
        Ok(results)
    }
}

/// Checks and queues one envelope through the authorizer.
async fn submit(services: &Services, envelope: MessageEnvelopeInput) -> Result<AcceptedEnvelope, Rejection> {
    // Refusals from here on are the authorizer's to count.
    let envelope = Envelope::try_from(envelope).inspect_err(|r| crate::metrics::refused(r.code))?;
    match services.authorizer.send_message(envelope).await {
        Ok(accepted) => {
            // Accepted: the hash is a checked value now, safe to log.
            tracing::info!(message_hash = %accepted.envelope.message_hash, "envelope accepted");
            Ok(accepted)
        }
        Err(rejection) => {
            tracing::info!(code = rejection.code.as_str(), "envelope refused");
            Err(rejection)
        }
    }
}

/// One envelope's outcome in `sendMessages`: exactly one of the two is set.
#[derive(SimpleObject)]
pub struct SendResult {
    /// The accepted envelope with its receipt, once queued.
    envelope: Option<MessageEnvelope>,
    /// Why it was refused.
    refusal: Option<Refusal>,
}

/// A refusal: its code (PROTOCOL.md section 7) and sentence.
#[derive(SimpleObject)]
pub struct Refusal {
    code: String,
    error: String,
}

impl From<Result<AcceptedEnvelope, Rejection>> for SendResult {
    fn from(outcome: Result<AcceptedEnvelope, Rejection>) -> Self {
        match outcome {
            Ok(accepted) => Self { envelope: Some(MessageEnvelope::from_accepted(accepted)), refusal: None },
            Err(rejection) => Self {
                envelope: None,
                refusal: Some(Refusal { code: rejection.code.as_str().to_owned(), error: rejection.error }),
            },
        }
    }
}

/// The live tail.
pub struct LiveSubscription;

#[Subscription(name = "Subscription")]
impl LiveSubscription {
    /// Each message once it is stored and readable, from the moment of
    /// subscribing: those `sender` sent, those `reader` is a reader of, of
    /// `type`; every message when no filter is given.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        sender: Option<Address>,
        reader: Option<Address>,
        #[graphql(name = "type")] message_type: Option<MessageType>,
    ) -> Result<impl Stream<Item = MessageEnvelope>> {
        let filter = LiveFilter {
            sender: sender.map(|a| parse_address("sender", &a.0)).transpose().map_err(graphql_error)?,
            reader: reader.map(|a| parse_address("reader", &a.0)).transpose().map_err(graphql_error)?,
            message_type: message_type.map(pm_models::MessageType::from),
        };
        let services = services(ctx);
        let Some(feed) = services.feed.clone() else {
            let missing = Rejection::new(pm_models::RejectionCode::Unavailable, "this gateway has no live feed");
            return Err(graphql_error(missing));
        };
        let hashes = feed.subscribe().await.map_err(graphql_error)?;
        Ok(crate::live::messages(hashes, services.reader.clone(), filter).map(MessageEnvelope::from_record))
    }
}
