/**
 * Threshold ECDSA, honest majority (DJNPØ20, t = 1, n = 3): docs/protocols.md §3 with §11
 * R1 (η zero-sharing), R2 (pool-mode rules a–d), R6 (echo over bodies, sid inputs in round 0,
 * `req` binds the signed input and the hash name).
 *
 * Three sessions, each a pure state machine per party (EP = 1 coordinates):
 *
 * | proto           | rounds                                                          | output                         |
 * |-----------------|-----------------------------------------------------------------|--------------------------------|
 * | `ecdsa-sign`    | 0 SignRequest EP→P,A · 1 PS1 · 2 PS2 · 3 PS3 · 4 s_j P,A→EP      | EP: signature; P, A: share-sent |
 * | `ecdsa-presign` | 0 PresignRequest · 1 PS1 · 2 PS2 · 3 PS3                         | each: its presignature share   |
 * | `ecdsa-online`  | 0 (psid, input) EP→P,A · 1 (h, ρ_j) P↔A · 2 (ρ_2, ρ_3, s_j) →EP | EP: signature; P, A: share-sent |
 *
 * Persistence (`Step.persist`, fsync'd before any message of the same step leaves): in
 * `ecdsa-online` every party emits `{kind:'presig-used', psid}` in the step that first sends
 * anything for that psid (EP in `start`, P/A on the request) — the host deletes the presignature
 * share there, so a presignature is used at most once, and an aborted one is burnt.
 */
import crypto from 'node:crypto';
import { decodeEnc, enc, H, HS, u32be, bytesEqual, EncodingError } from '../crypto/encoding.js';
import { decodePoint, decodeScalar, encodeScalar, getCurve, type Curve, type Point } from '../crypto/curves.js';
import { mulPublic, mulPublicX } from '../crypto/ec-mul.js';
import { cachedPublicKey } from '../crypto/public-key-objects.js';
import {
  bits2intModQ,
  encodeDer,
  encodeP1363,
  hashLength,
  hashMessage,
  isEcdsaHash,
  normaliseLowS,
  type EcdsaHash,
} from '../crypto/ecdsa-format.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { p256, p384 } from '@noble/curves/nist.js';
import { ALG_CURVE, type KeyShare } from './key-share.js';
import {
  decodeRequest,
  encodeRequest,
  type Inbox,
  OTHERS,
  readString,
  readU32,
  RoundParty,
  sidFor,
  type RequestHeader,
  type StepBuilder,
} from './ecdsa-session.js';
import { PresignCore, type PresignResult } from './ecdsa-presign.js';
import { ProtocolAbort, type Envelope, type Party, type PartyId, type Rng } from './types.js';

export type EcdsaAlg = 'ecdsa-secp256k1' | 'ecdsa-p256' | 'ecdsa-p384';
export const ECDSA_ALGS: readonly EcdsaAlg[] = ['ecdsa-secp256k1', 'ecdsa-p256', 'ecdsa-p384'];
export const ECDSA_DEFAULT_HASH: Record<EcdsaAlg, EcdsaHash> = {
  'ecdsa-secp256k1': 'sha256',
  'ecdsa-p256': 'sha256',
  'ecdsa-p384': 'sha384',
};

export const PROTO_SIGN = 'ecdsa-sign';
export const PROTO_PRESIGN = 'ecdsa-presign';
export const PROTO_ONLINE = 'ecdsa-online';

export function isEcdsaAlg(alg: string): alg is EcdsaAlg {
  return (ECDSA_ALGS as readonly string[]).includes(alg);
}

/** What is signed: the whole message M (hashed with `hash`), or a caller-supplied digest. */
export interface SignedInput {
  readonly kind: 'message' | 'digest';
  readonly hash: EcdsaHash;
  readonly data: Uint8Array;
}

/** One party's presignature share (§3.1 output, with R and η_j kept for pool mode, R2 c). */
export interface PresigShare {
  readonly psid: Uint8Array;
  readonly keyId: string;
  readonly epoch: number;
  readonly alg: EcdsaAlg;
  readonly partyId: PartyId;
  /** R = k·G, encoded point. */
  readonly R: Uint8Array;
  /** c_j = w⁻¹·a_j, v_j, η_j: secret scalars. */
  readonly c: bigint;
  readonly v: bigint;
  readonly eta: bigint;
}

