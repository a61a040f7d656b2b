/**
 * FROST signing, 2-of-3, one round trip (docs/protocols.md §4; RFC 9591 §4–5).
 *
 * Production suites: `eddsa-ed25519` = FROST(Ed25519, SHA-512) (`ed25519_FROST`, output an
 * ordinary RFC 8032 signature) and `schnorr-bip340` = FROST(secp256k1, SHA-256)-TR (`schnorr_FROST`
 * signing semantics, output a BIP340 signature under the x-only key) for a key from the
 * *untweaked* DKG. RFC suites FROST(secp256k1, SHA-256) and FROST(P-256, SHA-256) are available
 * for the RFC 9591 vectors.
 *
 * Why not call noble's `signShare`/`aggregate` directly: their API takes bytes and re-parses
 * (and, for Ed25519, torsion-checks twice) every point on every call — about five parses per
 * `signShare` and five more in `aggregate`. Here each received point is decoded once with
 * `decodePoint` (strict, torsion-checked once), the group key once per key-share object, and the
 * signing math is RFC 9591 §4.3–4.6/§5.2–5.3 over decoded points. Tests check byte equality with
 * the RFC 9591 vectors and with noble's FROST on random keys, and every signature with the
 * standard verifier.
 *
 * Even y (BIP340, as noble's `schnorr_FROST` does it): a key whose Y has odd y signs with −x_i
 * and Y′ = −Y (binding factors hash the even Y′); if the group commitment R has odd y, every
 * signer negates its nonces; the challenge is BIP340's tagged hash over x(R), x(Y′), msg.
 */
