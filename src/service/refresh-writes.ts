/**
 * The store writes of a refresh session (threshold-protocols.md §5, RF2–RF4), for any key type:
 * EC and RSA refreshes emit the same persist items and differ only in the form of the pending share.
 */
import type { RefreshKeyEpoch } from '../protocols/refresh.js';
import type { ConfirmCheckpoint, SessionAbandonItem, SessionOpenItem } from '../protocols/session-kit.js';
import type { KeyWrite } from '../store/key-records.js';
import { sessionItemWrites } from './session-writes.js';
import { toJsonWithBytes } from './share-codec.js';

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
