//! The explorer page at `/`, in a real headless Chromium: it finds the
//! genesis persona by nickname, lists its messages page by page, opens one,
//! and verifies in the browser (WebCrypto Ed25519) its `messageSign`, the
//! node-signed T inside it, its container signature and, when the node
//! serves it, its receipt; and a message stored while the page is open
//! appears in its live list (the `messageAdded` subscription).
//!
//! `PM_EXPLORER_SCREENSHOT=docs/explorer.png` also saves a screenshot of
//! the page with the message open (how the README's picture is made).

/// The page is served by `pm serve` on the embedded backend.
pub const DISTRIBUTED: bool = false;

mod common;
mod webdriver;

use common::{envelopes, spawn_embedded_node, TestNode, GENESIS_NICKNAME};
use serde_json::{json, Value};
use webdriver::Browser;

/// Messages per page the test lists with (one of the page's choices).
const PAGE: usize = 10;

/// What this node's schema has of the features being added beside the page.
struct Served {
    receipt: bool,
    live_list: bool,
}

async fn served(node: &TestNode) -> Served {
    let data = node
        .data(
            r#"{ envelope: __type(name: "MessageEnvelope") { fields { name } }
                 __schema { subscriptionType { fields { name } } } }"#,
            json!({}),
        )
        .await;
    let has = |list: &Value, name: &str| list.as_array().is_some_and(|l| l.iter().any(|f| f["name"] == name));
    Served {
        receipt: has(&data["envelope"]["fields"], "receipt"),
        live_list: has(&data["__schema"]["subscriptionType"]["fields"], "messageAdded"),
    }
}

/// The hashes of the rows on screen, in order.
async fn rows(browser: &Browser) -> Vec<String> {
    let hashes = browser
        .execute(
            "return [...document.querySelectorAll('[data-testid=message-row]')].map((row) => row.dataset.hash);",
            json!([]),
        )
        .await;
    serde_json::from_value(hashes).expect("a list of hashes")
}

/// The state (`ok`, `fail`, `absent`) of the check badge `testid`, once shown.
async fn check(browser: &Browser, testid: &str) -> String {
    let expression = format!("document.querySelector('[data-testid={testid}]')?.dataset.state");
    let state = browser.wait_until(&format!("check {testid}"), &expression).await;
    state.as_str().expect("a state is text").to_owned()
}

/// The text of the check's detail cell, for failure messages.
async fn detail(browser: &Browser, testid: &str) -> Value {
    let script = format!("return document.querySelector('[data-testid={testid}]')?.closest('tr')?.textContent;");
    browser.execute(&script, json!([])).await
}

