/**
 * Threshold RSA 2048/3072/4096 with 2-of-3 replicated additive shares (docs/protocols.md §12.1
 * option (a)): a dealer, the signing / decryption session (EP + one helper, one round trip), and a
 * dealer-free proactive refresh with the §5 two-phase commit.
 *
 * **Sharing, over the integers.** d = a + b − c with a, b uniform of |N| + 128 bits and
 * c = a + b − d > 0 (i.e. the d_c = d − d_a − d_b of docs/protocols.md §12.1, stored negated so every stored piece is
 * a non-negative integer; the sign is structural and public). P1 (EP) holds (a, b), P2 (Partner)
 * (b, c), P3 (Aux) (c, a): every pair holds all three pieces, each party misses exactly one.
 * Why not mod λ(N) as docs/protocols.md §12.1 writes it: nobody but the dealer knows λ(N), so a refresh without a dealer
 * cannot reduce mod λ(N); over the integers the three parties can re-randomise by themselves.
 * Statistical hiding: P1 sees (a, b), independent of d. P2 sees (b, c) ≡ (b, a + b − d): a is
 * uniform on [0, 2^(|N|+128)) and d < 2^|N|, so a − d is within statistical distance
 * 2^|N| / 2^(|N|+128) = 2⁻¹²⁸ of a − d′ for any d′. P3 sees (c, a) ≡ (a + b − d, a): b hides d the
 * same way. (c > 0 fails only if a + b ≤ d, probability < 2⁻¹²⁸; the dealer redraws.)
 *
 * **Operation.** EP (coordinator) and helper h ∈ {Partner, Aux} cover each piece exactly once: EP
 * computes x^(a+b) (one modexp, a + b added in constant time on bytes), the helper x^(−c) =
 * (x⁻¹)^c (x is public: the message representative or the ciphertext, so the inverse is public
 * math). EP combines s = x^(a+b)·x^(−c) = x^d mod N and checks s^e ≡ x (mod N) before releasing
 * anything: for a signature that is `s^e ≡ EM`, for a decryption `m^e ≡ c`. A wrong partial from a
 * malicious helper therefore yields an abort naming the helper, never a wrong output. Exponents
 * stay bytes; modexp goes through OpenSSL's constant-time ladder (src/crypto/modexp.ts).
 * The helper never exponentiates an arbitrary value for a signature: the request carries (scheme,
 * hash, digest, PSS salt) and the helper builds EM itself. For decryption it sees the ciphertext.
 *
 * Rounds (one round trip; sid binds tripletId, proto, alg, keyId, epoch, nonce — §1.4, §11 R6b):
 *   0  EP→h  enc(tripletId, alg, keyId, u32 epoch, nonce32, u8 h, op)
 *   1  h→EP  enc(I2OSP(x^(−c) mod N, k))
 * Nothing is persisted by either party (Persist = never).
 *
 * **Refresh** (proto `rsa-refresh`, batched over keys, §5 RF0–RF4 through session-kit): each
 * party i draws r_i, t_i uniform of |N| + 128 bits per key and sends them to both (broadcast, the
 * echo travels in PREPARED), plus to each peer a tag H(sid, keyId, epoch, piece name, piece) of the
 * piece the two share (a stale or corrupted piece aborts before anything is stored). With
 * Δa = Σ r_i and Δb = Σ t_i: a′ = a + Δa, b′ = b + Δb, c′ = c + Δa + Δb, so a′ + b′ − c′ = d. The
 * deltas are non-negative, so pieces stay positive and grow by at most log2(1 + 3k) bits after k
 * refreshes (64 bits of headroom in the fixed piece length: 2⁶⁰ refreshes). As for EC keys with
 * t = 1, every party learns every delta during the refresh (a server corrupted during a refresh
 * counts as corrupted in both epochs); a mobile adversary holding one party's old pieces and
 * another party's new pieces misses one delta, uniform of |N| + 128 bits, which hides d as above.
 * Old and new pieces never mix: the epoch is in every sid and the helper refuses another epoch; a
 * forced mix fails EP's s^e check (tested).
 */
