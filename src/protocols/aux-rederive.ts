/**
 * Aux share re-derivation after a restore or for a new Aux (docs/protocols.md §6, AX1–AX3;
 * §11 R9), batched over keys, with the optional attribution (ρ·G) and the signed two-phase
 * commit of §5 (RF2–RF4).
 *
 * x_3 = f(3) = −x_1 + 2·x_2 (§1.1). EP and P send Aux c_1 = −x_1 + ρ and c_2 = 2·x_2 − ρ with a
 * per-key mask ρ = HS("aux/mask", seed, sid, keyId) from a seed EP gives P only: Aux sees c_1
 * uniform and learns only x_3; EP never sees c_2, P never c_1.
 *
 * Rounds (every body `enc(kind, …)`):
 *   0  EP→P  request(sid inputs, enc("to-partner", seed, H("aux/keys", AuxInfo)))   AX1 (private)
 *   0  EP→A  request(sid inputs, enc("to-aux", AuxInfo))                              AX1
 *   1  EP→A, P→A  enc("contrib", AuxInfo, [c_j…], [ρ·G…] or [])                       AX1/AX2
 *   2  all  PREPARED = H("aux/prepared", sid, AuxInfo), signed                          AX3
 *   3  all  ACTIVATED
 *
 * The sid's alg input is "batch" or "batch+attribution" (attribution is bound to the session).
 * Preconditions (host): EP and P hold every key at the same epoch (P checks the AuxInfo digest);
 * the old Aux certificate is revoked (R9). Afterwards run a refresh of every key (§6).
 */
import { decodePoint, decodeScalar, encodePoint, encodeScalar, getCurve, type Curve, type Point } from '../crypto/curves.js';
import { mulBase } from '../crypto/ec-mul.js';
import { bytesEqual, decodeEnc, enc, encList, H, HS, u32be } from '../crypto/encoding.js';
import { isDegree1InExponent, lineInExponent } from '../crypto/shamir.js';
import { decodeKeyPolicy, encodeKeyPolicy } from './key-policy.js';
import { ALG_CURVE, EC_ALGS, type EcAlg, type KeyPublic, type KeyShare } from './key-share.js';
import { computeSid, type SessionInputs } from './session.js';
import {
  decodeRequest,
  decodeU32,
  decodeUtf8,
  encodeRequest,
  ProtocolParty,
  type CommonConfig,
  type ConfirmCheckpoint,
  type SessionAbandonItem,
  type SessionOpenItem,
} from './session-kit.js';
import type { Envelope, PartyId } from './types.js';

export const AUX_PROTO = 'aux-rederive';
const ALG_PLAIN = 'batch';
const ALG_ATTRIBUTION = 'batch+attribution';
const R_CONTRIB = 1;
const R_PREPARED = 2;

export interface AuxConfig extends CommonConfig {
  /** EP and P: the CURRENT share of `keyId` (undefined if unknown). Aux holds none. */
  readonly lookup?: (keyId: string) => KeyShare | undefined;
  /** EP only: the keys to re-derive. */
  readonly keyIds?: readonly string[];
  /** EP only: also send ρ·G so Aux can tell which of EP or P sent a wrong c_j. */
  readonly attribution?: boolean;
}

/** One key's entry of AuxInfo, as both EP and P must hold it: its public data at epoch e. */
export type AuxKeyInfo = KeyPublic;

export type AuxPersist =
  | SessionOpenItem
  | SessionAbandonItem
  /** Aux, AX3: x_3 verified; store it PENDING. */
  | { readonly kind: 'aux-share-pending'; readonly sid: Uint8Array; readonly share: KeyShare }
  | { readonly kind: 'aux-checkpoint'; readonly sid: Uint8Array; readonly keys: readonly AuxKeyEpoch[]; readonly checkpoint: ConfirmCheckpoint }
  /** Aux: PENDING → CURRENT for every key of the batch. */
  | { readonly kind: 'aux-share-activate'; readonly sid: Uint8Array; readonly keys: readonly AuxKeyEpoch[] }
  /** EP and P: mark the keys "Aux present" (the new Aux holds f(3) of this epoch). */
  | { readonly kind: 'aux-present'; readonly sid: Uint8Array; readonly keys: readonly AuxKeyEpoch[] }
  /** All: ACTIVATED from both peers. */
  | { readonly kind: 'aux-complete'; readonly sid: Uint8Array; readonly keys: readonly AuxKeyEpoch[] };

export interface AuxKeyEpoch {
  readonly keyId: string;
  readonly epoch: number;
}

export interface AuxOutput {
  readonly sid: Uint8Array;
  readonly keys: readonly AuxKeyEpoch[];
}

