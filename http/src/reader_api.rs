//! The reader's internal API (PROTOCOL.md section 10): JSON-RPC 2.0 on
//! `POST /` with the methods of the earlier deployment,
//! `message(hash | persona_sender | reader | created_at | container_hash, limit, after)`,
//! `persona(address | nickname | pubkey)` and `object(hash)`; each result is
//! `{"response": …, "status": 200 | 404}`. A refusal is a JSON-RPC error
//! whose `data.code` is the section 7 code.
//!
//! [`ReaderCall`] is the one place the methods and their parameter names
//! are written: the server reads calls with [`ReaderCall::from_rpc`] and
//! answers them with [`ReaderCall::answer`]; [`RemoteReader`] writes them
//! with [`ReaderCall::params`].

use crate::client::{check_ready, http_client, unreachable_service};
use async_trait::async_trait;
use pm_models::api::{
    parse_address, parse_day, parse_hash, parse_message_hash, parse_public_key, MessageQuery, PageRequest,
    PersonaQuery, ReaderApi, MAX_PERSONAS_PER_CALL,
};
use pm_models::envelope::ObjectEntry;
use pm_models::records::{MessageRecord, PersonaRecord};
use pm_models::{Address, Hash32, MessageHash, Rejection, RejectionCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::time::Duration;

/// A JSON-RPC 2.0 result of the reader: `{"response": …, "status": 200|404}`.
#[derive(Serialize, Deserialize)]
pub struct ReaderResult {
    pub response: Value,
    pub status: u16,
}

impl ReaderResult {
    fn single<T: Serialize>(value: Option<T>) -> Self {
        match value {
            Some(v) => Self { response: serde_json::to_value(v).expect("records serialize"), status: 200 },
            None => Self { response: Value::Null, status: 404 },
        }
    }
}

/// JSON-RPC error codes the reader answers with.
pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const METHOD_NOT_FOUND: i64 = -32601;
pub const INVALID_PARAMS: i64 = -32602;
pub const SERVER_ERROR: i64 = -32000;

/// One call of the reader's API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReaderCall {
    Persona(PersonaQuery),
    Personas(Vec<Address>),
    Message(MessageHash),
    Messages(MessageQuery, PageRequest),
    Object(Hash32),
}

/// Why a JSON-RPC request is not a call.
#[derive(Debug)]
pub enum CallError {
    MethodNotFound(String),
    Refused(Rejection),
}

impl From<Rejection> for CallError {
    fn from(rejection: Rejection) -> Self {
        Self::Refused(rejection)
    }
}

const PERSONA_SELECTORS: [&str; 3] = ["address", "nickname", "pubkey"];
const MESSAGE_SELECTORS: [&str; 5] = ["hash", "persona_sender", "reader", "created_at", "container_hash"];

