/**
 * Distributed key generation for every EcAlg (docs/protocols.md §2, K0–K5; §11 R4, R6).
 *
 * The FROST KeyGen of noble (`S.DKG.round1/2/3`, Pedersen + Feldman + proof of possession) with
 * this project's glue: a hash-commit round (no dealer picks its commitment after seeing the
 * others'), echoes, sid binding, complaints with REVEAL and blame, and the signed PREPARED /
 * ACTIVATED two-phase commit.
 *
 * Rounds (party i, peers j, k; every body is `enc(kind, …)`):
 *   0  EP→P,A  request(sid inputs, enc(policy))                     K0
 *   1  all     commit   h_i = H("dkg/commit", sid, i, pkgBody_i)    K1
 *   2  all     pkg      pkgBody_i = enc("pkg", id, enc(C_i0, C_i1), PoK)   K2
 *   3  i→j     share    enc("share", f_i(j), echo_2)  (private)     K3
 *   4  all     PREPARED (signed)  | complaint enc("complaint", j)   K5 / complaints
 *   5  all     ACTIVATED (signed) | reveal enc("reveal", i, f_j(i))
 */
import { decodePoint, decodeScalar, encodePoint, getCurve, type Curve, type Point } from '../crypto/curves.js';
import { mulBase } from '../crypto/ec-mul.js';
import { bytesEqual, decodeEnc, enc, encList, fromHex, H, toHex, u8 } from '../crypto/encoding.js';
import { verifyFeldmanShare, type FeldmanCommitment } from '../crypto/feldman.js';
import { nobleRng } from '../crypto/random.js';
import { lineInExponent } from '../crypto/shamir.js';
import { echoHash } from '../crypto/transcript.js';
import { dkgSuite, type FrostSuite } from './dkg-suites.js';
import { decodeKeyPolicy } from './key-policy.js';
import { ALG_CURVE, EC_ALGS, type EcAlg, type KeyShare } from './key-share.js';
import { computeSid, type SessionInputs } from './session.js';
import {
  decodeRequest,
  encodeRequest,
  ProtocolParty,
  type CommonConfig,
  type ConfirmCheckpoint,
  type SessionAbandonItem,
  type SessionOpenItem,
} from './session-kit.js';
import { ProtocolAbort, type Envelope, type PartyId } from './types.js';

export const DKG_PROTO = 'dkg';
/** DKG keys start at epoch 0; refresh moves them to 1, 2, … */
export const DKG_EPOCH = 0;
const R_COMMIT = 1;
const R_PKG = 2;
const R_SHARE = 3;
const R_PREPARED = 4; // also COMPLAINT (ACTIVATED / REVEAL are round 5)

/** What EP asks for in K0; P and A check it against their policy. */
export interface DkgRequest {
  readonly keyId: string;
  readonly alg: EcAlg;
  /** Opaque policy data the host authorizes (bound into the sid transcript via the request). */
  readonly policy: Uint8Array;
}

export interface DkgConfig extends CommonConfig {
  /** EP only: the key to generate. */
  readonly request?: DkgRequest;
  /** P and A: may this DKG run? (EP's own request is authorized by its caller.) */
  readonly authorize: (req: DkgRequest, sid: Uint8Array) => boolean;
}

/** Durable writes the host performs (fsync'd) before sending the step's messages. */
export type DkgPersist =
  | SessionOpenItem
  | SessionAbandonItem
  /** K5: the new key record in state PENDING (deleted by the host after the DKG TTL if never ACTIVE). */
  | { readonly kind: 'dkg-key-pending'; readonly sid: Uint8Array; readonly share: KeyShare }
  /** Confirm-phase state to resume from after a restart (public data only). */
  | { readonly kind: 'dkg-checkpoint'; readonly sid: Uint8Array; readonly keyId: string; readonly checkpoint: ConfirmCheckpoint }
  /** Equal signed PREPARED from both peers: the record becomes ACTIVE. */
  | { readonly kind: 'dkg-key-active'; readonly sid: Uint8Array; readonly keyId: string }
  /** ACTIVATED from both peers: EP may answer the client. */
  | { readonly kind: 'dkg-complete'; readonly sid: Uint8Array; readonly keyId: string };