/** AuxInfo bytes: [(keyId, alg, e, Y, C1, A1, A2, A3, policy)…]; the policy goes on to the Aux's share. */
function encodeAuxInfo(keys: readonly AuxKeyInfo[]): Uint8Array {
  return encList(
    keys.map((k) => enc(k.keyId, k.alg, u32be(k.epoch), k.Y, k.C1, k.A[1], k.A[2], k.A[3], encodeKeyPolicy(k.notAfter !== undefined ? { notAfter: k.notAfter } : {}))),
  );
}

/** Strict AuxInfo decode: every point decodes and the public data is a line (A_j = Y + j·C1). */
function decodeAuxInfo(bytes: Uint8Array): AuxKeyInfo[] {
  return decodeEnc(bytes).map((item) => {
    const f = decodeEnc(item);
    if (f.length !== 9) throw new RangeError('AuxInfo entry has the wrong number of fields');
    const alg = decodeUtf8(f[1]!) as EcAlg;
    if (!EC_ALGS.includes(alg)) throw new RangeError('unknown alg');
    const curve = getCurve(ALG_CURVE[alg]);
    const [Y, C1, A1, A2, A3] = [f[3]!, f[4]!, f[5]!, f[6]!, f[7]!].map((b) => decodePoint(curve, b)) as [Point, Point, Point, Point, Point];
    if (!lineInExponent(Y, C1, 1).equals(A1) || !lineInExponent(Y, C1, 2).equals(A2) || !lineInExponent(Y, C1, 3).equals(A3)) {
      throw new RangeError('AuxInfo public data is not a line');
    }
    const { notAfter } = decodeKeyPolicy(f[8]!);
    return {
      keyId: decodeUtf8(f[0]!),
      alg,
      epoch: decodeU32(f[2]!),
      Y: f[3]!,
      C1: f[4]!,
      A: { 1: f[5]!, 2: f[6]!, 3: f[7]! },
      ...(notAfter !== undefined ? { notAfter } : {}),
    };
  });
}

/** The per-key mask ρ (AX2), bound to the seed, the session and the key. */
function mask(curve: Curve, seed: Uint8Array, sid: Uint8Array, keyId: string): bigint {
  return HS(curve.order, 'aux/mask', seed, sid, keyId);
}

type Phase = 'request' | 'contrib' | 'confirm';

export class AuxRederiveParty extends ProtocolParty<AuxOutput, AuxPersist> {
  private phase: Phase = 'request';
  private attribution = false;
  private info: AuxKeyInfo[] = [];
  private infoBytes: Uint8Array | null = null;
  private epochs: AuxKeyEpoch[] = [];
  private readonly contribs = new Map<PartyId, { c: Uint8Array[]; rhoG: Uint8Array[] }>();

  constructor(private readonly acfg: AuxConfig) {
    super(acfg, AUX_PROTO, R_PREPARED);
  }

  static resume(cfg: AuxConfig, item: { keys: readonly AuxKeyEpoch[]; checkpoint: ConfirmCheckpoint }): AuxRederiveParty {
    const p = new AuxRederiveParty(cfg);
    p.restoreConfirm(item.checkpoint);
    p.phase = 'confirm';
    p.epochs = [...item.keys];
    return p;
  }

  /** EP / P: AuxInfo from our own CURRENT records, in request order. */
  private ownInfo(keyIds: readonly string[], epochs?: readonly number[]): AuxKeyInfo[] {
    const lookup = this.acfg.lookup;
    if (!lookup) throw new RangeError('EP and Partner need a key lookup');
    return keyIds.map((keyId, n) => {
      const s = lookup(keyId);
      if (!s || s.partyId !== this.id) this.abort(0, `unknown key ${keyId}`, null);
      if (epochs && s.epoch !== epochs[n]) this.abort(0, `key ${keyId} is at another epoch (backups differ)`, null);
      return { keyId, alg: s.alg, epoch: s.epoch, Y: s.Y, C1: s.C1, A: s.A, ...(s.notAfter !== undefined ? { notAfter: s.notAfter } : {}) };
    });
  }

  // --- AX1 (EP) --------------------------------------------------------------------------------
  protected begin(): void {
    const keyIds = this.acfg.keyIds;
    if (!keyIds || keyIds.length === 0) throw new RangeError('EP needs key ids');
    this.info = this.ownInfo(keyIds);
    this.infoBytes = encodeAuxInfo(this.info);
    this.attribution = this.acfg.attribution === true;
    const inputs: SessionInputs = {
      tripletId: this.cfg.tripletId,
      proto: AUX_PROTO,
      alg: this.attribution ? ALG_ATTRIBUTION : ALG_PLAIN,
      keyIds: [...keyIds],
      epochs: this.info.map((k) => k.epoch),
      initiator: 1,
      nonce: this.cfg.rng(32),
    };
    this.sid = computeSid(inputs);
    this.epochs = this.info.map((k) => ({ keyId: k.keyId, epoch: k.epoch }));
    const seed = this.cfg.rng(32);
    this.persist({ kind: 'session-open', proto: AUX_PROTO, sid: this.sid });
    this.emit(2, 0, encodeRequest(inputs, enc('to-partner', seed, H('aux/keys', this.infoBytes))));
    this.emit(3, 0, encodeRequest(inputs, enc('to-aux', this.infoBytes)));
    this.contribute(seed);
  }

