//! The sealed boxes and invitation names a registration carries
//! (`sealed_box::open`, `invite_name::decrypt`) on any bytes: they never
//! panic, and nothing opens that was not sealed to the node key (the
//! fuzzer cannot seal without it; the round trip is checked on the input
//! sealed properly).

use crate::common;

use pm_models::{invite_name, sealed_box};

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let node = common::node_key();
    if let Some(opened) = sealed_box::open(&node, data) {
        // Only a box sealed to the node opens: the corpus holds some.
        assert!(data.len() >= 48 + opened.len());
    }
    let sealed = sealed_box::seal(node.public().verifying_key(), data);
    assert_eq!(sealed_box::open(&node, &sealed).as_deref(), Some(data), "seal then open");
    let key: [u8; 32] = std::array::from_fn(|i| data.get(i).copied().unwrap_or(0));
    let _ = invite_name::decrypt(&key, data);
    let _ = invite_name::decrypt(&data[..data.len().min(40)], data);
    if let Ok(name) = std::str::from_utf8(data) {
        let blob = invite_name::encrypt(&key, name);
        assert_eq!(invite_name::decrypt(&key, &blob).as_deref(), Some(data), "encrypt then decrypt");
    }
}
