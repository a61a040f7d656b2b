/**
 * Session identifiers (docs/protocols.md §1.4, §11 R6b): every input of a session is carried
 * in its round-0 request and every receiver recomputes the sid from them.
 */
import { enc, encList, H, u32be } from '../crypto/encoding.js';
import type { PartyId } from './types.js';

export interface SessionInputs {
  readonly tripletId: string;
  readonly proto: string;
  readonly alg: string;
  readonly keyIds: readonly string[];
  readonly epochs: readonly number[];
  readonly initiator: PartyId;
  /** 32 fresh random bytes drawn by the initiator (always EP). */
  readonly nonce: Uint8Array;
}

export function computeSid(s: SessionInputs): Uint8Array {
  if (s.nonce.length !== 32) throw new RangeError('session nonce must be 32 bytes');
  if (s.keyIds.length !== s.epochs.length) throw new RangeError('one epoch per key id');
  return H(
    'sid',
    s.tripletId,
    s.proto,
    s.alg,
    encList(s.keyIds.map((k) => enc(k))),
    encList(s.epochs.map((e) => u32be(e))),
    Uint8Array.of(s.initiator),
    s.nonce,
  );
}
