/**
 * Echo hashes for broadcast-with-abort (docs/protocols.md §1.5, §11 R6a).
 *
 * The echo of broadcast round r hashes enc(j, body_j) for j = 1..3 — the broadcast *bodies*,
 * never the framed envelopes (their `to` differs per recipient, which would make honest runs
 * look like equivocation). This is the only place the "echo" tag is used.
 */
import { enc, H, u32be, u8 } from './encoding.js';
import type { PartyId } from './parties.js';

export function echoHash(proto: string, sid: Uint8Array, round: number, bodies: Readonly<Record<PartyId, Uint8Array>>): Uint8Array {
  return H('echo', proto, sid, u32be(round), enc(u8(1), bodies[1]), enc(u8(2), bodies[2]), enc(u8(3), bodies[3]));
}