export interface EcdsaSignature {
  readonly kind: 'signature';
  readonly r: bigint;
  /** Always low-s. */
  readonly s: bigint;
  /** r ‖ s (IEEE P1363), verified before release. */
  readonly p1363: Uint8Array;
  readonly der: Uint8Array;
  /**
   * Public-key recovery id (bit 0: y(R) parity after low-s, bit 1: x(R) ≥ q), for secp256k1 only:
   * its users recover keys from signatures; on P-256 and P-384 the y of R would cost a pooled
   * signature a second multiplication for a value nobody reads.
   */
  readonly recovery?: number;
  /** The digest that was signed (m = bits2int(digest) mod q). */
  readonly digest: Uint8Array;
}

export type EcdsaOutput =
  | EcdsaSignature
  | { readonly kind: 'share-sent'; readonly sid: Uint8Array }
  | { readonly kind: 'presignature'; readonly presig: PresigShare };

/** Durable write the host must complete before sending the same step's messages. */
export interface PresigUsed {
  readonly kind: 'presig-used';
  readonly psid: Uint8Array;
  readonly keyId: string;
  readonly epoch: number;
}
export type EcdsaPersist = PresigUsed;

export type EcdsaParty = Party<EcdsaOutput, EcdsaPersist>;

// ---------------------------------------------------------------------------------------------
// Signed input, message representative, verification

function encodeInput(input: SignedInput): Uint8Array {
  return enc(input.kind, input.hash, input.data);
}

function decodeInput(bytes: Uint8Array): SignedInput {
  const f = decodeEnc(bytes);
  if (f.length !== 3) throw new Error('signed input has the wrong number of fields');
  const kind = readString(f[0]!);
  const hash = readString(f[1]!);
  if ((kind !== 'message' && kind !== 'digest') || !isEcdsaHash(hash)) throw new Error('bad signed input');
  return { kind, hash, data: f[2]! };
}

/** The digest of a signed input; a supplied digest must have the hash's length. */
export function inputDigest(input: SignedInput): Uint8Array {
  if (!isEcdsaHash(input.hash)) throw new RangeError(`unsupported hash ${String(input.hash)}`);
  if (input.kind === 'message') return hashMessage(input.hash, input.data);
  if (input.kind !== 'digest') throw new RangeError('signed input kind must be message or digest');
  if (input.data.length !== hashLength(input.hash)) {
    throw new RangeError(`${input.hash} digest must be ${hashLength(input.hash)} bytes`);
  }
  return input.data;
}

/** What `req` and the pool-mode hash bind: the input as received (kind, hash name, digest). */
function inputBinding(input: SignedInput, digest: Uint8Array): Uint8Array {
  return enc(input.kind, input.hash, digest);
}

const NOBLE = { 'ecdsa-secp256k1': secp256k1, 'ecdsa-p256': p256, 'ecdsa-p384': p384 } as const;
const JWK_CRV: Record<EcdsaAlg, string> = { 'ecdsa-secp256k1': 'secp256k1', 'ecdsa-p256': 'P-256', 'ecdsa-p384': 'P-384' };

export function ecdsaPublicJwk(alg: EcdsaAlg, Y: Uint8Array): crypto.JsonWebKey {
  const curve = getCurve(ALG_CURVE[alg]);
  const { x, y } = decodePoint(curve, Y).toAffine() as { x: bigint; y: bigint };
  const b64 = (n: bigint): string =>
    Buffer.from(n.toString(16).padStart(curve.scalarBytes * 2, '0'), 'hex').toString('base64url');
  return { kty: 'EC', crv: JWK_CRV[alg], x: b64(x), y: b64(y) };
}

/**
 * Verifies a P1363 signature under Y. With the whole message, `node:crypto` (3–30× faster than
 * noble); with only a digest, noble on the digest (`prehash: false`). Low-s is required unless
 * `lowS: false`: ekm's own output is always low-s (the check before release), while a signature
 * presented for verification may come from any ECDSA signer, and (r, s) and (r, n − s) are both
 * valid under FIPS 186 (what OpenSSL and node:crypto accept).
 */
