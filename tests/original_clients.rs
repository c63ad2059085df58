//! The original clients' read-only GraphQL documents
//! (`tests/data/original-clients/`, each with its source), sent with their
//! exact text to `/teleferic` and to `/teleferic/` (where those clients
//! post), as JSON and form-encoded, as PROTOCOL.md section 10 promises.
//! Also the version query `teleferic { version { name code buildNumber } }`.

/// These run on `pm serve` and the embedded backend: the gateway's routes
/// and schema are the same on every deployment.
pub const DISTRIBUTED: bool = false;

mod common;

use common::{envelopes, spawn_node, TestNode};
use serde_json::{json, Value};
use std::path::Path;

/// One document of `tests/data/original-clients/`.
struct Document {
    name: String,
    /// What `%s` stands for: `address`, `nickname` or `hash`.
    fill: Option<String>,
    /// The variables, with `$HASH` and `$ADDRESS` to replace.
    variables: Option<String>,
    /// `None` when it validates, else why it cannot.
    invalid: Option<String>,
    text: String,
}

fn documents() -> Vec<Document> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/original-clients");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/original-clients exists")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "graphql"))
        .collect();
    paths.sort();
    paths.iter().map(|path| parse(path)).collect()
}

/// The header is `# key: value` lines up to the first empty line; the
/// document is everything after it, byte for byte.
fn parse(path: &Path) -> Document {
    let content = std::fs::read_to_string(path).expect("a document is UTF-8 text");
    let (header, text) = content.split_once("\n\n").expect("a header, an empty line, then the document");
    let field = |key: &str| {
        header
            .lines()
            .find_map(|line| line.strip_prefix(&format!("# {key}: ")))
            .unwrap_or_else(|| panic!("{} has no `# {key}:` line", path.display()))
            .to_owned()
    };
    assert!(field("source").starts_with("PeerMountain/"), "{}: the source names its repository", path.display());
    let fill = match field("fill").as_str() {
        "none" => None,
        other => Some(other.rsplit(' ').next().expect("a word").to_owned()),
    };
    let variables = Some(field("variables")).filter(|v| v != "none");
    let expect = field("expect");
    let invalid = match expect.as_str() {
        "valid" => None,
        other => Some(other.strip_prefix("invalid: ").expect("expect: valid or invalid: why").to_owned()),
    };
    let name = path.file_stem().expect("a file name").to_string_lossy().into_owned();
    Document { name, fill, variables, invalid, text: text.to_owned() }
}

/// What the documents are filled with: the genesis persona and a stored message.
struct Values {
    address: String,
    nickname: String,
    hash: String,
}

impl Document {
    fn query(&self, values: &Values) -> String {
        match self.fill.as_deref() {
            None => self.text.clone(),
            Some("address") => self.text.replace("%s", &values.address),
            Some("nickname") => self.text.replace("%s", &values.nickname),
            Some("hash") => self.text.replace("%s", &values.hash),
            Some(other) => panic!("{}: unknown fill {other}", self.name),
        }
    }

    fn variables(&self, values: &Values) -> Option<Value> {
        let text = self.variables.as_ref()?.replace("$HASH", &values.hash).replace("$ADDRESS", &values.address);
        Some(serde_json::from_str(&text).expect("the variables are JSON"))
    }
}

#[derive(Clone, Copy, Debug)]
enum Encoding {
    /// `{"query": ..., "variables": {...}}`, as the Android SDK posts.
    Json,
    /// `query=...&variables=...`, as the Python client and behave steps post
    /// (`variables=null` when there are none, as `json.dumps(None)` gives).
    Form,
}

async fn post(node: &TestNode, url: &str, encoding: Encoding, query: &str, variables: Option<Value>) -> Value {
    let request = node.http.post(url);
    let request = match encoding {
        Encoding::Json => match variables {
            Some(v) => request.json(&json!({ "query": query, "variables": v })),
            None => request.json(&json!({ "query": query })),
        },
        Encoding::Form => {
            let variables = variables.map_or_else(|| "null".to_owned(), |v| v.to_string());
            request.form(&[("query", query), ("variables", variables.as_str())])
        }
    };
    let response = request.send().await.expect("the gateway answers");
    let status = response.status();
    let body = response.text().await.expect("a body");
    assert_eq!(status, 200, "{url} ({encoding:?}) answers 200: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url} ({encoding:?}) answers JSON ({e}): {body}"))
}

