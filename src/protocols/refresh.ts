/**
 * Proactive refresh with share epochs and a signed two-phase commit (docs/protocols.md §5,
 * RF0–RF4; §11 R3, R4, R5), batched over keys.
 *
 * Per key, party i draws b_i ≠ 0 and deals the zero polynomial z_i(X) = b_i·X (commitment
 * B_i = b_i·G, hash-committed first so the last sender cannot cancel the others, R5). The new
 * share is x′_j = x_j + Σ_i z_i(j); the public data moves by D = Σ B_i: C1′ = C1 + D,
 * A′_l = A_l + l·D, Y unchanged.
 *
 * Rounds (every body `enc(kind, …)`):
 *   0  EP→P,A  request(sid inputs, [enc(keyId, e, H(Y, C1))…])               RF0
 *   1  all     commit   h_i = H("refresh/commit", sid, i, Bs_i)               RF1 (R5)
 *   2  i→j     deal     enc("deal", Bs_i, [z_i(j)…])  (Bs_i broadcast, z private)  RF1
 *   3  all     PREPARED (signed; covers echo_2 of the Bs) | complaint            RF2
 *   4  all     ACTIVATED (signed, relays the third's PREPARED) | reveal          RF3
 *
 * Persist points (the host fsyncs each before sending the step's messages):
 *   share-pending (+ refresh-checkpoint)   before PREPARED                      RF2
 *   epoch-activate (+ checkpoint)          before ACTIVATED: CURRENT=e+1, PREVIOUS=e   RF3
 *   epoch-erase-previous (+ checkpoint)    after ACTIVATED from both: erase e        RF4
 *
 * Invariants: I1 epoch e is erased only after ACTIVATED(e+1) from both peers; I2 a PENDING share
 * is never discarded by this module once PREPARED was sent (R4 is stricter than I2); I3 a key with
 * a PENDING or PREVIOUS epoch is refused; I4 `resumeRefreshParty` re-sends PREPARED / ACTIVATED.
 */
import { decodePoint, decodeScalar, encodePoint, encodeScalar, getCurve, type Curve, type Point } from '../crypto/curves.js';
import { mulBase } from '../crypto/ec-mul.js';
import { bytesEqual, decodeEnc, enc, encList, H, u32be, u8 } from '../crypto/encoding.js';
import { verifyFeldmanShare } from '../crypto/feldman.js';
import { randomNonZeroScalar } from '../crypto/random.js';
import { echoHash } from '../crypto/transcript.js';
import { ALG_CURVE, type KeyPublic, type KeyShare } from './key-share.js';
import {
  type BatchedKeyState,
  type BatchedRefreshConfig,
  type BatchedRefreshPersist,
  BatchedRefreshParty,
  type RefreshKeyEpoch,
} from './batched-refresh.js';
import type { ConfirmCheckpoint } from './session-kit.js';

export { refreshAbandonItem, type RefreshKeyEpoch, type RefreshOutput } from './batched-refresh.js';
import { ProtocolAbort, type PartyId } from './types.js';

export const REFRESH_PROTO = 'refresh';
/** The sid's `alg` input for batched protocols (each key carries its own alg). */
export const BATCH_ALG = 'batch';
const R_COMMIT = 1;
const R_DEAL = 2;
const R_PREPARED = 3;

/** What the host holds of one key when a refresh starts (I3 needs the other epochs too). */
export type RefreshKeyState = BatchedKeyState<KeyShare>;

export type RefreshConfig = BatchedRefreshConfig<RefreshKeyState>;

export type RefreshPersist = BatchedRefreshPersist<KeyShare>;

/** Per-key working state of one session. */
interface KeyWork {
  readonly state: RefreshKeyState;
  readonly curve: Curve;
  /** Our b_i: kept until activation (a complaint may need a REVEAL), then dropped (R3). */
  b: bigint | null;
}

type Phase = 'request' | 'commit' | 'deal' | 'confirm';

/** The digest of (Y, C1) the request names for each key (RF0). */
function keyDigest(keyId: string, s: KeyPublic): Uint8Array {
  return H('refresh/key', keyId, u32be(s.epoch), s.Y, s.C1);
}

export class RefreshParty extends BatchedRefreshParty<KeyShare, RefreshKeyState> {
  private phase: Phase = 'request';
  private work: KeyWork[] = [];
  private myBs: Uint8Array | null = null;
  private readonly commits = new Map<PartyId, Uint8Array>();
  private readonly deals = new Map<PartyId, { Bs: Uint8Array; B: Point[]; z: Uint8Array[] }>();