import crypto from 'node:crypto';
import { bytesEqual, decodeEnc, enc, encList, H, u32be, u8 } from '../crypto/encoding.js';
import {
  addBytesCt,
  bitLength,
  byteLength,
  gcd,
  i2osp,
  modInverse,
  modPowPublic,
  modPowSecret,
  os2ip,
  subBytesCt,
} from '../crypto/modexp.js';
import {
  emsaPkcs1v15Encode,
  emsaPssEncode,
  HASH_LEN,
  isRsaSignHash,
  RsaDecryptionError,
  rsaesOaepDecode,
  rsaesPkcs1v15DecodeImplicit,
  type OaepHash,
  type RsaSignHash,
} from '../crypto/rsa-padding.js';
import { echoHash } from '../crypto/transcript.js';
import { isPartyId, readString, readU32, RoundParty, type StepBuilder } from './ecdsa-session.js';
import {
  type BatchedKeyState,
  type BatchedRefreshConfig,
  type BatchedRefreshPersist,
  BatchedRefreshParty,
  type RefreshKeyEpoch,
  type RefreshOutput,
} from './batched-refresh.js';
import { computeSid } from './session.js';
import type { ConfirmCheckpoint } from './session-kit.js';
import { ProtocolAbort, type Envelope, type Party, type PartyId, type Rng } from './types.js';

export type RsaBits = 2048 | 3072 | 4096;
export type RsaAlg = 'rsa-2048' | 'rsa-3072' | 'rsa-4096';
export const RSA_ALGS: readonly RsaAlg[] = ['rsa-2048', 'rsa-3072', 'rsa-4096'];
export const RSA_ALG_BITS: Readonly<Record<RsaAlg, RsaBits>> = { 'rsa-2048': 2048, 'rsa-3072': 3072, 'rsa-4096': 4096 };

export function isRsaAlg(a: unknown): a is RsaAlg {
  return a === 'rsa-2048' || a === 'rsa-3072' || a === 'rsa-4096';
}
export function rsaAlgFor(bits: number): RsaAlg {
  const alg = `rsa-${bits}`;
  if (!isRsaAlg(alg)) throw new RangeError(`RSA modulus must be 2048, 3072 or 4096 bits, not ${bits}`);
  return alg;
}

/** Statistical hiding margin of the additive sharing (bits beyond |N|). */
export const RSA_HIDING_BITS = 128;
/** Headroom of the fixed piece length for refresh growth (bits). */
const PIECE_HEADROOM_BITS = 64;

/** Bytes of one dealer draw / refresh contribution: |N| + 128 bits. */
export function contributionBytes(alg: RsaAlg): number {
  return (RSA_ALG_BITS[alg] + RSA_HIDING_BITS) / 8;
}
/** Fixed byte length of a stored piece: |N| + 128 + 64 bits. */
export function pieceBytes(alg: RsaAlg): number {
  return (RSA_ALG_BITS[alg] + RSA_HIDING_BITS + PIECE_HEADROOM_BITS) / 8;
}

export type RsaPiece = 'a' | 'b' | 'c';
/** Which pieces each party holds (d = a + b − c). */
export const RSA_PIECES_OF: Readonly<Record<PartyId, readonly [RsaPiece, RsaPiece]>> = { 1: ['a', 'b'], 2: ['b', 'c'], 3: ['c', 'a'] };

/** Public data of an RSA key at an epoch; identical at the three parties. */
export interface RsaKeyPublic {
  readonly keyId: string;
  readonly alg: RsaAlg;
  readonly epoch: number;
  readonly n: bigint;
  readonly e: bigint;
}

/** One party's share: its two pieces as `pieceBytes(alg)`-byte big-endian integers. Secret. */
export interface RsaKeyShare extends RsaKeyPublic {
  readonly partyId: PartyId;
  readonly pieces: Readonly<Partial<Record<RsaPiece, Uint8Array>>>;
}

export function rsaModulusBytes(pub: { readonly n: bigint }): number {
  return byteLength(pub.n);
}

function piece(share: RsaKeyShare, p: RsaPiece): Uint8Array {
  const v = share.pieces[p];
  if (!(v instanceof Uint8Array) || v.length !== pieceBytes(share.alg))
    throw new RangeError(`share of party ${share.partyId} lacks piece ${p}`);
  return v;
}

/** Structural checks of a share (lengths, which pieces, public key shape). */
export function checkRsaShare(share: RsaKeyShare): void {
  if (!isPartyId(share.partyId)) throw new RangeError('bad party id');
  if (!isRsaAlg(share.alg)) throw new RangeError('not an RSA alg');
  if (bitLength(share.n) !== RSA_ALG_BITS[share.alg]) throw new RangeError('modulus size does not match the alg');
  if ((share.e & 1n) === 0n || share.e < 3n) throw new RangeError('public exponent must be odd and ≥ 3');
  const held = RSA_PIECES_OF[share.partyId];
  for (const p of ['a', 'b', 'c'] as const) {
    if (held.includes(p)) piece(share, p);
    else if (share.pieces[p] !== undefined) throw new RangeError(`party ${share.partyId} must not hold piece ${p}`);
  }
}