import crypto from 'node:crypto';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { schnorr, secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { p256_hasher } from '@noble/curves/nist.js';
import { decodeEnc, enc, bytesToBigIntBE, bytesEqual, u8 } from '../crypto/encoding.js';
import { decodePoint, decodeScalar, encodePoint, getCurve, type Curve, type Point } from '../crypto/curves.js';
import { BoundedCache } from '../util/bounded-cache.js';
import { mulBase, mulPublic } from '../crypto/ec-mul.js';
import { cachedPublicKey } from '../crypto/public-key-objects.js';
import { ALG_CURVE, type EcAlg, type KeyShare } from './key-share.js';
import { decodeRequest, encodeRequest, isPartyId, RoundParty, sidFor, type RequestHeader, type StepBuilder } from './ecdsa-session.js';
import { ProtocolAbort, type Envelope, type Party, type PartyId, type Rng } from './types.js';

export type FrostAlg = 'eddsa-ed25519' | 'schnorr-bip340';
export type FrostSuiteName = 'ed25519' | 'secp256k1' | 'p256' | 'secp256k1-tr';
export const PROTO_FROST = 'frost-sign';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const leToBigInt = (b: Uint8Array): bigint => bytesToBigIntBE(Uint8Array.from(b).reverse());

/** One RFC 9591 ciphersuite (§6): contextString, H1–H5, and the BIP340 variant flag. */
export interface FrostSuite {
  readonly name: FrostSuiteName;
  readonly contextString: string;
  readonly curve: Curve;
  /** Even-y handling and BIP340 challenge/encoding (FROST-secp256k1-SHA256-TR-v1). */
  readonly taproot: boolean;
  readonly H1: (m: Uint8Array) => bigint;
  readonly H3: (m: Uint8Array) => bigint;
  readonly H4: (m: Uint8Array) => Uint8Array;
  readonly H5: (m: Uint8Array) => Uint8Array;
  /** The challenge c = H2(R, Y, msg) of the suite (points already even-y adjusted for BIP340). */
  readonly challenge: (R: Point, Y: Point, msg: Uint8Array) => bigint;
}

function sha512Suite(name: 'ed25519', ctx: string): FrostSuite {
  const curve = getCurve('ed25519');
  const hs = (tag: string) => (m: Uint8Array) => curve.Fn.create(leToBigInt(sha512(concat(utf8(ctx + tag), m))));
  const hb = (tag: string) => (m: Uint8Array) => sha512(concat(utf8(ctx + tag), m));
  return {
    name,
    contextString: ctx,
    curve,
    taproot: false,
    H1: hs('rho'),
    H3: hs('nonce'),
    H4: hb('msg'),
    H5: hb('com'),
    // RFC 9591 §6.1: H2 is undecorated SHA-512 (RFC 8032 compatibility).
    challenge: (R, Y, msg) => curve.Fn.create(leToBigInt(sha512(concat(R.toBytes(), Y.toBytes(), msg)))),
  };
}

function h2cSuite(
  name: 'secp256k1' | 'p256' | 'secp256k1-tr',
  ctx: string,
  hasher: { hashToScalar(msg: Uint8Array, o?: { DST: Uint8Array }): bigint },
): FrostSuite {
  const curve = getCurve(name === 'p256' ? 'p256' : 'secp256k1');
  const hs = (tag: string) => (m: Uint8Array) => hasher.hashToScalar(m, { DST: utf8(ctx + tag) });
  const hb = (tag: string) => (m: Uint8Array) => sha256(concat(utf8(ctx + tag), m));
  const taproot = name === 'secp256k1-tr';
  const chal = hs('chal');
  const x32 = (P: Point): Uint8Array => P.toBytes().subarray(1);
  return {
    name,
    contextString: ctx,
    curve,
    taproot,
    H1: hs('rho'),
    H3: hs('nonce'),
    H4: hb('msg'),
    H5: hb('com'),
    challenge: taproot
      ? (R, Y, msg) => curve.Fn.create(bytesToBigIntBE(schnorr.utils.taggedHash('BIP0340/challenge', x32(R), x32(Y), msg)))
      : (R, Y, msg) => chal(concat(R.toBytes(), Y.toBytes(), msg)),
  };
}

export const FROST_SUITES: Readonly<Record<FrostSuiteName, FrostSuite>> = {
  ed25519: sha512Suite('ed25519', 'FROST-ED25519-SHA512-v1'),
  secp256k1: h2cSuite('secp256k1', 'FROST-secp256k1-SHA256-v1', secp256k1_hasher),
  p256: h2cSuite('p256', 'FROST-P256-SHA256-v1', p256_hasher),
  'secp256k1-tr': h2cSuite('secp256k1-tr', 'FROST-secp256k1-SHA256-TR-v1', secp256k1_hasher),
};

export const FROST_ALG_SUITE: Readonly<Record<FrostAlg, FrostSuite>> = {
  'eddsa-ed25519': FROST_SUITES.ed25519,
  'schnorr-bip340': FROST_SUITES['secp256k1-tr'],
};

export function isFrostAlg(alg: string): alg is FrostAlg {
  return alg === 'eddsa-ed25519' || alg === 'schnorr-bip340';
}

// ---------------------------------------------------------------------------------------------
// RFC 9591 core over decoded points

export interface FrostNonces {
  d: bigint;
  e: bigint;
}

/** A signer's round-one commitment, already decoded and validated. */
export interface FrostCommitment {
  readonly id: number;
  readonly D: Point;
  readonly E: Point;
}

const isOddY = (P: Point): boolean => ((P.toAffine() as { y: bigint }).y & 1n) === 1n;

/** RFC 9591 §4.1 nonce_generate: H3(random_bytes(32) ‖ SerializeScalar(secret)). */
function nonceGenerate(suite: FrostSuite, secret: bigint, rng: Rng): bigint {
  const n = suite.H3(concat(rng(32), suite.curve.Fn.toBytes(secret)));
  if (n === 0n) throw new Error('nonce_generate gave 0');
  return n;
}

/** RFC 9591 §5.1 commit: hiding then binding nonce, both from `rng`. */
export function frostCommit(suite: FrostSuite, id: number, secret: bigint, rng: Rng): { nonces: FrostNonces; commitment: FrostCommitment } {
  const d = nonceGenerate(suite, secret, rng);
  const e = nonceGenerate(suite, secret, rng);
  return { nonces: { d, e }, commitment: { id, D: mulBase(suite.curve, d), E: mulBase(suite.curve, e) } };
}

/** Everything §4.3–4.6 derive from (Y, commitment list, msg), computed once per session. */
export interface FrostSigningContext {
  readonly suite: FrostSuite;
  readonly msg: Uint8Array;
  /** Y for RFC suites; the even-y Y′ for BIP340. */
  readonly Y: Point;
  /** Original Y has odd y (BIP340): shares are negated. */
  readonly negateKey: boolean;
  readonly list: readonly FrostCommitment[];
  readonly rho: ReadonlyMap<number, bigint>;
  /** Group commitment R (even-y R′ for BIP340). */
  readonly R: Point;
  /** R had odd y (BIP340): nonces are negated. */
  readonly negateNonces: boolean;
  readonly c: bigint;
}

export function frostContext(suite: FrostSuite, Y: Point, list: readonly FrostCommitment[], msg: Uint8Array): FrostSigningContext {
  const Fn = suite.curve.Fn;
  const sorted = [...list].sort((a, b) => a.id - b.id);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.id === sorted[i - 1]!.id) throw new Error('duplicate identifier in the commitment list');
  }
  const negateKey = suite.taproot && isOddY(Y);
  const Yeff = negateKey ? Y.negate() : Y;
  // §4.3: encode_group_commitment_list, then binding factors.
  const encoded = concat(...sorted.flatMap((c) => [Fn.toBytes(BigInt(c.id)), c.D.toBytes(), c.E.toBytes()]));
  const prefix = concat(Yeff.toBytes(), suite.H4(msg), suite.H5(encoded));
  const rho = new Map<number, bigint>();
  for (const c of sorted) rho.set(c.id, suite.H1(concat(prefix, Fn.toBytes(BigInt(c.id)))));
  // §4.5: R = Σ D_i + ρ_i·E_i (public data: variable time is fine).
  let hiding = suite.curve.Point.ZERO as Point;
  for (const c of sorted) hiding = hiding.add(c.D);
  const binding = sumOfProducts(
    suite.curve,
    sorted.map((c) => c.E),
    sorted.map((c) => rho.get(c.id)!),
  );
  const R0 = hiding.add(binding);
  if (R0.is0()) throw new Error('group commitment is the identity');
  const negateNonces = suite.taproot && isOddY(R0);
  const R = negateNonces ? R0.negate() : R0;
  return { suite, msg, Y: Yeff, negateKey, list: sorted, rho, R, negateNonces, c: suite.challenge(R, Yeff, msg) };
}

