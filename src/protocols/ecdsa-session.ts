/**
 * Session framing shared by the signing protocols (ECDSA §3, FROST §4): envelope checks (§1.4),
 * a per-session inbox that buffers early messages of later rounds (links are independent, so a
 * peer's round-r message may overtake the coordinator's round r−1) but refuses duplicates, the
 * round-0 request codec with sid recomputation (§11 R6b), and the guard that turns every decoding
 * failure into a `ProtocolAbort`.
 */
import { bytesToBigIntBE, bytesEqual, decodeEnc, enc, u32be } from '../crypto/encoding.js';
import type { Curve } from '../crypto/curves.js';
import { computeSid } from './session.js';
import type { EcAlg } from './key-share.js';
import { ProtocolAbort, type Envelope, type PartyId, type Rng, type Step } from './types.js';

export const OTHERS: Readonly<Record<PartyId, readonly [PartyId, PartyId]>> = { 1: [2, 3], 2: [1, 3], 3: [1, 2] };

export function isPartyId(n: unknown): n is PartyId {
  return n === 1 || n === 2 || n === 3;
}

/** Uniform non-zero scalar from the injected RNG (16 extra bytes make the mod-q bias < 2^-128). */
export function randomScalar(curve: Curve, rng: Rng): bigint {
  for (;;) {
    const v = bytesToBigIntBE(rng(curve.scalarBytes + 16)) % curve.order;
    if (v !== 0n) return v;
  }
}

