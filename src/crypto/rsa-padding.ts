/**
 * RSA encodings of RFC 8017 for the threshold RSA protocol (docs/protocols.md §12.1): the
 * coordinator (EP) pads before the partial exponentiations and decodes after them.
 *
 * - EMSA-PKCS1-v1_5 encode (§9.2) with SHA-256/384/512 DigestInfo;
 * - EMSA-PSS encode / verify (§9.1) with MGF1 over the same hash, salt length = hash length by
 *   default;
 * - RSAES-OAEP decode (§7.1.2, SHA-1 or SHA-256, MGF1 over the same hash, optional label): scans
 *   every byte whatever it finds, folds the checks into one flag without early exit, and fails
 *   with one uniform `RsaDecryptionError` (Manger: the kind of padding fault must not be
 *   observable);
 * - RSAES-PKCS1-v1_5 decode (§7.2.2) with implicit rejection (draft-irtf-cfrg-rsa-guidance §7):
 *   never an error for a faulty padding, a synthetic message instead (Bleichenbacher, Marvin).
 *   What the decoders cannot hide: the plaintext length (it is the output) and JS engine effects
 *   (the byte loops are branch-free in the source; V8 does not promise constant time).
 * - RSASSA verification with a public key (§8.1.2, §8.2.2), for tests and for hosts that re-verify.
 *
 * Hashes go through node:crypto (works in worker threads). Everything here is pure.
 */
import crypto from 'node:crypto';
import { bytesEqual } from './encoding.js';
import { bitLength, byteLength, i2osp, modPowPublic, os2ip } from './modexp.js';

export type RsaHash = 'sha1' | 'sha256' | 'sha384' | 'sha512';
export type RsaSignHash = 'sha256' | 'sha384' | 'sha512';
export type OaepHash = 'sha1' | 'sha256';

export const HASH_LEN: Readonly<Record<RsaHash, number>> = { sha1: 20, sha256: 32, sha384: 48, sha512: 64 };

/** DER of DigestInfo up to the digest (RFC 8017 §9.2 note 1). */
const DIGEST_INFO_PREFIX: Readonly<Record<RsaSignHash, string>> = {
  sha256: '3031300d060960864801650304020105000420',
  sha384: '3041300d060960864801650304020205000430',
  sha512: '3051300d060960864801650304020305000440',
};

/** Any malformed input to an encoder or a verifier (public data: a precise message is fine). */
export class RsaEncodingError extends Error {
  readonly code = 'EKM_RSA_ENCODING';
}

/** The one error of both decryption decoders: the same type and message for every fault. */
export class RsaDecryptionError extends Error {
  readonly code = 'EKM_RSA_DECRYPT';
  constructor() {
    super('decryption error');
  }
}

export function isRsaSignHash(h: unknown): h is RsaSignHash {
  return h === 'sha256' || h === 'sha384' || h === 'sha512';
}

export function hash(h: RsaHash, ...parts: Uint8Array[]): Uint8Array {
  const c = crypto.createHash(h);
  for (const p of parts) c.update(p);
  return new Uint8Array(c.digest());
}

/** MGF1 (RFC 8017 B.2.1). */
export function mgf1(h: RsaHash, seed: Uint8Array, len: number): Uint8Array {
  const hLen = HASH_LEN[h];
  const out = new Uint8Array(Math.ceil(len / hLen) * hLen);
  const counter = new Uint8Array(4);
  for (let i = 0, at = 0; at < len; i++, at += hLen) {
    new DataView(counter.buffer).setUint32(0, i, false);
    out.set(hash(h, seed, counter), at);
  }
  return out.subarray(0, len);
}

function checkDigest(h: RsaHash, digest: Uint8Array): void {
  if (!(digest instanceof Uint8Array) || digest.length !== HASH_LEN[h]) {
    throw new RsaEncodingError(`${h} digest must be ${HASH_LEN[h]} bytes`);
  }
}

// ---------------------------------------------------------------------------------------------
// Signatures

