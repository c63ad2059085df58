//! `MessageHash::parse` and `Hash32::parse` on any text. A hash that parses
//! is the text given, 44 characters of strict base64 of 32 bytes, and the
//! two parsers agree.

use pm_models::codec::unb64;
use pm_models::{Hash32, MessageHash};

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let message = MessageHash::parse(text);
    let hash = Hash32::parse(text);
    assert_eq!(message.is_ok(), hash.is_ok(), "both parsers agree");
    let Ok(hash) = hash else { return };
    assert_eq!(hash.as_str(), text);
    assert_eq!(text.len(), Hash32::CHARS);
    assert_eq!(unb64(text).map(|bytes| bytes.len()), Ok(32));
    assert_eq!(message.unwrap().as_str(), text);
}
