//! Just enough msgpack to take a valid value of the protocol apart and put
//! it back together wrongly: a value tree, a reader for the maps, strings
//! and unsigned integers the node writes, a writer with a choice of widths,
//! and the mutations of `mutations.jsonl`.
//!
//! Written here rather than borrowed from the product's codec, so that a
//! bug in the codec cannot hide itself from the corpus.

/// A map's entries, in order.
type Entries = Vec<(V, V)>;

/// A msgpack value as the corpus handles it.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    Str(String),
    Bin(Vec<u8>),
    UInt(u64),
    Array(Vec<V>),
    Map(Vec<(V, V)>),
    /// Bytes written as they are (any value, valid or not).
    Raw(Vec<u8>),
}

impl V {
    pub fn str(text: &str) -> V {
        V::Str(text.to_owned())
    }
}

/// How [`encode`] writes each kind of value.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Strings as str32 (`Some(32)`) or str16 (`Some(16)`) whatever their length.
    pub wide_strings: Option<u8>,
    /// Maps as map32.
    pub wide_maps: bool,
    /// Unsigned integers as uint64.
    pub wide_ints: bool,
}

/// Writes `value` in `style` (the default style is the canonical one).
pub fn encode(value: &V, style: Style) -> Vec<u8> {
    let mut out = Vec::new();
    write(value, style, &mut out);
    out
}

fn write(value: &V, style: Style, out: &mut Vec<u8>) {
    match value {
        V::Str(text) => {
            let bytes = text.as_bytes();
            let n = bytes.len();
            match style.wide_strings {
                Some(32) => {
                    out.push(0xdb);
                    out.extend((n as u32).to_be_bytes());
                }
                Some(_) if n <= 0xffff => {
                    out.push(0xda);
                    out.extend((n as u16).to_be_bytes());
                }
                _ => write_len(out, n, 0xa0, 31, Some(0xd9), 0xda, 0xdb),
            }
            out.extend_from_slice(bytes);
        }
        V::Bin(bytes) => {
            let n = bytes.len();
            if n <= 0xff {
                out.extend([0xc4, n as u8]);
            } else if n <= 0xffff {
                out.push(0xc5);
                out.extend((n as u16).to_be_bytes());
            } else {
                out.push(0xc6);
                out.extend((n as u32).to_be_bytes());
            }
            out.extend_from_slice(bytes);
        }
        V::UInt(n) => {
            let n = *n;
            if style.wide_ints {
                out.push(0xcf);
                out.extend(n.to_be_bytes());
            } else if n < 0x80 {
                out.push(n as u8);
            } else if n <= 0xff {
                out.extend([0xcc, n as u8]);
            } else if n <= 0xffff {
                out.push(0xcd);
                out.extend((n as u16).to_be_bytes());
            } else if n <= 0xffff_ffff {
                out.push(0xce);
                out.extend((n as u32).to_be_bytes());
            } else {
                out.push(0xcf);
                out.extend(n.to_be_bytes());
            }
        }
        V::Array(items) => {
            write_len(out, items.len(), 0x90, 15, None, 0xdc, 0xdd);
            for item in items {
                write(item, style, out);
            }
        }
        V::Map(entries) => {
            if style.wide_maps {
                out.push(0xdf);
                out.extend((entries.len() as u32).to_be_bytes());
            } else {
                write_len(out, entries.len(), 0x80, 15, None, 0xde, 0xdf);
            }
            for (key, item) in entries {
                write(key, style, out);
                write(item, style, out);
            }
        }
        V::Raw(bytes) => out.extend_from_slice(bytes),
    }
}

fn write_len(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, eight: Option<u8>, sixteen: u8, thirty_two: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if let Some(marker) = eight.filter(|_| n <= 0xff) {
        out.extend([marker, n as u8]);
    } else if n <= 0xffff {
        out.push(sixteen);
        out.extend((n as u16).to_be_bytes());
    } else {
        out.push(thirty_two);
        out.extend((n as u32).to_be_bytes());
    }
}

