/**
 * AES-256 keys as a threshold DDH PRF (docs/protocols.md §12.2; DiSE, Agrawal–Mohassel–
 * Mukherjee–Rindal CCS 2018; Naor–Pinkas–Reingold): the key is a P-256 scalar k Shamir-shared by
 * the §2 DKG (f(X) = k + c·X, share k_j = f(j), public A_j = k_j·G), and each object's AES-256-GCM
 * key is derived from the PRF value k·U at U = hashToCurve(x):
 *
 *   x     = enc("dprf-object", keyId, objectNonce32)
 *   U     = hash_to_curve(x), RFC 9380 P256_XMD:SHA-256_SSWU_RO_ with DST "CORE-TSS/v1/dprf"
 *   EP    V_1 = k_1·U;   helper h: V_h = k_h·U and a DLEQ proof (log_G A_h = log_U V_h)
 *   EP    verifies, V = λ_1·V_1 + λ_h·V_h  (= k·U)
 *   K_obj = HKDF-SHA256(ikm = x(V), salt = UTF-8(keyId), info = "aes-256-gcm/x" ‖ x, 32)   (format 2)
 *   K_obj = HKDF-SHA256(ikm = SEC1-compressed(V), salt = UTF-8(keyId), info = "aes-256-gcm" ‖ x, 32)   (format 1)
 *
 * The sealed object's format version names the derivation. Format 2, which new objects use, takes
 * V's x-coordinate only: V and −V give the same key, so EP's own partial needs only x(k_1·U) (one
 * OpenSSL ECDH, lifted to a point of either sign) where the whole point takes two ECDHs (ec-mul.ts).
 * Format-1 objects, sealed before, still open: for them EP computes its partial with its sign.
 *
 * Two modes, one round trip each, batched over objects (1..256 per session):
 *
 * - proved (`dprf-eval`, docs/protocols.md §12.2 as written; EP + Partner, or EP + Aux): the helper answers each
 *   object with V_h and a DLEQ proof against A_h of the epoch both hold, which EP verifies.
 *     0  EP→h  enc(tripletId, alg, keyId, u32 epoch, nonce32, u8 h, encList(objectNonce…))
 *     1  h→EP  encList(enc(V_h, proof)…)
 * - cross-checked (`dprf-cross`, the fast path when all three servers are up): Partner and Aux
 *   both answer, without proofs, with x_h = x(k_h·U) only (one OpenSSL ECDH; the whole point
 *   takes two), and EP checks the three partials against each other. With f(X) = k + c·X the
 *   shares satisfy f(3) = 2·f(2) − f(1) and k = f(0) = 2·f(1) − f(2). EP lifts x_2 to a point S
 *   (so S = ±V_2), requires exactly one sign ε ∈ {1, −1} with x(2ε·S − V_1) = x_3 (that is,
 *   2ε·S − V_1 = ±V_3) and takes V = 2·V_1 − ε·S. (For a format-2 object EP holds T = δ·V_1 for
 *   an unknown sign δ: the check x(2ε·S − T) = x_3 is the one above for the sign εδ, and it gives
 *   δ·V, whose x is the same. So what follows holds for both.) Why no cheater passes, with EP
 *   honest and at most one helper cheating:
 *   - Aux honest: 2ε·S − V_1 = ±V_3 gives ε·S = (V_1 + V_3)/2 = V_2, the right partial, or
 *     ε·S = (V_1 − V_3)/2 = −c·U. A Partner sending x(c·U) computed c·U from c·G = A_3 − A_2 and
 *     the hashed U: a CDH instance.
 *   - Partner honest: ε·S = ±V_2, and the wrong sign passes only for x_3 = x((2·f(2) + f(1))·U),
 *     where 2·f(2) + f(1) = 3·f(3) − 4c: the Aux needs c·U again.
 *   So the check rests on CDH in P-256, which the PRF's own security (DDH) implies. A wrong
 *   partial aborts the session with no suspect (either helper could be the one), and the service
 *   evaluates again in proved mode, with the Partner first: a cheating Partner is named there; a
 *   cheating Aux is not used again while the Partner answers (but not named: the service logs the
 *   failed check). The check costs EP a square root (two for a format-2 object: its own partial
 *   too) and a few point additions per object, where a proof costs the helper two multiplications
 *   and EP four; each helper learns k_h·U as in proved mode, and less (no proof).
 *     0  EP→2, EP→3  enc(tripletId, alg, keyId, u32 epoch, nonce32, encList(objectNonce…))
 *     1  h→EP        encList(x_h…)   (32 bytes each, big-endian)
 *
 * Each helper computes U = H(x) itself from the key id and the object nonce: it evaluates objects
 * of the key it holds, never a point EP chose. (Answering k_h·P for points P of EP's choice would
 * be a static Diffie–Hellman oracle: queried on A_h, then on its answer, and so on, it gives the
 * k_h^i·G of Cheon's attack, which recovers k_h faster than a discrete logarithm.)
 *
 * Nothing is persisted. A refresh changes the shares, not k: K_obj, hence every ciphertext,
 * survives refresh (the key version in the object header is informational). Either mode aborts on
 * a wrong partial, it never produces a wrong key. EP sees K_obj (it sees the plaintext anyway); as
 * docs/protocols.md §12.2 says, this is DiSE's DPRF used as a KDF, without DiSE's integrity guarantee against a
 * malicious EP.
 *
 * The sealed-object format and `generateDataKey` are below (`sealObject`, `openObject`).
 */