export function readU32(bytes: Uint8Array): number {
  if (bytes.length !== 4) throw new Error('u32 field must be 4 bytes');
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
export function readString(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

/** Fields every round-0 request carries so that a receiver can recompute the sid (§11 R6b). */
export interface RequestHeader {
  readonly tripletId: string;
  readonly alg: EcAlg;
  readonly keyId: string;
  readonly epoch: number;
  /** 32 bytes drawn fresh by EP. */
  readonly nonce: Uint8Array;
}

export function sidFor(proto: string, h: RequestHeader): Uint8Array {
  return computeSid({
    tripletId: h.tripletId,
    proto,
    alg: h.alg,
    keyIds: [h.keyId],
    epochs: [h.epoch],
    initiator: 1,
    nonce: h.nonce,
  });
}

export function encodeRequest(h: RequestHeader, ...extra: Uint8Array[]): Uint8Array {
  return enc(h.tripletId, h.alg, h.keyId, u32be(h.epoch), h.nonce, ...extra);
}

/** Decodes a round-0 body into its header and the `extraCount` protocol-specific fields. */
export function decodeRequest(body: Uint8Array, extraCount: number): { header: RequestHeader; extra: Uint8Array[] } {
  const f = decodeEnc(body);
  if (f.length !== 5 + extraCount) throw new Error('request has the wrong number of fields');
  const header: RequestHeader = {
    tripletId: readString(f[0]!),
    alg: readString(f[1]!) as EcAlg,
    keyId: readString(f[2]!),
    epoch: readU32(f[3]!),
    nonce: f[4]!,
  };
  if (header.nonce.length !== 32) throw new Error('request nonce must be 32 bytes');
  return { header, extra: f.slice(5) };
}

/**
 * One party's view of one session's incoming messages. `expects(round, from)` says which
 * (round, sender) pairs this party may ever receive; anything else aborts.
 */
export class Inbox {
  private readonly pending = new Map<string, Envelope>();
  private readonly seen = new Set<string>();
  sid: Uint8Array | undefined;

  constructor(
    readonly proto: string,
    readonly me: PartyId,
    private readonly expects: (round: number, from: PartyId) => boolean,
  ) {}

  accept(msg: Envelope): void {
    const from = isPartyId(msg.from) ? msg.from : null;
    const round = Number.isInteger(msg.round) ? msg.round : -1;
    if (from === null || from === this.me) throw new ProtocolAbort(this.proto, round, 'bad-sender', null);
    if (msg.proto !== this.proto || msg.to !== this.me) throw new ProtocolAbort(this.proto, round, 'framing', from);
    if (!this.expects(round, from)) throw new ProtocolAbort(this.proto, round, 'unexpected-round', from);
    if (this.sid !== undefined && !bytesEqual(msg.sid, this.sid)) {
      throw new ProtocolAbort(this.proto, round, 'sid-mismatch', from);
    }
    const key = `${round}/${from}`;
    if (this.seen.has(key)) throw new ProtocolAbort(this.proto, round, 'duplicate', from);
    this.seen.add(key);
    this.pending.set(key, msg);
  }

  /** Fixes the sid (after round 0 checked it) and re-checks everything buffered before. */
  bindSid(sid: Uint8Array): void {
    this.sid = sid;
    for (const m of this.pending.values()) {
      if (!bytesEqual(m.sid, sid)) throw new ProtocolAbort(this.proto, m.round, 'sid-mismatch', m.from);
    }
  }

  has(round: number, from: PartyId): boolean {
    return this.pending.has(`${round}/${from}`);
  }

  hasAll(round: number, froms: readonly PartyId[]): boolean {
    return froms.every((f) => this.has(round, f));
  }

  /** Removes and returns a buffered message body. */
  take(round: number, from: PartyId): Uint8Array {
    const key = `${round}/${from}`;
    const m = this.pending.get(key);
    if (!m) throw new Error(`no message ${key}`);
    this.pending.delete(key);
    return m.body;
  }

  peekEnvelope(round: number, from: PartyId): Envelope | undefined {
    return this.pending.get(`${round}/${from}`);
  }

  clear(): void {
    this.pending.clear();
  }
}

/** Mutable step under construction. */
export class StepBuilder<Out, Persist> {
  readonly persist: Persist[] = [];
  readonly send: Envelope[] = [];
  output: Out | undefined;
  /** Ask for `onResume` once this step's messages have left (see Step.more). */
  more = false;

  build(): Step<Out, Persist> {
    return {
      persist: this.persist,
      send: this.send,
      ...(this.output === undefined ? {} : { output: this.output }),
      ...(this.more ? { more: true as const } : {}),
    };
  }
}

/**
 * Base of a round-driven party: `receive` validates framing, buffers, then lets `advance` run
 * every round whose inputs are complete. Any exception that is not a ProtocolAbort (a decoding
 * error from a peer's bytes, an identity point, …) aborts with the sender as suspect.
 */
export abstract class RoundParty<Out, Persist> {
  protected readonly inbox: Inbox;
  private done = false;
  private current: { round: number; from: PartyId | null } = { round: 0, from: null };

  protected constructor(
    readonly id: PartyId,
    protected readonly proto: string,
    expects: (round: number, from: PartyId) => boolean,
  ) {
    this.inbox = new Inbox(proto, id, expects);
  }

  get finished(): boolean {
    return this.done;
  }

  protected abstract onStart(step: StepBuilder<Out, Persist>): void;
  /** Runs every round that can run now; returns nothing, fills `step`. */
  protected abstract advance(step: StepBuilder<Out, Persist>): void;
  /** Drop secrets (called on abort and on completion). */
  protected abstract erase(): void;

  start(): Step<Out, Persist> {
    return this.guard(null, (s) => this.onStart(s));
  }

  receive(msg: Envelope): Step<Out, Persist> {
    if (this.done) throw new ProtocolAbort(this.proto, msg.round, 'session-ended', isPartyId(msg.from) ? msg.from : null);
    return this.guard(msg, (s) => {
      this.inbox.accept(msg);
      this.advance(s);
    });
  }

  resume(): Step<Out, Persist> {
    if (this.done) return new StepBuilder<Out, Persist>().build();
    return this.guard(null, (s) => this.onResume(s));
  }

  /** The local work a step asked for with `step.more`, run after its messages left. */
  protected onResume(_step: StepBuilder<Out, Persist>): void {}

  /** Marks which message is being processed, so that decode failures name the right suspect. */
  protected at(round: number, from: PartyId | null): void {
    this.current = { round, from };
  }

  protected finish(): void {
    this.done = true;
    this.inbox.clear();
    this.erase();
  }

  protected abort(reason: string, suspect: PartyId | null): never {
    throw new ProtocolAbort(this.proto, this.current.round, reason, suspect);
  }

  protected envelope(round: number, to: PartyId, body: Uint8Array): Envelope {
    const sid = this.inbox.sid;
    if (sid === undefined) throw new Error('sid not bound');
    return { sid, proto: this.proto, round, from: this.id, to, body };
  }

  private guard(msg: Envelope | null, fn: (s: StepBuilder<Out, Persist>) => void): Step<Out, Persist> {
    const step = new StepBuilder<Out, Persist>();
    try {
      fn(step);
      return step.build();
    } catch (e) {
      this.done = true;
      this.inbox.clear();
      this.erase();
      if (e instanceof ProtocolAbort) throw e;
      const suspect = this.current.from ?? (msg && isPartyId(msg.from) ? msg.from : null);
      const why = e instanceof Error ? e.message : String(e);
      throw new ProtocolAbort(this.proto, this.current.round, `invalid-input: ${why}`, suspect);
    }
  }
}
