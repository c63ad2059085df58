//! What every target shares: turning the fuzzer's bytes into the text a
//! decoder reads. Most decoders read base64 of msgpack, which the fuzzer
//! would rarely spell by chance, so the first byte chooses: even, the rest
//! is encoded as strict base64 (the fuzzer works on the msgpack inside);
//! odd, the rest is the text itself (the fuzzer works on the base64 and
//! text rules).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// The text a decoder reads, or `None` when the rest is not UTF-8.
pub fn text(data: &[u8]) -> Option<String> {
    let (mode, rest) = data.split_first()?;
    if mode % 2 == 0 {
        Some(STANDARD.encode(rest))
    } else {
        std::str::from_utf8(rest).ok().map(str::to_owned)
    }
}

/// The node key of the targets that verify node signatures (the shared
/// vectors' node seed, so their receipts and timestamps verify).
pub fn node_key() -> pm_models::keys::PersonaKey {
    pm_models::keys::PersonaKey::from_seed([0x11; 32])
}