/** Σ k_i·P_i over public values, each product in native or WebAssembly code (ec-mul.ts). */
function sumOfProducts(curve: Curve, points: readonly Point[], scalars: readonly bigint[]): Point {
  return points.reduce((acc, P, i) => acc.add(mulPublic(curve, P, scalars[i]!)), curve.Point.ZERO as Point);
}

/** §4.2 Lagrange coefficient of `id` over the signer set. */
function lambda(ctx: FrostSigningContext, id: number): bigint {
  const Fn = ctx.suite.curve.Fn;
  let num = 1n;
  let den = 1n;
  for (const c of ctx.list) {
    if (c.id === id) continue;
    num = Fn.mul(num, BigInt(c.id));
    den = Fn.mul(den, Fn.sub(BigInt(c.id), BigInt(id)));
  }
  return Fn.div(num, den);
}

/** §5.2 sign: z_i = d + e·ρ_i + λ_i·x_i·c (with the BIP340 negations). Zeroes the nonces. */
export function frostSignShare(ctx: FrostSigningContext, id: number, secret: bigint, nonces: FrostNonces): bigint {
  const Fn = ctx.suite.curve.Fn;
  if (nonces.d === 0n || nonces.e === 0n) throw new Error('signing nonces already used');
  const rho = ctx.rho.get(id);
  if (rho === undefined) throw new Error('signer not in the commitment list');
  const d = ctx.negateNonces ? Fn.neg(nonces.d) : nonces.d;
  const e = ctx.negateNonces ? Fn.neg(nonces.e) : nonces.e;
  const x = ctx.negateKey ? Fn.neg(secret) : secret;
  nonces.d = 0n;
  nonces.e = 0n;
  return Fn.add(Fn.add(d, Fn.mul(e, rho)), Fn.mul(Fn.mul(lambda(ctx, id), x), ctx.c));
}