/** EMSA-PKCS1-v1_5-ENCODE (§9.2) from the digest: 00 01 FF…FF 00 ‖ DigestInfo. */
export function emsaPkcs1v15Encode(h: RsaSignHash, digest: Uint8Array, emLen: number): Uint8Array {
  checkDigest(h, digest);
  const t = Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[h], 'hex'), digest]);
  if (emLen < t.length + 11) throw new RsaEncodingError('intended encoded message length too short');
  const em = new Uint8Array(emLen).fill(0xff);
  em[0] = 0x00;
  em[1] = 0x01;
  em[emLen - t.length - 1] = 0x00;
  em.set(t, emLen - t.length);
  return em;
}

/** EMSA-PSS-ENCODE (§9.1.1) with an explicit salt (the caller draws it; its length is sLen). */
export function emsaPssEncode(h: RsaHash, mHash: Uint8Array, emBits: number, salt: Uint8Array): Uint8Array {
  checkDigest(h, mHash);
  const hLen = HASH_LEN[h];
  const emLen = Math.ceil(emBits / 8);
  const sLen = salt.length;
  if (emLen < hLen + sLen + 2) throw new RsaEncodingError('encoding error: emLen < hLen + sLen + 2');
  const H = hash(h, new Uint8Array(8), mHash, salt);
  const db = new Uint8Array(emLen - hLen - 1);
  db[emLen - sLen - hLen - 2] = 0x01;
  db.set(salt, emLen - sLen - hLen - 1);
  const mask = mgf1(h, H, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >>> (8 * emLen - emBits);
  const em = new Uint8Array(emLen);
  em.set(db, 0);
  em.set(H, db.length);
  em[emLen - 1] = 0xbc;
  return em;
}

/** EMSA-PSS-VERIFY (§9.1.2) for a fixed salt length (default: the hash length). */
export function emsaPssVerify(h: RsaHash, mHash: Uint8Array, em: Uint8Array, emBits: number, sLen = HASH_LEN[h]): boolean {
  checkDigest(h, mHash);
  const hLen = HASH_LEN[h];
  const emLen = Math.ceil(emBits / 8);
  if (em.length !== emLen || emLen < hLen + sLen + 2) return false;
  if (em[emLen - 1] !== 0xbc) return false;
  const topMask = 0xff >>> (8 * emLen - emBits);
  const masked = em.subarray(0, emLen - hLen - 1);
  const H = em.subarray(emLen - hLen - 1, emLen - 1);
  if ((masked[0]! & ~topMask & 0xff) !== 0) return false;
  const mask = mgf1(h, H, masked.length);
  const db = new Uint8Array(masked.length);
  for (let i = 0; i < db.length; i++) db[i] = masked[i]! ^ mask[i]!;
  db[0]! &= topMask;
  const psLen = emLen - hLen - sLen - 2;
  for (let i = 0; i < psLen; i++) if (db[i] !== 0) return false;
  if (db[psLen] !== 0x01) return false;
  const salt = db.subarray(db.length - sLen);
  return bytesEqual(hash(h, new Uint8Array(8), mHash, salt), H);
}

/** An RSA public key as integers (public values: BigInt is fine). */
export interface RsaPublicNumbers {
  readonly n: bigint;
  readonly e: bigint;
}

/** RSAVP1 (§5.2.2) with the length checks of §8.x.2 step 1: the EM integer, or null. */
function rsavp1(pub: RsaPublicNumbers, sig: Uint8Array): bigint | null {
  if (sig.length !== byteLength(pub.n)) return null;
  const s = os2ip(sig);
  if (s >= pub.n) return null;
  return modPowPublic(s, pub.e, pub.n);
}

/** RSASSA-PKCS1-v1_5-VERIFY (§8.2.2): re-encode and compare (never parse the DigestInfo). */
export function rsassaPkcs1v15Verify(pub: RsaPublicNumbers, h: RsaSignHash, digest: Uint8Array, sig: Uint8Array): boolean {
  const m = rsavp1(pub, sig);
  if (m === null) return false;
  const k = byteLength(pub.n);
  let expected: Uint8Array;
  try {
    expected = emsaPkcs1v15Encode(h, digest, k);
  } catch {
    return false;
  }
  return bytesEqual(i2osp(m, k), expected);
}

/** RSASSA-PSS-VERIFY (§8.1.2), MGF1 with the same hash, salt length `sLen` (default hLen). */
export function rsassaPssVerify(pub: RsaPublicNumbers, h: RsaHash, mHash: Uint8Array, sig: Uint8Array, sLen = HASH_LEN[h]): boolean {
  const m = rsavp1(pub, sig);
  if (m === null) return false;
  const emBits = bitLength(pub.n) - 1;
  const emLen = Math.ceil(emBits / 8);
  if (bitLength(m) > emBits) return false;
  return emsaPssVerify(h, mHash, i2osp(m, emLen), emBits, sLen);
}

// ---------------------------------------------------------------------------------------------
// Decryption decoders (constant-time checks, one uniform error)

/** 1 if x === 0 else 0, for x in 0..255, without a branch. */
function isZeroByte(x: number): number {
  return ((x - 1) >>> 31) & 1;
}
/** 1 if a === b else 0, for bytes. */
function eqByte(a: number, b: number): number {
  return isZeroByte((a ^ b) & 0xff);
}

/**
 * RSAES-OAEP decoding (§7.1.2 step 3) of the k-byte EM = I2OSP(c^d mod n, k). Every step runs
 * to the end; the checks (Y = 0, lHash, the 0x01 separator after zeros) are folded into one flag.
 */
export function rsaesOaepDecode(h: OaepHash, em: Uint8Array, label: Uint8Array = new Uint8Array(0)): Uint8Array {
  const hLen = HASH_LEN[h];
  const k = em.length;
  // Public facts (key size, hash): checked with ordinary branches.
  if (k < 2 * hLen + 2) throw new RsaDecryptionError();
  const lHash = hash(h, label);
  const maskedSeed = em.subarray(1, 1 + hLen);
  const maskedDb = em.subarray(1 + hLen);
  const seedMask = mgf1(h, maskedDb, hLen);
  const seed = new Uint8Array(hLen);
  for (let i = 0; i < hLen; i++) seed[i] = maskedSeed[i]! ^ seedMask[i]!;
  const dbMask = mgf1(h, seed, maskedDb.length);
  const db = new Uint8Array(maskedDb.length);
  for (let i = 0; i < db.length; i++) db[i] = maskedDb[i]! ^ dbMask[i]!;
  seed.fill(0);

  let good = isZeroByte(em[0]!);
  let lDiff = 0;
  for (let i = 0; i < hLen; i++) lDiff |= db[i]! ^ lHash[i]!;
  good &= isZeroByte(lDiff & 0xff) & isZeroByte((lDiff >>> 8) & 0xff);
  // Find the 0x01 after PS = zeros: `found` flips once; a non-zero byte other than 0x01 before it
  // is a fault; the index of the message is selected arithmetically.
  let found = 0;
  let index = 0;
  let bad = 0;
  for (let i = hLen; i < db.length; i++) {
    const b = db[i]!;
    const isOne = eqByte(b, 0x01);
    const isZero = isZeroByte(b);
    const notFound = found ^ 1;
    // first 0x01 while not found: record i + 1
    const take = notFound & isOne;
    index = (index & -(take ^ 1)) | ((i + 1) & -take);
    bad |= notFound & (isOne ^ 1) & (isZero ^ 1);
    found |= isOne;
  }
  good &= found & (bad ^ 1);
  if (good !== 1) {
    db.fill(0);
    throw new RsaDecryptionError();
  }
  const out = db.slice(index);
  db.fill(0);
  return out;
}

/**
 * The checks of RSAES-PKCS1-v1_5 decoding (§7.2.2 step 3) on the k-byte EM: 00 02 PS (≥ 8
 * non-zero) 00 M. Scans all of EM and folds every check into `good` (1 or 0, no early exit);
 * `index` is where M starts when `good` is 1.
 */
function pkcs1v15Padding(em: Uint8Array): { good: number; index: number } {
  const k = em.length;
  let good = isZeroByte(em[0]!) & eqByte(em[1]!, 0x02);
  let found = 0;
  let index = 0;
  for (let i = 2; i < k; i++) {
    const isZero = isZeroByte(em[i]!);
    const take = (found ^ 1) & isZero;
    index = (index & -(take ^ 1)) | ((i + 1) & -take);
    found |= isZero;
  }
  // PS must be at least 8 bytes: the separator at index ≥ 10, i.e. message start ≥ 11.
  const psOk = ((index - 11) >>> 31) ^ 1;
  good &= found & psOk;
  return { good, index };
}

/** Candidate lengths of the synthetic message: 128 two-byte values (draft §7.2 step 3.2). */
const IR_LENGTH_CANDIDATES_BYTES = 256;
const IR_KEY_TAG = new TextEncoder().encode('CORE-TSS/v1/rsa/implicit-rejection');

/**
 * The draft's IRPRF (§7.1): HMAC-SHA256(KDK, I2OSP(i, 2) ‖ label ‖ I2OSP(8·length, 2)) for
 * i = 0, 1, … concatenated and cut to `length` bytes.
 */
function irPrf(kdk: Uint8Array, label: string, length: number): Uint8Array {
  const out = new Uint8Array(Math.ceil(length / 32) * 32);
  const tail = Buffer.concat([Buffer.from(label, 'ascii'), Buffer.from([(length * 8) >> 8, (length * 8) & 0xff])]);
  for (let i = 0; i * 32 < length; i++) {
    out.set(
      crypto
        .createHmac('sha256', kdk)
        .update(Buffer.from([i >> 8, i & 0xff]))
        .update(tail)
        .digest(),
      i * 32,
    );
  }
  return out.subarray(0, length);
}

/** The last candidate (masked to the bit length of `max`) that is ≤ `max`, else 0; branch-free. */
function syntheticLength(candidates: Uint8Array, max: number): number {
  let mask = max;
  mask |= mask >> 1;
  mask |= mask >> 2;
  mask |= mask >> 4;
  mask |= mask >> 8;
  let length = 0;
  for (let i = 0; i < candidates.length; i += 2) {
    const c = ((candidates[i]! << 8) | candidates[i + 1]!) & mask;
    const fits = -(((max - c) >>> 31) ^ 1); // all ones when c ≤ max (both below 2^16)
    length = (c & fits) | (length & ~fits);
  }
  return length;
}

/**
 * RSAES-PKCS1-v1_5 decryption with implicit rejection (draft-irtf-cfrg-rsa-guidance §7): a faulty
 * padding gives no error but a synthetic message, a pseudo-random function of a secret and the
 * ciphertext, so that a caller acting on "did it decrypt?" is no padding oracle (Bleichenbacher,
 * Marvin). Valid and faulty EMs take the same path: both candidates are built, a mask chooses.
 *
 * The draft keys the function with SHA-256 of the private exponent d, which no server of a triplet
 * holds. Here the key is SHA-256 of a domain tag and EM = c^d mod N itself, which the EP holds
 * once the partial exponentiations are combined and checked: like d, it is known only to whoever
 * can decrypt c; it is the same on every EP (no per-server secret to keep in step); and whoever
 * knows EM already knows whether its padding is valid, so the synthetic message tells them
 * nothing new. The output's length is the output's: it cannot be hidden.
 */
export function rsaesPkcs1v15DecodeImplicit(em: Uint8Array, ciphertext: Uint8Array): Uint8Array {
  const k = em.length;
  if (k < 11 || ciphertext.length !== k) throw new RsaDecryptionError(); // public lengths only
  const { good, index } = pkcs1v15Padding(em);
  const keyHash = crypto.createHash('sha256').update(IR_KEY_TAG).update(em).digest();
  const kdk = new Uint8Array(crypto.createHmac('sha256', keyHash).update(ciphertext).digest());
  keyHash.fill(0);
  const synthetic = irPrf(kdk, 'message', k);
  const length = syntheticLength(irPrf(kdk, 'length', IR_LENGTH_CANDIDATES_BYTES), k - 11);
  kdk.fill(0);
  const keep = -good & 0xff;
  const chosen = new Uint8Array(k);
  for (let i = 0; i < k; i++) chosen[i] = (em[i]! & keep) | (synthetic[i]! & ~keep);
  const start = (index & -good) | ((k - length) & -(good ^ 1));
  const out = chosen.slice(start);
  chosen.fill(0);
  synthetic.fill(0);
  return out;
}
