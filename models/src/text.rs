//! The shape every validated text value shares (an address, a hash): a
//! newtype over its canonical text that can only be built by parsing, read
//! and written as that text by serde, and shown as it.

/// Implements, for a newtype `$name(inner)` whose `parse(&str)` validates
/// and whose `as_str()` returns the text: `TryFrom<String>`, `FromStr`, `From<$name>
/// for String`, `Display` and `Debug`.
macro_rules! text_newtype {
    ($name:ident, $error:ty) => {
        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(&value)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $error;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                Self::parse(text)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.as_str().to_owned()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.as_str())
            }
        }
    };
}

pub(crate) use text_newtype;