/// Reads a value the node or a client wrote (maps, arrays, strings,
/// unsigned integers); panics on anything else: the input is always valid.
pub fn decode(bytes: &[u8]) -> V {
    let mut at = 0;
    let value = read(bytes, &mut at);
    assert_eq!(at, bytes.len(), "one value and nothing after it");
    value
}

fn read(bytes: &[u8], at: &mut usize) -> V {
    let take = |at: &mut usize, n: usize| -> &[u8] {
        let slice = &bytes[*at..*at + n];
        *at += n;
        slice
    };
    let be = |slice: &[u8]| slice.iter().fold(0u64, |n, b| (n << 8) | u64::from(*b));
    let marker = take(at, 1)[0];
    let (kind, len) = match marker {
        0x00..=0x7f => return V::UInt(u64::from(marker)),
        0x80..=0x8f => ('m', u64::from(marker & 0x0f)),
        0x90..=0x9f => ('a', u64::from(marker & 0x0f)),
        0xa0..=0xbf => ('s', u64::from(marker & 0x1f)),
        0xcc => return V::UInt(be(take(at, 1))),
        0xcd => return V::UInt(be(take(at, 2))),
        0xce => return V::UInt(be(take(at, 4))),
        0xcf => return V::UInt(be(take(at, 8))),
        0xd9 => ('s', be(take(at, 1))),
        0xda => ('s', be(take(at, 2))),
        0xdb => ('s', be(take(at, 4))),
        0xdc => ('a', be(take(at, 2))),
        0xdd => ('a', be(take(at, 4))),
        0xde => ('m', be(take(at, 2))),
        0xdf => ('m', be(take(at, 4))),
        other => panic!("the corpus reads no msgpack marker {other:#04x}"),
    };
    let len = len as usize;
    match kind {
        's' => V::Str(String::from_utf8(take(at, len).to_vec()).expect("valid values hold UTF-8")),
        'a' => V::Array((0..len).map(|_| read(bytes, at)).collect()),
        _ => V::Map((0..len).map(|_| (read(bytes, at), read(bytes, at))).collect()),
    }
}

/// Bytes of a data file: whitespace-separated hex tokens, each possibly
/// repeated as `HEX*N`.
pub fn hex_pattern(pattern: &str) -> Vec<u8> {
    let mut bytes = Vec::new();
    for token in pattern.split_whitespace() {
        let (hex_text, times) = match token.split_once('*') {
            Some((h, n)) => (h, n.parse::<usize>().expect("a repetition count")),
            None => (token, 1),
        };
        let unit = hex::decode(hex_text).unwrap_or_else(|e| panic!("bad hex {hex_text:?}: {e}"));
        for _ in 0..times {
            bytes.extend_from_slice(&unit);
        }
    }
    bytes
}

/// Another value of the same kind as `value`, for a repeated key: base64
/// text of the same length decoded, other text, another integer.
pub fn other_value(value: &V) -> V {
    match value {
        V::Str(text) => match pm_models::codec::unb64(text) {
            Ok(bytes) if !bytes.is_empty() => {
                V::Str(pm_models::codec::b64(bytes.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>()))
            }
            _ => V::Str(format!("{text}-other")),
        },
        V::UInt(n) => V::UInt(n ^ 1),
        other => V::Str(format!("{other:?}")),
    }
}

