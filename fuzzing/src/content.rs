//! `MessageContent::decode_public` on any `message` text. A decoded
//! content's packed bytes are exactly the base64 it came from, the bytes
//! are strict msgpack, and packing the content again decodes to the same
//! content.

use crate::common;

use pm_models::codec::{b64, unb64};
use pm_models::content::MessageContent;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Some(text) = common::text(data) else { return };
    let Ok(decoded) = MessageContent::decode_public(&text) else { return };
    assert_eq!(unb64(&text).as_deref(), Ok(decoded.packed.as_slice()), "packed is the message's bytes");
    assert!(pm_models::strict_msgpack::read_value(&decoded.packed).is_ok());
    let again = MessageContent::decode_public(&b64(decoded.content.pack())).expect("a packed content decodes");
    assert_eq!(again.content, decoded.content, "pack round trip");
}