#[tokio::test]
async fn the_explorer_finds_a_persona_pages_its_messages_and_verifies_an_envelope() {
    let Some(browser) = Browser::start().await else { return };
    let node = spawn_embedded_node().await;
    let genesis = node.genesis.address().to_string();

    // More than a page of messages from genesis; the first one carries an
    // object with a container, whose signature the page checks too.
    let t = node.timestamp().await;
    let mut sent = Vec::new();
    for i in 0..=PAGE {
        let objects = match i {
            0 => vec![envelopes::object_with_container(&node.genesis, b"an object the explorer shows", &t)],
            _ => vec![],
        };
        let envelope = envelopes::assertion(&node.genesis, &[node.genesis.public()], objects, &t);
        node.send_ok(&envelope).await;
        sent.push(envelope.message_hash);
    }
    let expected: Vec<String> = node
        .list_all("messageBySender", "sender", &genesis, 1000)
        .await
        .iter()
        .map(|m| m["messageHash"].as_str().expect("a hash").to_owned())
        .collect();
    assert!(expected.len() > PAGE, "the listing spans pages: {}", expected.len());
    let served = served(&node).await;

    browser.goto(&format!("{}/", node.server.base)).await;
    let ready = browser.wait_until("the page has loaded the node", "document.body.dataset.ready").await;
    assert_eq!(ready, "true", "the page started without an error");
    let node_key =
        browser.wait_until("the node key", "document.querySelector('[data-testid=node-key]')?.dataset.state").await;
    assert_eq!(node_key, "ok", "the page imported the node's Ed25519 key");

    // Find genesis by its nickname, in another letter case.
    browser.type_into("[data-testid=find-input]", &GENESIS_NICKNAME.to_uppercase()).await;
    browser.click("[data-testid=find-button]").await;
    let found = browser
        .wait_until("the genesis persona", "document.querySelector('[data-testid=persona-address]')?.textContent")
        .await;
    assert_eq!(found, genesis);

    // Its messages, page by page, are the API's listing.
    browser.execute("document.getElementById('browse-limit').value = arguments[0];", json!([PAGE.to_string()])).await;
    browser.click("[data-testid=persona-sent]").await;
    let mut listed = Vec::new();
    for page in 1.. {
        let expression = format!("document.getElementById('page-label').dataset.page === '{page}'");
        browser.wait_until(&format!("page {page}"), &expression).await;
        let hashes = rows(&browser).await;
        assert!(hashes.len() <= PAGE, "page {page} holds at most {PAGE} rows");
        listed.extend(hashes);
        let next_disabled = browser.execute("return document.getElementById('next-page').disabled;", json!([])).await;
        if next_disabled == json!(true) {
            break;
        }
        browser.click("[data-testid=next-page]").await;
        assert!(page < 100, "the pages do not end");
    }
    assert_eq!(listed, expected, "the pages show the sender's listing in order, each message once");

    // Open the message with the object, from the first page.
    browser.click("[data-testid=first-page]").await;
    browser.wait_until("page 1 again", "document.getElementById('page-label').dataset.page === '1'").await;
    let opened = &sent[0];
    browser.click(&format!(r#"[data-testid=message-row][data-hash="{opened}"] a.hash"#)).await;
    let shown = browser
        .wait_until("the opened envelope", "document.querySelector('[data-testid=envelope-hash]')?.textContent")
        .await;
    assert_eq!(shown, opened.as_str());

    for testid in [
        "verify-message-hash",
        "verify-message-sign",
        "verify-message-t",
        "verify-container-0-hash",
        "verify-container-0-sign",
        "verify-container-0-t",
    ] {
        let state = check(&browser, testid).await;
        assert_eq!(state, "ok", "{testid}: {}", detail(&browser, testid).await);
    }
    let receipt = check(&browser, "verify-receipt-sign").await;
    if served.receipt {
        assert_eq!(receipt, "ok", "the receipt verifies: {}", detail(&browser, "verify-receipt-sign").await);
        assert_eq!(check(&browser, "verify-receipt-t").await, "ok", "the receipt's T verifies");
    } else {
        assert_eq!(receipt, "absent", "without a receipt field the page shows none");
    }
    let readers = browser.execute("return document.querySelector('[data-testid=acl]').textContent;", json!([])).await;
    assert!(readers.as_str().is_some_and(|text| text.contains(GENESIS_NICKNAME)), "genesis is a reader: {readers}");

    // The page's verifier against the contract's byte-exact vectors, and
    // saying no when it should: the same signature over another hash, and a
    // T checked against the sender's key instead of the node's.
    let vectors: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/models/tests/data/protocol.json"))
            .expect("the protocol vectors are readable"),
    )
    .expect("the protocol vectors are JSON");
    let vector = &vectors["timestamped_signature"];
    let outcome = browser
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
               const [vector, signerWire, nodeWire, sign, senderWire, stored, ourNodeWire] = arguments;
               Promise.all([import('./explorer/verify.js'), import('./explorer/msgpack.js')]).then(async ([v, m]) => {
                 const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
                 const payload = m.encodeStringMap([['messageHash', vector.H], ['timestamp', vector.T]]);
                 const vectorNode = await v.importPublicKey(nodeWire);
                 const vectorSigner = await v.importPublicKey(signerWire);
                 const good = await v.verifyTimestampedSignature(vector.S, vector.H, vectorSigner, vectorNode);
                 const sender = await v.importPublicKey(senderWire);
                 const nodeKey = await v.importPublicKey(ourNodeWire);
                 const moved = await v.verifyTimestampedSignature(sign, await v.hashText('another'), sender, nodeKey);
                 const swapped = await v.verifyTimestampedSignature(sign, stored, sender, sender);
                 done({
                   payload: hex(payload) === vector.payload_hex,
                   vector: good.signature.ok && good.timestamp.ok,
                   moved: moved.signature.ok, movedT: moved.timestamp.ok,
                   swapped: swapped.signature.ok, swappedT: swapped.timestamp.ok,
                 });
               }).catch((e) => done({ error: String(e) }));"#,
            json!([
                vector,
                vectors["keys"][vector["signer"].as_str().expect("the vector names its signer")]["pubkey_wire"],
                vectors["keys"]["node"]["pubkey_wire"],
                node.message(opened).await["messageSign"],
                node.genesis.public().to_wire(),
                opened,
                node.node_public.to_wire(),
            ]),
        )
        .await;
    assert_eq!(
        outcome,
        json!({ "payload": true, "vector": true, "moved": false, "movedT": true, "swapped": true, "swappedT": false }),
        "the page's msgpack is the contract's, and its checks can fail"
    );

    // The live list: a message stored now appears in it. The page says "live"
    // once the gateway acknowledged the connection, a moment before the
    // subscription is in place, so messages are sent until one shows.
    assert!(served.live_list, "the node offers messageAdded");
    browser.wait_until("the live list connects", "document.getElementById('live-status').dataset.state === 'ok'").await;
    let mut shown = false;
    for _ in 0..40 {
        let t = node.timestamp().await;
        let envelope = envelopes::assertion(&node.genesis, &[node.genesis.public()], vec![], &t);
        node.send_ok(&envelope).await;
        node.wait_readable(&envelope.message_hash).await;
        let expression = format!(
            r#"document.querySelector('[data-testid=live-item][data-hash="{}"]') !== null"#,
            envelope.message_hash
        );
        for _ in 0..10 {
            if browser.execute(&format!("return {expression};"), json!([])).await == json!(true) {
                shown = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if shown {
            break;
        }
    }
    assert!(shown, "a new message appeared in the live list");

    if let Some(path) = std::env::var_os("PM_EXPLORER_SCREENSHOT") {
        std::fs::write(&path, browser.screenshot().await).expect("the screenshot can be written");
        eprintln!("screenshot written to {}", std::path::Path::new(&path).display());
    }
    browser.quit().await;
}

#[tokio::test]
async fn the_page_and_its_modules_are_served_and_nothing_else() {
    let node = spawn_embedded_node().await;
    let get = |path: &str| node.http.get(format!("{}{path}", node.server.base)).send();
    let page = get("/").await.expect("the gateway answers");
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<meta name="graphql-endpoint" content="/teleferic">"#), "the page names its endpoint");
    for (path, kind) in [("/explorer/app.js", "text/javascript"), ("/explorer/style.css", "text/css")] {
        let asset = get(path).await.expect("the gateway answers");
        assert_eq!(asset.status(), 200, "{path}");
        assert!(asset.headers()["content-type"].to_str().unwrap().starts_with(kind), "{path} is {kind}");
    }
    for missing in ["/explorer/", "/explorer/%2E%2E%2FCargo.toml", "/explorer/main.rs", "/index.html"] {
        assert_eq!(get(missing).await.expect("the gateway answers").status(), 404, "{missing}");
    }
}
