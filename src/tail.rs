//! `pm tail`: the live tail from a shell. Subscribes to `messageAdded` over
//! WebSocket (`graphql-transport-ws`) at the gateway's GraphQL URL and
//! prints each message as it becomes readable: one line each, or the
//! envelope as a JSON line with `--json`.

use crate::client::ENVELOPE_FIELDS;
use anyhow::{anyhow, bail, Context};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

/// The WebSocket subprotocol spoken.
pub const PROTOCOL: &str = "graphql-transport-ws";

/// What to follow; `None` follows everything.
#[derive(Debug, Default)]
pub struct TailFilter {
    pub sender: Option<String>,
    pub reader: Option<String>,
    /// A `MessageType` name, e.g. `ASSERTION`.
    pub message_type: Option<String>,
}

/// The gateway's GraphQL URL with the WebSocket scheme.
pub fn websocket_url(url: &str) -> anyhow::Result<String> {
    if let Some(rest) = url.strip_prefix("http://") {
        Ok(format!("ws://{rest}"))
    } else if let Some(rest) = url.strip_prefix("https://") {
        Ok(format!("wss://{rest}"))
    } else if url.starts_with("ws://") || url.starts_with("wss://") {
        Ok(url.to_owned())
    } else {
        bail!("the gateway URL must start with http://, https://, ws:// or wss://: {url}")
    }
}

/// Follows the tail until interrupted, the gateway ends it, or `count`
/// messages were printed.
pub async fn tail(url: &str, filter: &TailFilter, count: Option<usize>, as_json: bool) -> anyhow::Result<()> {
    let mut request = websocket_url(url)?.into_client_request().context("not a WebSocket URL")?;
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static(PROTOCOL));
    let (mut socket, _) =
        tokio_tungstenite::connect_async(request).await.with_context(|| format!("cannot open a WebSocket to {url}"))?;

    socket.send(Message::text(json!({ "type": "connection_init", "payload": {} }).to_string())).await?;
    match next_json(&mut socket).await? {
        Some(ack) if ack["type"] == "connection_ack" => {}
        other => bail!("the gateway did not acknowledge the connection: {other:?}"),
    }
    let query = format!(
        "subscription($sender: Address, $reader: Address, $type: MessageType) {{ \
         messageAdded(sender: $sender, reader: $reader, type: $type) {{ {ENVELOPE_FIELDS} receipt }} }}"
    );
    let variables = json!({ "sender": filter.sender, "reader": filter.reader, "type": filter.message_type });
    let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": query, "variables": variables } });
    socket.send(Message::text(subscribe.to_string())).await?;
    eprintln!("following new messages (Ctrl-C to stop)");

    let mut printed = 0;
    while count.is_none_or(|count| printed < count) {
        let message = tokio::select! {
            message = next_json(&mut socket) => message?,
            _ = tokio::signal::ctrl_c() => break,
        };
        let Some(message) = message else { bail!("the gateway closed the connection") };
        match message["type"].as_str() {
            Some("next") => {
                if let Some(errors) = message["payload"]["errors"].as_array().filter(|e| !e.is_empty()) {
                    bail!("{}", describe(&errors[0]));
                }
                let envelope = &message["payload"]["data"]["messageAdded"];
                if as_json {
                    println!("{envelope}");
                } else {
                    println!("{}", one_line(envelope));
                }
                printed += 1;
            }
            Some("error") => {
                let first = message["payload"].as_array().and_then(|e| e.first()).cloned().unwrap_or_default();
                bail!("{}", describe(&first));
            }
            Some("complete") => break,
            Some("ping") => socket.send(Message::text(json!({ "type": "pong" }).to_string())).await?,
            _ => {}
        }
    }
    let _ = socket.send(Message::text(json!({ "id": "1", "type": "complete" }).to_string())).await;
    let _ = socket.close(None).await;
    Ok(())
}

/// The next JSON text frame; `None` when the connection closed.
async fn next_json<S>(socket: &mut S) -> anyhow::Result<Option<Value>>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(frame) = socket.next().await {
        match frame.context("the WebSocket connection failed")? {
            Message::Text(text) => {
                return serde_json::from_str(text.as_str()).map(Some).map_err(|e| anyhow!("not JSON: {e}"));
            }
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
    Ok(None)
}

/// `CODE: sentence` of a GraphQL error.
fn describe(error: &Value) -> String {
    let code = error["extensions"]["code"].as_str().unwrap_or("ERROR");
    format!("{code}: {}", error["message"].as_str().unwrap_or("(no message)"))
}

/// `createdAt TYPE messageHash from sender (nickname)`.
fn one_line(envelope: &Value) -> String {
    let text = |v: &Value| v.as_str().unwrap_or("-").to_owned();
    let nickname = envelope["sender"]["nickname"].as_str().map(|n| format!(" ({n})")).unwrap_or_default();
    format!(
        "{} {} {} from {}{nickname}",
        text(&envelope["createdAt"]),
        text(&envelope["messageType"]),
        text(&envelope["messageHash"]),
        text(&envelope["sender"]["address"]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_urls_become_websocket_urls() {
        assert_eq!(websocket_url("http://127.0.0.1:8000/teleferic").unwrap(), "ws://127.0.0.1:8000/teleferic");
        assert_eq!(websocket_url("https://pm.example/teleferic/").unwrap(), "wss://pm.example/teleferic/");
        assert_eq!(websocket_url("ws://h/teleferic").unwrap(), "ws://h/teleferic");
        assert!(websocket_url("ftp://h/teleferic").is_err());
    }

    #[test]
    fn a_message_prints_on_one_line() {
        let envelope = json!({
            "createdAt": "2026-12-02T08:00:00.000001Z", "messageType": "ASSERTION", "messageHash": "H=",
            "sender": { "address": "A1", "nickname": "alice" },
        });
        assert_eq!(one_line(&envelope), "2026-12-02T08:00:00.000001Z ASSERTION H= from A1 (alice)");
    }
}