interface PkgIn {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly pub: any; // noble DKG_Round1
  readonly body: Uint8Array;
  readonly C: FeldmanCommitment;
}

type Phase = 'request' | 'commit' | 'pkg' | 'share' | 'confirm';

/** One party of one DKG session. Create with `createDkgParty` or `resumeDkgParty`. */
export class DkgParty extends ProtocolParty<KeyShare, DkgPersist> {
  private phase: Phase = 'request';
  private alg: EcAlg | null = null;
  private keyId = '';
  private curve: Curve | null = null;
  private suite: FrostSuite | null = null;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  private st: any = null; // noble DKG_Secret (holds our polynomial)
  private myPkgBody: Uint8Array | null = null;
  private readonly commits = new Map<PartyId, Uint8Array>();
  private readonly pkgs = new Map<PartyId, PkgIn>();
  private readonly shares = new Map<PartyId, Uint8Array>();
  private echo2: Uint8Array | null = null;
  /** Our round-2 output f_i(j) per recipient, kept only until no complaint can come (REVEAL). */
  private dealt: Map<PartyId, Uint8Array> | null = null;
  private result: KeyShare | null = null;
  /** The request's policy bytes: bound into PREPARED, so EP cannot show P and A different policies. */
  private policy: Uint8Array | null = null;
  /** The policy's notAfter, stored with the share. */
  private notAfter: number | undefined;

  constructor(private readonly dkg: DkgConfig) {
    super(dkg, DKG_PROTO, R_PREPARED);
  }

  /** Resume after a restart from the checkpoint and the PENDING/ACTIVE record (§5 I4 style). */
  static resume(cfg: DkgConfig, checkpoint: ConfirmCheckpoint, share: KeyShare): DkgParty {
    const p = new DkgParty(cfg);
    p.restoreConfirm(checkpoint);
    p.phase = 'confirm';
    p.result = share;
    p.keyId = share.keyId;
    p.alg = share.alg;
    return p;
  }

  /** The public key of this session once the shares are checked (null before). */
  get keyShare(): KeyShare | null {
    return this.result;
  }

  // --- K0 --------------------------------------------------------------------------------------
  protected begin(): void {
    const req = this.dkg.request;
    if (!req) throw new RangeError('EP needs a DKG request');
    if (!EC_ALGS.includes(req.alg)) throw new RangeError(`unknown alg ${String(req.alg)}`);
    const inputs: SessionInputs = {
      tripletId: this.cfg.tripletId,
      proto: DKG_PROTO,
      alg: req.alg,
      keyIds: [req.keyId],
      epochs: [DKG_EPOCH],
      initiator: 1,
      nonce: this.cfg.rng(32),
    };
    this.sid = computeSid(inputs);
    this.setup(req);
    this.persist({ kind: 'session-open', proto: DKG_PROTO, sid: this.sid });
    this.emitBoth(0, encodeRequest(inputs, enc(req.policy)));
    this.round1();
  }

  protected onRequest(msg: Envelope): void {
    const { inputs, payload } = decodeRequest(DKG_PROTO, msg, this.cfg.tripletId);
    const alg = inputs.alg as EcAlg;
    if (!EC_ALGS.includes(alg)) this.abort(0, 'unknown alg', 1);
    if (inputs.keyIds.length !== 1 || inputs.epochs[0] !== DKG_EPOCH) this.abort(0, 'DKG is for one key at epoch 0', 1);
    let policy: Uint8Array;
    try {
      const f = decodeEnc(payload);
      if (f.length !== 1) throw new Error('fields');
      policy = f[0]!;
    } catch {
      this.abort(0, 'malformed DKG request', 1);
    }
    const req: DkgRequest = { keyId: inputs.keyIds[0]!, alg, policy };
    if (!this.dkg.authorize(req, msg.sid)) this.abort(0, 'DKG not authorized', 1);
    this.sid = msg.sid;
    this.setup(req);
    this.persist({ kind: 'session-open', proto: DKG_PROTO, sid: this.sid });
    this.round1();
  }