/** The public half of a share. */
export function rsaPublicOf(s: RsaKeyPublic): RsaKeyPublic {
  return { keyId: s.keyId, alg: s.alg, epoch: s.epoch, n: s.n, e: s.e };
}

// ---------------------------------------------------------------------------------------------
// Public key export

/** JWK of the public key (kty RSA, n and e base64url, minimal big-endian). */
export function rsaPublicJwk(pub: { readonly n: bigint; readonly e: bigint }): { kty: 'RSA'; n: string; e: string } {
  const b64 = (x: bigint): string => Buffer.from(i2osp(x, byteLength(x))).toString('base64url');
  return { kty: 'RSA', n: b64(pub.n), e: b64(pub.e) };
}

export function rsaPublicKeyObject(pub: { readonly n: bigint; readonly e: bigint }): crypto.KeyObject {
  return crypto.createPublicKey({ key: rsaPublicJwk(pub), format: 'jwk' });
}

/** SPKI PEM, SPKI DER, or JWK. */
export function exportRsaPublicKey(
  pub: { readonly n: bigint; readonly e: bigint },
  format: 'pem' | 'der' | 'jwk',
): string | Uint8Array | object {
  if (format === 'jwk') return rsaPublicJwk(pub);
  const key = rsaPublicKeyObject(pub);
  return format === 'pem'
    ? (key.export({ type: 'spki', format: 'pem' }) as string)
    : new Uint8Array(key.export({ type: 'spki', format: 'der' }));
}

// ---------------------------------------------------------------------------------------------
// Dealer (docs/protocols.md §12.1 recommendation: the one moment a key exists whole)

export type RsaKeySource =
  | { readonly generate: RsaBits; readonly publicExponent?: number }
  /** A PKCS#8 (or PKCS#1) private key, PEM text or DER bytes. The caller wipes its own copy. */
  | { readonly privateKey: string | Uint8Array };

export interface DealtRsaKey {
  readonly public: RsaKeyPublic;
  readonly shares: Readonly<Record<PartyId, RsaKeyShare>>;
}

/** Minimal DER reader for PKCS#1 RSAPrivateKey: returns views into `der` (wipe `der` to wipe them). */
function readPkcs1Private(der: Uint8Array): { n: Uint8Array; e: Uint8Array; d: Uint8Array } {
  let at = 0;
  const header = (tag: number): number => {
    if (der[at] !== tag) throw new RangeError('unexpected DER tag');
    at++;
    let len = der[at++]!;
    if (len & 0x80) {
      const k = len & 0x7f;
      if (k < 1 || k > 3) throw new RangeError('bad DER length');
      len = 0;
      for (let i = 0; i < k; i++) len = (len << 8) | der[at++]!;
    }
    if (at + len > der.length) throw new RangeError('truncated DER');
    return len;
  };
  const integer = (): Uint8Array => {
    const len = header(0x02);
    let v = der.subarray(at, at + len);
    at += len;
    while (v.length > 1 && v[0] === 0) v = v.subarray(1);
    return v;
  };
  header(0x30);
  const version = integer();
  if (version.length !== 1 || version[0] !== 0) throw new RangeError('only two-prime RSA keys (version 0)');
  const n = integer();
  const e = integer();
  const d = integer();
  return { n, e, d };
}

/**
 * Deals an RSA key into the three shares: generated here (node:crypto) or imported. Wiped: the
 * PKCS#1 DER export holding d, p, q (fill(0)), the sum a + b, the test exponent. Not wipeable from
 * JS: the KeyObject (OpenSSL frees its BIGNUMs with BN_clear_free when it is collected), a PEM
 * string passed in, and the V8 heap copies Node may make while exporting. Run this in a
 * short-lived worker and let it exit after dealing; the returned pieces are the only output.
 */
