//! The custom scalars of PROTOCOL.md section 10 (`Address`, `SHA256`,
//! `HMACSHA256`, `Sign`, `AESEncryptedBlob`, `AESKey`, `PublicKey`, `Date`).
//!
//! Each is a newtype over the text the client sent. The gateway accepts any
//! GraphQL string here and passes it through unchanged: the authorizer and
//! the reader own the content checks and answer with the contract's codes
//! (`MALFORMED_ENVELOPE`, `BAD_QUERY`, ...), so the gateway never second-guesses
//! them with a message of its own. A value that is not a string at all (an
//! `Int` where an `Address` belongs) is refused here, during validation, and
//! the HTTP layer labels that refusal `MALFORMED_ENVELOPE`.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

macro_rules! string_scalar {
    ($(#[$doc:meta])* $rust:ident, $graphql:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $rust(pub String);

        #[Scalar(name = $graphql)]
        impl ScalarType for $rust {
            fn parse(value: Value) -> InputValueResult<Self> {
                match value {
                    Value::String(text) => Ok(Self(text)),
                    other => Err(InputValueError::expected_type(other)),
                }
            }

            fn is_valid(value: &Value) -> bool {
                matches!(value, Value::String(_))
            }

            fn to_value(&self) -> Value {
                Value::String(self.0.clone())
            }
        }

        impl From<String> for $rust {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl From<$rust> for String {
            fn from(value: $rust) -> Self {
                value.0
            }
        }
    };
}

string_scalar!(
    /// A persona address (section 2), Base58 text.
    Address,
    "Address"
);
string_scalar!(
    /// `hash(x)` of section 1: base64 of a SHA-256 digest.
    Sha256,
    "SHA256"
);
string_scalar!(
    /// base64 of an HMAC-SHA256 (a `dossierHash`, a meta hash).
    HmacSha256,
    "HMACSHA256"
);
string_scalar!(
    /// A timestamped signature (section 4) or a node-signed timestamp `T`
    /// (section 3), base64 text.
    Sign,
    "Sign"
);
string_scalar!(
    /// base64 of bytes the node does not read (a message, an object container).
    AesEncryptedBlob,
    "AESEncryptedBlob"
);
string_scalar!(
    /// A message key encrypted for one ACL reader, opaque to the node.
    AesKey,
    "AESKey"
);
string_scalar!(
    /// A public key on the wire (section 2): written as `base64(PEM text)`,
    /// accepted as that or as the PEM text itself.
    PublicKey,
    "PublicKey"
);
string_scalar!(
    /// A UTC day, `YYYY-MM-DD`.
    Date,
    "Date"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scalar_accepts_any_string_and_refuses_other_values() {
        assert_eq!(
            Address::parse(Value::String("not checked here".into())).unwrap(),
            Address("not checked here".into())
        );
        assert!(Address::parse(Value::Number(7.into())).is_err());
        assert!(Sha256::parse(Value::Boolean(true)).is_err());
        assert!(!Date::is_valid(&Value::Null));
        assert!(PublicKey::is_valid(&Value::String(String::new())));
    }
}
