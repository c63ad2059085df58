//! Strict msgpack reading (PROTOCOL.md section 5): every msgpack value the
//! node decodes (content, bodies, `T`, `S`, `R`, queue payloads) must be
//! exactly one value with no trailing bytes, its maps with string keys and
//! no key twice, its text as `str` (never `bin`, always UTF-8), and a map
//! wherever a structure is expected (never an array standing in for one).
//! Two decoders must never disagree about what the bytes say: msgpack-python
//! keeps the last of two equal keys where serde keeps the first, so a
//! repeated key is refused rather than read either way.
//!
//! Key order and integer widths are not checked: hashes cover the bytes as
//! sent.

use rmpv::Value;
use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};
use std::collections::HashSet;
use std::fmt;

/// Why bytes are not one strict msgpack value of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StrictError(String);

impl de::Error for StrictError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self(msg.to_string())
    }
}

fn refuse<T>(why: impl Into<String>) -> Result<T, StrictError> {
    Err(StrictError(why.into()))
}

/// The deepest nesting of arrays and maps accepted. The protocol's deepest
/// structure (a queue payload's objects, their containers) is 4 levels.
pub const MAX_DEPTH: usize = 16;

/// Reads exactly one value and checks it (module doc).
pub fn read_value(bytes: &[u8]) -> Result<Value, StrictError> {
    // Measured first, without recursion: a deeply nested value must not
    // reach a recursive decoder (it would exhaust the thread's stack).
    check_depth(bytes)?;
    let mut cursor = bytes;
    let value = rmpv::decode::read_value(&mut cursor).map_err(|e| StrictError(format!("not msgpack: {e}")))?;
    if !cursor.is_empty() {
        return refuse(format!("{} trailing bytes after the value", cursor.len()));
    }
    check(&value)?;
    Ok(value)
}

/// Reads exactly one value into `T`, which must take it as it is: a struct
/// from a map only, a string from `str` only.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, StrictError> {
    T::deserialize(Strict(&read_value(bytes)?))
}

/// Walks the value's markers with an explicit stack and refuses nesting
/// deeper than [`MAX_DEPTH`]. Lengths are not trusted: the walk stops at the
/// end of the bytes, and the decoder reports what is missing.
fn check_depth(bytes: &[u8]) -> Result<(), StrictError> {
    // Items still to read in each open container (a map's entries count twice).
    let mut open: Vec<u64> = Vec::new();
    let mut at = 0usize;
    let read_len = |at: usize, width: usize| -> Option<u64> {
        let bytes = bytes.get(at..at + width)?;
        Some(bytes.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b)))
    };
    while at < bytes.len() {
        let marker = bytes[at];
        at += 1;
        // (payload bytes to skip, items of a new container)
        let (skip, items): (u64, Option<u64>) = match marker {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => (0, None),
            0x80..=0x8f => (0, Some(u64::from(marker & 0x0f) * 2)),
            0x90..=0x9f => (0, Some(u64::from(marker & 0x0f))),
            0xa0..=0xbf => (u64::from(marker & 0x1f), None),
            0xc4 | 0xd9 => (read_len(at, 1).unwrap_or(0) + 1, None),
            0xc5 | 0xda => (read_len(at, 2).unwrap_or(0) + 2, None),
            0xc6 | 0xdb => (read_len(at, 4).unwrap_or(0) + 4, None),
            0xc7 => (read_len(at, 1).unwrap_or(0) + 2, None),
            0xc8 => (read_len(at, 2).unwrap_or(0) + 3, None),
            0xc9 => (read_len(at, 4).unwrap_or(0) + 5, None),
            0xca => (4, None),
            0xcb => (8, None),
            0xcc | 0xd0 => (1, None),
            0xcd | 0xd1 => (2, None),
            0xce | 0xd2 => (4, None),
            0xcf | 0xd3 => (8, None),
            0xd4 => (2, None),
            0xd5 => (3, None),
            0xd6 => (5, None),
            0xd7 => (9, None),
            0xd8 => (17, None),
            0xdc => (2, Some(read_len(at, 2).unwrap_or(0))),
            0xdd => (4, Some(read_len(at, 4).unwrap_or(0))),
            0xde => (2, Some(read_len(at, 2).unwrap_or(0) * 2)),
            0xdf => (4, Some(read_len(at, 4).unwrap_or(0) * 2)),
            0xc1 => return refuse("the reserved marker 0xc1"),
        };
        at = at.saturating_add(usize::try_from(skip).unwrap_or(usize::MAX));
        // The value just read fills one slot of the innermost open container.
        if let Some(remaining) = open.last_mut() {
            *remaining -= 1;
        }
        if let Some(items) = items.filter(|items| *items > 0) {
            open.push(items);
            if open.len() > MAX_DEPTH {
                return refuse(format!("nested deeper than {MAX_DEPTH} levels"));
            }
        }
        while open.last() == Some(&0) {
            open.pop();
        }
        if open.is_empty() {
            // One whole value read; what follows is trailing bytes.
            break;
        }
    }
    Ok(())
}

