//! Benchmark of the embedded default: how fast the authorizer accepts
//! assertions (claims + queue, one fsync each) and how fast the writer
//! stores them (index + store + ack), measured in one run on one database.
//!
//! `cargo run --release --example embedded_throughput -- [COUNT] [CLIENTS]`

use pm_authorizer::{Authorizer, AuthorizerBackends, AuthorizerSettings, NodeIdentity};
use pm_models::api::AuthorizerApi;
use pm_models::client::{acl_rule_for, private_envelope, random_bytes, ContentParts};
use pm_models::keys::PersonaKey;
use pm_models::seams::embedded::EmbeddedBackend;
use pm_models::time::Micros;
use pm_models::MessageType;
use pm_writer::{Writer, WriterSettings};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2000);
    let clients: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(8);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let backend = EmbeddedBackend::open(&dir.path().join("ledger.redb")).expect("the database opens");
    let (node, genesis) = (PersonaKey::generate(), PersonaKey::generate());
    for (key, nickname) in [(&node, "Teleferic"), (&genesis, "genesis")] {
        let b = &backend;
        pm_writer::bootstrap::ensure_persona(b, b, b, key.public(), nickname, Micros::now()).await.expect("bootstrap");
    }
    let authorizer = Arc::new(Authorizer::new(
        NodeIdentity::new(node.clone()),
        AuthorizerSettings::default(),
        AuthorizerBackends {
            store: Arc::new(backend.clone()),
            claims: Arc::new(backend.clone()),
            admission: Arc::new(backend.clone()),
        },
    ));
    let t = pm_models::signed_timestamp::SignedTimestamp::parse(&authorizer.signed_timestamp().await.unwrap()).unwrap();
    let envelopes: Vec<_> = (0..count)
        .map(|i| {
            let key: [u8; 32] = random_bytes();
            let acl = vec![acl_rule_for(genesis.public().verifying_key(), &key)];
            let body = ContentParts::new(0, &serde_json::json!({ "assertion": format!("benchmark {i}") }));
            private_envelope(&genesis, MessageType::Assertion, &body, &key, &random_bytes(), acl, vec![], &t)
        })
        .collect();

    let started = Instant::now();
    let chunks: Vec<Vec<_>> = envelopes.chunks(count.div_ceil(clients)).map(<[_]>::to_vec).collect();
    let tasks: Vec<_> = chunks
        .into_iter()
        .map(|chunk| {
            let authorizer = authorizer.clone();
            tokio::spawn(async move {
                for envelope in chunk {
                    authorizer.send_message(envelope).await.expect("a valid envelope is accepted");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let accept = started.elapsed();

    let writer = Writer::new(
        Arc::new(backend.clone()),
        Arc::new(backend.clone()),
        Arc::new(backend.clone()),
        WriterSettings::default(),
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let writing = tokio::spawn(async move {
        writer
            .run(async {
                let _ = stopped.await;
            })
            .await
    });
    while backend.queue_depth().await.unwrap().0 > 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let write = started.elapsed();
    let _ = stop.send(());
    writing.await.unwrap();

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    println!("{count} assertions, {clients} clients");
    println!("accepted: {:>8.0} /s ({accept:?})", rate(accept));
    println!("written:  {:>8.0} /s ({write:?})", rate(write));
    println!("writer / authorizer throughput: {:.2}", rate(write) / rate(accept));
}