  private setup(req: DkgRequest): void {
    try {
      this.notAfter = decodeKeyPolicy(req.policy).notAfter;
    } catch (e) {
      this.abort(0, `invalid-request: ${(e as Error).message}`, 1);
    }
    this.alg = req.alg;
    this.keyId = req.keyId;
    this.policy = req.policy;
    this.curve = getCurve(ALG_CURVE[req.alg]);
    this.suite = dkgSuite(req.alg);
  }

  /** K1: draw our polynomial (noble round1 with the injected rng) and commit to its package. */
  private round1(): void {
    const S = this.suite!;
    const r1 = S.DKG.round1(S.Identifier.fromNumber(this.id), { min: 2, max: 3 }, undefined, nobleRng(this.cfg.rng));
    this.st = r1.secret;
    this.myPkgBody = enc(
      'pkg',
      fromHex(r1.public.identifier),
      encList(r1.public.commitment as Uint8Array[]),
      r1.public.proofOfKnowledge as Uint8Array,
    );
    this.pkgs.set(this.id, { pub: r1.public, body: this.myPkgBody, C: this.commitmentOf(r1.public.commitment as Uint8Array[]) });
    this.emitBoth(R_COMMIT, enc('commit', this.commitHash(this.id, this.myPkgBody)));
    this.phase = 'commit';
  }

  private commitHash(i: PartyId, pkgBody: Uint8Array): Uint8Array {
    return H('dkg/commit', this.sid!, this.keyId, u8(i), pkgBody);
  }

  private commitmentOf(c: readonly Uint8Array[]): FeldmanCommitment {
    return { C0: decodePoint(this.curve!, c[0]!), C1: decodePoint(this.curve!, c[1]!) };
  }

  // --- message handling ------------------------------------------------------------------------
  protected readyFor(round: number): boolean {
    switch (round) {
      case R_COMMIT:
        return this.phase === 'commit';
      case R_PKG:
        return this.phase === 'pkg';
      case R_SHARE:
        return this.phase === 'share';
      default:
        return false;
    }
  }

  protected currentRound(): number {
    return { request: 0, commit: 1, pkg: 2, share: 3, confirm: 4 }[this.phase];
  }

  protected handle(round: number, from: PartyId, kind: string, f: Uint8Array[]): void {
    if (round === R_COMMIT && kind === 'commit') return this.onCommit(from, f);
    if (round === R_PKG && kind === 'pkg') return this.onPkg(from, f);
    if (round === R_SHARE && kind === 'share') return this.onShare(from, f);
    this.fail(new ProtocolAbort(DKG_PROTO, round, `unexpected ${kind} in round ${round}`, from));
  }

  /** K1 receipt: h_j, 32 bytes. After both: K2, send our package. */
  private onCommit(from: PartyId, f: Uint8Array[]): void {
    if (f.length !== 2 || f[1]!.length !== 32) this.abort(R_COMMIT, 'malformed commit', from);
    this.commits.set(from, f[1]!);
    if (this.commits.size < 2) return;
    this.phase = 'pkg';
    this.emitBoth(R_PKG, this.myPkgBody!);
  }

  /** K2 receipt: identifier, hash-commit, exactly 2 strictly decoded commitments, PoK length. */
  private onPkg(from: PartyId, f: Uint8Array[]): void {
    const S = this.suite!;
    const curve = this.curve!;
    const body = enc(...f);
    if (!bytesEqual(this.commitHash(from, body), this.commits.get(from)!)) {
      this.abort(R_PKG, 'package does not match its hash-commit', from);
    }
    if (f.length !== 4) this.abort(R_PKG, 'malformed package', from);
    const [, idBytes, commitmentsRaw, pok] = f as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    if (toHex(idBytes) !== S.Identifier.fromNumber(from)) this.abort(R_PKG, 'package identifier is not the sender', from);
    let C: FeldmanCommitment;
    let commitment: Uint8Array[];
    try {
      commitment = decodeEnc(commitmentsRaw);
      if (commitment.length !== 2) throw new Error('count');
      C = this.commitmentOf(commitment);
    } catch {
      this.abort(R_PKG, 'package commitments invalid', from);
    }
    if (pok.length !== curve.pointBytes + curve.scalarBytes) this.abort(R_PKG, 'proof of knowledge has the wrong length', from);
    this.pkgs.set(from, {
      pub: { identifier: toHex(idBytes), commitment: commitment.map((c) => c.slice()), proofOfKnowledge: pok.slice() },
      body,
      C,
    });
    if (this.pkgs.size < 3) return;
    this.round2();
  }