/// The rules every nested value keeps.
fn check(value: &Value) -> Result<(), StrictError> {
    match value {
        Value::Binary(_) => refuse("bin where text belongs"),
        Value::Ext(..) => refuse("ext values are not part of the protocol"),
        Value::String(s) if s.as_str().is_none() => refuse("text that is not UTF-8"),
        Value::Array(items) => items.iter().try_for_each(check),
        Value::Map(entries) => {
            let mut seen = HashSet::with_capacity(entries.len());
            for (key, item) in entries {
                let Some(key) = key.as_str() else { return refuse("a map key that is not text") };
                if !seen.insert(key) {
                    return refuse(format!("key {key:?} appears twice"));
                }
                check(item)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A checked value, read by serde without leniency.
struct Strict<'a>(&'a Value);

impl<'de> de::Deserializer<'de> for Strict<'_> {
    type Error = StrictError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Nil => visitor.visit_unit(),
            Value::Boolean(b) => visitor.visit_bool(*b),
            Value::Integer(i) => match (i.as_u64(), i.as_i64()) {
                (Some(u), _) => visitor.visit_u64(u),
                (None, Some(n)) => visitor.visit_i64(n),
                _ => refuse("an integer out of range"),
            },
            Value::F32(f) => visitor.visit_f32(*f),
            Value::F64(f) => visitor.visit_f64(*f),
            Value::String(s) => visitor.visit_str(s.as_str().expect("checked to be UTF-8")),
            Value::Array(items) => visitor.visit_seq(Items(items.iter())),
            Value::Map(entries) => visitor.visit_map(Entries { entries: entries.iter(), value: None }),
            Value::Binary(_) | Value::Ext(..) => refuse("checked values hold no bin or ext"),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Map(_) => self.deserialize_any(visitor),
            _ => refuse(format!("{name} must be a map")),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Map(_) => self.deserialize_any(visitor),
            _ => refuse("a map is expected"),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Array(_) => self.deserialize_any(visitor),
            _ => refuse("an array is expected"),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::String(_) => self.deserialize_any(visitor),
            _ => refuse("text is expected"),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, StrictError> {
        match self.0 {
            Value::Nil => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, StrictError> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char bytes byte_buf unit unit_struct
        tuple tuple_struct enum identifier ignored_any
    }
}

struct Items<'a>(std::slice::Iter<'a, Value>);

impl<'de> SeqAccess<'de> for Items<'_> {
    type Error = StrictError;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>, StrictError> {
        self.0.next().map(|item| seed.deserialize(Strict(item))).transpose()
    }
}

struct Entries<'a> {
    entries: std::slice::Iter<'a, (Value, Value)>,
    value: Option<&'a Value>,
}

impl<'de> MapAccess<'de> for Entries<'_> {
    type Error = StrictError;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>, StrictError> {
        let Some((key, value)) = self.entries.next() else { return Ok(None) };
        self.value = Some(value);
        let key = key.as_str().expect("checked: map keys are text");
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, StrictError> {
        seed.deserialize(Strict(self.value.take().expect("a value follows its key")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pair {
        signature: String,
        timestamp: String,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    struct Listed {
        items: Vec<Pair>,
        extra: Option<Pair>,
    }

    fn pack(value: &Value) -> Vec<u8> {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, value).unwrap();
        bytes
    }

    fn pair(a: Value, b: Value) -> Value {
        Value::Map(vec![(Value::from("signature"), a), (Value::from("timestamp"), b)])
    }

    #[test]
    fn a_well_formed_map_is_read() {
        let bytes = pack(&pair("s".into(), "t".into()));
        assert_eq!(from_slice::<Pair>(&bytes).unwrap(), Pair { signature: "s".into(), timestamp: "t".into() });
        let listed = Value::Map(vec![
            (Value::from("items"), Value::Array(vec![pair("a".into(), "b".into())])),
            (Value::from("extra"), Value::Nil),
        ]);
        assert_eq!(from_slice::<Listed>(&pack(&listed)).unwrap().items.len(), 1);
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = pack(&pair("s".into(), "t".into()));
        bytes.push(0xc0);
        assert!(from_slice::<Pair>(&bytes).unwrap_err().0.contains("trailing"));
    }

    #[test]
    fn a_key_given_twice_is_refused() {
        let twice = Value::Map(vec![
            (Value::from("signature"), Value::from("first")),
            (Value::from("timestamp"), Value::from("t")),
            (Value::from("signature"), Value::from("second")),
        ]);
        assert!(from_slice::<Pair>(&pack(&twice)).unwrap_err().0.contains("twice"));
        assert!(read_value(&pack(&twice)).is_err(), "also for untyped reading");
    }

    #[test]
    fn bin_for_text_is_refused() {
        let bin = pair(Value::Binary(b"s".to_vec()), "t".into());
        assert!(from_slice::<Pair>(&pack(&bin)).is_err());
    }

    #[test]
    fn an_array_standing_in_for_a_map_is_refused() {
        let array = Value::Array(vec!["s".into(), "t".into()]);
        assert!(from_slice::<Pair>(&pack(&array)).unwrap_err().0.contains("must be a map"));
        let nested = Value::Map(vec![
            (Value::from("items"), Value::Array(vec![Value::Array(vec!["a".into(), "b".into()])])),
            (Value::from("extra"), Value::Nil),
        ]);
        assert!(from_slice::<Listed>(&pack(&nested)).is_err());
    }

    #[test]
    fn non_text_keys_and_invalid_utf8_are_refused() {
        let int_key = Value::Map(vec![(Value::from(1), Value::from("x"))]);
        assert!(read_value(&pack(&int_key)).is_err());
        // fixstr of length 1 holding 0xff
        assert!(read_value(&[0xa1, 0xff]).is_err());
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        for depth in [MAX_DEPTH + 1, 1_000, 1_000_000] {
            let mut bytes = vec![0x91; depth];
            bytes.push(0xc0);
            assert!(read_value(&bytes).unwrap_err().0.contains("nested deeper"), "depth {depth}");
        }
        let mut fine = vec![0x81, 0xa1, b'k'];
        fine.extend(vec![0x91; MAX_DEPTH - 1]);
        fine.push(0xc0);
        assert!(read_value(&fine).is_ok());
    }
}