export function dealRsaKey(keyId: string, source: RsaKeySource, rng: Rng): DealtRsaKey {
  let key: crypto.KeyObject;
  if ('generate' in source) {
    rsaAlgFor(source.generate);
    key = crypto.generateKeyPairSync('rsa', { modulusLength: source.generate, publicExponent: source.publicExponent ?? 65537 }).privateKey;
  } else {
    const input = source.privateKey;
    key =
      typeof input === 'string'
        ? crypto.createPrivateKey({ key: input, format: 'pem' })
        : crypto.createPrivateKey({ key: Buffer.from(input.buffer, input.byteOffset, input.byteLength), format: 'der', type: 'pkcs8' });
  }
  if (key.asymmetricKeyType !== 'rsa') throw new RangeError(`not an RSA key (${String(key.asymmetricKeyType)})`);
  const der = key.export({ type: 'pkcs1', format: 'der' });
  try {
    const { n: nBytes, e: eBytes, d } = readPkcs1Private(der);
    const n = os2ip(nBytes);
    const e = os2ip(eBytes);
    const alg = rsaAlgFor(bitLength(n));
    if ((e & 1n) === 0n || e < 3n) throw new RangeError('public exponent must be odd and ≥ 3');
    const len = pieceBytes(alg);
    const draw = contributionBytes(alg);
    for (;;) {
      const a = new Uint8Array(len);
      const b = new Uint8Array(len);
      a.set(rng(draw), len - draw);
      b.set(rng(draw), len - draw);
      const sum = addBytesCt(a, b, len);
      const { value: c, borrow } = subBytesCt(sum, d, len);
      sum.fill(0);
      // c ≤ 0 has probability < 2^-128 (a + b ≤ d); redraw rather than hold a non-positive piece.
      if (borrow || c.every((x) => x === 0)) {
        a.fill(0);
        b.fill(0);
        c.fill(0);
        continue;
      }
      const pub: RsaKeyPublic = { keyId, alg, epoch: 0, n, e };
      const shares: Record<PartyId, RsaKeyShare> = {
        1: { ...pub, partyId: 1, pieces: { a, b } },
        2: { ...pub, partyId: 2, pieces: { b, c } },
        3: { ...pub, partyId: 3, pieces: { c, a } },
      };
      // Self-test before the key leaves: x^(a+b) · x^(−c) must be x^d, checked through e.
      const x = (os2ip(rng(byteLength(n))) % (n - 3n)) + 2n;
      const s = combine(pub, partial(shares[1], x), helperPartial(shares[2], x));
      if (modPowPublic(s, e, n) !== x) throw new Error('dealt pieces do not open to d (bug)');
      return { public: pub, shares };
    }
  } finally {
    der.fill(0);
  }
}

/** EP's partial x^(a+b) mod N. */
function partial(share: RsaKeyShare, x: bigint): bigint {
  const len = pieceBytes(share.alg);
  const ab = addBytesCt(piece(share, 'a'), piece(share, 'b'), len);
  try {
    return modPowSecret(x, ab, share.n);
  } finally {
    ab.fill(0);
  }
}

/** A helper's partial (x⁻¹)^c mod N (x public, gcd(x, N) = 1 checked by the caller). */
function helperPartial(share: RsaKeyShare, x: bigint): bigint {
  return modPowSecret(modInverse(x, share.n), piece(share, 'c'), share.n);
}

function combine(pub: RsaKeyPublic, ep: bigint, helper: bigint): bigint {
  return (ep * helper) % pub.n;
}

// ---------------------------------------------------------------------------------------------
// Operations

export type RsaOperation =
  | { readonly kind: 'sign'; readonly scheme: 'pkcs1v15'; readonly hash: RsaSignHash; readonly digest: Uint8Array }
  /** PSS with MGF1 over `hash`; salt length defaults to the hash length. */
  | { readonly kind: 'sign'; readonly scheme: 'pss'; readonly hash: RsaSignHash; readonly digest: Uint8Array; readonly saltLength?: number }
  /** OAEP with MGF1 over `hash`, optional label. */
  | {
      readonly kind: 'decrypt';
      readonly scheme: 'oaep';
      readonly hash: OaepHash;
      readonly ciphertext: Uint8Array;
      readonly label?: Uint8Array;
    }
  | { readonly kind: 'decrypt'; readonly scheme: 'pkcs1v15'; readonly ciphertext: Uint8Array };

export type RsaOutput =
  | { readonly kind: 'signature'; readonly signature: Uint8Array }
  | { readonly kind: 'plaintext'; readonly plaintext: Uint8Array }
  /** The padding did not decode. One uniform outcome for every padding fault (no detail). */
  | { readonly kind: 'decryption-failed' }
  | { readonly kind: 'partial-sent'; readonly sid: Uint8Array };
export type RsaParty = Party<RsaOutput, never>;

export const PROTO_RSA = 'rsa-op';

/** The wire form of the operation the helper sees: what to exponentiate, and how to rebuild it. */
type WireOp =
  | {
      readonly kind: 'sign';
      readonly scheme: 'pkcs1v15' | 'pss';
      readonly hash: RsaSignHash;
      readonly digest: Uint8Array;
      readonly salt: Uint8Array;
    }
  | { readonly kind: 'decrypt'; readonly ciphertext: Uint8Array };

function encodeWireOp(op: WireOp): Uint8Array {
  return op.kind === 'sign' ? enc('sign', op.scheme, op.hash, op.digest, op.salt) : enc('decrypt', op.ciphertext);
}

