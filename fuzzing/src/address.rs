//! `Address::parse` on any text (a sender, an ACL reader, a query
//! argument). An address that parses is at most 36 characters, is exactly
//! the text given (Base58 with a 0x01 prefix has one spelling), and parses
//! again to itself.

use pm_models::address::MAX_ADDRESS_CHARS;
use pm_models::Address;

/// Checks the properties above on one input; panics on a failure.
pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(address) = Address::parse(text) else { return };
    assert!(address.as_str().len() <= MAX_ADDRESS_CHARS);
    assert_eq!(address.as_str(), text, "an address has one spelling");
    assert_eq!(Address::parse(address.as_str()).as_ref(), Ok(&address));
}