  /** K3: noble validates both PoKs and evaluates our polynomial at j, k; send privately with echo_2. */
  private round2(): void {
    const S = this.suite!;
    const [j, k] = this.peers;
    let out: Record<string, { identifier: string; signingShare: Uint8Array }>;
    try {
      out = S.DKG.round2(this.st, [this.pkgs.get(j)!.pub, this.pkgs.get(k)!.pub]);
    } catch (e) {
      // noble does not say whose proof failed: j or k (§2 K3).
      this.abort(R_PKG, `round2 rejected a package (dealer ${j} or ${k}): ${(e as Error).message}`, null);
    }
    this.echo2 = echoHash(DKG_PROTO, this.sid!, R_PKG, {
      1: this.pkgs.get(1)!.body,
      2: this.pkgs.get(2)!.body,
      3: this.pkgs.get(3)!.body,
    });
    this.dealt = new Map();
    for (const p of this.peers) {
      const share = out[S.Identifier.fromNumber(p)]?.signingShare;
      if (!share) this.abort(R_PKG, 'noble round2 produced no share', null);
      this.dealt.set(p, share);
      this.emit(p, R_SHARE, enc('share', share, this.echo2));
    }
    this.phase = 'share';
  }

  /** K4 receipt: echo first (equivocation), then our own Feldman check of each dealer's share. */
  private onShare(from: PartyId, f: Uint8Array[]): void {
    if (f.length !== 3) this.abort(R_SHARE, 'malformed share message', from);
    if (!bytesEqual(f[2]!, this.echo2!)) this.abort(R_SHARE, 'equivocation', null);
    this.shares.set(from, f[1]!.slice());
    if (this.shares.size < 2) return;
    for (const dealer of this.peers) {
      if (!this.shareIsValid(dealer, this.shares.get(dealer)!)) {
        this.complainAbout(dealer);
        return this.eraseSecrets();
      }
    }
    this.round3();
  }

  /** f_dealer(at)·G == C_dealer0 + at·C_dealer1 for a received or revealed share. */
  private shareIsValid(dealer: PartyId, bytes: Uint8Array, at: PartyId = this.id): boolean {
    let s: bigint;
    try {
      s = decodeScalar(this.curve!, bytes);
    } catch {
      return false;
    }
    return verifyFeldmanShare(this.curve!, this.pkgs.get(dealer)!.C, at, s);
  }