/// Every value under `data` is present: no `null` anywhere.
fn assert_no_null(value: &Value, at: &str) {
    match value {
        Value::Null => panic!("{at} is null"),
        Value::Array(items) => items.iter().enumerate().for_each(|(i, v)| assert_no_null(v, &format!("{at}[{i}]"))),
        Value::Object(fields) => fields.iter().for_each(|(k, v)| assert_no_null(v, &format!("{at}.{k}"))),
        _ => {}
    }
}

/// The two URLs of the gateway: without and with the trailing slash.
fn urls(node: &TestNode) -> [String; 2] {
    [node.server.url.clone(), format!("{}/", node.server.url)]
}

/// A stored assertion from genesis, readable by genesis, with an object.
async fn stored_values(node: &TestNode) -> Values {
    let t = node.timestamp().await;
    let object = envelopes::object_with_container(&node.genesis, b"an object", &t);
    let envelope = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![object], &t);
    node.send_ok(&envelope).await;
    Values {
        address: node.genesis.address().to_string(),
        nickname: common::GENESIS_NICKNAME.to_owned(),
        hash: envelope.message_hash,
    }
}

#[tokio::test]
async fn every_original_document_validates_or_is_refused_for_its_stated_reason_at_both_urls() {
    let node = spawn_node().await;
    let values = stored_values(&node).await;
    let documents = documents();
    assert_eq!(documents.len(), 18, "the committed documents");
    assert_eq!(documents.iter().filter(|d| d.invalid.is_none()).count(), 16, "the ones that validate");
    for document in &documents {
        let query = document.query(&values);
        assert!(!query.contains("%s"), "{}: every %s is filled", document.name);
        for url in urls(&node) {
            for encoding in [Encoding::Json, Encoding::Form] {
                let response = post(&node, &url, encoding, &query, document.variables(&values)).await;
                let context = format!("{} at {url} ({encoding:?})", document.name);
                match &document.invalid {
                    None => {
                        assert!(response.get("errors").is_none(), "{context}: {response}");
                        let data = &response["data"];
                        assert!(data.as_object().is_some_and(|d| !d.is_empty()), "{context} returns data: {response}");
                        assert_no_null(data, &format!("{context}: data"));
                    }
                    Some(why) => {
                        assert_eq!(common::error_code(&response).as_deref(), Some("MALFORMED_ENVELOPE"), "{context}");
                        let message = response["errors"][0]["message"].as_str().unwrap_or_default();
                        // The schema names the first field it lacks, which the stated reason names too.
                        let field = message.split('"').nth(1).unwrap_or_else(|| panic!("{context}: {message}"));
                        assert!(why.contains(field), "{context}: refused for {message:?}, stated reason: {why}");
                        assert!(response["data"].is_null(), "{context}: no data: {response}");
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn the_documents_answer_about_this_node() {
    let node = spawn_node().await;
    let values = stored_values(&node).await;
    let documents = documents();
    let answer = |name: &str| {
        let document = documents.iter().find(|d| d.name == name).expect("a committed document");
        (document.query(&values), document.variables(&values))
    };
    let url = format!("{}/", node.server.url);
    let (query, _) = answer("13-android-teleferic-persona-address");
    let data = post(&node, &url, Encoding::Json, &query, None).await;
    assert_eq!(data["data"]["teleferic"]["persona"]["address"], node.server.node_address);
    let (query, _) = answer("07-query-persona-by-nickname");
    let data = post(&node, &url, Encoding::Form, &query, None).await;
    assert_eq!(data["data"]["persona"]["address"], values.address);
    let (query, variables) = answer("11-assertion-message-by-hash");
    let data = post(&node, &url, Encoding::Form, &query, variables).await;
    let envelope = &data["data"]["messageByHash"];
    assert_eq!(envelope["messageHash"], values.hash);
    assert_eq!(envelope["ACL"][0]["reader"]["address"], values.address);
    assert_eq!(envelope["objects"][0]["container"]["objectContainer"], pm_models::codec::b64(b"an object"));
}

#[tokio::test]
async fn the_version_query_answers_at_both_urls_as_json_and_form() {
    let node = spawn_node().await;
    for url in urls(&node) {
        for encoding in [Encoding::Json, Encoding::Form] {
            let response =
                post(&node, &url, encoding, "{ teleferic { version { name code buildNumber } } }", None).await;
            assert!(response.get("errors").is_none(), "{url} ({encoding:?}): {response}");
            let version = &response["data"]["teleferic"]["version"];
            assert_eq!(version["name"], "pm-teleferic", "{url} ({encoding:?}): {response}");
            assert_eq!(version["code"], env!("CARGO_PKG_VERSION"));
            assert!(version.get("buildNumber").is_some(), "buildNumber is answered (null outside git)");
        }
    }
}
