// Re-verification of stored signatures in the browser, with WebCrypto
// Ed25519 (PROTOCOL.md sections 1-4 and 8):
//
//   T = base64(msgpack({"signature": base64(Sign(node_sk, ts)), "timestamp": ts}))
//   S = base64(msgpack({"signature": base64(Sign(sk, msgpack({"messageHash": H, "timestamp": T}))),
//                       "timestamp": T}))
//
// `messageSign` and `containerSign` are S made with the sender's key; the
// receipt R is S made with the node key. Every check returns
// { ok: boolean, detail: string } and never throws.

import { decodeStringMap, encodeStringMap } from './msgpack.js';

const ascii = new TextEncoder();

/** Strict base64 (section 1): standard alphabet, padding, zero trailing bits. */
export function base64Decode(text) {
  if (typeof text !== 'string' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
    throw new Error('not base64');
  }
  const bytes = Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  if (base64Encode(bytes) !== text) throw new Error('base64 with non-zero trailing bits');
  return bytes;
}

export function base64Encode(bytes) {
  return btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(''));
}

/** `hash(x)` of section 1: base64(SHA-256(UTF-8 of the text)). */
export async function hashText(text) {
  return base64Encode(new Uint8Array(await crypto.subtle.digest('SHA-256', ascii.encode(text))));
}

/** A WebCrypto key from a wire public key: base64(PEM text), or the PEM text itself. */
export async function importPublicKey(wire) {
  const pem = wire.startsWith('-----BEGIN') ? wire : new TextDecoder().decode(base64Decode(wire));
  const body = pem
    .trim()
    .split(/\r?\n/)
    .filter((line) => !line.startsWith('-----'))
    .join('');
  return crypto.subtle.importKey('spki', base64Decode(body), { name: 'Ed25519' }, false, ['verify']);
}

async function ed25519Verify(key, signatureBase64, data) {
  const signature = base64Decode(signatureBase64);
  if (signature.length !== 64) return false;
  return crypto.subtle.verify({ name: 'Ed25519' }, key, signature, data);
}

/** A node-signed timestamp T (section 3); `detail` carries its time. */
export async function verifySignedTimestamp(t, nodeKey) {
  try {
    const { signature, timestamp } = decodeStringMap(base64Decode(t));
    if (signature === undefined || timestamp === undefined) throw new Error('T lacks signature or timestamp');
    const ok = await ed25519Verify(nodeKey, signature, ascii.encode(timestamp));
    return { ok, detail: `${ok ? 'signed by the node at' : 'NOT signed by the node:'} ${isoTime(timestamp)}` };
  } catch (error) {
    return { ok: false, detail: `T unreadable: ${error.message}` };
  }
}

/**
 * A timestamped signature S over the hash `h` (section 4): the signature
 * with `signerKey`, and its inner T with `nodeKey`.
 */
export async function verifyTimestampedSignature(s, h, signerKey, nodeKey) {
  let parts;
  try {
    parts = decodeStringMap(base64Decode(s));
    if (parts.signature === undefined || parts.timestamp === undefined) throw new Error('lacks signature or timestamp');
  } catch (error) {
    const unreadable = { ok: false, detail: `unreadable: ${error.message}` };
    return { signature: unreadable, timestamp: unreadable };
  }
  const payload = encodeStringMap([
    ['messageHash', h],
    ['timestamp', parts.timestamp],
  ]);
  let signature;
  try {
    const ok = await ed25519Verify(signerKey, parts.signature, payload);
    signature = { ok, detail: ok ? 'Ed25519 signature verified' : 'Ed25519 signature does NOT verify' };
  } catch (error) {
    signature = { ok: false, detail: `signature unreadable: ${error.message}` };
  }
  return { signature, timestamp: await verifySignedTimestamp(parts.timestamp, nodeKey) };
}

/** `h == hash(text)`: the claimed hash is that of the content served. */
export async function verifyHash(h, text) {
  const actual = await hashText(text);
  return actual === h
    ? { ok: true, detail: 'SHA-256 of the content matches' }
    : { ok: false, detail: `SHA-256 of the content is ${actual}` };
}

function isoTime(timestamp) {
  const seconds = Number(timestamp);
  return Number.isFinite(seconds) ? `${new Date(seconds * 1000).toISOString()} (${timestamp})` : timestamp;
}