import crypto, { ECDH } from 'node:crypto';
import { normalizeZ } from '@noble/curves/abstract/curve.js';
import { decodePoint, encodePoint, getCurve, type Point } from '../crypto/curves.js';
import { mulPoint, mulPointsX, mulPublic } from '../crypto/ec-mul.js';
import { p256HashToCurve, p256HashToCurveBatch } from '../crypto/p256-hash-to-curve.js';
import { decodeDleqProof, encodeDleqProof, proveDleq, verifyDleq } from '../crypto/dleq.js';
import { bytesEqual, decodeEnc, enc, encList, TAG_PREFIX, u32be, u8 } from '../crypto/encoding.js';
import { lagrangeWeights } from '../crypto/shamir.js';
import { readString, readU32, RoundParty, type StepBuilder } from './ecdsa-session.js';
import type { KeyShare } from './key-share.js';
import { computeSid } from './session.js';
import { ProtocolAbort, type Envelope, type Party, type Rng } from './types.js';

/**
 * The alg of DPRF keys. The DKG, refresh and Aux re-derivation treat it as a P-256 key: for the
 * key service, add it to `EcAlg` / `EC_ALGS` / `ALG_CURVE` ('p256') and to `dkgSuite` (dkg-suites.ts, P-256).
 */
export const DPRF_ALG = 'aes-256-dprf';
export type DprfAlg = typeof DPRF_ALG;
/** A P-256 key share from the DKG whose alg is `aes-256-dprf`. */
export type DprfKeyShare = Omit<KeyShare, 'alg'> & { readonly alg: DprfAlg };

export const PROTO_DPRF = 'dprf-eval';
export const PROTO_DPRF_CROSS = 'dprf-cross';
export const DPRF_DST = TAG_PREFIX + 'dprf';
const OBJECT_NONCE_BYTES = 32;
/** Objects per session (bounds the helper's work per request). */
export const DPRF_MAX_BATCH = 256;

/** A sealed-object format version, which names how K_obj comes from V (`objectKeyFromPoint`). */
export type ObjectFormat = 1 | 2;
/** The format new objects are sealed in. */
export const OBJECT_FORMAT_VERSION: ObjectFormat = 2;
/** Whether `v` is a format this release reads and writes. */
export function isObjectFormat(v: unknown): v is ObjectFormat {
  return v === 1 || v === 2;
}

/** An object to derive K_obj for: its nonce, and the format of its sealed object. */
export interface DprfObject {
  readonly nonce: Uint8Array;
  readonly format: ObjectFormat;
}

const curve = getCurve('p256');
const utf8 = new TextEncoder();

/** The PRF input of an object: x = enc("dprf-object", keyId, objectNonce). */
export function dprfInput(keyId: string, objectNonce: Uint8Array): Uint8Array {
  if (objectNonce.length !== OBJECT_NONCE_BYTES) throw new RangeError('object nonce must be 32 bytes');
  return enc('dprf-object', keyId, objectNonce);
}

/** U = hash_to_curve(x) (RFC 9380, P256_XMD:SHA-256_SSWU_RO_ with the DPRF's DST). */
export function dprfPoint(x: Uint8Array): Point {
  return p256HashToCurve(x, DPRF_DST) as Point;
}

/** `dprfPoint` of each input, affine (one shared field inversion). */
function dprfPoints(xs: readonly Uint8Array[]): Point[] {
  return p256HashToCurveBatch(xs, DPRF_DST) as Point[];
}