  /** K4 (cont.) and K5: noble round3, recompute the public data, persist PENDING, send PREPARED. */
  private round3(): void {
    const S = this.suite!;
    const curve = this.curve!;
    const [j, k] = this.peers;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    let key: any;
    try {
      key = S.DKG.round3(
        this.st,
        [this.pkgs.get(j)!.pub, this.pkgs.get(k)!.pub],
        [
          { identifier: S.Identifier.fromNumber(j), signingShare: this.shares.get(j)! },
          { identifier: S.Identifier.fromNumber(k), signingShare: this.shares.get(k)! },
        ],
      );
    } catch (e) {
      this.abort(R_SHARE, `round3 failed: ${(e as Error).message}`, null);
    } finally {
      S.DKG.clean(this.st);
      this.st = null;
      for (const s of this.shares.values()) s.fill(0);
    }
    let Y: Point, C1: Point, x: bigint;
    try {
      Y = decodePoint(curve, key.public.commitments[0]);
      C1 = decodePoint(curve, key.public.commitments[1]);
      x = decodeScalar(curve, key.secret.signingShare, true);
    } catch {
      this.abort(R_SHARE, 'DKG output is degenerate (identity or zero)', null);
    } finally {
      (key.secret.signingShare as Uint8Array).fill(0);
    }
    // Y must be the sum of the dealers' constant terms; A_j = Y + j·C1 at every party.
    let sumC0 = this.pkgs.get(1)!.C.C0;
    for (const p of [2, 3] as const) sumC0 = sumC0.add(this.pkgs.get(p)!.C.C0);
    if (!sumC0.equals(Y)) this.abort(R_SHARE, 'group key is not the sum of the dealers\u2019 keys', null);
    const A = {} as Record<PartyId, Uint8Array>;
    for (const p of [1, 2, 3] as const) {
      const Ap = lineInExponent(Y, C1, p);
      const nobleA = key.public.verifyingShares[S.Identifier.fromNumber(p)] as Uint8Array | undefined;
      if (!nobleA || !bytesEqual(encodePoint(curve, Ap), nobleA)) this.abort(R_SHARE, 'verifying share mismatch', null);
      A[p] = encodePoint(curve, Ap);
    }
    if (!mulBase(curve, x).equals(decodePoint(curve, A[this.id]))) this.abort(R_SHARE, 'own share does not match A_i', null);
    const share: KeyShare = {
      keyId: this.keyId,
      alg: this.alg!,
      epoch: DKG_EPOCH,
      Y: encodePoint(curve, Y),
      C1: encodePoint(curve, C1),
      A,
      partyId: this.id,
      share: x,
      ...(this.notAfter !== undefined ? { notAfter: this.notAfter } : {}),
    };
    this.result = share;
    const prepared = H('dkg/prepared', this.sid!, share.alg, share.keyId, this.policy!, share.Y, share.C1, A[1], A[2], A[3], this.echo2!);
    this.phase = 'confirm';
    this.persist({ kind: 'dkg-key-pending', sid: this.sid!, share });
    this.beginConfirm(prepared);
  }

  protected override revealFor(complainer: PartyId): Uint8Array | null {
    return this.dealt?.get(complainer) ?? null;
  }

  protected override revealIsValid(dealer: PartyId, complainer: PartyId, bytes: Uint8Array): boolean {
    return this.shareIsValid(dealer, bytes, complainer);
  }

  // --- confirm hooks ---------------------------------------------------------------------------
  protected onActivate(): void {
    // No complaint can follow an activation: the REVEAL material goes.
    for (const s of this.dealt?.values() ?? []) s.fill(0);
    this.dealt = null;
    this.persist({ kind: 'dkg-key-active', sid: this.sid!, keyId: this.keyId });
  }

  protected onComplete(): void {
    this.persist({ kind: 'dkg-complete', sid: this.sid!, keyId: this.keyId });
    this.setOutput(this.result!);
  }

  protected checkpointItem(checkpoint: ConfirmCheckpoint): DkgPersist {
    return { kind: 'dkg-checkpoint', sid: this.sid!, keyId: this.keyId, checkpoint };
  }

  protected abandonItem(): DkgPersist {
    return { kind: 'session-abandon', proto: this.proto, sid: this.sid!, pending: [{ keyId: this.keyId, epoch: DKG_EPOCH }] };
  }

  protected erase(): void {
    this.eraseSecrets();
    for (const s of this.dealt?.values() ?? []) s.fill(0);
    this.dealt = null;
    this.result = null;
  }

  private eraseSecrets(): void {
    if (this.st && this.suite) this.suite.DKG.clean(this.st);
    this.st = null;
    for (const s of this.shares.values()) s.fill(0);
    // `dealt` stays while a REVEAL may still be owed (cleared on activation and in erase()).
  }
}

/** Start a DKG party: EP with `request` (it initiates in `start()`), P and A without. */
export function createDkgParty(cfg: DkgConfig): DkgParty {
  return new DkgParty(cfg);
}

/** Resume a party after a restart: `start()` re-sends PREPARED / ACTIVATED and asks peers to answer. */
export function resumeDkgParty(cfg: DkgConfig, checkpoint: ConfirmCheckpoint, share: KeyShare): DkgParty {
  return DkgParty.resume(cfg, checkpoint, share);
}