function decodeWireOp(bytes: Uint8Array): WireOp {
  const f = decodeEnc(bytes);
  const kind = readString(f[0] ?? new Uint8Array(0));
  if (kind === 'decrypt' && f.length === 2) return { kind, ciphertext: f[1]! };
  if (kind !== 'sign' || f.length !== 5) throw new Error('malformed operation');
  const scheme = readString(f[1]!);
  const hash = readString(f[2]!);
  if ((scheme !== 'pkcs1v15' && scheme !== 'pss') || !isRsaSignHash(hash)) throw new Error('unknown scheme or hash');
  if (scheme === 'pkcs1v15' && f[4]!.length !== 0) throw new Error('PKCS#1 v1.5 has no salt');
  return { kind, scheme, hash, digest: f[3]!, salt: f[4]! };
}

/**
 * The integer both parties exponentiate: EM for a signature (rebuilt from digest and salt), the
 * ciphertext for a decryption. Refuses 0, 1, N−1 and anything sharing a factor with N.
 */
function representative(pub: RsaKeyPublic, op: WireOp): bigint {
  const k = rsaModulusBytes(pub);
  let x: bigint;
  if (op.kind === 'sign') {
    const em =
      op.scheme === 'pkcs1v15'
        ? emsaPkcs1v15Encode(op.hash, op.digest, k)
        : emsaPssEncode(op.hash, op.digest, bitLength(pub.n) - 1, op.salt);
    x = os2ip(em);
  } else {
    if (op.ciphertext.length !== k) throw new RsaDecryptionError();
    x = os2ip(op.ciphertext);
  }
  if (x < 2n || x >= pub.n - 1n || gcd(x, pub.n) !== 1n) throw new RsaDecryptionError();
  return x;
}

interface RsaHeader {
  readonly tripletId: string;
  readonly alg: RsaAlg;
  readonly keyId: string;
  readonly epoch: number;
  readonly nonce: Uint8Array;
}

function rsaSid(proto: string, h: RsaHeader): Uint8Array {
  return computeSid({ tripletId: h.tripletId, proto, alg: h.alg, keyIds: [h.keyId], epochs: [h.epoch], initiator: 1, nonce: h.nonce });
}

export interface RsaRequestInfo {
  readonly header: RsaHeader;
  readonly helper: 2 | 3;
  readonly kind: 'sign' | 'decrypt';
}

function parseRequest(env: Envelope): RsaRequestInfo & { op: WireOp } {
  try {
    if (env.proto !== PROTO_RSA || env.round !== 0 || env.from !== 1) throw new Error('not an RSA request from EP');
    const f = decodeEnc(env.body);
    if (f.length !== 7) throw new Error('request has the wrong number of fields');
    const alg = readString(f[1]!);
    if (!isRsaAlg(alg)) throw new Error('not an RSA alg');
    const header: RsaHeader = { tripletId: readString(f[0]!), alg, keyId: readString(f[2]!), epoch: readU32(f[3]!), nonce: f[4]! };
    if (header.nonce.length !== 32) throw new Error('request nonce must be 32 bytes');
    const helper = f[5]!.length === 1 ? f[5]![0] : 0;
    if ((helper !== 2 && helper !== 3) || helper !== env.to) throw new Error('helper id');
    if (!bytesEqual(rsaSid(PROTO_RSA, header), env.sid)) throw new Error('sid does not match the request');
    const op = decodeWireOp(f[6]!);
    return { header, helper, kind: op.kind, op };
  } catch (e) {
    throw new ProtocolAbort(PROTO_RSA, 0, `invalid-request: ${(e as Error).message}`, 1);
  }
}

/** For the host: decode and sid-check an RSA request before policy and key lookup. */
export function parseRsaRequest(env: Envelope): RsaRequestInfo {
  const { header, helper, kind } = parseRequest(env);
  return { header, helper, kind };
}

export interface RsaCoordinatorOptions {
  readonly share: RsaKeyShare;
  readonly tripletId: string;
  /** Partner (2), or Aux (3) when Partner does not answer; a retry is a new session. */
  readonly helper: 2 | 3;
  readonly operation: RsaOperation;
  readonly rng: Rng;
  readonly nonce?: Uint8Array;
}

export interface RsaHelperOptions {
  readonly share: RsaKeyShare;
  readonly tripletId: string;
}

class RsaCoordinator extends RoundParty<RsaOutput, never> {
  private x = 0n;
  /** EP's partial x^(a+b), computed after the request left (onResume) or on the helper's answer. */
  private yEp: bigint | undefined;