/** §5.4 verify_signature_share: z_i·G == ±(D_i + ρ_i·E_i) + λ_i·c·(±A_i). */
export function frostVerifyShare(ctx: FrostSigningContext, id: number, A: Point, z: bigint): boolean {
  const com = ctx.list.find((c) => c.id === id);
  if (!com) return false;
  let share = com.D.add(com.E.multiplyUnsafe(ctx.rho.get(id)!));
  if (ctx.negateNonces) share = share.negate();
  const Aeff = ctx.negateKey ? A.negate() : A;
  const rhs = share.add(Aeff.multiplyUnsafe(ctx.suite.curve.Fn.mul(lambda(ctx, id), ctx.c)));
  return ctx.suite.curve.G.multiplyUnsafe(z).equals(rhs);
}

/** §5.3 aggregate: z = Σ z_i; returns the suite's signature encoding and whether z·G == R + c·Y. */
export function frostAggregate(ctx: FrostSigningContext, shares: readonly bigint[]): { signature: Uint8Array; valid: boolean } {
  const { curve } = ctx.suite;
  const z = frostZ(ctx, shares);
  const valid = curve.G.multiplyUnsafe(z).equals(ctx.R.add(ctx.Y.multiplyUnsafe(ctx.c)));
  return { signature: frostSignatureBytes(ctx, z), valid };
}

/**
 * The aggregate signature without §5.3's own check, for a caller that verifies it with the
 * algorithm's standard verifier anyway (the coordinator, before release): one check, not two.
 */
export function frostCombine(ctx: FrostSigningContext, shares: readonly bigint[]): Uint8Array {
  return frostSignatureBytes(ctx, frostZ(ctx, shares));
}

function frostZ(ctx: FrostSigningContext, shares: readonly bigint[]): bigint {
  return shares.reduce((acc, s) => ctx.suite.curve.Fn.add(acc, s), 0n);
}

function frostSignatureBytes(ctx: FrostSigningContext, z: bigint): Uint8Array {
  const zb = ctx.suite.curve.Fn.toBytes(z);
  return ctx.suite.taproot ? concat(ctx.R.toBytes().subarray(1), zb) : concat(ctx.R.toBytes(), zb);
}

function ed25519Key(Y: Uint8Array): crypto.KeyObject {
  const x = Buffer.from(Y).toString('base64url');
  return cachedPublicKey(`eddsa-ed25519:${x}`, () => ({ kty: 'OKP', crv: 'Ed25519', x }));
}

/** The standard verifier of each production alg (RFC 8032 via node:crypto; BIP340 via noble). */
export function verifyFrostSignature(alg: FrostAlg, Y: Uint8Array, msg: Uint8Array, sig: Uint8Array): boolean {
  try {
    if (alg === 'eddsa-ed25519') return crypto.verify(null, msg, ed25519Key(Y), sig);
    return schnorr.verify(sig, msg, Y.subarray(1));
  } catch {
    return false;
  }
}

/** Group keys decoded (and torsion-checked) once per key, not per signature: shares are read afresh for each. */
const decodedKeys = new BoundedCache<string, Point>(4096);
function groupKey(curve: Curve, Y: Uint8Array): Point {
  const id = `${curve.name}:${Buffer.from(Y).toString('hex')}`;
  let P = decodedKeys.get(id);
  if (!P) decodedKeys.set(id, (P = decodePoint(curve, Y)));
  return P;
}

