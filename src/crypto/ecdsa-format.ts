/**
 * ECDSA message hashing and signature formats (docs/protocols.md §3, §3.2 S2).
 *
 * - `bits2int`: the leftmost qlen bits of a digest as an integer (FIPS 186-5 §6.4.1, RFC 6979
 *   §2.3.2); `m = bits2int(digest) mod q`.
 * - P1363 (IEEE 1363, "raw"): r ‖ s, each exactly `scalarBytes` big-endian.
 * - DER: `SEQUENCE { INTEGER r, INTEGER s }`, minimal encodings; decoding is strict.
 * - low-s: s ≤ q/2 (mandatory for secp256k1 users, applied to every curve).
 */
import { sha256, sha384, sha512 } from '@noble/hashes/sha2.js';
import { bytesToBigIntBE } from './encoding.js';

export type EcdsaHash = 'sha256' | 'sha384' | 'sha512';
export const ECDSA_HASHES: readonly EcdsaHash[] = ['sha256', 'sha384', 'sha512'];

const HASH_FNS: Record<EcdsaHash, (m: Uint8Array) => Uint8Array> = { sha256, sha384, sha512 };
const HASH_LENGTHS: Record<EcdsaHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

export class SignatureFormatError extends Error {
  readonly code = 'EKM_SIGNATURE_FORMAT';
}

export function isEcdsaHash(name: string): name is EcdsaHash {
  return (ECDSA_HASHES as readonly string[]).includes(name);
}

export function hashLength(hash: EcdsaHash): number {
  return HASH_LENGTHS[hash];
}

export function hashMessage(hash: EcdsaHash, message: Uint8Array): Uint8Array {
  return HASH_FNS[hash](message);
}

/** `bits2int(digest) mod q`: the leftmost bitlen(q) bits of the digest, reduced mod q. */
export function bits2intModQ(digest: Uint8Array, order: bigint): bigint {
  const qbits = order.toString(2).length;
  let v = bytesToBigIntBE(digest);
  const dbits = digest.length * 8;
  if (dbits > qbits) v >>= BigInt(dbits - qbits);
  return v % order;
}

function fixedBE(n: bigint, len: number): Uint8Array {
  if (n < 0n) throw new SignatureFormatError('negative integer');
  const hex = n.toString(16).padStart(len * 2, '0');
  if (hex.length > len * 2) throw new SignatureFormatError('integer too large for its field');
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

export function isLowS(s: bigint, order: bigint): boolean {
  return s <= order >> 1n;
}

/** s or q − s, whichever is ≤ q/2. */
export function normaliseLowS(s: bigint, order: bigint): bigint {
  return isLowS(s, order) ? s : order - s;
}

function checkRange(r: bigint, s: bigint, order: bigint): void {
  if (r <= 0n || r >= order || s <= 0n || s >= order) throw new SignatureFormatError('r or s out of range');
}

export function encodeP1363(r: bigint, s: bigint, order: bigint, scalarBytes: number): Uint8Array {
  checkRange(r, s, order);
  const out = new Uint8Array(2 * scalarBytes);
  out.set(fixedBE(r, scalarBytes), 0);
  out.set(fixedBE(s, scalarBytes), scalarBytes);
  return out;
}

export function decodeP1363(sig: Uint8Array, order: bigint, scalarBytes: number): { r: bigint; s: bigint } {
  if (sig.length !== 2 * scalarBytes) throw new SignatureFormatError(`P1363 signature must be ${2 * scalarBytes} bytes`);
  const r = bytesToBigIntBE(sig.subarray(0, scalarBytes));
  const s = bytesToBigIntBE(sig.subarray(scalarBytes));
  checkRange(r, s, order);
  return { r, s };
}

function derInt(n: bigint): Uint8Array {
  let hex = n.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  let bytes = Buffer.from(hex, 'hex');
  if (bytes[0]! & 0x80) bytes = Buffer.concat([Buffer.of(0), bytes]);
  return Uint8Array.of(0x02, ...derLen(bytes.length), ...bytes);
}

function derLen(len: number): number[] {
  if (len < 0x80) return [len];
  if (len < 0x100) return [0x81, len];
  throw new SignatureFormatError('DER length too large');
}

export function encodeDer(r: bigint, s: bigint, order: bigint): Uint8Array {
  checkRange(r, s, order);
  const body = Uint8Array.of(...derInt(r), ...derInt(s));
  return Uint8Array.of(0x30, ...derLen(body.length), ...body);
}

/** Strict DER: definite minimal lengths, minimal positive integers, no trailing bytes. */
export function decodeDer(sig: Uint8Array, order: bigint): { r: bigint; s: bigint } {
  let at = 0;
  const byte = (): number => {
    if (at >= sig.length) throw new SignatureFormatError('DER truncated');
    return sig[at++]!;
  };
  const len = (): number => {
    const b = byte();
    if (b < 0x80) return b;
    if (b !== 0x81) throw new SignatureFormatError('DER length form not allowed');
    const l = byte();
    if (l < 0x80) throw new SignatureFormatError('DER length not minimal');
    return l;
  };
  const int = (): bigint => {
    if (byte() !== 0x02) throw new SignatureFormatError('DER INTEGER expected');
    const l = len();
    if (l === 0 || at + l > sig.length) throw new SignatureFormatError('DER INTEGER length');
    const v = sig.subarray(at, at + l);
    at += l;
    if (v[0]! & 0x80) throw new SignatureFormatError('DER INTEGER negative');
    if (l > 1 && v[0] === 0 && !(v[1]! & 0x80)) throw new SignatureFormatError('DER INTEGER not minimal');
    return bytesToBigIntBE(v);
  };
  if (byte() !== 0x30) throw new SignatureFormatError('DER SEQUENCE expected');
  const seqLen = len();
  if (at + seqLen !== sig.length) throw new SignatureFormatError('DER SEQUENCE length mismatch');
  const r = int();
  const s = int();
  if (at !== sig.length) throw new SignatureFormatError('DER trailing bytes');
  checkRange(r, s, order);
  return { r, s };
}
