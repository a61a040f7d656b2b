/** Store writes of the persist items every state-changing protocol shares (session-kit.ts). */
import type { SessionAbandonItem, SessionOpenItem } from '../protocols/session-kit.js';
import type { KeyWrite } from '../store/key-records.js';

export function sessionItemWrites(item: SessionOpenItem | SessionAbandonItem, sid: string): KeyWrite[] {
  switch (item.kind) {
    case 'session-open':
      return [{ op: 'session-open', sid, proto: item.proto }];
    case 'session-abandon':
      return [...item.pending.map((p): KeyWrite => ({ op: 'pending-discard', keyId: p.keyId, epoch: p.epoch })), { op: 'session-abort', sid, proto: item.proto }];
  }
}