impl ReaderCall {
    pub fn method(&self) -> &'static str {
        match self {
            Self::Persona(_) => "persona",
            Self::Personas(_) => "personas",
            Self::Message(_) | Self::Messages(..) => "message",
            Self::Object(_) => "object",
        }
    }

    /// The call's JSON-RPC `params`.
    pub fn params(&self) -> Value {
        match self {
            Self::Persona(PersonaQuery::Address(a)) => json!({ "address": a }),
            Self::Persona(PersonaQuery::PublicKey(k)) => json!({ "pubkey": k.to_wire() }),
            Self::Persona(PersonaQuery::Nickname(n)) => json!({ "nickname": n }),
            Self::Personas(addresses) => json!({ "addresses": addresses }),
            Self::Message(hash) => json!({ "hash": hash }),
            Self::Messages(query, page) => {
                let (key, value) = match query {
                    MessageQuery::Sender(a) => ("persona_sender", a.to_string()),
                    MessageQuery::Reader(a) => ("reader", a.to_string()),
                    MessageQuery::Date(d) => ("created_at", d.to_string()),
                    MessageQuery::ContainerHash(h) => ("container_hash", h.to_string()),
                };
                json!({ key: value, "limit": page.limit, "after": page.after })
            }
            Self::Object(hash) => json!({ "hash": hash }),
        }
    }

    /// Reads a call from a JSON-RPC method and its params; an argument that
    /// does not parse is `BAD_QUERY`.
    pub fn from_rpc(method: &str, params: &Map<String, Value>) -> Result<Self, CallError> {
        Ok(match method {
            "persona" => Self::Persona(match selector(params, &PERSONA_SELECTORS)? {
                ("address", v) => PersonaQuery::Address(parse_address("address", &v)?),
                ("pubkey", v) => PersonaQuery::PublicKey(parse_public_key("pubkey", &v)?),
                (_, v) => PersonaQuery::Nickname(v),
            }),
            "personas" => {
                let Some(Value::Array(addresses)) = params.get("addresses") else {
                    return Err(Rejection::bad_query("addresses must be an array").into());
                };
                if addresses.len() > MAX_PERSONAS_PER_CALL {
                    return Err(
                        Rejection::bad_query(format!("at most {MAX_PERSONAS_PER_CALL} addresses at once")).into()
                    );
                }
                let parsed = addresses.iter().map(|address| match address {
                    Value::String(text) => parse_address("addresses[]", text),
                    _ => Err(Rejection::bad_query("addresses[] must be strings")),
                });
                Self::Personas(parsed.collect::<Result<_, _>>()?)
            }
            "message" => {
                let (name, value) = selector(params, &MESSAGE_SELECTORS)?;
                let query = match name {
                    "hash" => return Ok(Self::Message(parse_message_hash("hash", &value)?)),
                    "persona_sender" => MessageQuery::Sender(parse_address("sender", &value)?),
                    "reader" => MessageQuery::Reader(parse_address("reader", &value)?),
                    "created_at" => MessageQuery::Date(parse_day("date", &value)?),
                    _ => MessageQuery::ContainerHash(parse_hash("containerHash", &value)?),
                };
                let limit = match params.get("limit") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_i64().ok_or_else(|| Rejection::bad_query("limit must be an integer"))?),
                };
                let after = string_param(params, "after")?;
                Self::Messages(query, PageRequest::parse(limit, after.as_deref())?)
            }
            "object" => {
                let hash = string_param(params, "hash")?.ok_or_else(|| Rejection::bad_query("hash is required"))?;
                Self::Object(parse_hash("objectHash", &hash)?)
            }
            other => return Err(CallError::MethodNotFound(other.to_owned())),
        })
    }

    /// Answers the call from `reader`.
    pub async fn answer(self, reader: &dyn ReaderApi) -> Result<ReaderResult, Rejection> {
        Ok(match self {
            Self::Persona(query) => ReaderResult::single(reader.persona(query).await?),
            Self::Personas(addresses) => {
                let found = reader.personas(&addresses).await?;
                ReaderResult { response: serde_json::to_value(found).expect("records serialize"), status: 200 }
            }
            Self::Message(hash) => ReaderResult::single(reader.message(&hash).await?),
            Self::Messages(query, page) => {
                let records = reader.messages(query, page).await?;
                ReaderResult { response: serde_json::to_value(records).expect("records serialize"), status: 200 }
            }
            Self::Object(hash) => ReaderResult::single(reader.object(&hash).await?),
        })
    }
}

fn string_param(params: &Map<String, Value>, name: &str) -> Result<Option<String>, Rejection> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Rejection::bad_query(format!("{name} must be a string"))),
    }
}

/// The one selector among `names` that is given, or `BAD_QUERY`.
fn selector(params: &Map<String, Value>, names: &[&'static str]) -> Result<(&'static str, String), Rejection> {
    let mut given = Vec::new();
    for name in names {
        if let Some(value) = string_param(params, name)? {
            given.push((*name, value));
        }
    }
    match given.len() {
        1 => Ok(given.remove(0)),
        _ => Err(Rejection::bad_query(format!("give exactly one of {}", names.join(", ")))),
    }
}

/// The JSON-RPC error of a refusal: `data.code` is the section 7 code.
pub fn rejection_error(id: &Value, rejection: &Rejection) -> Value {
    let code = match rejection.code {
        RejectionCode::BadQuery => INVALID_PARAMS,
        _ => SERVER_ERROR,
    };
    rpc_error(id, code, &rejection.error, json!({ "code": rejection.code.as_str() }))
}

pub fn rpc_error(id: &Value, code: i64, message: &str, data: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message, "data": data } })
}

pub fn rpc_result(id: &Value, result: &ReaderResult) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// The reader over its JSON-RPC 2.0 API.
pub struct RemoteReader {
    http: reqwest::Client,
    base: String,
}

impl RemoteReader {
    pub fn new(base: &str, timeout: Duration) -> Self {
        Self { http: http_client(timeout), base: base.trim_end_matches('/').to_owned() }
    }

