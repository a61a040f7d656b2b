/**
 * Byte-exact encodings and domain-separated hashes (docs/protocols.md §1.2–1.3, §11 R6c).
 *
 * Every value that is hashed, signed or compared across parties goes through `enc`, so two
 * different field lists can never produce the same bytes.
 */
import { sha256, sha512 } from '@noble/hashes/sha2.js';

/** A field of an LP encoding: raw bytes, a UTF-8 string, or an already-encoded field. */
export type Field = Uint8Array | string;

const utf8 = new TextEncoder();

/** The protocol family prefix of every hash tag. */
export const TAG_PREFIX = 'CORE-TSS/v1/';

export function u8(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xff) throw new RangeError(`u8 out of range: ${n}`);
  return Uint8Array.of(n);
}

export function u32be(n: number): Uint8Array {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`u32 out of range: ${n}`);
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, n, false);
  return out;
}

/** `enc(f1, …, fn) = u32be(n) ‖ Σ (u32be(len fi) ‖ fi)`; strings are UTF-8. */
export function enc(...fields: readonly Field[]): Uint8Array {
  const parts = fields.map((f) => (typeof f === 'string' ? utf8.encode(f) : f));
  let total = 4;
  for (const p of parts) total += 4 + p.length;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint32(0, parts.length, false);
  let at = 4;
  for (const p of parts) {
    view.setUint32(at, p.length, false);
    out.set(p, at + 4);
    at += 4 + p.length;
  }
  return out;
}

/** A list is `enc(enc(item)…)` (§11 R6c). */
export function encList(items: readonly Uint8Array[]): Uint8Array {
  return enc(...items);
}

/** Inverse of `enc`: splits an LP encoding into its fields, rejecting anything malformed. */
export function decodeEnc(bytes: Uint8Array): Uint8Array[] {
  if (bytes.length < 4) throw new EncodingError('LP encoding shorter than its count');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = view.getUint32(0, false);
  const out: Uint8Array[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    if (at + 4 > bytes.length) throw new EncodingError('LP encoding truncated in a length');
    const len = view.getUint32(at, false);
    at += 4;
    if (at + len > bytes.length) throw new EncodingError('LP encoding truncated in a field');
    out.push(bytes.subarray(at, at + len));
    at += len;
  }
  if (at !== bytes.length) throw new EncodingError('LP encoding has trailing bytes');
  return out;
}

export class EncodingError extends Error {
  readonly code = 'EKM_ENCODING';
}

/** `H(tag, f…) = SHA-256(enc("CORE-TSS/v1/" + tag, f…))`, 32 bytes. */
export function H(tag: string, ...fields: readonly Field[]): Uint8Array {
  return sha256(enc(TAG_PREFIX + tag, ...fields));
}

/** `HS(tag, f…) = OS2IP(SHA-512(enc("CORE-TSS/v1/" + tag, f…))) mod q`; never 0. */
export function HS(order: bigint, tag: string, ...fields: readonly Field[]): bigint {
  const digest = sha512(enc(TAG_PREFIX + tag, ...fields));
  const s = bytesToBigIntBE(digest) % order;
  if (s === 0n) throw new EncodingError(`hash-to-scalar gave 0 for tag ${tag}`);
  return s;
}

export function bytesToBigIntBE(bytes: Uint8Array): bigint {
  let hex = '';
  for (const b of bytes) hex += b.toString(16).padStart(2, '0');
  return hex.length === 0 ? 0n : BigInt('0x' + hex);
}

/** Runs `f` on `secret` (a scalar's encoding), which is zeroed afterwards whatever `f` does. */
export function withWiped<T>(secret: Uint8Array, f: (bytes: Uint8Array) => T): T {
  try {
    return f(secret);
  } finally {
    secret.fill(0);
  }
}

/** Constant-time equality of two byte strings (length is not secret). */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new EncodingError('not a hex string of whole bytes');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}
