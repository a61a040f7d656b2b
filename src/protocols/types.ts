/**
 * The shape every threshold protocol has: a pure state machine per party.
 *
 * A party consumes envelopes and emits envelopes. It never does I/O, never reads a clock, and
 * draws randomness only from the injected `Rng`. The transport (src/net, src/service) carries
 * envelopes between servers and honours `persist` before sending anything emitted with it.
 */
import { decodeEnc, enc, u32be, u8 } from '../crypto/encoding.js';
import type { PartyId } from '../crypto/parties.js';

export type { PartyId, Rng } from '../crypto/parties.js';
export const PARTY_IDS: readonly PartyId[] = [1, 2, 3];
export const PARTY_NAMES: Record<PartyId, 'ep' | 'partner' | 'aux'> = { 1: 'ep', 2: 'partner', 3: 'aux' };

/** One protocol message, as the wire carries it (§1.4: version, sid, proto, round, from, to, body). */
export interface Envelope {
  readonly sid: Uint8Array;
  readonly proto: string;
  readonly round: number;
  readonly from: PartyId;
  readonly to: PartyId;
  readonly body: Uint8Array;
}

export const ENVELOPE_VERSION = 1;

/** Canonical bytes of an envelope: `enc(version, sid, proto, round, from, to, body)`. */
export function encodeEnvelope(e: Envelope): Uint8Array {
  return enc(u32be(ENVELOPE_VERSION), e.sid, e.proto, u32be(e.round), u8(e.from), u8(e.to), e.body);
}

/** Strict inverse of `encodeEnvelope`; throws on anything malformed. */
export function decodeEnvelope(bytes: Uint8Array): Envelope {
  const f = decodeEnc(bytes);
  if (f.length !== 7) throw new RangeError('envelope has the wrong number of fields');
  const [version, sid, proto, round, from, to, body] = f as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
  const u32 = (b: Uint8Array): number => {
    if (b.length !== 4) throw new RangeError('u32 field must be 4 bytes');
    return new DataView(b.buffer, b.byteOffset, 4).getUint32(0, false);
  };
  if (u32(version) !== ENVELOPE_VERSION) throw new RangeError('unknown envelope version');
  if (sid.length !== 32) throw new RangeError('sid must be 32 bytes');
  if (from.length !== 1 || to.length !== 1) throw new RangeError('party ids are one byte');
  const party = (b: Uint8Array): PartyId => {
    const v = b[0];
    if (v !== 1 && v !== 2 && v !== 3) throw new RangeError('unknown party id');
    return v;
  };
  return { sid, proto: new TextDecoder('utf-8', { fatal: true }).decode(proto), round: u32(round), from: party(from), to: party(to), body };
}

/** Why a session stopped, and whom the honest party suspects (null: cannot tell). */
export class ProtocolAbort extends Error {
  readonly code = 'EKM_PROTOCOL_ABORT';
  constructor(
    readonly proto: string,
    readonly round: number,
    readonly reason: string,
    readonly suspect: PartyId | null,
  ) {
    super(`${proto} round ${round} aborted: ${reason}${suspect ? ` (suspect party ${suspect})` : ''}`);
  }
}

/**
 * What a party asks of its host after consuming a message: durable writes that must complete
 * (fsync'd) before any of `send` leaves, then the messages, then possibly a final output.
 */
export interface Step<Out, Persist = unknown> {
  readonly persist: readonly Persist[];
  readonly send: readonly Envelope[];
  readonly output?: Out;
  /**
   * The party has local work to do once these messages have left (`resume()`), so that it runs
   * while the peers compute their answers instead of after them.
   */
  readonly more?: true;
}

/** A party of one protocol session. `receive` throws `ProtocolAbort` to abort. */
export interface Party<Out, Persist = unknown> {
  readonly id: PartyId;
  /** Messages this party sends before hearing anything (may be empty). */
  start(): Step<Out, Persist>;
  receive(msg: Envelope): Step<Out, Persist>;
  /** The local work a step announced with `more` (parties that never announce any need not have it). */
  resume?(): Step<Out, Persist>;
  /** True once the party has produced its output or aborted; later messages are refused. */
  readonly finished: boolean;
}