/**
 * The point with x-coordinate `xBytes` (32 bytes, big-endian, < p) and even y: a partial known by
 * its x only, up to sign. OpenSSL computes y (`ECDH.convertKey`, which refuses an x ≥ p or one with
 * no point); the result is on the curve by construction, so no decode checks are repeated.
 */
function liftX(xBytes: Uint8Array): Point {
  if (xBytes.length !== curve.scalarBytes) throw new RangeError('an x-coordinate is 32 bytes');
  const xy = ECDH.convertKey(Buffer.concat([LIFT_PREFIX, xBytes]), 'prime256v1', undefined, undefined, 'uncompressed') as Buffer;
  const Fp = curve.Point.Fp;
  return curve.Point.fromAffine({ x: Fp.fromBytes(xy.subarray(1, 33)), y: Fp.fromBytes(xy.subarray(33, 65)) }) as Point;
}
const LIFT_PREFIX = Uint8Array.of(0x02);

/** An x-coordinate sent as 32 big-endian bytes, < p (not checked on the curve: compared only). */
function readX(xBytes: Uint8Array): bigint {
  if (xBytes.length !== curve.scalarBytes) throw new RangeError('an x-coordinate is 32 bytes');
  return curve.Point.Fp.fromBytes(xBytes) as bigint;
}

/** Whether P has affine x-coordinate x, without an inversion: P = (X : Y : Z) with x = X/Z. */
function hasX(P: Point, x: bigint): boolean {
  const { X, Z } = P as unknown as { X: bigint; Z: bigint };
  const Fp = curve.Point.Fp;
  return !P.is0() && Fp.eql(X, Fp.mul(x, Z));
}

/**
 * K_obj of an object of `format` from its PRF value V = k·U, 32 bytes: HKDF-SHA256 with salt keyId
 * of x(V) and info "aes-256-gcm/x" ‖ x (format 2), or of SEC1-compressed(V) and info
 * "aes-256-gcm" ‖ x (format 1: V's sign matters).
 */
export function objectKeyFromPoint(format: ObjectFormat, V: Point, keyId: string, x: Uint8Array): Uint8Array {
  let ikm: Uint8Array;
  let label: string;
  switch (format) {
    case 2:
      [ikm, label] = [curve.Point.Fp.toBytes(V.toAffine().x as bigint), 'aes-256-gcm/x'];
      break;
    case 1:
      [ikm, label] = [encodePoint(curve, V), 'aes-256-gcm'];
      break;
    default:
      throw new RangeError(`no object format ${String(format)}`);
  }
  const info = Buffer.concat([utf8.encode(label), x]);
  return new Uint8Array(crypto.hkdfSync('sha256', ikm, utf8.encode(keyId), info, 32));
}

/** Fresh random object nonce (32 bytes). */
export function newObjectNonce(rng: Rng = (n) => new Uint8Array(crypto.randomBytes(n))): Uint8Array {
  const nonce = rng(OBJECT_NONCE_BYTES);
  if (nonce.length !== OBJECT_NONCE_BYTES) throw new RangeError('rng returned the wrong length');
  return nonce;
}

// ---------------------------------------------------------------------------------------------
// Session

export interface DprfKeys {
  readonly kind: 'keys';
  /** K_obj per object nonce, in request order (32 bytes each). Secret: wipe after use. */
  readonly keys: readonly Uint8Array[];
}
export type DprfOutput = DprfKeys | { readonly kind: 'partial-sent'; readonly sid: Uint8Array };
export type DprfParty = Party<DprfOutput, never>;

/** Which helpers answer: one, with DLEQ proofs (2 or 3), or both, cross-checked without proofs. */
export type DprfHelpers = 2 | 3 | 'both';
export type DprfProto = typeof PROTO_DPRF | typeof PROTO_DPRF_CROSS;

/** The protocol of a session whose helpers are `helper`: proved with one, cross-checked with both. */
export function dprfProto(helper: DprfHelpers): DprfProto {
  return helper === 'both' ? PROTO_DPRF_CROSS : PROTO_DPRF;
}

export interface DprfCoordinatorOptions {
  readonly share: DprfKeyShare;
  readonly tripletId: string;
  readonly helper: DprfHelpers;
  /** The objects (1..DPRF_MAX_BATCH), each with a 32-byte nonce. */
  readonly objects: readonly DprfObject[];
  readonly rng: Rng;
  readonly nonce?: Uint8Array;
}