// ---------------------------------------------------------------------------------------------
// Session: F1 EP→h FrostReq(header, h, msg, D_1, E_1); F2 h→EP (D_h, E_h, z_h); F3 EP aggregates

export interface FrostSignature {
  readonly kind: 'signature';
  /** 64 bytes: R ‖ S (RFC 8032) or x(R) ‖ s (BIP340); verified by the standard verifier. */
  readonly signature: Uint8Array;
}
export type FrostOutput = FrostSignature | { readonly kind: 'share-sent'; readonly sid: Uint8Array };
export type FrostParty = Party<FrostOutput, never>;

export interface FrostCoordinatorOptions {
  readonly share: KeyShare;
  readonly tripletId: string;
  /** Partner (2), or Aux (3) when Partner does not answer; a retry is a new session. */
  readonly helper: 2 | 3;
  readonly message: Uint8Array;
  readonly rng: Rng;
  readonly nonce?: Uint8Array;
}

export interface FrostHelperOptions {
  readonly share: KeyShare;
  readonly tripletId: string;
  readonly rng: Rng;
}

export interface FrostRequestInfo {
  readonly header: RequestHeader;
  readonly helper: PartyId;
  readonly message: Uint8Array;
}

/** For the host: decode and sid-check a FrostReq before policy and key lookup. */
export function parseFrostRequest(env: Envelope): FrostRequestInfo {
  try {
    if (env.proto !== PROTO_FROST || env.round !== 0 || env.from !== 1) throw new Error('not a FrostReq from EP');
    const { header, extra } = decodeRequest(env.body, 4);
    const helper = extra[0]!.length === 1 ? extra[0]![0] : 0;
    if (!isFrostAlg(header.alg)) throw new Error('not a FROST alg');
    if (!isPartyId(helper) || helper === 1 || helper !== env.to) throw new Error('helper id');
    if (!bytesEqual(sidFor(PROTO_FROST, header), env.sid)) throw new Error('sid does not match the request');
    return { header, helper, message: extra[1]! };
  } catch (e) {
    throw new ProtocolAbort(PROTO_FROST, 0, `invalid-request: ${(e as Error).message}`, 1);
  }
}

function suiteFor(share: KeyShare, me: PartyId): FrostSuite {
  if (share.partyId !== me) throw new RangeError('key share belongs to another party');
  if (!isFrostAlg(share.alg)) throw new RangeError(`${share.alg} is not a FROST algorithm`);
  return FROST_ALG_SUITE[share.alg];
}

class FrostCoordinator extends RoundParty<FrostOutput, never> {
  private readonly suite: FrostSuite;
  private nonces: FrostNonces | undefined;
  private own: FrostCommitment | undefined;

  constructor(private readonly opts: FrostCoordinatorOptions) {
    super(1, PROTO_FROST, (round, from) => round === 1 && from === opts.helper);
    this.suite = suiteFor(opts.share, 1);
    if (opts.helper !== 2 && opts.helper !== 3) throw new RangeError('helper must be 2 or 3');
  }

  protected onStart(step: StepBuilder<FrostOutput, never>): void {
    const { share, rng } = this.opts;
    const header: RequestHeader = {
      tripletId: this.opts.tripletId,
      alg: share.alg,
      keyId: share.keyId,
      epoch: share.epoch,
      nonce: this.opts.nonce ?? rng(32),
    };
    this.inbox.bindSid(sidFor(PROTO_FROST, header));
    const { nonces, commitment } = frostCommit(this.suite, 1, share.share, rng);
    this.nonces = nonces;
    this.own = commitment;
    const c = this.suite.curve;
    const body = encodeRequest(header, u8(this.opts.helper), this.opts.message, encodePoint(c, commitment.D), encodePoint(c, commitment.E));
    step.send.push(this.envelope(0, this.opts.helper, body));
  }