    async fn call(&self, call: ReaderCall) -> Result<ReaderResult, Rejection> {
        let request = json!({ "jsonrpc": "2.0", "id": 1, "method": call.method(), "params": call.params() });
        let response = self
            .http
            .post(format!("{}/", self.base))
            .json(&request)
            .send()
            .await
            .map_err(|e| unreachable_service("reader", e))?;
        let body: Value = response.json().await.map_err(|e| unreachable_service("reader", e))?;
        if let Some(error) = body.get("error") {
            let code = error["data"]["code"].as_str().and_then(RejectionCode::parse);
            let message = error["message"].as_str().unwrap_or("reader refused the query").to_owned();
            return Err(match code {
                Some(code) => Rejection::new(code, message),
                None => unreachable_service("reader", message),
            });
        }
        serde_json::from_value(body["result"].clone()).map_err(|e| unreachable_service("reader", e))
    }

    async fn call_one<T: serde::de::DeserializeOwned>(&self, call: ReaderCall) -> Result<Option<T>, Rejection> {
        let result = self.call(call).await?;
        if result.status == 404 || result.response.is_null() {
            return Ok(None);
        }
        serde_json::from_value(result.response).map(Some).map_err(|e| unreachable_service("reader", e))
    }
}

#[async_trait]
impl ReaderApi for RemoteReader {
    async fn persona(&self, query: PersonaQuery) -> Result<Option<PersonaRecord>, Rejection> {
        self.call_one(ReaderCall::Persona(query)).await
    }

    async fn personas(&self, addresses: &[Address]) -> Result<Vec<Option<PersonaRecord>>, Rejection> {
        let result = self.call(ReaderCall::Personas(addresses.to_vec())).await?;
        serde_json::from_value(result.response).map_err(|e| unreachable_service("reader", e))
    }

    async fn message(&self, hash: &MessageHash) -> Result<Option<MessageRecord>, Rejection> {
        self.call_one(ReaderCall::Message(hash.clone())).await
    }

    async fn messages(&self, query: MessageQuery, page: PageRequest) -> Result<Vec<MessageRecord>, Rejection> {
        let result = self.call(ReaderCall::Messages(query, page)).await?;
        serde_json::from_value(result.response).map_err(|e| unreachable_service("reader", e))
    }

    async fn object(&self, object_hash: &Hash32) -> Result<Option<ObjectEntry>, Rejection> {
        self.call_one(ReaderCall::Object(object_hash.clone())).await
    }

    async fn ready(&self) -> Result<(), Rejection> {
        check_ready(&self.http, &self.base, "reader").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pm_models::keys::PersonaKey;

    fn round_trip(call: ReaderCall) {
        let params = call.params();
        let read = ReaderCall::from_rpc(call.method(), params.as_object().unwrap()).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(read, call, "{params}");
    }

    #[test]
    fn every_call_reads_back_from_the_params_it_writes() {
        let key = PersonaKey::from_seed([5; 32]);
        let hash = MessageHash::of_message("m");
        round_trip(ReaderCall::Persona(PersonaQuery::Address(key.address())));
        round_trip(ReaderCall::Persona(PersonaQuery::PublicKey(key.public().clone())));
        round_trip(ReaderCall::Persona(PersonaQuery::Nickname("Ünï".into())));
        round_trip(ReaderCall::Personas(vec![key.address(), PersonaKey::from_seed([6; 32]).address()]));
        round_trip(ReaderCall::Message(hash.clone()));
        let page = PageRequest { limit: 7, after: Some(hash.clone()) };
        round_trip(ReaderCall::Messages(MessageQuery::Sender(key.address()), page.clone()));
        round_trip(ReaderCall::Messages(MessageQuery::Reader(key.address()), PageRequest::default()));
        let day = pm_models::api::parse_day("date", "2024-02-29").unwrap();
        round_trip(ReaderCall::Messages(MessageQuery::Date(day), page));
        round_trip(ReaderCall::Messages(MessageQuery::ContainerHash(Hash32::of_text("c")), PageRequest::default()));
        round_trip(ReaderCall::Object(Hash32::of_text("o")));
    }

    #[test]
    fn a_call_with_two_selectors_or_a_bad_argument_is_a_bad_query() {
        let params = json!({ "address": "x", "nickname": "y" });
        match ReaderCall::from_rpc("persona", params.as_object().unwrap()) {
            Err(CallError::Refused(r)) => assert_eq!(r.code, RejectionCode::BadQuery),
            other => panic!("{other:?}"),
        }
        let params = json!({ "persona_sender": "12345" });
        assert!(matches!(ReaderCall::from_rpc("message", params.as_object().unwrap()), Err(CallError::Refused(_))));
        assert!(matches!(ReaderCall::from_rpc("nope", &Map::new()), Err(CallError::MethodNotFound(_))));
    }
}