  constructor(private readonly opts: RsaCoordinatorOptions) {
    super(1, PROTO_RSA, (round, from) => round === 1 && from === opts.helper);
    if (opts.share.partyId !== 1) throw new RangeError('the coordinator is EP');
    if (opts.helper !== 2 && opts.helper !== 3) throw new RangeError('helper must be 2 or 3');
    checkRsaShare(opts.share);
  }

  protected onStart(step: StepBuilder<RsaOutput, never>): void {
    const { share, rng, operation: op } = this.opts;
    const header: RsaHeader = {
      tripletId: this.opts.tripletId,
      alg: share.alg,
      keyId: share.keyId,
      epoch: share.epoch,
      nonce: this.opts.nonce ?? rng(32),
    };
    this.inbox.bindSid(rsaSid(PROTO_RSA, header));
    let wire: WireOp;
    if (op.kind === 'sign') {
      const salt = op.scheme === 'pss' ? rng(op.saltLength ?? HASH_LEN[op.hash]) : new Uint8Array(0);
      wire = { kind: 'sign', scheme: op.scheme, hash: op.hash, digest: op.digest, salt };
    } else {
      wire = { kind: 'decrypt', ciphertext: op.ciphertext };
    }
    try {
      this.x = representative(share, wire);
    } catch (e) {
      if (e instanceof RsaDecryptionError && op.kind === 'decrypt') {
        // A ciphertext out of range is a decryption failure of the caller's input, not a fault.
        step.output = { kind: 'decryption-failed' };
        this.finish();
        return;
      }
      throw new RangeError(`cannot encode the operation: ${(e as Error).message}`);
    }
    const body = enc(
      header.tripletId,
      header.alg,
      header.keyId,
      u32be(header.epoch),
      header.nonce,
      u8(this.opts.helper),
      encodeWireOp(wire),
    );
    step.send.push(this.envelope(0, this.opts.helper, body));
    step.more = true;
  }

  /** EP's partial while the helper computes its own (both are one modular exponentiation). */
  protected override onResume(): void {
    this.yEp ??= partial(this.opts.share, this.x);
  }

  protected advance(step: StepBuilder<RsaOutput, never>): void {
    const h = this.opts.helper;
    if (!this.inbox.has(1, h)) return;
    this.at(1, h);
    const { share, operation: op } = this.opts;
    const f = decodeEnc(this.inbox.take(1, h));
    const k = rsaModulusBytes(share);
    if (f.length !== 1 || f[0]!.length !== k) this.abort('invalid-input: partial must be one k-byte integer', h);
    const yh = os2ip(f[0]!);
    if (yh === 0n || yh >= share.n) this.abort('invalid-input: partial out of range', h);
    this.at(1, null);
    const s = combine(share, this.yEp ?? partial(share, this.x), yh);
    // The check before release (docs/protocols.md §12.1): s^e ≡ x (mod N). EP trusts its own pieces: blame the helper.
    if (modPowPublic(s, share.e, share.n) !== this.x) this.abort('result-invalid', h);
    const bytes = i2osp(s, k);
    if (op.kind === 'sign') {
      step.output = { kind: 'signature', signature: bytes };
    } else {
      try {
        const plaintext = op.scheme === 'oaep' ? rsaesOaepDecode(op.hash, bytes, op.label) : rsaesPkcs1v15DecodeImplicit(bytes, op.ciphertext);
        step.output = { kind: 'plaintext', plaintext };
      } catch (e) {
        if (!(e instanceof RsaDecryptionError)) throw e;
        step.output = { kind: 'decryption-failed' };
      } finally {
        bytes.fill(0);
      }
    }
    this.finish();
  }

  protected erase(): void {
    this.x = 0n;
    this.yEp = undefined;
  }
}

class RsaHelper extends RoundParty<RsaOutput, never> {
  constructor(private readonly opts: RsaHelperOptions) {
    super(opts.share.partyId, PROTO_RSA, (round, from) => round === 0 && from === 1);
    if (opts.share.partyId === 1) throw new RangeError('helpers are Partner or Aux');
    checkRsaShare(opts.share);
  }

  protected onStart(): void {}