  constructor(cfg: RefreshConfig) {
    super(cfg, REFRESH_PROTO, BATCH_ALG, R_PREPARED);
  }

  static resume(cfg: RefreshConfig, item: { keys: readonly RefreshKeyEpoch[]; checkpoint: ConfirmCheckpoint }): RefreshParty {
    const p = new RefreshParty(cfg);
    p.restoreBatch(item);
    p.phase = 'confirm';
    return p;
  }

  // --- RF0 (batched-refresh.ts), then RF1 ----------------------------------------------------------
  protected keyDigest(keyId: string, share: KeyShare): Uint8Array {
    return keyDigest(keyId, share);
  }

  protected takeBatch(states: RefreshKeyState[]): void {
    this.work = states.map((state) => ({ state, curve: getCurve(ALG_CURVE[state.current.alg]), b: null }));
  }

  protected firstRound(): void {
    this.round1();
  }

  /** RF1: draw b_i per key and hash-commit to the list of B_i (R5). */
  private round1(): void {
    const Bs: Uint8Array[] = [];
    for (const w of this.work) {
      w.b = randomNonZeroScalar(w.curve, this.cfg.rng);
      Bs.push(encodePoint(w.curve, mulBase(w.curve, w.b)));
    }
    this.myBs = encList(Bs);
    this.emitBoth(R_COMMIT, enc('commit', this.commitHash(this.id, this.myBs)));
    this.phase = 'commit';
  }

  private commitHash(i: PartyId, Bs: Uint8Array): Uint8Array {
    return H('refresh/commit', this.sid!, u8(i), Bs);
  }

  protected readyFor(round: number): boolean {
    return (round === R_COMMIT && this.phase === 'commit') || (round === R_DEAL && this.phase === 'deal');
  }

  protected currentRound(): number {
    return { request: 0, commit: 1, deal: 2, confirm: 3 }[this.phase];
  }

  protected handle(round: number, from: PartyId, kind: string, f: Uint8Array[]): void {
    if (round === R_COMMIT && kind === 'commit') return this.onCommit(from, f);
    if (round === R_DEAL && kind === 'deal') return this.onDeal(from, f);
    this.fail(new ProtocolAbort(REFRESH_PROTO, round, `unexpected ${kind} in round ${round}`, from));
  }

  /** After both commitments: reveal B_i to both and send z_i(j) = j·b_i privately. */
  private onCommit(from: PartyId, f: Uint8Array[]): void {
    if (f.length !== 2 || f[1]!.length !== 32) this.abort(R_COMMIT, 'malformed commit', from);
    this.commits.set(from, f[1]!);
    if (this.commits.size < 2) return;
    this.phase = 'deal';
    for (const p of this.peers) this.emit(p, R_DEAL, enc('deal', this.myBs!, this.dealtTo(p)));
  }

  /** z_i(j) = j·b_i for every key, encoded. */
  private dealtTo(j: PartyId): Uint8Array {
    return encList(this.work.map((w) => encodeScalar(w.curve, w.curve.Fn.mul(w.b!, BigInt(j)))));
  }

  /** RF2 receipt: B list matches its commitment and decodes; z_i(j)·G == j·B_i, else complaint. */
  private onDeal(from: PartyId, f: Uint8Array[]): void {
    if (f.length !== 3) this.abort(R_DEAL, 'malformed deal', from);
    const [, Bs, zs] = f as [Uint8Array, Uint8Array, Uint8Array];
    if (!bytesEqual(this.commitHash(from, Bs), this.commits.get(from)!)) this.abort(R_DEAL, 'B list does not match its commitment', from);
    let B: Point[];
    try {
      const list = decodeEnc(Bs);
      if (list.length !== this.work.length) throw new Error('count');
      B = list.map((b, n) => decodePoint(this.work[n]!.curve, b)); // rejects B_i = O
    } catch {
      this.abort(R_DEAL, 'invalid B list', from);
    }
    let z: Uint8Array[];
    try {
      z = decodeEnc(zs);
    } catch {
      z = [];
    }
    this.deals.set(from, { Bs, B, z: z.map((x) => x.slice()) });
    if (this.deals.size < 2) return;
    for (const dealer of this.peers) {
      const d = this.deals.get(dealer)!;
      if (!this.zIsValid(d.B, d.z, this.id)) {
        this.complainAbout(dealer);
        return this.eraseReceived();
      }
    }
    this.computeNewShares();
  }