export interface DprfHelperOptions {
  readonly share: DprfKeyShare;
  readonly tripletId: string;
  /** The request's mode (`parseDprfRequest`): a request of the other mode is refused. */
  readonly proved: boolean;
  readonly rng: Rng;
}

interface DprfHeader {
  readonly proto: DprfProto;
  readonly tripletId: string;
  readonly keyId: string;
  readonly epoch: number;
  readonly nonce: Uint8Array;
}

function dprfSid(h: DprfHeader): Uint8Array {
  return computeSid({
    tripletId: h.tripletId,
    proto: h.proto,
    alg: DPRF_ALG,
    keyIds: [h.keyId],
    epochs: [h.epoch],
    initiator: 1,
    nonce: h.nonce,
  });
}

function proofContext(sid: Uint8Array, helper: number, index: number): Uint8Array[] {
  return [sid, u8(helper), u32be(index)];
}

function checkShare(share: DprfKeyShare): void {
  if (share.alg !== DPRF_ALG) throw new RangeError(`not a ${DPRF_ALG} key share`);
}

export interface DprfRequestInfo {
  readonly header: DprfHeader;
  /** The helper asked (the envelope's recipient). */
  readonly helper: 2 | 3;
  /** Proved mode: answer with DLEQ proofs; cross-checked mode: partials only. */
  readonly proved: boolean;
  readonly objectNonces: readonly Uint8Array[];
}

function requestBody(h: DprfHeader, helper: DprfHelpers, objectNonces: readonly Uint8Array[]): Uint8Array {
  const head = [h.tripletId, DPRF_ALG, h.keyId, u32be(h.epoch), h.nonce];
  return helper === 'both' ? enc(...head, encList(objectNonces)) : enc(...head, u8(helper), encList(objectNonces));
}

/** For the host: decode and sid-check a DPRF request (either mode) before policy and key lookup. */
export function parseDprfRequest(env: Envelope): DprfRequestInfo {
  try {
    const proto = env.proto;
    if ((proto !== PROTO_DPRF && proto !== PROTO_DPRF_CROSS) || env.round !== 0 || env.from !== 1)
      throw new Error('not a DPRF request from EP');
    const proved = proto === PROTO_DPRF;
    const f = decodeEnc(env.body);
    if (f.length !== (proved ? 7 : 6)) throw new Error('request has the wrong number of fields');
    if (readString(f[1]!) !== DPRF_ALG) throw new Error('not a DPRF alg');
    const header: DprfHeader = { proto, tripletId: readString(f[0]!), keyId: readString(f[2]!), epoch: readU32(f[3]!), nonce: f[4]! };
    if (header.nonce.length !== 32) throw new Error('request nonce must be 32 bytes');
    const helper = env.to;
    if (helper !== 2 && helper !== 3) throw new Error('helper id');
    if (proved && !(f[5]!.length === 1 && f[5]![0] === helper)) throw new Error('helper id');
    if (!bytesEqual(dprfSid(header), env.sid)) throw new Error('sid does not match the request');
    const objectNonces = decodeEnc(f[proved ? 6 : 5]!);
    if (objectNonces.length === 0 || objectNonces.length > DPRF_MAX_BATCH) throw new Error('batch size');
    if (objectNonces.some((n) => n.length !== OBJECT_NONCE_BYTES)) throw new Error('object nonce must be 32 bytes');
    return { header, helper, proved, objectNonces };
  } catch (e) {
    throw new ProtocolAbort(env.proto, 0, `invalid-request: ${(e as Error).message}`, 1);
  }
}

/**
 * EP's own part of one object: its PRF input x, the point U = H(x) and its partial (see
 * `ownScalar`), up to sign where only x(V) matters (a format-2 object in cross-checked mode).
 */
interface OwnPart {
  readonly x: Uint8Array;
  readonly format: ObjectFormat;
  readonly U: Point;
  readonly V1: Point;
}

/**
 * EP's multiplier: λ₁·k₁ with one proved helper h (V = λ₁k₁·U + λ_h·V_h), or k₁ itself when both
 * helpers answer (V = 2·V_1 − V_2 and the check need the plain partial).
 */
function ownScalar(share: DprfKeyShare, helper: DprfHelpers): bigint {
  if (helper === 'both') return share.share;
  const [l1] = lagrangeWeights(curve, [1, helper], 0) as [bigint, bigint];
  return curve.Fn.mul(l1, share.share);
}

class DprfCoordinator extends RoundParty<DprfOutput, never> {
  /** Computed after the request left (onResume), while the helpers work, or on their answers. */
  private own: OwnPart[] | undefined;
  private readonly helpers: readonly (2 | 3)[];