  protected advance(step: StepBuilder<RsaOutput, never>): void {
    if (!this.inbox.has(0, 1)) return;
    this.at(0, 1);
    const env = this.inbox.peekEnvelope(0, 1)!;
    const { header, op } = parseRequest(env);
    this.inbox.take(0, 1);
    const { share, tripletId } = this.opts;
    if (header.tripletId !== tripletId) this.abort('invalid-request: wrong triplet', 1);
    if (header.alg !== share.alg || header.keyId !== share.keyId || header.epoch !== share.epoch) {
      this.abort('invalid-request: key, alg or epoch mismatch', 1);
    }
    this.inbox.bindSid(env.sid);
    let x: bigint;
    try {
      x = representative(share, op);
    } catch (e) {
      this.abort(`invalid-request: ${e instanceof RsaDecryptionError ? 'input out of range' : (e as Error).message}`, 1);
    }
    const y = helperPartial(share, x);
    step.send.push(this.envelope(1, 1, enc(i2osp(y, rsaModulusBytes(share)))));
    step.output = { kind: 'partial-sent', sid: env.sid };
    this.finish();
  }

  protected erase(): void {}
}

/** EP: `start()` sends the request to the helper; the reply yields the checked result. */
export function createRsaCoordinator(opts: RsaCoordinatorOptions): RsaParty {
  return new RsaCoordinator(opts);
}

/** Partner / Aux: feed it EP's request; it answers with x^(−c) mod N. */
export function createRsaHelper(opts: RsaHelperOptions): RsaParty {
  return new RsaHelper(opts);
}

// ---------------------------------------------------------------------------------------------
// Refresh (§5 with additive re-randomisation)

export const RSA_REFRESH_PROTO = 'rsa-refresh';
const RSA_REFRESH_ALG = 'batch';
const RR_CONTRIB = 1;
const RR_PREPARED = 2;

export type RsaRefreshKeyState = BatchedKeyState<RsaKeyShare>;

export type RsaRefreshConfig = BatchedRefreshConfig<RsaRefreshKeyState>;

/** Same persist items as the EC refresh (src/protocols/refresh.ts), with RSA shares. */
export type RsaRefreshPersist = BatchedRefreshPersist<RsaKeyShare>;

export type RsaRefreshOutput = RefreshOutput;

function rsaKeyDigest(keyId: string, s: RsaKeyPublic): Uint8Array {
  const k = rsaModulusBytes(s);
  return H('rsa-refresh/key', keyId, s.alg, u32be(s.epoch), i2osp(s.n, k), i2osp(s.e, byteLength(s.e)));
}

/** The piece parties i and j both hold. */
function sharedPiece(i: PartyId, j: PartyId): RsaPiece {
  const [x, y] = RSA_PIECES_OF[i];
  return RSA_PIECES_OF[j].includes(x) ? x : y;
}

interface Contribution {
  r: Uint8Array;
  t: Uint8Array;
}

export class RsaRefreshParty extends BatchedRefreshParty<RsaKeyShare, RsaRefreshKeyState> {
  private phase: 'request' | 'contrib' | 'confirm' = 'request';
  private states: RsaRefreshKeyState[] = [];
  private mine: Contribution[] = [];
  private myBody: Uint8Array | null = null;
  private readonly received = new Map<PartyId, { body: Uint8Array; contribs: Contribution[] }>();

  constructor(cfg: RsaRefreshConfig) {
    super(cfg, RSA_REFRESH_PROTO, RSA_REFRESH_ALG, RR_PREPARED);
  }

  static resume(cfg: RsaRefreshConfig, item: { keys: readonly RefreshKeyEpoch[]; checkpoint: ConfirmCheckpoint }): RsaRefreshParty {
    const p = new RsaRefreshParty(cfg);
    p.restoreBatch(item);
    p.phase = 'confirm';
    return p;
  }

  // --- RF0 (batched-refresh.ts) with the same public key, then round 1 ------------------------------
  protected keyDigest(keyId: string, share: RsaKeyShare): Uint8Array {
    return rsaKeyDigest(keyId, share);
  }

  protected override checkShare(keyId: string, share: RsaKeyShare): void {
    try {
      checkRsaShare(share);
    } catch (err) {
      this.abort(0, `key ${keyId}: ${(err as Error).message}`, null);
    }
  }

  /**
   * RF3: nothing is left to forget. The contributions this party dealt and those it received are
   * wiped before PENDING is persisted (`eraseContributions`), and the refresh has no complaint
   * round that could need them later.
   */
  protected forgetAtActivation(): void {}

  protected takeBatch(states: RsaRefreshKeyState[]): void {
    this.states = states;
  }

  protected firstRound(): void {
    this.contribute();
  }

  /** Round 1: (r_i, t_i) per key to both (broadcast), and the shared-piece tag to each peer. */
  private contribute(): void {
    this.mine = this.states.map((s) => {
      const n = contributionBytes(s.current.alg);
      return { r: this.cfg.rng(n), t: this.cfg.rng(n) };
    });
    this.myBody = encList(this.mine.map((c) => enc(c.r, c.t)));
    for (const p of this.peers) this.emit(p, RR_CONTRIB, enc('contrib', this.myBody, this.pieceTags(p)));
    this.phase = 'contrib';
  }