/// Applies a mutation of `mutations.jsonl` to the valid bytes `valid`.
pub fn mutate(valid: &[u8], op: &str) -> Vec<u8> {
    let mut words = op.splitn(3, ' ');
    let name = words.next().expect("an operation");
    let (arg, rest) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let canonical = Style::default();
    let entries = || match decode(valid) {
        V::Map(entries) => entries,
        other => panic!("mutations apply to maps, not {other:?}"),
    };
    let position = |entries: &[(V, V)], key: &str| {
        entries
            .iter()
            .position(|(k, _)| *k == V::str(key))
            .unwrap_or_else(|| panic!("the valid value has no key {key}"))
    };
    let with = |change: &dyn Fn(&mut Entries)| {
        let mut e = entries();
        change(&mut e);
        encode(&V::Map(e), canonical)
    };
    match name {
        "append" => [valid, &hex_pattern(&format!("{arg} {rest}"))].concat(),
        "append-copy" => [valid, valid].concat(),
        "truncate" => valid[..valid.len() - arg.parse::<usize>().expect("a count")].to_vec(),
        "truncate-half" => valid[..valid.len() / 2].to_vec(),
        "as-array" => encode(&V::Array(entries().into_iter().map(|(_, v)| v).collect()), canonical),
        "in-array" => encode(&V::Array(vec![V::Raw(valid.to_vec())]), canonical),
        "nest" => {
            let depth: usize = arg.parse().expect("a depth");
            [vec![0x91; depth], valid.to_vec()].concat()
        }
        "count" => {
            assert!((0x81..=0x8e).contains(&valid[0]), "a fixmap to recount");
            let mut bytes = valid.to_vec();
            bytes[0] = if arg == "+1" { bytes[0] + 1 } else { bytes[0] - 1 };
            bytes
        }
        "as-ext" => {
            let mut bytes = vec![0xc9];
            bytes.extend((valid.len() as u32).to_be_bytes());
            bytes.push(0x01);
            bytes.extend_from_slice(valid);
            bytes
        }
        "as-bin" => encode(&V::Bin(valid.to_vec()), canonical),
        "wide-strings" => encode(&decode(valid), Style { wide_strings: Some(32), ..canonical }),
        "wide-strings16" => encode(&decode(valid), Style { wide_strings: Some(16), ..canonical }),
        "wide-map" => encode(&decode(valid), Style { wide_maps: true, ..canonical }),
        "wide-ints" => encode(&decode(valid), Style { wide_ints: true, ..canonical }),
        "reverse-keys" => with(&|e| e.reverse()),
        "duplicate-first" => with(&|e| {
            let i = position(e, arg);
            let other = other_value(&e[i].1);
            e.insert(i, (V::str(arg), other));
        }),
        "duplicate-last" => with(&|e| {
            let i = position(e, arg);
            let other = other_value(&e[i].1);
            e.push((V::str(arg), other));
        }),
        "duplicate-same" => with(&|e| {
            let i = position(e, arg);
            let same = e[i].clone();
            e.push(same);
        }),
        "bin-value" => with(&|e| {
            let i = position(e, arg);
            e[i].1 = match &e[i].1 {
                V::Str(text) => V::Bin(text.as_bytes().to_vec()),
                V::UInt(n) => V::Bin(n.to_string().into_bytes()),
                other => panic!("no bin for {other:?}"),
            };
        }),
        "bin-key" => with(&|e| {
            let i = position(e, arg);
            e[i].0 = V::Bin(arg.as_bytes().to_vec());
        }),
        "rename-key" => with(&|e| {
            let i = position(e, arg);
            e[i].0 = V::Str(format!("{arg}\0"));
        }),
        "drop" => with(&|e| {
            let i = position(e, arg);
            e.remove(i);
        }),
        "set" => with(&|e| {
            let i = position(e, arg);
            e[i].1 = V::Raw(hex_pattern(rest));
        }),
        other => panic!("unknown mutation {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_writer_gives_back_what_the_reader_read() {
        let value = V::Map(vec![(V::str("a"), V::UInt(300)), (V::str("b"), V::str(&"x".repeat(40)))]);
        let bytes = encode(&value, Style::default());
        assert_eq!(bytes, pm_models::codec::to_msgpack(&serde_json::json!({"a": 300, "b": "x".repeat(40)})));
        assert_eq!(decode(&bytes), value);
        let wide = encode(&value, Style { wide_strings: Some(32), wide_maps: true, wide_ints: true });
        assert_eq!(decode(&wide), value, "wide forms read back as the same value");
        assert_ne!(wide, bytes);
    }
}