  constructor(private readonly opts: DprfCoordinatorOptions) {
    const helpers = opts.helper === 'both' ? ([2, 3] as const) : [opts.helper];
    super(1, dprfProto(opts.helper), (round, from) => round === 1 && (helpers as readonly number[]).includes(from));
    this.helpers = helpers;
    checkShare(opts.share);
    if (opts.share.partyId !== 1) throw new RangeError('the coordinator is EP');
    if (opts.helper !== 2 && opts.helper !== 3 && opts.helper !== 'both') throw new RangeError("helper must be 2, 3 or 'both'");
    const n = opts.objects.length;
    if (n === 0 || n > DPRF_MAX_BATCH) throw new RangeError(`1..${DPRF_MAX_BATCH} objects per session`);
    for (const o of opts.objects) {
      if (o.nonce.length !== OBJECT_NONCE_BYTES) throw new RangeError('object nonce must be 32 bytes');
      if (!isObjectFormat(o.format)) throw new RangeError('object format must be 1 or 2');
    }
  }

  protected onStart(step: StepBuilder<DprfOutput, never>): void {
    const { share, rng } = this.opts;
    const header: DprfHeader = {
      proto: dprfProto(this.opts.helper),
      tripletId: this.opts.tripletId,
      keyId: share.keyId,
      epoch: share.epoch,
      nonce: this.opts.nonce ?? rng(32),
    };
    this.inbox.bindSid(dprfSid(header));
    const body = requestBody(
      header,
      this.opts.helper,
      this.opts.objects.map((o) => o.nonce),
    );
    for (const h of this.helpers) step.send.push(this.envelope(0, h, body));
    step.more = true;
  }

  /** EP's own hash-to-curve and partial of every object, while the helpers compute theirs. */
  protected override onResume(): void {
    this.own ??= this.ownParts();
  }

  private ownParts(): OwnPart[] {
    const { share, objects, helper } = this.opts;
    const k = ownScalar(share, helper);
    const xs = objects.map(({ nonce }) => dprfInput(share.keyId, nonce));
    const Us = dprfPoints(xs);
    const signed = objects.map(({ format }) => helper !== 'both' || format === 1);
    const unsigned = Us.filter((_, i) => !signed[i]);
    const x1s = unsigned.length > 0 ? mulPointsX(curve, unsigned, k) : [];
    let next = 0;
    return objects.map(({ format }, i) => {
      const U = Us[i]!;
      return { x: xs[i]!, format, U, V1: signed[i] ? mulPoint(curve, U, k) : liftX(curve.Point.Fp.toBytes(x1s[next++]!)) };
    });
  }

  protected advance(step: StepBuilder<DprfOutput, never>): void {
    if (!this.helpers.every((h) => this.inbox.has(1, h))) return;
    const own = (this.own ??= this.ownParts());
    const values = this.opts.helper === 'both' ? this.crossChecked(own) : this.proved(own, this.opts.helper);
    if (values.some((V) => V.is0())) this.abort('prf value is the identity', null);
    const affine = normalizeZ(curve.Point, values) as Point[];
    const keys = own.map(({ x, format }, i) => objectKeyFromPoint(format, affine[i]!, this.opts.share.keyId, x));
    step.output = { kind: 'keys', keys };
    this.finish();
  }

  /** The helper's partials, one per object, each decoded by `decode` (a failure names the helper). */
  private partials<T>(h: 2 | 3, decode: (item: Uint8Array, index: number) => T): T[] {
    this.at(1, h);
    const items = decodeEnc(this.inbox.take(1, h));
    if (items.length !== this.opts.objects.length) this.abort('invalid-input: one partial per object', h);
    return items.map(decode);
  }

  /** V = λ₁k₁·U + λ_h·V_h, each V_h DLEQ-verified against A_h. */
  private proved(own: readonly OwnPart[], h: 2 | 3): Point[] {
    const Ah = decodePoint(curve, this.opts.share.A[h]);
    const lh = (lagrangeWeights(curve, [1, h], 0) as [bigint, bigint])[1];
    const sid = this.inbox.sid!;
    return this.partials(h, (item, i) => {
      const f = decodeEnc(item);
      if (f.length !== 2) this.abort('invalid-input: partial field count', h);
      const Vh = decodePoint(curve, f[0]!);
      const proof = decodeDleqProof(curve, f[1]!);
      if (!verifyDleq(curve, 'dprf', proofContext(sid, h, i), { U: own[i]!.U, A: Ah, V: Vh }, proof)) this.abort('proof-invalid', h);
      return own[i]!.V1.add(mulPublic(curve, Vh, lh));
    });
  }