export function verifyEcdsa(alg: EcdsaAlg, Y: Uint8Array, input: SignedInput, p1363: Uint8Array, opts: { readonly lowS: boolean } = { lowS: true }): boolean {
  try {
    const curve = getCurve(ALG_CURVE[alg]);
    const s = BigInt('0x' + Buffer.from(p1363.subarray(curve.scalarBytes)).toString('hex'));
    if (p1363.length !== 2 * curve.scalarBytes || (opts.lowS && s > curve.order >> 1n)) return false;
    if (input.kind === 'message') {
      return crypto.verify(input.hash, input.data, { key: cachedPublicKey(`${alg}:${Buffer.from(Y).toString('hex')}`, () => ecdsaPublicJwk(alg, Y)), dsaEncoding: 'ieee-p1363' }, p1363);
    }
    return NOBLE[alg].verify(p1363, inputDigest(input), Y, { prehash: false, lowS: opts.lowS, format: 'compact' });
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Presignature storage codec (the host stores it encrypted at rest, like a key share)

export function encodePresig(p: PresigShare): Uint8Array {
  const curve = getCurve(ALG_CURVE[p.alg]);
  return enc(
    p.psid,
    p.keyId,
    u32be(p.epoch),
    p.alg,
    Uint8Array.of(p.partyId),
    p.R,
    encodeScalar(curve, p.c),
    encodeScalar(curve, p.v),
    encodeScalar(curve, p.eta),
  );
}

export function decodePresig(bytes: Uint8Array): PresigShare {
  const f = decodeEnc(bytes);
  if (f.length !== 9) throw new EncodingError('presignature record has the wrong number of fields');
  const alg = readString(f[3]!);
  if (!isEcdsaAlg(alg)) throw new EncodingError('presignature record: not an ECDSA alg');
  const curve = getCurve(ALG_CURVE[alg]);
  const partyId = f[4]!.length === 1 ? f[4]![0] : 0;
  if (partyId !== 1 && partyId !== 2 && partyId !== 3) throw new EncodingError('presignature record: party id');
  // R is not decoded here: the record comes sealed from this party's own store, and the online
  // signature decodes R strictly where it uses it (onlineShare).
  if (f[5]!.length !== curve.pointBytes) throw new EncodingError('presignature record: R length');
  return {
    psid: f[0]!,
    keyId: readString(f[1]!),
    epoch: readU32(f[2]!),
    alg,
    partyId,
    R: f[5]!,
    c: decodeScalar(curve, f[6]!, true),
    v: decodeScalar(curve, f[7]!),
    eta: decodeScalar(curve, f[8]!),
  };
}

// ---------------------------------------------------------------------------------------------
// Round-0 requests, for the host: which key / presignature a new session needs, before policy

export interface EcdsaRequestInfo {
  readonly proto: typeof PROTO_SIGN | typeof PROTO_PRESIGN | typeof PROTO_ONLINE;
  readonly header: RequestHeader;
  readonly input?: SignedInput;
  readonly psid?: Uint8Array;
}

/** Decodes (and sid-checks) a round-0 envelope; throws ProtocolAbort if malformed. */
export function parseEcdsaRequest(env: Envelope): EcdsaRequestInfo {
  const proto = env.proto;
  try {
    if (env.round !== 0 || env.from !== 1) throw new Error('not a round-0 request from EP');
    let info: EcdsaRequestInfo;
    if (proto === PROTO_SIGN) {
      const { header, extra } = decodeRequest(env.body, 1);
      info = { proto, header, input: decodeInput(extra[0]!) };
    } else if (proto === PROTO_PRESIGN) {
      info = { proto, header: decodeRequest(env.body, 0).header };
    } else if (proto === PROTO_ONLINE) {
      const { header, extra } = decodeRequest(env.body, 2);
      info = { proto, header, psid: extra[0]!, input: decodeInput(extra[1]!) };
    } else {
      throw new Error(`unknown proto ${proto}`);
    }
    if (!isEcdsaAlg(info.header.alg)) throw new Error('not an ECDSA alg');
    if (!bytesEqual(sidFor(proto, info.header), env.sid)) throw new Error('sid does not match the request');
    if (info.input) inputDigest(info.input);
    return info;
  } catch (e) {
    if (e instanceof ProtocolAbort) throw e;
    throw new ProtocolAbort(proto, 0, `invalid-request: ${(e as Error).message}`, 1);
  }
}

// ---------------------------------------------------------------------------------------------
// Shared pieces of EP's combine step (S2)

function ecdsaReq(sid: Uint8Array, proto: string, h: RequestHeader, binding: Uint8Array): Uint8Array {
  return H('ecdsa/req', sid, proto, h.keyId, u32be(h.epoch), h.alg, binding);
}

function checkShare(share: KeyShare, me: PartyId): { alg: EcdsaAlg; curve: Curve } {
  if (share.partyId !== me) throw new RangeError('key share belongs to another party');
  if (!isEcdsaAlg(share.alg)) throw new RangeError(`${share.alg} is not an ECDSA algorithm`);
  return { alg: share.alg, curve: getCurve(ALG_CURVE[share.alg]) };
}

/** EP's round-0 header for its key share; binds the session's sid. */
function bindEpSession(inbox: Inbox, opts: EcdsaHelperOptions & { nonce?: Uint8Array }, alg: EcdsaAlg): RequestHeader {
  const { share } = opts;
  const h = { tripletId: opts.tripletId, alg, keyId: share.keyId, epoch: share.epoch, nonce: opts.nonce ?? opts.rng(32) };
  inbox.bindSid(sidFor(inbox.proto, h));
  return h;
}

/** Helper's receipt of the buffered round-0 request: decode, sid, key/epoch/triplet, bind sid. */
function acceptRequest(inbox: Inbox, share: KeyShare, tripletId: string): EcdsaRequestInfo {
  const env = inbox.peekEnvelope(0, 1)!;
  const info = parseEcdsaRequest(env);
  inbox.take(0, 1);
  const h = info.header;
  const fail = (why: string): never => {
    throw new ProtocolAbort(inbox.proto, 0, `invalid-request: ${why}`, 1);
  };
  if (info.proto !== inbox.proto) fail('proto');
  if (h.tripletId !== tripletId) fail('wrong triplet');
  if (h.alg !== share.alg || h.keyId !== share.keyId || h.epoch !== share.epoch) fail('key, alg or epoch mismatch');
  inbox.bindSid(env.sid);
  return info;
}

/** s_j = c_j·(m + r·x_j) + v_j + m·η_j (§3.2 S1 with R1). */
function signShare(curve: Curve, c: bigint, m: bigint, r: bigint, x: bigint, v: bigint, eta: bigint): bigint {
  const Fn = curve.Fn;
  return Fn.add(Fn.add(Fn.mul(c, Fn.add(m, Fn.mul(r, x))), v), Fn.mul(m, eta));
}

/** S2: s = 3s_1 − 3s_2 + s_3, s ≠ 0, low-s, verify, encode. Throws ProtocolAbort. */
function combine(
  proto: string,
  round: number,
  alg: EcdsaAlg,
  curve: Curve,
  Y: Uint8Array,
  input: SignedInput,
  digest: Uint8Array,
  R: Point | undefined,
  r: bigint,
  s1: bigint,
  s2: bigint,
  s3: bigint,
): EcdsaSignature {
  const Fn = curve.Fn;
  const raw = Fn.add(Fn.sub(Fn.mul(3n, s1), Fn.mul(3n, s2)), s3);
  if (raw === 0n) throw new ProtocolAbort(proto, round, 's-zero', null);
  const s = normaliseLowS(raw, curve.order);
  const p1363 = encodeP1363(r, s, curve.order, curve.scalarBytes);
  if (!verifyEcdsa(alg, Y, input, p1363)) throw new ProtocolAbort(proto, round, 'signature-invalid', null);
  const out = { kind: 'signature', r, s, p1363, der: encodeDer(r, s, curve.order), digest } as const;
  if (alg !== 'ecdsa-secp256k1' || !R) return out;
  const { x, y } = R.toAffine() as { x: bigint; y: bigint };
  return { ...out, recovery: (Number(y & 1n) ^ (s === raw ? 0 : 1)) | (x >= curve.order ? 2 : 0) };
}

// ---------------------------------------------------------------------------------------------
// ecdsa-sign (on demand) and ecdsa-presign (pool generation): rounds 0–3 (+ 4 for sign)

export interface EcdsaCoordinatorOptions {
  readonly share: KeyShare;
  readonly tripletId: string;
  /** 32 fresh bytes for the sid (§1.4); drawn from `rng` if omitted. */
  readonly nonce?: Uint8Array;
  readonly rng: Rng;
}

export interface EcdsaHelperOptions {
  readonly share: KeyShare;
  readonly tripletId: string;
  readonly rng: Rng;
}

class PresignParty extends RoundParty<EcdsaOutput, EcdsaPersist> {
  private readonly alg: EcdsaAlg;
  private readonly curve: Curve;
  private phase = 0;
  private core: PresignCore | undefined;
  private req: Uint8Array | undefined;
  private input: SignedInput | undefined;
  private digest: Uint8Array | undefined;
  private m = 0n;
  private own: Uint8Array | undefined;
  private presig: PresignResult | undefined;
  private s1 = 0n;

  constructor(
    private readonly opts: EcdsaHelperOptions & { nonce?: Uint8Array; input?: SignedInput },
    private readonly mode: 'sign' | 'presign',
  ) {
    const me = opts.share.partyId;
    const lastRound = mode === 'sign' ? 4 : 3;
    super(me, mode === 'sign' ? PROTO_SIGN : PROTO_PRESIGN, (round, from) =>
      me === 1
        ? round >= 1 && round <= lastRound
        : (round === 0 && from === 1) || (round >= 1 && round <= 3),
    );
    ({ alg: this.alg, curve: this.curve } = checkShare(opts.share, me));
    if (mode === 'sign' && me === 1) {
      if (!opts.input) throw new RangeError('EP needs the signed input');
      this.input = opts.input;
      this.digest = inputDigest(opts.input);
    }
  }

  protected onStart(step: StepBuilder<EcdsaOutput, EcdsaPersist>): void {
    if (this.id !== 1) return;
    const header = bindEpSession(this.inbox, this.opts, this.alg);
    const body = this.input ? encodeRequest(header, encodeInput(this.input)) : encodeRequest(header);
    for (const j of [2, 3] as const) step.send.push(this.envelope(0, j, body));
    this.begin(step, header);
  }

  /** After round 0: m, req and PS1. */
  private begin(step: StepBuilder<EcdsaOutput, EcdsaPersist>, header: RequestHeader): void {
    const sid = this.inbox.sid!;
    const binding = this.input ? inputBinding(this.input, this.digest!) : enc('presign');
    if (this.digest) this.m = bits2intModQ(this.digest, this.curve.order);
    this.req = ecdsaReq(sid, this.proto, header, binding);
    this.core = new PresignCore(this.curve, this.id, this.proto, this.opts.rng);
    for (const [j, b] of this.core.ps1Bodies(this.req)) step.send.push(this.envelope(1, j, b));
    this.phase = 1;
  }

  protected advance(step: StepBuilder<EcdsaOutput, EcdsaPersist>): void {
    const others = OTHERS[this.id];
    for (;;) {
      if (this.phase === 0 && this.inbox.has(0, 1)) {
        this.at(0, 1);
        const info = acceptRequest(this.inbox, this.opts.share, this.opts.tripletId);
        if (info.input) {
          this.input = info.input;
          this.digest = inputDigest(info.input);
        }
        this.begin(step, info.header);
      } else if (this.phase === 1 && this.inbox.hasAll(1, others)) {
        for (const j of others) {
          this.at(1, j);
          this.core!.absorbPs1(j, this.inbox.take(1, j), this.req!);
        }
        this.at(2, null);
        this.own = this.core!.ps2Body();
        for (const j of others) step.send.push(this.envelope(2, j, this.own));
        this.phase = 2;
      } else if (this.phase === 2 && this.inbox.hasAll(2, others)) {
        this.at(2, null);
        const bodies = this.collect(2, this.own!);
        this.own = this.core!.ps3Body(this.inbox.sid!, bodies);
        for (const j of others) step.send.push(this.envelope(3, j, this.own));
        this.phase = 3;
      } else if (this.phase === 3 && this.inbox.hasAll(3, others)) {
        this.at(3, null);
        this.presig = this.core!.finish(this.inbox.sid!, this.collect(3, this.own!));
        this.core = undefined;
        this.afterPresign(step);
        if (this.finished) return;
      } else if (this.phase === 4 && this.inbox.hasAll(4, others)) {
        this.at(4, null);
        const s = { 2: 0n, 3: 0n };
        for (const j of [2, 3] as const) {
          this.at(4, j);
          const f = decodeEnc(this.inbox.take(4, j));
          if (f.length !== 1) this.abort('invalid-input: S1 field count', j);
          s[j] = decodeScalar(this.curve, f[0]!);
        }
        this.at(4, null);
        const ps = this.presig!;
        step.output = combine(
          this.proto, 4, this.alg, this.curve, this.opts.share.Y, this.input!, this.digest!, ps.R, ps.r, this.s1, s[2], s[3],
        );
        this.finish();
        return;
      } else {
        return;
      }
    }
  }

  private collect(round: number, own: Uint8Array): Record<PartyId, Uint8Array> {
    const out = { [this.id]: own } as Record<PartyId, Uint8Array>;
    for (const j of OTHERS[this.id]) out[j] = this.inbox.take(round, j);
    return out;
  }

  private afterPresign(step: StepBuilder<EcdsaOutput, EcdsaPersist>): void {
    const ps = this.presig!;
    if (this.mode === 'presign') {
      const { share } = this.opts;
      step.output = {
        kind: 'presignature',
        presig: {
          psid: this.inbox.sid!,
          keyId: share.keyId,
          epoch: share.epoch,
          alg: this.alg,
          partyId: this.id,
          R: ps.Rbytes,
          c: ps.c,
          v: ps.v,
          eta: ps.eta,
        },
      };
      this.finish();
      return;
    }
    const sj = signShare(this.curve, ps.c, this.m, ps.r, this.opts.share.share, ps.v, ps.eta);
    if (this.id === 1) {
      this.s1 = sj;
      this.phase = 4;
      return;
    }
    step.send.push(this.envelope(4, 1, enc(encodeScalar(this.curve, sj))));
    step.output = { kind: 'share-sent', sid: this.inbox.sid! };
    this.finish();
  }

  protected erase(): void {
    this.core?.erase();
    this.core = undefined;
    this.presig = undefined;
    this.s1 = 0n;
  }
}

/** EP side of an on-demand signature (§3.1–3.2): call `start()` to emit the request and PS1. */
export function createEcdsaSignCoordinator(opts: EcdsaCoordinatorOptions & { input: SignedInput }): EcdsaParty {
  return new PresignParty(opts, 'sign');
}

/** Partner / Aux side of an on-demand signature; feed it the round-0 request first. */
export function createEcdsaSignHelper(opts: EcdsaHelperOptions): EcdsaParty {
  if (opts.share.partyId === 1) throw new RangeError('helpers are Partner or Aux');
  return new PresignParty(opts, 'sign');
}

/** A presign-only session (pool mode, docs/protocols.md §3.4): every party outputs its `PresigShare`. */
export function createEcdsaPresignParty(opts: EcdsaHelperOptions & { nonce?: Uint8Array }): EcdsaParty {
  return new PresignParty(opts, 'presign');
}

// ---------------------------------------------------------------------------------------------
// ecdsa-online (pool mode, docs/protocols.md §3.4 + R2): EP→P,A (psid, input); P↔A (h, ρ); P,A→EP (ρ_2, ρ_3, s_j)

export interface EcdsaOnlineCoordinatorOptions extends EcdsaCoordinatorOptions {
  readonly presig: PresigShare;
  readonly input: SignedInput;
}

export interface EcdsaOnlineHelperOptions extends EcdsaHelperOptions {
  /** The stored, unused presignature share for psid, or undefined (unknown or USED). */
  readonly lookupPresig: (psid: Uint8Array) => PresigShare | undefined;
}

class OnlineParty extends RoundParty<EcdsaOutput, EcdsaPersist> {
  private readonly alg: EcdsaAlg;
  private readonly curve: Curve;
  private phase = 0;
  private presig: PresigShare | undefined;
  private input: SignedInput | undefined;
  private digest: Uint8Array | undefined;
  private h: Uint8Array | undefined;
  private rho: Uint8Array | undefined;

  constructor(private readonly opts: EcdsaHelperOptions & Partial<EcdsaOnlineCoordinatorOptions & EcdsaOnlineHelperOptions>) {
    const me = opts.share.partyId;
    const peer: PartyId = me === 2 ? 3 : 2;
    super(me, PROTO_ONLINE, (round, from) =>
      me === 1 ? round === 2 : (round === 0 && from === 1) || (round === 1 && from === peer),
    );
    ({ alg: this.alg, curve: this.curve } = checkShare(opts.share, me));
    if (me === 1) {
      if (!opts.presig || !opts.input) throw new RangeError('EP needs the presignature and the signed input');
      const bad = checkPresig(opts.presig, opts.share);
      if (bad) throw new RangeError(`presignature does not fit the key share: ${bad}`);
      this.presig = opts.presig;
      this.input = opts.input;
      this.digest = inputDigest(opts.input);
    }
  }

  protected onStart(step: StepBuilder<EcdsaOutput, EcdsaPersist>): void {
    if (this.id !== 1) return;
    const header = bindEpSession(this.inbox, this.opts, this.alg);
    const ps = this.presig!;
    step.persist.push({ kind: 'presig-used', psid: ps.psid, keyId: ps.keyId, epoch: ps.epoch });
    const body = encodeRequest(header, ps.psid, encodeInput(this.input!));
    for (const j of [2, 3] as const) step.send.push(this.envelope(0, j, body));
    this.phase = 2;
  }

  protected advance(step: StepBuilder<EcdsaOutput, EcdsaPersist>): void {
    const me = this.id;
    const peer: PartyId = me === 2 ? 3 : 2;
    if (this.phase === 0 && this.inbox.has(0, 1)) {
      this.at(0, 1);
      const info = acceptRequest(this.inbox, this.opts.share, this.opts.tripletId);
      const ps = this.opts.lookupPresig!(info.psid!);
      if (!ps || !bytesEqual(ps.psid, info.psid!)) this.abort('psid-unknown', 1);
      const badPs = checkPresig(ps, this.opts.share);
      if (badPs) this.abort(`psid-unknown: ${badPs}`, 1);
      this.presig = ps;
      this.input = info.input!;
      this.digest = inputDigest(this.input);
      // R2 (a): USED durably before the first pool-mode message for this psid leaves.
      step.persist.push({ kind: 'presig-used', psid: ps.psid, keyId: ps.keyId, epoch: ps.epoch });
      this.h = H(
        'ecdsa/online',
        this.inbox.sid!,
        ps.psid,
        ps.keyId,
        u32be(ps.epoch),
        this.alg,
        inputBinding(this.input, this.digest),
        ps.R,
      );
      this.rho = this.opts.rng(32);
      step.send.push(this.envelope(1, peer, enc(this.h, this.rho)));
      this.phase = 1;
    }
    if (this.phase === 1 && this.inbox.has(1, peer)) {
      this.at(1, peer);
      const f = decodeEnc(this.inbox.take(1, peer));
      if (f.length !== 2 || f[1]!.length !== 32) this.abort('invalid-input: online field', peer);
      // R2 (b): s_j only after the peer's matching hash and ρ.
      if (!bytesEqual(f[0]!, this.h!)) this.abort('online-hash-mismatch', null);
      const rhos = { [me]: this.rho!, [peer]: f[1]! } as Record<2 | 3, Uint8Array>;
      const { sj } = this.onlineShare(rhos[2], rhos[3]);
      step.send.push(this.envelope(2, 1, enc(rhos[2], rhos[3], encodeScalar(this.curve, sj))));
      step.output = { kind: 'share-sent', sid: this.inbox.sid! };
      this.finish();
      return;
    }
    if (this.phase === 2 && this.inbox.hasAll(2, [2, 3])) {
      const got = {} as Record<2 | 3, Uint8Array[]>;
      for (const j of [2, 3] as const) {
        this.at(2, j);
        const f = decodeEnc(this.inbox.take(2, j));
        if (f.length !== 3 || f[0]!.length !== 32 || f[1]!.length !== 32) this.abort('invalid-input: S1 fields', j);
        got[j] = f;
      }
      this.at(2, null);
      if (!bytesEqual(got[2][0]!, got[3][0]!) || !bytesEqual(got[2][1]!, got[3][1]!)) this.abort('rho-mismatch', null);
      const { sj, R, r } = this.onlineShare(got[2][0]!, got[2][1]!);
      const s2 = this.decodeFrom(got[2][2]!, 2);
      const s3 = this.decodeFrom(got[3][2]!, 3);
      step.output = combine(this.proto, 2, this.alg, this.curve, this.opts.share.Y, this.input!, this.digest!, R, r, sj, s2, s3);
      this.finish();
    }
  }

  private decodeFrom(bytes: Uint8Array, j: PartyId): bigint {
    this.at(2, j);
    const v = decodeScalar(this.curve, bytes);
    this.at(2, null);
    return v;
  }

  /** δ = HS("ecdsa/rerand", …), R′ = δ·R, r′ = x(R′), c′_j = δ⁻¹·c_j; s_j (R2 d: δ ≠ 0, r′ ≠ 0). */
  private onlineShare(rho2: Uint8Array, rho3: Uint8Array): { sj: bigint; R: Point | undefined; r: bigint } {
    const ps = this.presig!;
    const Fn = this.curve.Fn;
    let delta: bigint;
    try {
      delta = HS(
        this.curve.order,
        'ecdsa/rerand',
        this.inbox.sid!,
        ps.psid,
        ps.keyId,
        u32be(ps.epoch),
        inputBinding(this.input!, this.digest!),
        ps.R,
        rho2,
        rho3,
      );
    } catch {
      this.abort('delta-zero', null);
    }
    // δ and R are public (ρ_2, ρ_3 travel to EP in the clear): variable time is fine here. Only
    // r = x(R′) is needed, and on secp256k1 the EP's R′ also gives the recovery id.
    let R: Point | undefined;
    let x: bigint;
    try {
      R = this.id === 1 && this.alg === 'ecdsa-secp256k1' ? mulPublic(this.curve, decodePoint(this.curve, ps.R), delta) : undefined;
      x = R ? R.toAffine().x : mulPublicX(this.curve, ps.R, delta);
    } catch (e) {
      // The R of this party's own stored presignature: no peer's message is at fault.
      this.abort(`presig-invalid: ${(e as Error).message}`, null);
    }
    const r = Fn.create(x);
    if (r === 0n) this.abort('r-zero', null);
    const m = bits2intModQ(this.digest!, this.curve.order);
    const sj = signShare(this.curve, Fn.mul(Fn.inv(delta), ps.c), m, r, this.opts.share.share, ps.v, ps.eta);
    this.presig = undefined; // single use: the share is gone from this party's memory
    return { sj, R, r };
  }

  protected erase(): void {
    this.presig = undefined;
    this.rho = undefined;
  }
}

function checkPresig(ps: PresigShare, share: KeyShare): string | null {
  if (ps.keyId !== share.keyId || ps.epoch !== share.epoch || ps.alg !== share.alg) return 'key or epoch';
  if (ps.partyId !== share.partyId) return 'party';
  return null;
}

/** EP side of a pool-mode online signature: `start()` persists presig-used, then sends (psid, input). */
export function createEcdsaOnlineCoordinator(opts: EcdsaOnlineCoordinatorOptions): EcdsaParty {
  return new OnlineParty(opts);
}

/** Partner / Aux side of a pool-mode online signature. */
export function createEcdsaOnlineHelper(opts: EcdsaOnlineHelperOptions): EcdsaParty {
  if (opts.share.partyId === 1) throw new RangeError('helpers are Partner or Aux');
  return new OnlineParty(opts);
}