  protected advance(step: StepBuilder<FrostOutput, never>): void {
    const h = this.opts.helper;
    if (!this.inbox.has(1, h)) return;
    this.at(1, h);
    const f = decodeEnc(this.inbox.take(1, h));
    if (f.length !== 3) this.abort('invalid-input: F2 field count', h);
    const { curve } = this.suite;
    const helperCommitment: FrostCommitment = { id: h, D: decodePoint(curve, f[0]!), E: decodePoint(curve, f[1]!) };
    const zh = decodeScalar(curve, f[2]!);
    const { share } = this.opts;
    const ctx = frostContext(this.suite, groupKey(curve, share.Y), [this.own!, helperCommitment], this.opts.message);
    const z1 = frostSignShare(ctx, 1, share.share, this.nonces!);
    this.at(1, null);
    const signature = frostCombine(ctx, [z1, zh]);
    if (!verifyFrostSignature(share.alg as FrostAlg, share.Y, this.opts.message, signature)) {
      const cheater = !frostVerifyShare(ctx, h, decodePoint(curve, share.A[h]), zh);
      this.abort('signature-invalid', cheater ? h : null);
    }
    step.output = { kind: 'signature', signature };
    this.finish();
  }

  protected erase(): void {
    if (this.nonces) {
      this.nonces.d = 0n;
      this.nonces.e = 0n;
    }
    this.nonces = undefined;
  }
}

class FrostHelper extends RoundParty<FrostOutput, never> {
  private readonly suite: FrostSuite;

  constructor(private readonly opts: FrostHelperOptions) {
    super(opts.share.partyId, PROTO_FROST, (round, from) => round === 0 && from === 1);
    this.suite = suiteFor(opts.share, opts.share.partyId);
    if (opts.share.partyId === 1) throw new RangeError('helpers are Partner or Aux');
  }

  protected onStart(): void {}

  protected advance(step: StepBuilder<FrostOutput, never>): void {
    if (!this.inbox.has(0, 1)) return;
    this.at(0, 1);
    const env = this.inbox.peekEnvelope(0, 1)!;
    const info = parseFrostRequest(env);
    this.inbox.take(0, 1);
    const { share, tripletId, rng } = this.opts;
    const hd = info.header;
    if (hd.tripletId !== tripletId) this.abort('invalid-request: wrong triplet', 1);
    if (hd.alg !== share.alg || hd.keyId !== share.keyId || hd.epoch !== share.epoch) {
      this.abort('invalid-request: key, alg or epoch mismatch', 1);
    }
    this.inbox.bindSid(env.sid);
    const f = decodeEnc(env.body);
    const { curve } = this.suite;
    const epCommitment: FrostCommitment = { id: 1, D: decodePoint(curve, f[7]!), E: decodePoint(curve, f[8]!) };
    const { nonces, commitment } = frostCommit(this.suite, this.id, share.share, rng);
    const ctx = frostContext(this.suite, groupKey(curve, share.Y), [epCommitment, commitment], info.message);
    const z = frostSignShare(ctx, this.id, share.share, nonces);
    step.send.push(this.envelope(1, 1, enc(encodePoint(curve, commitment.D), encodePoint(curve, commitment.E), curve.Fn.toBytes(z))));
    step.output = { kind: 'share-sent', sid: env.sid };
    this.finish();
  }

  protected erase(): void {}
}

/** EP: `start()` commits and sends FrostReq to the chosen helper; the reply yields the signature. */
export function createFrostCoordinator(opts: FrostCoordinatorOptions): FrostParty {
  return new FrostCoordinator(opts);
}

/** Partner / Aux: feed it the FrostReq; it answers with its commitment and signature share. */
export function createFrostHelper(opts: FrostHelperOptions): FrostParty {
  return new FrostHelper(opts);
}

/** The curve of a FROST alg (for hosts and tests). */
export function frostCurve(alg: EcAlg): Curve {
  return getCurve(ALG_CURVE[alg]);
}