  /** V = 2·V_1 − V_2, with V_2's sign the one for which x(2·V_2 − V_1) = x_3 (module comment). */
  private crossChecked(own: readonly OwnPart[]): Point[] {
    const S = this.partials(2, (item) => this.decodeX(item, 2, liftX));
    const x3 = this.partials(3, (item) => this.decodeX(item, 3, readX));
    this.at(1, null);
    return own.map(({ V1 }, i) => {
      const D = S[i]!.double();
      const plus = hasX(D.subtract(V1), x3[i]!); // V_2 = S
      const minus = hasX(D.add(V1), x3[i]!); // V_2 = −S: −2S − V_1 = −(2S + V_1)
      if (plus === minus) this.abort('partials-inconsistent', null);
      return V1.double().subtract(plus ? S[i]! : S[i]!.negate());
    });
  }

  /** A helper's x-coordinate, decoded by `read`; a malformed one names the helper. */
  private decodeX<T>(item: Uint8Array, h: 2 | 3, read: (xBytes: Uint8Array) => T): T {
    try {
      return read(item);
    } catch {
      return this.abort('invalid-input: not an x-coordinate of the curve', h);
    }
  }

  protected erase(): void {
    this.own = undefined;
  }
}

class DprfHelper extends RoundParty<DprfOutput, never> {
  constructor(private readonly opts: DprfHelperOptions) {
    super(opts.share.partyId, opts.proved ? PROTO_DPRF : PROTO_DPRF_CROSS, (round, from) => round === 0 && from === 1);
    checkShare(opts.share);
    if (opts.share.partyId === 1) throw new RangeError('helpers are Partner or Aux');
  }

  protected onStart(): void {}

  protected advance(step: StepBuilder<DprfOutput, never>): void {
    if (!this.inbox.has(0, 1)) return;
    this.at(0, 1);
    const env = this.inbox.peekEnvelope(0, 1)!;
    const info = parseDprfRequest(env);
    this.inbox.take(0, 1);
    const { share, tripletId } = this.opts;
    const hd = info.header;
    if (hd.tripletId !== tripletId) this.abort('invalid-request: wrong triplet', 1);
    if (hd.keyId !== share.keyId || hd.epoch !== share.epoch) this.abort('invalid-request: key or epoch mismatch', 1);
    this.inbox.bindSid(env.sid);
    const Us = dprfPoints(info.objectNonces.map((on) => dprfInput(share.keyId, on)));
    const replies = info.proved
      ? this.provedPartials(Us, env.sid)
      : mulPointsX(curve, Us, share.share).map((x) => curve.Point.Fp.toBytes(x));
    step.send.push(this.envelope(1, 1, encList(replies)));
    step.output = { kind: 'partial-sent', sid: env.sid };
    this.finish();
  }

  /** enc(V_h, DLEQ proof) per object. */
  private provedPartials(Us: readonly Point[], sid: Uint8Array): Uint8Array[] {
    const { share, rng } = this.opts;
    const A = decodePoint(curve, share.A[this.id]);
    return Us.map((U, i) => {
      const V = mulPoint(curve, U, share.share);
      const proof = proveDleq(curve, 'dprf', proofContext(sid, this.id, i), share.share, { U, A, V }, rng);
      return enc(encodePoint(curve, V), encodeDleqProof(curve, proof));
    });
  }

  protected erase(): void {}
}

/** EP: `start()` sends the request; the helpers' checked partials yield one K_obj per object. */
export function createDprfCoordinator(opts: DprfCoordinatorOptions): DprfParty {
  return new DprfCoordinator(opts);
}

/** Partner / Aux: answers EP's request with k_h·U per object, and a DLEQ proof in proved mode. */
export function createDprfHelper(opts: DprfHelperOptions): DprfParty {
  return new DprfHelper(opts);
}

// ---------------------------------------------------------------------------------------------
// Sealed objects (AES-256-GCM, self-describing)
//
//   offset  field
//   0       magic "EKMO" (4)
//   4       format version u8: 2 (1: sealed before K_obj came from x(V) only; still opened)
//   5       key id length u16be (1..1024), then the key id (UTF-8)
//   …       key version u32be (the epoch at encryption; informational, authenticated)
//   …       object nonce (32)
//   …       GCM nonce (12)
//   …       ciphertext (plaintext length)
//   end−16  GCM tag (16)
//
// GCM's AAD = enc("CORE-TSS/v1/object", header bytes up to and including the GCM nonce, aad): the
// whole header and the caller's AAD (encryption context) are authenticated; the AAD must match
// exactly on open.

