/**
 * The skeleton both proactive refreshes share, the EC one (refresh.ts) and the RSA one (rsa.ts):
 * a batch of keys moves from epoch e to e + 1 under the signed two-phase commit of session-kit.ts
 * (docs/protocols.md §5, RF0–RF4; I1–I4).
 *
 * Here: the request (RF0: the EP names each key with its epoch and a digest of its public data;
 * every party checks it holds the key at that epoch with the same public data, and no PENDING or
 * PREVIOUS epoch, I3), the epoch moves the batch makes, and the persist items of RF3, RF4, the
 * checkpoint and an abandon. A refresh protocol adds its own rounds between the request and
 * PREPARED (how the new shares are made) and says what its key digest covers.
 */
import { bytesEqual, decodeEnc, encList } from '../crypto/encoding.js';
import type { PartyId } from '../crypto/parties.js';
import { computeSid, type SessionInputs } from './session.js';
import {
  type CommonConfig,
  type ConfirmCheckpoint,
  decodeRequest,
  encodeRequest,
  ProtocolParty,
  type SessionAbandonItem,
  type SessionOpenItem,
} from './session-kit.js';
import type { Envelope } from './types.js';

/** One key's epoch move, as the persist items and the output name it. */
export interface RefreshKeyEpoch {
  readonly keyId: string;
  /** The epoch refreshed from (e). */
  readonly from: number;
  /** The new epoch (e + 1). */
  readonly to: number;
}

export interface RefreshOutput {
  readonly sid: Uint8Array;
  readonly keys: readonly RefreshKeyEpoch[];
}

/** A key as a refresh sees it, from the host's store. */
export interface BatchedKeyState<S> {
  /** The CURRENT epoch's share. */
  readonly current: S;
  /** Epoch of a PENDING share, if any (I3: refused). */
  readonly pendingEpoch?: number | null;
  /** Epoch of a PREVIOUS share still held, if any (I3: refused). */
  readonly previousEpoch?: number | null;
}

export interface BatchedRefreshConfig<St> extends CommonConfig {
  /** The host's key store, read-only: the state of `keyId`, or undefined if unknown. */
  readonly lookup: (keyId: string) => St | undefined;
  /** EP only: the keys to refresh in this batch. */
  readonly keyIds?: readonly string[];
}

export type BatchedRefreshPersist<S> =
  | SessionOpenItem
  | SessionAbandonItem
  /** RF2: store the new share as PENDING(e+1) next to CURRENT(e). */
  | { readonly kind: 'share-pending'; readonly sid: Uint8Array; readonly share: S }
  /** Confirm-phase state for a restart (public data only); replace the previous checkpoint. */
  | {
      readonly kind: 'refresh-checkpoint';
      readonly sid: Uint8Array;
      readonly keys: readonly RefreshKeyEpoch[];
      readonly checkpoint: ConfirmCheckpoint;
    }
  /** RF3: CURRENT = e+1, PREVIOUS = e, for every key of the batch. */
  | { readonly kind: 'epoch-activate'; readonly sid: Uint8Array; readonly keys: readonly RefreshKeyEpoch[] }
  /** RF4: erase PREVIOUS(e) shares, their presignatures and any nonces bound to e. */
  | { readonly kind: 'epoch-erase-previous'; readonly sid: Uint8Array; readonly keys: readonly RefreshKeyEpoch[] };

/** A refresh that a NEVER released drops the PENDING e+1 of every key (EC and RSA alike). */
export function refreshAbandonItem(proto: string, sid: Uint8Array, keys: readonly RefreshKeyEpoch[]): SessionAbandonItem {
  return { kind: 'session-abandon', proto, sid, pending: keys.map((k) => ({ keyId: k.keyId, epoch: k.to })) };
}

/** What the skeleton reads of a share: whose, of which key, at which epoch. */
interface EpochShare {
  readonly keyId: string;
  readonly partyId: PartyId;
  readonly epoch: number;
}

export abstract class BatchedRefreshParty<S extends EpochShare, St extends BatchedKeyState<S>> extends ProtocolParty<
  RefreshOutput,
  BatchedRefreshPersist<S>
