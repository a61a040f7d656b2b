/**
 * What EC and RSA refresh sessions share in the service (docs/protocols.md §5): the helper's
 * check of the request's epochs, and the store writes (RF2–RF4: both emit the same persist items
 * and differ only in the form of the pending share).
 */
import { EkmError } from '../errors.js';
import type { RefreshKeyEpoch } from '../protocols/refresh.js';
import type { ConfirmCheckpoint, SessionAbandonItem, SessionOpenItem } from '../protocols/session-kit.js';
import type { KeyWrite } from '../store/key-records.js';
import { sessionItemWrites } from './session-writes.js';
import { toJsonWithBytes } from './share-codec.js';

/**
 * Helper side of a refresh request: a key this server does not hold at the named epoch (the Aux of
 * a triplet that never used it) is refused with a code the EP acts on (AuxShares.withAuxShares, keys/aux-shares.ts),
 * rather than aborted inside the protocol. `family` names the key type in the message ('key', 'RSA key').
 */
export function requireRefreshEpochs(
  inputs: { readonly keyIds: readonly string[]; readonly epochs: readonly number[] },
  states: ReadonlyMap<string, { readonly current: { readonly epoch: number } }>,
  family: string,
): void {
  inputs.keyIds.forEach((k, i) => {
    if (states.get(k)?.current.epoch !== inputs.epochs[i]) throw new EkmError('EKM_KEY_EPOCH', `this server holds no share of ${family} ${k} at epoch ${inputs.epochs[i]}`);
  });
}

/** A key's state as a refresh sees it: its CURRENT share, and the epochs of any PENDING or PREVIOUS one (I3). */
export interface RefreshStateOf<S> {
  readonly current: S;
  readonly pendingEpoch: number | null;
  readonly previousEpoch: number | null;
}

/**
 * The refresh states of `keyIds` (keys `load` knows nothing of are left out) once a refresh that
 * just finished elsewhere has finished here too: the last ACTIVATED of the previous refresh can
 * still be in flight when the next request arrives, and I3 refuses a key that still holds
 * PREVIOUS. Waits up to `waitMs`; I3 decides after that.
 */
export async function settledRefreshStates<S>(
  keyIds: readonly string[],
  load: (keyId: string) => Promise<RefreshStateOf<S> | undefined>,
  waitMs: number,
): Promise<Map<string, RefreshStateOf<S>>> {
  const deadline = performance.now() + waitMs;
  for (;;) {
    const states = new Map<string, RefreshStateOf<S>>();
    for (const keyId of keyIds) {
      const state = await load(keyId);
      if (state) states.set(keyId, state);
    }
    const busy = [...states.values()].some((st) => st.previousEpoch != null || st.pendingEpoch != null);
    if (!busy || performance.now() >= deadline) return states;
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** A key's refresh state from its stored shares (of either scheme), or undefined without a CURRENT one. */
export function refreshStateOf<R extends { readonly status: string; readonly epoch: number }, S>(
  shares: readonly R[],
  decode: (record: R) => S,
): RefreshStateOf<S> | undefined {
  const current = shares.find((s) => s.status === 'current');
  if (!current) return undefined;
  return {
    current: decode(current),
    pendingEpoch: shares.find((s) => s.status === 'pending')?.epoch ?? null,
    previousEpoch: shares.find((s) => s.status === 'previous')?.epoch ?? null,
  };
}

export type RefreshPersistOf<S> =
  | SessionOpenItem
  | SessionAbandonItem
  | { readonly kind: 'share-pending'; readonly sid: Uint8Array; readonly share: S }
  | { readonly kind: 'refresh-checkpoint'; readonly sid: Uint8Array; readonly keys: readonly RefreshKeyEpoch[]; readonly checkpoint: ConfirmCheckpoint }
  | { readonly kind: 'epoch-activate'; readonly sid: Uint8Array; readonly keys: readonly RefreshKeyEpoch[] }
  | { readonly kind: 'epoch-erase-previous'; readonly sid: Uint8Array; readonly keys: readonly RefreshKeyEpoch[] };

export function refreshWritesFor<S>(proto: string, pendingShare: (share: S) => KeyWrite): (items: readonly RefreshPersistOf<S>[], sid: string) => KeyWrite[] {
  return (items, sid) =>
    items.flatMap((it): KeyWrite[] => {
      switch (it.kind) {
        case 'session-open':
        case 'session-abandon':
          return sessionItemWrites(it, sid);
        case 'share-pending':
          return [pendingShare(it.share)];
        case 'refresh-checkpoint':
          return [{ op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto, keys: it.keys, checkpoint: it.checkpoint }) }];
        case 'epoch-activate':
          return it.keys.map((k) => ({ op: 'epoch-activate', keyId: k.keyId, from: k.from, to: k.to }));
        case 'epoch-erase-previous':
          return [...it.keys.map((k): KeyWrite => ({ op: 'epoch-erase', keyId: k.keyId, epoch: k.from })), { op: 'session-done', sid }];
      }
    });
}