  /** Feldman for a zero polynomial: z·G == at·B and z ≠ 0, for every key. */
  private zIsValid(B: readonly Point[], z: readonly Uint8Array[], at: PartyId): boolean {
    if (z.length !== this.work.length) return false;
    return this.work.every((w, n) => {
      try {
        const s = decodeScalar(w.curve, z[n]!, true);
        return verifyFeldmanShare(w.curve, { C0: w.curve.Point.ZERO, C1: B[n]! }, at, s);
      } catch {
        return false;
      }
    });
  }

  /** RF2: D, x′_j, C1′, A′; checks; persist PENDING(e+1); PREPARED; erase the update (R3). */
  private computeNewShares(): void {
    const Bs = { [this.id]: this.myBs!, ...Object.fromEntries([...this.deals].map(([p, d]) => [p, d.Bs])) } as Record<PartyId, Uint8Array>;
    const echo = echoHash(REFRESH_PROTO, this.sid!, R_DEAL, Bs);
    const pendings: KeyShare[] = [];
    const publics: Uint8Array[] = [];
    this.work.forEach((w, n) => {
      const { curve } = w;
      const { Fn } = curve;
      const cur = w.state.current;
      let D = mulBase(curve, w.b!);
      let x = Fn.add(cur.share, Fn.mul(w.b!, BigInt(this.id))); // own z_i(i)
      for (const [, d] of this.deals) {
        D = D.add(d.B[n]!);
        x = Fn.add(x, decodeScalar(curve, d.z[n]!, true));
      }
      if (D.is0()) this.abort(R_DEAL, `update of key ${cur.keyId} is zero (D = O, R5)`, null);
      const Y = decodePoint(curve, cur.Y);
      const C1n = decodePoint(curve, cur.C1).add(D);
      const A = {} as Record<PartyId, Uint8Array>;
      const Ap = {} as Record<PartyId, Point>;
      for (const l of [1, 2, 3] as const) {
        Ap[l] = decodePoint(curve, cur.A[l]).add(D.multiplyUnsafe(BigInt(l)));
        if (Ap[l].is0() || C1n.is0()) this.abort(R_DEAL, 'degenerate new public data', null);
        A[l] = encodePoint(curve, Ap[l]);
      }
      if (x === 0n || !mulBase(curve, x).equals(Ap[this.id])) this.abort(R_DEAL, 'new share does not match A′', null);
      if (!Ap[1].double().subtract(Ap[2]).equals(Y)) this.abort(R_DEAL, 'new public data does not open to Y', null);
      const next: KeyShare = { ...cur, epoch: cur.epoch + 1, C1: encodePoint(curve, C1n), A, share: x };
      pendings.push(next);
      publics.push(enc(cur.keyId, u32be(next.epoch), next.C1, A[1], A[2], A[3]));
    });
    this.eraseReceived(); // R3: the z_i(j) are gone; b_i stays until activation (REVEAL)
    this.phase = 'confirm';
    for (const share of pendings) this.persist({ kind: 'share-pending', sid: this.sid!, share });
    this.beginConfirm(H('refresh/prepared', this.sid!, encList(publics), echo));
  }

  protected override revealFor(complainer: PartyId): Uint8Array | null {
    return this.work.every((w) => w.b !== null) ? this.dealtTo(complainer) : null;
  }

  protected override revealIsValid(dealer: PartyId, complainer: PartyId, bytes: Uint8Array): boolean {
    const d = this.deals.get(dealer);
    if (!d) return false;
    try {
      return this.zIsValid(d.B, decodeEnc(bytes), complainer);
    } catch {
      return false;
    }
  }

  /** RF3: no complaint can follow; the dealer forgets b_i (R3). */
  protected override forgetAtActivation(): void {
    for (const w of this.work) w.b = null;
  }

  private eraseReceived(): void {
    for (const d of this.deals.values()) for (const z of d.z) z.fill(0);
    for (const d of this.deals.values()) d.z.length = 0;
  }

  protected erase(): void {
    this.eraseReceived();
    for (const w of this.work) w.b = null;
  }
}

/** Start a refresh party: EP with `keyIds` (it initiates in `start()`), P and A without. */
export function createRefreshParty(cfg: RefreshConfig): RefreshParty {
  return new RefreshParty(cfg);
}

/**
 * Resume after a restart from the last `refresh-checkpoint` item (I4): `start()` re-sends PREPARED
 * (and ACTIVATED once active) asking the peers to answer; the party then continues to RF3 / RF4.
 */
export function resumeRefreshParty(
  cfg: RefreshConfig,
  item: { keys: readonly RefreshKeyEpoch[]; checkpoint: ConfirmCheckpoint },
): RefreshParty {
  return RefreshParty.resume(cfg, item);
}