export const OBJECT_MAGIC = Uint8Array.of(0x45, 0x4b, 0x4d, 0x4f);
const GCM_NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MAX_KEY_ID_BYTES = 1024;

export interface ObjectHeader {
  readonly keyId: string;
  /** The key's epoch when the object was sealed (informational: K_obj does not depend on it). */
  readonly keyVersion: number;
  readonly objectNonce: Uint8Array;
  /** The format to seal in (default OBJECT_FORMAT_VERSION); K_obj must have been derived for it. */
  readonly format?: ObjectFormat;
}

export interface ParsedObject extends ObjectHeader {
  readonly format: ObjectFormat;
  readonly gcmNonce: Uint8Array;
  /** Bytes of the header (authenticated as AAD). */
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
  readonly tag: Uint8Array;
}

/** Every failure of `parseObjectHeader` / `openObject` is one of these three (by `code`). */
export abstract class SealedObjectError extends Error {
  abstract readonly code: 'EKM_OBJECT_FORMAT' | 'EKM_OBJECT_WRONG_KEY' | 'EKM_OBJECT_AUTH';
}
/** Not a sealed object of a format we read: truncated, wrong magic or version, bad key id. */
export class ObjectFormatError extends SealedObjectError {
  readonly code = 'EKM_OBJECT_FORMAT';
  constructor(readonly reason: 'truncated' | 'bad-magic' | 'unsupported-version' | 'bad-key-id') {
    super(`not a sealed object: ${reason}`);
  }
}
/** The object was sealed under another key id than the one asked for. */
export class ObjectWrongKeyError extends SealedObjectError {
  readonly code = 'EKM_OBJECT_WRONG_KEY';
  constructor(
    readonly expected: string,
    readonly found: string,
  ) {
    super(`object was sealed under key ${JSON.stringify(found)}, not ${JSON.stringify(expected)}`);
  }
}
/** GCM authentication failed: ciphertext or header tampered, wrong AAD, or wrong key. */
export class ObjectAuthError extends SealedObjectError {
  readonly code = 'EKM_OBJECT_AUTH';
  constructor() {
    super('object authentication failed: ciphertext, header, AAD or key does not match');
  }
}

function encodeHeader(h: ObjectHeader, gcmNonce: Uint8Array): Uint8Array {
  const id = utf8.encode(h.keyId);
  if (id.length === 0 || id.length > MAX_KEY_ID_BYTES) throw new RangeError('key id must be 1..1024 bytes of UTF-8');
  if (h.objectNonce.length !== OBJECT_NONCE_BYTES) throw new RangeError('object nonce must be 32 bytes');
  if (gcmNonce.length !== GCM_NONCE_BYTES) throw new RangeError('GCM nonce must be 12 bytes');
  const out = new Uint8Array(4 + 1 + 2 + id.length + 4 + OBJECT_NONCE_BYTES + GCM_NONCE_BYTES);
  const view = new DataView(out.buffer);
  out.set(OBJECT_MAGIC, 0);
  const format = h.format ?? OBJECT_FORMAT_VERSION;
  if (!isObjectFormat(format)) throw new RangeError('object format must be 1 or 2');
  out[4] = format;
  view.setUint16(5, id.length, false);
  out.set(id, 7);
  let at = 7 + id.length;
  view.setUint32(at, h.keyVersion, false);
  at += 4;
  out.set(h.objectNonce, at);
  out.set(gcmNonce, at + OBJECT_NONCE_BYTES);
  return out;
}