  private pieceTags(peer: PartyId): Uint8Array {
    const name = sharedPiece(this.id, peer);
    return encList(
      this.states.map((s) => H('rsa-refresh/piece', this.sid!, s.current.keyId, u32be(s.current.epoch), name, piece(s.current, name))),
    );
  }

  protected readyFor(round: number): boolean {
    return round === RR_CONTRIB && this.phase === 'contrib';
  }

  protected currentRound(): number {
    return { request: 0, contrib: 1, confirm: 2 }[this.phase];
  }

  protected handle(round: number, from: PartyId, kind: string, f: Uint8Array[]): void {
    if (round !== RR_CONTRIB || kind !== 'contrib') this.abort(round, `unexpected ${kind} in round ${round}`, from);
    if (f.length !== 3) this.abort(round, 'malformed contribution', from);
    let contribs: Contribution[];
    try {
      const list = decodeEnc(f[1]!);
      if (list.length !== this.states.length) throw new Error('count');
      contribs = list.map((item, i) => {
        const [r, t, ...rest] = decodeEnc(item);
        const n = contributionBytes(this.states[i]!.current.alg);
        if (rest.length !== 0 || r?.length !== n || t?.length !== n) throw new Error('size');
        return { r: r.slice(), t: t.slice() };
      });
    } catch {
      this.abort(round, 'malformed contribution', from);
    }
    if (!bytesEqual(f[2]!, this.pieceTags(from)))
      this.abort(round, `piece ${sharedPiece(this.id, from)} differs between this party and ${from}`, from);
    this.received.set(from, { body: f[1]!, contribs });
    if (this.received.size === 2) this.computeNewShares();
  }

  private computeNewShares(): void {
    const bodies = { [this.id]: this.myBody!, ...Object.fromEntries([...this.received].map(([p, r]) => [p, r.body])) } as Record<
      PartyId,
      Uint8Array
    >;
    const echo = echoHash(RSA_REFRESH_PROTO, this.sid!, RR_CONTRIB, bodies);
    const all = [this.mine, ...[...this.received.values()].map((r) => r.contribs)];
    const publics: Uint8Array[] = [];
    const pendings = this.states.map((st, i) => {
      const cur = st.current;
      const len = pieceBytes(cur.alg);
      const sum = (pick: (c: Contribution) => Uint8Array): Uint8Array =>
        all.reduce<Uint8Array>((acc, list) => {
          const next = addBytesCt(acc, pick(list[i]!), len);
          acc.fill(0);
          return next;
        }, new Uint8Array(len));
      const da = sum((c) => c.r);
      const db = sum((c) => c.t);
      const dc = addBytesCt(da, db, len);
      const delta: Record<RsaPiece, Uint8Array> = { a: da, b: db, c: dc };
      const pieces: Partial<Record<RsaPiece, Uint8Array>> = {};
      for (const p of RSA_PIECES_OF[this.id]) pieces[p] = addBytesCt(piece(cur, p), delta[p], len);
      da.fill(0);
      db.fill(0);
      dc.fill(0);
      const next: RsaKeyShare = { ...cur, epoch: cur.epoch + 1, pieces };
      publics.push(enc(cur.keyId, u32be(next.epoch), rsaKeyDigest(cur.keyId, next)));
      return next;
    });
    this.eraseContributions();
    this.phase = 'confirm';
    for (const share of pendings) this.persist({ kind: 'share-pending', sid: this.sid!, share });
    this.beginConfirm(H('rsa-refresh/prepared', this.sid!, encList(publics), echo));
  }

  private eraseContributions(): void {
    for (const c of this.mine) {
      c.r.fill(0);
      c.t.fill(0);
    }
    for (const r of this.received.values()) {
      for (const c of r.contribs) {
        c.r.fill(0);
        c.t.fill(0);
      }
    }
    this.mine = [];
    this.received.clear();
  }

  protected erase(): void {
    this.eraseContributions();
  }
}

/** Start an RSA refresh party: EP with `keyIds` (it initiates in `start()`), P and A without. */
export function createRsaRefreshParty(cfg: RsaRefreshConfig): RsaRefreshParty {
  return new RsaRefreshParty(cfg);
}

/** Resume after a restart from the last `refresh-checkpoint` item (§5 I4). */
export function resumeRsaRefreshParty(
  cfg: RsaRefreshConfig,
  item: { keys: readonly RefreshKeyEpoch[]; checkpoint: ConfirmCheckpoint },
): RsaRefreshParty {
  return RsaRefreshParty.resume(cfg, item);
}