  // --- AX1 receipt (P, Aux) --------------------------------------------------------------------
  protected onRequest(msg: Envelope): void {
    const { inputs, payload } = decodeRequest(AUX_PROTO, msg, this.cfg.tripletId);
    if (inputs.alg !== ALG_PLAIN && inputs.alg !== ALG_ATTRIBUTION) this.abort(0, 'unknown aux mode', 1);
    this.attribution = inputs.alg === ALG_ATTRIBUTION;
    let f: Uint8Array[];
    try {
      f = decodeEnc(payload);
    } catch {
      this.abort(0, 'malformed aux request', 1);
    }
    this.sid = msg.sid;
    const kind = f[0] ? decodeUtf8(f[0]) : '';
    if (this.id === 2) {
      if (kind !== 'to-partner' || f.length !== 3 || f[1]!.length !== 32) this.abort(0, 'malformed aux request', 1);
      // Precondition §6: EP and P hold the same keys at the same epochs.
      this.info = this.ownInfo(inputs.keyIds, inputs.epochs);
      this.infoBytes = encodeAuxInfo(this.info);
      if (!bytesEqual(H('aux/keys', this.infoBytes), f[2]!)) this.abort(0, 'EP and Partner hold different key data', null);
      this.epochs = this.info.map((k) => ({ keyId: k.keyId, epoch: k.epoch }));
      this.persist({ kind: 'session-open', proto: AUX_PROTO, sid: this.sid });
      this.contribute(f[1]!);
      return;
    }
    // Aux
    if (kind !== 'to-aux' || f.length !== 2) this.abort(0, 'malformed aux request', 1);
    try {
      this.info = decodeAuxInfo(f[1]!);
    } catch (e) {
      this.abort(0, `invalid AuxInfo: ${(e as Error).message}`, 1);
    }
    const matches =
      this.info.length === inputs.keyIds.length &&
      this.info.every((k, n) => k.keyId === inputs.keyIds[n] && k.epoch === inputs.epochs[n]);
    if (!matches) this.abort(0, 'AuxInfo does not match the request', 1);
    this.infoBytes = f[1]!;
    this.epochs = this.info.map((k) => ({ keyId: k.keyId, epoch: k.epoch }));
    this.persist({ kind: 'session-open', proto: AUX_PROTO, sid: this.sid });
    this.phase = 'contrib';
  }

  /** AX2 (EP, P): c_1 = −x_1 + ρ or c_2 = 2·x_2 − ρ per key, to Aux only; then PREPARED. */
  private contribute(seed: Uint8Array): void {
    const c: Uint8Array[] = [];
    const rhoG: Uint8Array[] = [];
    for (const k of this.info) {
      const curve = getCurve(ALG_CURVE[k.alg]);
      const { Fn } = curve;
      const x = this.acfg.lookup!(k.keyId)!.share;
      const rho = mask(curve, seed, this.sid!, k.keyId);
      // Lagrange weights of f(3) from {1, 2}: (−1, 2); the masks ±ρ cancel in c_1 + c_2.
      const cj = this.id === 1 ? Fn.add(Fn.neg(x), rho) : Fn.sub(Fn.mul(2n, x), rho);
      c.push(encodeScalar(curve, cj));
      if (this.attribution) rhoG.push(encodePoint(curve, mulBase(curve, rho)));
    }
    seed.fill(0);
    this.emit(3, R_CONTRIB, enc('contrib', this.infoBytes!, encList(c), encList(rhoG)));
    this.phase = 'confirm';
    this.beginConfirm(this.preparedValue());
  }

  private preparedValue(): Uint8Array {
    return H('aux/prepared', this.sid!, this.infoBytes!);
  }

  protected readyFor(round: number): boolean {
    return round === R_CONTRIB && this.id === 3 && this.phase === 'contrib';
  }

  protected currentRound(): number {
    return { request: 0, contrib: 1, confirm: 2 }[this.phase];
  }

