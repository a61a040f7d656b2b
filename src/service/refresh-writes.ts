/**
 * What EC and RSA refresh sessions share in the service (threshold-protocols.md §5): the helper's
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
