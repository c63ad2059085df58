//! `strict_msgpack::read_value` on any bytes: what every msgpack decoder of
//! the node goes through. A value it accepts is what a lenient decoder
//! (rmpv) reads from the same bytes, with nothing left over; it holds no
//! bin, no ext, no text that is not UTF-8, no map with a key that is not
//! text or a key twice, nothing nested deeper than the limit; and its
//! canonical encoding is accepted and reads back to the same value.

use pm_models::strict_msgpack::{read_value, MAX_DEPTH};
use rmpv::Value;
use std::collections::HashSet;

fn check(value: &Value, depth: usize) {
    match value {
        Value::Binary(_) | Value::Ext(..) => panic!("bin or ext accepted: {value:?}"),
        Value::String(s) => assert!(s.as_str().is_some(), "text that is not UTF-8 accepted"),
        Value::Array(items) if !items.is_empty() => {
            assert!(depth < MAX_DEPTH, "nested deeper than {MAX_DEPTH}");
            items.iter().for_each(|item| check(item, depth + 1));
        }
        Value::Map(entries) if !entries.is_empty() => {
            assert!(depth < MAX_DEPTH, "nested deeper than {MAX_DEPTH}");
            let mut keys = HashSet::new();
            for (key, item) in entries {
                let key = key.as_str().expect("map keys are text");
                assert!(keys.insert(key), "key {key:?} twice");
                check(item, depth + 1);
            }
        }
        _ => {}
    }
}

fn encode(value: &Value) -> Vec<u8> {
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, value).expect("encodes");
    bytes
}

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Ok(value) = read_value(data) else { return };
    let mut cursor = data;
    let lenient = rmpv::decode::read_value(&mut cursor).expect("a lenient decoder reads it too");
    assert!(cursor.is_empty(), "nothing left over");
    // Compared as bytes: a NaN is not equal to itself.
    let canonical = encode(&value);
    assert_eq!(encode(&lenient), canonical, "the lenient decoder reads the same value");
    check(&value, 0);
    let again = read_value(&canonical).expect("the canonical encoding is accepted");
    assert_eq!(encode(&again), canonical, "canonical round trip");
}