  protected handle(round: number, from: PartyId, kind: string, f: Uint8Array[]): void {
    if (round !== R_CONTRIB || kind !== 'contrib' || f.length !== 4) {
      this.abort(round, `unexpected ${kind} in round ${round}`, from);
    }
    // Aux requires the two AuxInfo (and EP's request) to be byte-identical.
    if (!bytesEqual(f[1]!, this.infoBytes!)) this.abort(R_CONTRIB, 'AuxInfo mismatch', null);
    let c: Uint8Array[], rhoG: Uint8Array[];
    try {
      c = decodeEnc(f[2]!);
      rhoG = decodeEnc(f[3]!);
    } catch {
      this.abort(R_CONTRIB, 'malformed contribution', from);
    }
    if (c.length !== this.info.length || rhoG.length !== (this.attribution ? this.info.length : 0)) {
      this.abort(R_CONTRIB, 'contribution has the wrong length', from);
    }
    this.contribs.set(from, { c: c.map((x) => x.slice()), rhoG });
    if (this.contribs.size === 2) this.derive();
  }

  /** AX3 (Aux): x_3 = c_1 + c_2; x_3·G == A_3 (and the attribution checks); persist PENDING. */
  private derive(): void {
    const from1 = this.contribs.get(1)!;
    const from2 = this.contribs.get(2)!;
    const shares: KeyShare[] = [];
    this.info.forEach((k, n) => {
      const curve = getCurve(ALG_CURVE[k.alg]);
      const { Fn } = curve;
      let c1: bigint, c2: bigint;
      try {
        c1 = decodeScalar(curve, from1.c[n]!);
      } catch {
        this.abort(R_CONTRIB, 'invalid c_1', 1);
      }
      try {
        c2 = decodeScalar(curve, from2.c[n]!);
      } catch {
        this.abort(R_CONTRIB, 'invalid c_2', 2);
      }
      const [Y, C1, A1, A2, A3] = [k.Y, k.C1, k.A[1], k.A[2], k.A[3]].map((b) => decodePoint(curve, b)) as [Point, Point, Point, Point, Point];
      // Public consistency (already checked at decode; restated as the §6 AX3 checks).
      if (!lineInExponent(Y, C1, 3).equals(A3) || !isDegree1InExponent(A1, A2, A3)) this.abort(R_CONTRIB, 'A_3 inconsistent', 1);
      const mulG = (s: bigint): Point => mulBase(curve, s);
      if (this.attribution) {
        let rG1: Point, rG2: Point;
        try {
          rG1 = decodePoint(curve, from1.rhoG[n]!);
        } catch {
          this.abort(R_CONTRIB, 'invalid ρ·G', 1);
        }
        try {
          rG2 = decodePoint(curve, from2.rhoG[n]!);
        } catch {
          this.abort(R_CONTRIB, 'invalid ρ·G', 2);
        }
        if (!mulG(c1).equals(rG1.subtract(A1))) this.abort(R_CONTRIB, `wrong c_1 for key ${k.keyId}`, 1);
        if (!mulG(c2).equals(A2.double().subtract(rG2))) this.abort(R_CONTRIB, `wrong c_2 for key ${k.keyId}`, 2);
      }
      const x3 = Fn.add(c1, c2);
      if (x3 === 0n || !mulBase(curve, x3).equals(A3)) {
        this.abort(R_CONTRIB, `x_3·G != A_3 for key ${k.keyId} (EP or Partner)`, null);
      }
      shares.push({ ...k, partyId: 3, share: x3 });
    });
    this.eraseContribs();
    this.phase = 'confirm';
    for (const share of shares) this.persist({ kind: 'aux-share-pending', sid: this.sid!, share });
    this.beginConfirm(this.preparedValue());
  }

  protected onActivate(): void {
    if (this.id === 3) this.persist({ kind: 'aux-share-activate', sid: this.sid!, keys: this.epochs });
    else this.persist({ kind: 'aux-present', sid: this.sid!, keys: this.epochs });
  }

  protected onComplete(): void {
    this.persist({ kind: 'aux-complete', sid: this.sid!, keys: this.epochs });
    this.setOutput({ sid: this.sid!, keys: this.epochs });
  }

  protected checkpointItem(checkpoint: ConfirmCheckpoint): AuxPersist {
    return { kind: 'aux-checkpoint', sid: this.sid!, keys: this.epochs, checkpoint };
  }

  /** Only the Aux holds PENDING shares in this protocol (EP and Partner keep their CURRENT ones). */
  protected abandonItem(): AuxPersist {
    return { kind: 'session-abandon', proto: this.proto, sid: this.sid!, pending: this.id === 3 ? this.epochs : [] };
  }

  private eraseContribs(): void {
    for (const c of this.contribs.values()) for (const b of c.c) b.fill(0);
    this.contribs.clear();
  }

  protected erase(): void {
    this.eraseContribs();
  }
}

export function createAuxRederiveParty(cfg: AuxConfig): AuxRederiveParty {
  return new AuxRederiveParty(cfg);
}

export function resumeAuxRederiveParty(
  cfg: AuxConfig,
  item: { keys: readonly AuxKeyEpoch[]; checkpoint: ConfirmCheckpoint },
): AuxRederiveParty {
  return AuxRederiveParty.resume(cfg, item);
}