> {
  /** The batch's epoch moves, in request order (set by RF0, or by a resume). */
  protected epochs: RefreshKeyEpoch[] = [];

  protected constructor(
    private readonly bcfg: BatchedRefreshConfig<St>,
    proto: string,
    /** The request's `alg`: the one batched form each refresh has. */
    private readonly batchAlg: string,
    preparedRound: number,
  ) {
    super(bcfg, proto, preparedRound);
  }

  /** The digest of a key's public data that the request names (RF0). */
  protected abstract keyDigest(keyId: string, share: S): Uint8Array;
  /** RF0 passed: the batch's key states, in request order. */
  protected abstract takeBatch(states: St[]): void;
  /** The protocol's first round after the request. */
  protected abstract firstRound(): void;

  /** A check of this server's own share beyond the skeleton's (RSA: its pieces are well formed); aborts if it fails. */
  protected checkShare(_keyId: string, _share: S): void {}
  /**
   * RF3, before ACTIVATED: the protocol's secrets that no complaint can need any more are forgotten.
   * Abstract on purpose: each refresh says what it erases, so a new one cannot keep its dealer
   * secrets past activation by forgetting to override a default.
   */
  protected abstract forgetAtActivation(): void;

  /** A resumed party (I4) continues from its checkpoint with the batch's epoch moves. */
  protected restoreBatch(item: { keys: readonly RefreshKeyEpoch[]; checkpoint: ConfirmCheckpoint }): void {
    this.restoreConfirm(item.checkpoint);
    this.epochs = [...item.keys];
  }

  protected begin(): void {
    const keyIds = this.bcfg.keyIds;
    if (!keyIds || keyIds.length === 0) throw new RangeError('EP needs key ids to refresh');
    const states = keyIds.map((k) => {
      const st = this.bcfg.lookup(k);
      if (!st) throw new RangeError(`unknown key ${k}`);
      return st;
    });
    const inputs: SessionInputs = {
      tripletId: this.cfg.tripletId,
      proto: this.proto,
      alg: this.batchAlg,
      keyIds: [...keyIds],
      epochs: states.map((s) => s.current.epoch),
      initiator: 1,
      nonce: this.cfg.rng(32),
    };
    this.sid = computeSid(inputs);
    const digests = keyIds.map((k, n) => this.keyDigest(k, states[n]!.current));
    this.setup(inputs, digests);
    this.persist({ kind: 'session-open', proto: this.proto, sid: this.sid });
    this.emitBoth(0, encodeRequest(inputs, encList(digests)));
    this.firstRound();
  }

  protected onRequest(msg: Envelope): void {
    const { inputs, payload } = decodeRequest(this.proto, msg, this.cfg.tripletId);
    if (inputs.alg !== this.batchAlg) this.abort(0, 'refresh is batched', 1);
    let digests: Uint8Array[];
    try {
      digests = decodeEnc(payload);
    } catch {
      this.abort(0, 'malformed refresh request', 1);
    }
    if (digests.length !== inputs.keyIds.length) this.abort(0, 'one digest per key', 1);
    this.sid = msg.sid;
    this.setup(inputs, digests);
    this.persist({ kind: 'session-open', proto: this.proto, sid: this.sid });
    this.firstRound();
  }

  /** RF0 checks: each key held at CURRENT = e with the same public data; I3: no PENDING / PREVIOUS. */
  private setup(inputs: SessionInputs, digests: readonly Uint8Array[]): void {
    const states = inputs.keyIds.map((keyId, n) => {
      const st = this.bcfg.lookup(keyId);
      const e = inputs.epochs[n]!;
      if (!st) this.abort(0, `unknown key ${keyId}`, 1);
      if (st.current.keyId !== keyId || st.current.partyId !== this.id) this.abort(0, 'key record mismatch', null);
      this.checkShare(keyId, st.current);
      if (st.current.epoch !== e) this.abort(0, `key ${keyId} is not at epoch ${e}`, 1);
      if (st.pendingEpoch != null || st.previousEpoch != null) this.abort(0, `key ${keyId} already has a refresh in flight (I3)`, null);
      if (!bytesEqual(this.keyDigest(keyId, st.current), digests[n]!)) this.abort(0, `key ${keyId} public data differs`, 1);
      if (e >= 0xffffffff) this.abort(0, 'epoch overflow', null);
      return st;
    });
    this.takeBatch(states);
    this.epochs = states.map((s) => ({ keyId: s.current.keyId, from: s.current.epoch, to: s.current.epoch + 1 }));
  }

  protected onActivate(): void {
    this.forgetAtActivation();
    this.persist({ kind: 'epoch-activate', sid: this.sid!, keys: this.epochs });
  }

  protected onComplete(): void {
    this.persist({ kind: 'epoch-erase-previous', sid: this.sid!, keys: this.epochs });
    this.setOutput({ sid: this.sid!, keys: this.epochs });
  }

  protected checkpointItem(checkpoint: ConfirmCheckpoint): BatchedRefreshPersist<S> {
    return { kind: 'refresh-checkpoint', sid: this.sid!, keys: this.epochs, checkpoint };
  }

  protected abandonItem(): BatchedRefreshPersist<S> {
    return refreshAbandonItem(this.proto, this.sid!, this.epochs);
  }
}
