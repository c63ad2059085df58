// The msgpack the signature constructions use (PROTOCOL.md sections 1, 3, 4):
// one map whose keys and values are all text. Encoding is canonical (keys in
// the order given, every string in its smallest format); decoding is strict
// (one value, no trailing bytes, no key twice, text only, never `bin`).

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder('utf-8', { fatal: true });

/** msgpack of a map of strings, keys in the order of `entries` ([[key, value], ...]). */
export function encodeStringMap(entries) {
  const out = [];
  const n = entries.length;
  if (n < 16) out.push(0x80 | n);
  else if (n < 0x10000) out.push(0xde, n >> 8, n & 0xff);
  else throw new Error('map too large');
  for (const [key, value] of entries) {
    writeString(out, key);
    writeString(out, value);
  }
  return Uint8Array.from(out);
}

function writeString(out, text) {
  if (typeof text !== 'string') throw new Error('only strings are encoded');
  const bytes = utf8.encode(text);
  const n = bytes.length;
  if (n < 32) out.push(0xa0 | n);
  else if (n < 0x100) out.push(0xd9, n);
  else if (n < 0x10000) out.push(0xda, n >> 8, n & 0xff);
  else out.push(0xdb, (n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff);
  for (const b of bytes) out.push(b);
}

/** The map of strings in `bytes`, as a plain object; throws on anything else. */
export function decodeStringMap(bytes) {
  const reader = { bytes, at: 0 };
  const tag = take(reader, 1)[0];
  let n;
  if ((tag & 0xf0) === 0x80) n = tag & 0x0f;
  else if (tag === 0xde) n = readUint(reader, 2);
  else if (tag === 0xdf) n = readUint(reader, 4);
  else throw new Error('not a map');
  const map = Object.create(null);
  for (let i = 0; i < n; i++) {
    const key = readString(reader);
    if (key in map) throw new Error(`key ${key} appears twice`);
    map[key] = readString(reader);
  }
  if (reader.at !== bytes.length) throw new Error('trailing bytes after the map');
  return map;
}

function readString(reader) {
  const tag = take(reader, 1)[0];
  let n;
  if ((tag & 0xe0) === 0xa0) n = tag & 0x1f;
  else if (tag === 0xd9) n = readUint(reader, 1);
  else if (tag === 0xda) n = readUint(reader, 2);
  else if (tag === 0xdb) n = readUint(reader, 4);
  else throw new Error('a value is not text');
  return fromUtf8.decode(take(reader, n));
}

function readUint(reader, width) {
  return take(reader, width).reduce((n, b) => n * 256 + b, 0);
}

function take(reader, n) {
  if (reader.at + n > reader.bytes.length) throw new Error('msgpack ends early');
  const slice = reader.bytes.subarray(reader.at, reader.at + n);
  reader.at += n;
  return slice;
}