/** Strict parse of a sealed object (no decryption): the host reads keyId and objectNonce here. */
export function parseObjectHeader(sealed: Uint8Array): ParsedObject {
  const need = (n: number): void => {
    if (sealed.length < n) throw new ObjectFormatError('truncated');
  };
  need(5);
  if (!bytesEqual(sealed.subarray(0, 4), OBJECT_MAGIC)) throw new ObjectFormatError('bad-magic');
  const format = sealed[4];
  if (!isObjectFormat(format)) throw new ObjectFormatError('unsupported-version');
  need(7);
  const view = new DataView(sealed.buffer, sealed.byteOffset, sealed.byteLength);
  const idLen = view.getUint16(5, false);
  if (idLen === 0 || idLen > MAX_KEY_ID_BYTES) throw new ObjectFormatError('bad-key-id');
  const headerLen = 7 + idLen + 4 + OBJECT_NONCE_BYTES + GCM_NONCE_BYTES;
  need(headerLen + TAG_BYTES);
  let keyId: string;
  try {
    keyId = new TextDecoder('utf-8', { fatal: true }).decode(sealed.subarray(7, 7 + idLen));
  } catch {
    throw new ObjectFormatError('bad-key-id');
  }
  let at = 7 + idLen;
  const keyVersion = view.getUint32(at, false);
  at += 4;
  return {
    format,
    keyId,
    keyVersion,
    objectNonce: sealed.slice(at, at + OBJECT_NONCE_BYTES),
    gcmNonce: sealed.slice(at + OBJECT_NONCE_BYTES, headerLen),
    header: sealed.subarray(0, headerLen),
    ciphertext: sealed.subarray(headerLen, sealed.length - TAG_BYTES),
    tag: sealed.subarray(sealed.length - TAG_BYTES),
  };
}

function gcmAad(header: Uint8Array, aad: Uint8Array): Uint8Array {
  return enc(TAG_PREFIX + 'object', header, aad);
}

function checkObjectKey(key: Uint8Array): void {
  if (!(key instanceof Uint8Array) || key.length !== 32) throw new RangeError('object key must be 32 bytes');
}

/** AES-256-GCM under K_obj; returns the self-describing sealed object. */
export function sealObject(
  objectKey: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
  header: ObjectHeader,
  rng: Rng = (n) => new Uint8Array(crypto.randomBytes(n)),
): Uint8Array {
  checkObjectKey(objectKey);
  const head = encodeHeader(header, rng(GCM_NONCE_BYTES));
  const iv = head.subarray(head.length - GCM_NONCE_BYTES);
  const cipher = crypto.createCipheriv('aes-256-gcm', objectKey, iv);
  cipher.setAAD(gcmAad(head, aad));
  const body = cipher.update(plaintext);
  const final = cipher.final();
  const tag = cipher.getAuthTag();
  const out = new Uint8Array(head.length + body.length + final.length + TAG_BYTES);
  out.set(head, 0);
  out.set(body, head.length);
  out.set(final, head.length + body.length);
  out.set(tag, out.length - TAG_BYTES);
  return out;
}

/**
 * Opens a sealed object under K_obj. `expectedKeyId` (the key the caller asked for) is compared
 * with the header first. Errors: ObjectFormatError, ObjectWrongKeyError, ObjectAuthError.
 */
export function openObject(objectKey: Uint8Array, sealed: Uint8Array, aad: Uint8Array, expectedKeyId?: string): Uint8Array {
  checkObjectKey(objectKey);
  const p = parseObjectHeader(sealed);
  if (expectedKeyId !== undefined && p.keyId !== expectedKeyId) throw new ObjectWrongKeyError(expectedKeyId, p.keyId);
  const decipher = crypto.createDecipheriv('aes-256-gcm', objectKey, p.gcmNonce, { authTagLength: TAG_BYTES });
  decipher.setAAD(gcmAad(p.header, aad));
  decipher.setAuthTag(p.tag);
  const body = decipher.update(p.ciphertext);
  try {
    const final = decipher.final();
    return new Uint8Array(Buffer.concat([body, final]));
  } catch {
    body.fill(0);
    throw new ObjectAuthError();
  }
}

/**
 * Envelope encryption (like cloud KMS GenerateDataKey): a fresh random data key of `bits` and its
 * sealed form under K_obj (derived by the caller for `header.objectNonce`).
 */
export function generateDataKey(
  objectKey: Uint8Array,
  header: ObjectHeader,
  bits: 128 | 256,
  aad: Uint8Array = new Uint8Array(0),
  rng: Rng = (n) => new Uint8Array(crypto.randomBytes(n)),
): { readonly plaintextKey: Uint8Array; readonly sealed: Uint8Array } {
  if (bits !== 128 && bits !== 256) throw new RangeError('data keys are 128 or 256 bits');
  const plaintextKey = rng(bits / 8);
  return { plaintextKey, sealed: sealObject(objectKey, plaintextKey, aad, header, rng) };
}

/** Canonical AAD bytes of a string→string encryption context (sorted by key; LP-encoded). */
export function encodeEncryptionContext(ctx: Readonly<Record<string, string>>): Uint8Array {
  const keys = Object.keys(ctx).sort();
  return encList(keys.map((k) => enc(k, ctx[k]!)));
}
