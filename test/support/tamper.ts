/**
 * Malicious-party mutations (docs/protocols.md §13): applied by a `runLocal` interceptor to
 * one message a corrupt party sends, identified by its index in an honest run's transcript.
 */
import type { Envelope, PartyId } from '../../src/protocols/types.js';
import type { Interceptor } from './protocol-harness.js';

export type Mutation =
  | 'flip' // flip one bit of the body
  | 'drop'
  | 'duplicate'
  | 'reorder' // deliver after the next message
  | 'replay' // the same-position envelope of an earlier session (its own sid)
  | 'old-body' // valid-but-wrong: the earlier session's body under this sid (equivocation on a broadcast)
  | 'wrong-from' // claims to come from the other honest party
  | 'wrong-sid';

export const MUTATIONS: readonly Mutation[] = [
  'flip',
  'drop',
  'duplicate',
  'reorder',
  'replay',
  'old-body',
  'wrong-from',
  'wrong-sid',
];

/**
 * Mutations that must leave every honest party without output when applied before PREPARED.
 * (A duplicate is refused too, but one that arrives after its receiver already sent PREPARED is
 * only logged, and a reordered message is buffered: both may still end in the correct key.)
 */
export const FATAL_BEFORE_CONFIRM: ReadonlySet<Mutation> = new Set(['flip', 'drop', 'replay', 'old-body', 'wrong-from', 'wrong-sid']);

function flipBit(body: Uint8Array, salt: number): Uint8Array {
  const out = body.slice();
  // Skip the LP header of the kind field (4 + 4 + kind) so the flip lands in a value most times.
  const at = out.length > 24 ? 16 + ((salt * 7919) % (out.length - 16)) : (salt * 31) % out.length;
  out[at]! ^= 1 << (salt % 8);
  return out;
}

/**
 * An interceptor applying `mutation` to the message at `target` (an index into the transcript
 * of an identical honest run); `earlier` is the transcript of another session of the same shape.
 */
export function tamper(target: number, mutation: Mutation, earlier: readonly Envelope[]): Interceptor {
  let held: Envelope | null = null;
  return (m, index) => {
    const release = held && index !== target ? [held] : [];
    if (held && index !== target) held = null;
    if (index !== target) return [m, ...release];
    const old = earlier[index];
    switch (mutation) {
      case 'flip':
        return [{ ...m, body: flipBit(m.body, index + 1) }];
      case 'drop':
        return [];
      case 'duplicate':
        return [m, m];
      case 'reorder':
        held = m;
        return [];
      case 'replay':
        return old ? [old] : [];
      case 'old-body':
        return old ? [{ ...m, body: old.body }] : [];
      case 'wrong-from':
        return [{ ...m, from: (6 - m.from - m.to) as PartyId }];
      case 'wrong-sid': {
        const sid = m.sid.slice();
        sid[0]! ^= 0x80;
        return [{ ...m, sid }];
      }
    }
  };
}

/**
 * A deterministic sample of `count` cases spread over the list with a stride coprime to its
 * length (so every mutation kind and every round is hit); all of them if `count` ≥ length.
 */
export function selectCases<T>(cases: readonly T[], count: number): T[] {
  const n = cases.length;
  if (count >= n) return [...cases];
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  let stride = Math.max(1, Math.floor(n / count)) | 1;
  while (gcd(stride, n) !== 1) stride += 2;
  return Array.from({ length: count }, (_, k) => cases[(k * stride) % n]!);
}
