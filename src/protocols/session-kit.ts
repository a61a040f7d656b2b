/**
 * Machinery shared by the state-changing protocols (DKG §2, refresh §5, Aux re-derivation §6):
 *
 * - round-0 requests that carry every sid input, so receivers recompute the sid (§11 R6b);
 * - an inbox that enforces §1.4 framing: right proto/sid/to, `from` a peer, one message per
 *   (round, from), later rounds from a sender buffered until this party is ready for them;
 * - the signed two-phase commit (PREPARED / ACTIVATED, §2 K5, §5 RF2–RF4, §11 R4) with the relay
 *   rule (a PENDING party activates on a relayed, validly signed PREPARED equal to its own) and
 *   idempotent re-sends after a restart (§5 I4).
 *
 * Before a party has sent PREPARED, any fault aborts the session (throw ProtocolAbort). After it,
 * the party never aborts on its own: PENDING is never dropped once PREPARED has left (R4), so
 * faults in the confirm phase are recorded as security events and the party keeps waiting.
 */
import { bytesEqual, decodeEnc, enc, encList, TAG_PREFIX, u32be, u8 } from '../crypto/encoding.js';
import { computeSid, type SessionInputs } from './session.js';
import type { Envelope, Party, PartyId, Rng, Step } from './types.js';
import { ProtocolAbort } from './types.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The host's TLS identity key: signs PREPARED / ACTIVATED statements (§11 R4). */
export interface IdentitySigner {
  sign(message: Uint8Array): Uint8Array;
}
/** Verifies another server's identity signature (its pinned certificate key). */
export interface IdentityVerifier {
  verify(party: PartyId, message: Uint8Array, signature: Uint8Array): boolean;
}

/** A security event the host must log (§1.6): something a peer did wrong that did not abort. */
export interface SecurityEvent {
  readonly round: number;
  readonly reason: string;
  readonly suspect: PartyId | null;
}

/** What every state-changing protocol party needs from its host. */
export interface CommonConfig {
  readonly id: PartyId;
  readonly tripletId: string;
  readonly rng: Rng;
  readonly signer: IdentitySigner;
  readonly verifier: IdentityVerifier;
  /** Replay cache (§1.4): true if this sid was ever seen; a round-0 request for it is refused. */
  readonly sidSeen?: (sid: Uint8Array) => boolean;
}

/** Persist item every protocol emits before its first message: the sid joins the replay cache. */
export interface SessionOpenItem {
  readonly kind: 'session-open';
  readonly proto: string;
  readonly sid: Uint8Array;
}

/** A key epoch that a session made PENDING at this party (a new share, or a new key's first). */
export interface PendingEpoch {
  readonly keyId: string;
  readonly epoch: number;
}

/**
 * Persist item of a pending party that a peer's signed NEVER released (see `acceptNever`): drop
 * the PENDING epochs (a never-activated key entirely) and end the session as aborted.
 */
export interface SessionAbandonItem {
  readonly kind: 'session-abandon';
  readonly proto: string;
  readonly sid: Uint8Array;
  readonly pending: readonly PendingEpoch[];
}

export function peersOf(id: PartyId): [PartyId, PartyId] {
  return id === 1 ? [2, 3] : id === 2 ? [1, 3] : [1, 2];
}
export function thirdParty(a: PartyId, b: PartyId): PartyId {
  return (6 - a - b) as PartyId;
}
export function isPartyId(n: unknown): n is PartyId {
  return n === 1 || n === 2 || n === 3;
}

/** Decodes a UTF-8 field strictly (invalid UTF-8 is a framing error). */
export function decodeUtf8(bytes: Uint8Array): string {
  return utf8.decode(bytes);
}

/** Decodes a u32be field of exactly 4 bytes. */
export function decodeU32(bytes: Uint8Array): number {
  if (bytes.length !== 4) throw new RangeError('u32 field must be 4 bytes');
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0, false);
}

// ---------------------------------------------------------------------------------------------
// Round-0 requests (§11 R6b)

/** Encodes a round-0 request: every sid input, then the protocol's own payload. */
export function encodeRequest(inputs: SessionInputs, payload: Uint8Array): Uint8Array {
  return enc(
    'request',
    inputs.tripletId,
    inputs.alg,
    encList(inputs.keyIds.map((k) => enc(k))),
    encList(inputs.epochs.map((e) => u32be(e))),
    u8(inputs.initiator),
    inputs.nonce,
    payload,
  );
}

/**
 * Decodes a round-0 request for `proto` and checks it binds `sid`: the receiver recomputes the sid
 * from the carried inputs, so a request whose sid binds nothing is refused.
 */
export function decodeRequest(
  proto: string,
  msg: Envelope,
  tripletId: string,
): { inputs: SessionInputs; payload: Uint8Array } {
  const bad = (reason: string): ProtocolAbort => new ProtocolAbort(proto, 0, reason, msg.from);
  let f: Uint8Array[];
  try {
    f = decodeEnc(msg.body);
  } catch {
    throw bad('malformed request');
  }
  if (f.length !== 8) throw bad('request has the wrong number of fields');
  const [kind, trip, alg, keyIdsRaw, epochsRaw, initiator, nonce, payload] = f as [
    Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array,
  ];
  let inputs: SessionInputs;
  try {
    if (decodeUtf8(kind) !== 'request') throw new Error('kind');
    const keyIds = decodeEnc(keyIdsRaw).map((k) => {
      const inner = decodeEnc(k);
      if (inner.length !== 1) throw new Error('key id');
      return decodeUtf8(inner[0]!);
    });
    const epochs = decodeEnc(epochsRaw).map(decodeU32);
    if (initiator.length !== 1) throw new Error('initiator');
    inputs = {
      tripletId: decodeUtf8(trip),
      proto,
      alg: decodeUtf8(alg),
      keyIds,
      epochs,
      initiator: initiator[0] as PartyId,
      nonce,
    };
  } catch {
    throw bad('malformed request');
  }
  if (inputs.initiator !== 1 || msg.from !== 1) throw bad('only EP initiates');
  if (inputs.tripletId !== tripletId) throw bad('request for another triplet');
  if (inputs.nonce.length !== 32) throw bad('session nonce must be 32 bytes');
  if (inputs.keyIds.length === 0 || inputs.keyIds.length !== inputs.epochs.length) {
    throw bad('request needs one epoch per key id');
  }
  if (new Set(inputs.keyIds).size !== inputs.keyIds.length) throw bad('duplicate key id in request');
  if (!bytesEqual(computeSid(inputs), msg.sid)) throw bad('sid does not match the request inputs');
  return { inputs, payload };
}

// ---------------------------------------------------------------------------------------------
// Signed two-phase commit

/** What the host keeps to resume the confirm phase after a restart (§5 I4). Public data only. */
export interface ConfirmCheckpoint {
  readonly proto: string;
  readonly sid: Uint8Array;
  readonly party: PartyId;
  readonly preparedRound: number;
  /** The PREPARED value (a hash over the new public data and the echo). */
  readonly value: Uint8Array;
  readonly preparedSig: Uint8Array;
  /** Signed PREPARED of each peer (direct or relayed) that equals `value`. */
  readonly peerPrepared: ReadonlyArray<{ readonly party: PartyId; readonly sig: Uint8Array }>;
  /** 'pending': PREPARED sent; 'active': ACTIVATED sent; 'done': ACTIVATED from both received. */
  readonly phase: 'pending' | 'active' | 'done';
  readonly activatedSig?: Uint8Array;
}

/** The bytes an identity key signs: domain-separated, bound to proto, sid, signer and value. */
export function confirmStatement(
  kind: 'prepared' | 'activated' | 'never',
  proto: string,
  sid: Uint8Array,
  signer: PartyId,
  value: Uint8Array,
): Uint8Array {
  return enc(TAG_PREFIX + 'confirm/' + kind, proto, sid, u8(signer), value);
}

const NO_VALUE = new Uint8Array(0);

function preparedBody(value: Uint8Array, sig: Uint8Array, resend: boolean): Uint8Array {
  return enc('prepared', u8(resend ? 1 : 0), value, sig);
}

/** ACTIVATED relays the third party's signed PREPARED (R4): a PENDING recipient that missed it activates. */
function activatedBody(value: Uint8Array, sig: Uint8Array, relay: Uint8Array, resend: boolean): Uint8Array {
  return enc('activated', u8(resend ? 1 : 0), value, sig, relay);
}

/**
 * NEVER(sid): a party promises, signed with its identity key, that it will never activate the
 * session: it holds no PENDING for it and recorded the sid as aborted (so the promise survives
 * restarts). A party sends it when it has no confirm state for a session a peer still re-sends,
 * or relays one when it dropped its own PENDING because of it. The statement is transferable.
 */
export function neverBody(signer: IdentitySigner, proto: string, sid: Uint8Array, self: PartyId): Uint8Array {
  return encodeNever(self, signer.sign(confirmStatement('never', proto, sid, self, NO_VALUE)));
}

function encodeNever(signerId: PartyId, sig: Uint8Array): Uint8Array {
  return enc('never', u8(signerId), sig);
}

/** Whether a protocol body is a NEVER (direct or relayed). */
export function isNever(body: Uint8Array): boolean {
  try {
    return decodeUtf8(decodeEnc(body)[0] ?? NO_VALUE) === 'never';
  } catch {
    return false;
  }
}

/**
 * Whether a protocol body is a PREPARED re-sent by a party in its confirm phase (resend = 1: after
 * a restart, a link-up or a timeout), as opposed to the first one, which can arrive while this
 * party is still opening the session (Aux re-derivation sends PREPARED right after the request).
 */
export function isResentPrepared(body: Uint8Array): boolean {
  try {
    const f = decodeEnc(body);
    return f.length === 4 && decodeUtf8(f[0]!) === 'prepared' && f[1]!.length === 1 && f[1]![0] === 1;
  } catch {
    return false;
  }
}

/**
 * What a party whose session is finished ('done' checkpoint) answers a peer that still re-sends:
 * its PREPARED and ACTIVATED again (the peer may have missed our ACTIVATED when a link dropped).
 */
export function confirmRepliesFromCheckpoint(cp: ConfirmCheckpoint, to: PartyId): { round: number; body: Uint8Array }[] {
  if (cp.phase !== 'done' || !cp.activatedSig) throw new RangeError('only a done checkpoint is answered from the store');
  const relay = cp.peerPrepared.find((p) => p.party === thirdParty(cp.party, to))?.sig ?? NO_VALUE;
  return [
    { round: cp.preparedRound, body: preparedBody(cp.value, cp.preparedSig, false) },
    { round: cp.preparedRound + 1, body: activatedBody(cp.value, cp.activatedSig, relay, false) },
  ];
}

// ---------------------------------------------------------------------------------------------
// Base party

/** Messages kept from peers before EP's request arrives (they can overtake it). */
const EARLY_LIMIT = 8;

interface Pending<Out, Persist> {
  persist: Persist[];
  send: Envelope[];
  output?: Out;
}

/**
 * A protocol party with §1.4 inbox rules and the confirm phase built in. Subclasses implement
 * `readyFor` (may round r from `from` be processed now?) and `handle` (process it), and the
 * confirm hooks `onActivate` / `onComplete`.
 */
export abstract class ProtocolParty<Out, Persist> implements Party<Out, Persist> {
  finished = false;
  /** Why the session stopped, when it stopped without throwing (e.g. after sending a REVEAL). */
  failure: ProtocolAbort | null = null;
  readonly events: SecurityEvent[] = [];
  readonly id: PartyId;
  protected sid: Uint8Array | null = null;
  protected readonly peers: [PartyId, PartyId];

  private readonly seen = new Set<string>();
  private buffer: Envelope[] = [];
  private early: Envelope[] = [];
  private started = false;
  private confirmBuffer: Envelope[] = [];
  private out: Pending<Out, Persist> = { persist: [], send: [] };

  // confirm-phase state
  private value: Uint8Array | null = null;
  private preparedSig: Uint8Array | null = null;
  private activatedSig: Uint8Array | null = null;
  private readonly peerPrepared = new Map<PartyId, Uint8Array>();
  private readonly peerActivated = new Set<PartyId>();
  protected confirmPhase: 'none' | 'pending' | 'active' | 'done' = 'none';
  /** Complaints seen: accused dealer → complainer (§2 "Complaints"). */
  private readonly complaints = new Map<PartyId, PartyId>();
  /** True once this party complained itself. */
  private complained = false;

  protected constructor(
    protected readonly cfg: CommonConfig,
    readonly proto: string,
    /** Round of PREPARED; ACTIVATED is the next round. */
    protected readonly preparedRound: number,
  ) {
    this.id = cfg.id;
    this.peers = peersOf(cfg.id);
  }

  // --- hooks ---------------------------------------------------------------------------------
  /** Initiator only: the messages of round 0 (and this party's first round). */
  protected abstract begin(): void;
  /** Non-initiators: a round-0 request arrived (the sid is not yet known). */
  protected abstract onRequest(msg: Envelope): void;
  /** May a non-confirm message of `round` be processed now? */
  protected abstract readyFor(round: number): boolean;
  /** Process one non-confirm message (fields already split by decodeEnc, kind first). */
  protected abstract handle(round: number, from: PartyId, kind: string, fields: Uint8Array[]): void;
  /** Both peers' PREPARED equal ours: emit the activation persist items. */
  protected abstract onActivate(): void;
  /** ACTIVATED from both peers: emit the final persist items and the output. */
  protected abstract onComplete(): void;
  /** Erase session secrets (abort, or no longer needed). */
  protected abstract erase(): void;
  /** The checkpoint persist item for the current confirm state. */
  protected abstract checkpointItem(cp: ConfirmCheckpoint): Persist;
  /** The persist item that drops this party's PENDING epochs (a NEVER released the session). */
  protected abstract abandonItem(): Persist;
  /** Complaints (§2): the private values this party dealt to `complainer`, to REVEAL (null: none). */
  protected revealFor(complainer: PartyId): Uint8Array | null {
    void complainer;
    return null;
  }
  /** Complaints (§2): is `bytes`, revealed by `dealer`, the valid value for `complainer`? */
  protected revealIsValid(dealer: PartyId, complainer: PartyId, bytes: Uint8Array): boolean {
    void dealer;
    void complainer;
    void bytes;
    return false;
  }

  /** In the confirm phase (PREPARED sent, not yet done): never aborts, re-sends on start(). */
  get committing(): boolean {
    return this.confirmPhase === 'pending' || this.confirmPhase === 'active';
  }

  // --- Party interface -------------------------------------------------------------------------
  start(): Step<Out, Persist> {
    return this.guard(0, () => {
      // start() is also the host's "reconnected" signal: a party in the confirm phase (resumed or
      // live) re-sends its last PREPARED / ACTIVATED asking peers to answer (I4); EP initiates once.
      if (this.confirmPhase === 'pending' || this.confirmPhase === 'active') this.resendConfirm(true, this.peers);
      else if (this.confirmPhase === 'none' && this.id === 1 && !this.started && !this.finished) this.begin();
      this.started = true;
    });
  }

  receive(msg: Envelope): Step<Out, Persist> {
    return this.guard(msg.round, () => this.accept(msg));
  }

  /** The host's timeout fired: abort if still before PREPARED (a PENDING record is kept). */
  expire(): ProtocolAbort | null {
    if (this.finished) return this.failure;
    const accused = [...this.complaints.keys()].find((a) => a !== this.id);
    if (this.complaints.size > 0) {
      // An accused dealer that never revealed is blamed ("bad or missing → blame j").
      const abort = new ProtocolAbort(this.proto, this.preparedRound + 1, 'no REVEAL before the timeout', accused ?? null);
      this.stop(abort);
      return abort;
    }
    if (this.confirmPhase !== 'none') return null; // never abort after PREPARED (R4)
    const abort = new ProtocolAbort(this.proto, this.currentRound(), 'timeout', this.timeoutSuspect());
    this.stop(abort);
    return abort;
  }

  /** Round this party is waiting for (for timeout reports). */
  protected abstract currentRound(): number;
  /** Whom a timeout before PREPARED blames. */
  protected timeoutSuspect(): PartyId | null {
    return null;
  }

  // --- helpers for subclasses ------------------------------------------------------------------
  protected abort(round: number, reason: string, suspect: PartyId | null): never {
    throw new ProtocolAbort(this.proto, round, reason, suspect);
  }
  protected emit(to: PartyId, round: number, body: Uint8Array): void {
    if (!this.sid) throw new Error('no sid yet');
    this.out.send.push({ sid: this.sid, proto: this.proto, round, from: this.id, to, body });
  }
  protected emitBoth(round: number, body: Uint8Array): void {
    for (const p of this.peers) this.emit(p, round, body);
  }
  protected persist(item: Persist): void {
    this.out.persist.push(item);
  }
  protected setOutput(o: Out): void {
    this.out.output = o;
  }
  /**
   * End the session with `abort`: thrown before PREPARED (the usual abort), recorded without
   * throwing after it, so the step's persist items and sends still take effect.
   */
  protected fail(abort: ProtocolAbort): void {
    if (this.confirmPhase === 'none') throw abort;
    this.stop(abort);
  }
  /** Stop without throwing (the step's sends still leave), e.g. an accused dealer after REVEAL. */
  protected stop(abort: ProtocolAbort): void {
    this.failure = abort;
    this.finished = true;
    this.erase();
  }
  protected event(round: number, reason: string, suspect: PartyId | null): void {
    this.events.push({ round, reason, suspect });
  }

  /** A dealer's private value failed its Feldman check: COMPLAINT(dealer) to both (§2). */
  protected complainAbout(dealer: PartyId): void {
    this.complaints.set(dealer, this.id);
    this.complained = true;
    this.emitBoth(this.preparedRound, enc('complaint', u8(dealer)));
    // The session can no longer produce a key; what we dealt stays until the end in case we are
    // accused in turn (we must be able to REVEAL it).
  }

  /** COMPLAINT(j) from i: if we are j, REVEAL what we dealt to i and stop; else await j's REVEAL. */
  private onComplaint(from: PartyId, f: Uint8Array[]): void {
    const round = this.preparedRound;
    const accused = f.length === 2 && f[1]!.length === 1 ? f[1]![0] : undefined;
    if (!isPartyId(accused) || accused === from) return this.fail(new ProtocolAbort(this.proto, round, 'malformed complaint', from));
    if (accused === this.id) {
      const dealt = this.revealFor(from);
      if (dealt) this.emitBoth(round + 1, enc('reveal', u8(from), dealt));
      return this.stop(new ProtocolAbort(this.proto, round, 'complaint against this party', from));
    }
    const known = this.complaints.get(accused);
    if (known !== undefined && known !== this.id) {
      return this.fail(new ProtocolAbort(this.proto, round, 'second complaint about one dealer', from));
    }
    if (known === undefined) this.complaints.set(accused, from);
  }

  /** REVEAL from the accused j: check it against j's commitments and assign blame. */
  private onReveal(from: PartyId, f: Uint8Array[]): void {
    const round = this.preparedRound + 1;
    const complainer = this.complaints.get(from);
    const named = f.length === 3 && f[1]!.length === 1 ? f[1]![0] : undefined;
    if (complainer === undefined || named !== complainer) {
      return this.fail(new ProtocolAbort(this.proto, round, 'unexpected reveal', from));
    }
    const valid = this.revealIsValid(from, complainer, f[2]!);
    // Bad → blame the dealer; good → blame the complainer — unless we complained ourselves: then
    // the dealer sent us a bad value privately, whatever it reveals now.
    const suspect = !valid || complainer === this.id ? from : complainer;
    this.fail(new ProtocolAbort(this.proto, round, suspect === from ? 'dealer sent a bad share' : 'false complaint', suspect));
  }

  /** Enter the confirm phase: sign PREPARED and send it to both (after the PENDING persist). */
  protected beginConfirm(value: Uint8Array): void {
    this.value = value;
    this.preparedSig = this.cfg.signer.sign(this.statement('prepared', this.id, value));
    this.confirmPhase = 'pending';
    this.persist(this.checkpointItem(this.checkpoint()));
    for (const p of this.peers) this.emit(p, this.preparedRound, this.preparedBody(false));
    const buffered = this.confirmBuffer;
    this.confirmBuffer = [];
    for (const m of buffered) this.acceptConfirm(m);
  }

  /** Restore the confirm phase from a checkpoint (restart, §5 I4). */
  protected restoreConfirm(cp: ConfirmCheckpoint): void {
    if (cp.proto !== this.proto || cp.party !== this.id || cp.preparedRound !== this.preparedRound) {
      throw new RangeError('checkpoint does not belong to this protocol party');
    }
    this.sid = cp.sid;
    this.value = cp.value;
    this.preparedSig = cp.preparedSig;
    for (const { party, sig } of cp.peerPrepared) {
      if (!this.peers.includes(party)) throw new RangeError('checkpoint names a non-peer');
      if (!this.cfg.verifier.verify(party, this.statement('prepared', party, cp.value), sig)) {
        throw new RangeError('checkpoint holds an invalid peer signature');
      }
      this.peerPrepared.set(party, sig);
    }
    this.confirmPhase = cp.phase;
    if (cp.phase !== 'pending') {
      if (!cp.activatedSig) throw new RangeError('active checkpoint without ACTIVATED signature');
      this.activatedSig = cp.activatedSig;
    }
    if (cp.phase === 'done') this.finished = true;
  }

  protected checkpoint(): ConfirmCheckpoint {
    if (!this.sid || !this.value || !this.preparedSig) throw new Error('no confirm phase');
    const cp: ConfirmCheckpoint = {
      proto: this.proto,
      sid: this.sid,
      party: this.id,
      preparedRound: this.preparedRound,
      value: this.value,
      preparedSig: this.preparedSig,
      peerPrepared: [...this.peerPrepared].map(([party, sig]) => ({ party, sig })),
      phase: this.confirmPhase === 'none' ? 'pending' : this.confirmPhase,
      ...(this.activatedSig ? { activatedSig: this.activatedSig } : {}),
    };
    return cp;
  }

  // --- internals -------------------------------------------------------------------------------
  private guard(round: number, fn: () => void): Step<Out, Persist> {
    this.out = { persist: [], send: [] };
    try {
      fn();
    } catch (e) {
      if (e instanceof ProtocolAbort) {
        if (this.confirmPhase !== 'none') {
          // After PREPARED the session never aborts by itself (R4): log and keep waiting.
          this.event(e.round, e.reason, e.suspect);
          return this.flush();
        }
        this.finished = true;
        this.failure = e;
        this.erase();
      }
      throw e;
    }
    void round;
    return this.flush();
  }

  private flush(): Step<Out, Persist> {
    const o = this.out;
    this.out = { persist: [], send: [] };
    return o.output === undefined
      ? { persist: o.persist, send: o.send }
      : { persist: o.persist, send: o.send, output: o.output };
  }

  private accept(msg: Envelope): void {
    const round = msg.round;
    // §1.4 framing. A frame we cannot attribute is blamed on the sender the transport named.
    const sender = isPartyId(msg.from) ? msg.from : null;
    if (msg.proto !== this.proto) this.abort(round, 'wrong protocol', sender);
    if (msg.to !== this.id) this.abort(round, 'message not addressed to this party', sender);
    if (sender === null || sender === this.id) this.abort(round, 'invalid sender', null);
    if (!Number.isInteger(round) || round < 0) this.abort(0, 'invalid round', sender);
    if (this.finished && this.confirmPhase !== 'done') {
      this.event(round, 'message after the session ended', sender);
      return;
    }
    if (this.sid === null) {
      // Only a round-0 request from EP may open a session. A peer's message can overtake EP's
      // request (different links): keep a few, and check their sid once the request is in.
      if (this.id !== 1 && (round !== 0 || sender !== 1)) {
        if (round === 0 || this.early.length >= EARLY_LIMIT) this.abort(round, 'unknown sid', sender);
        this.early.push(msg);
        return;
      }
      if (round !== 0 || sender !== 1 || this.id === 1) this.abort(round, 'unknown sid', sender);
      if (this.cfg.sidSeen?.(msg.sid)) this.abort(0, 'replayed sid', sender);
      this.seen.add(`0:${sender}`);
      this.onRequest(msg);
      const early = this.early;
      this.early = [];
      for (const m of early) this.accept(m);
      this.drain();
      return;
    }
    if (!bytesEqual(msg.sid, this.sid)) this.abort(round, 'wrong sid', sender);

    let fields: Uint8Array[];
    let kind: string;
    try {
      fields = decodeEnc(msg.body);
      if (fields.length === 0) throw new Error('empty');
      kind = decodeUtf8(fields[0]!);
    } catch {
      this.abort(round, 'malformed body', sender);
    }
    if (kind === 'never') {
      this.acceptNever(msg, fields);
      return;
    }
    if (kind === 'prepared' || kind === 'activated') {
      const expected = kind === 'prepared' ? this.preparedRound : this.preparedRound + 1;
      if (round !== expected) this.abort(round, `${kind} in the wrong round`, sender);
      if (this.confirmPhase === 'none') {
        // Not ready yet: keep a bounded number (a restarted peer may re-send).
        if (this.confirmBuffer.filter((m) => m.from === sender).length >= 4) {
          this.abort(round, 'too many confirm messages', sender);
        }
        this.confirmBuffer.push(msg);
        return;
      }
      this.acceptConfirm(msg);
      return;
    }
    if (this.confirmPhase === 'done') {
      this.event(round, 'message after the session ended', sender);
      return;
    }
    const key = `${round}:${sender}`;
    if (this.seen.has(key)) this.abort(round, 'duplicate message', sender);
    this.seen.add(key);
    this.buffer.push(msg);
    this.drain();
  }

  /** Process buffered messages whose round this party is ready for, lowest round first. */
  private drain(): void {
    for (;;) {
      if (this.finished) return;
      this.buffer.sort((a, b) => a.round - b.round);
      const idx = this.buffer.findIndex((m) => this.ready(m));
      if (idx < 0) return;
      const m = this.buffer.splice(idx, 1)[0]!;
      const fields = decodeEnc(m.body);
      const kind = decodeUtf8(fields[0]!);
      if (kind === 'complaint' && m.round === this.preparedRound) this.onComplaint(m.from, fields);
      else if (kind === 'reveal' && m.round === this.preparedRound + 1) this.onReveal(m.from, fields);
      else this.handle(m.round, m.from, kind, fields);
    }
  }

  /** Complaints wait until our own dealing check is done; reveals until we know a complaint. */
  private ready(m: Envelope): boolean {
    const kind = decodeUtf8(decodeEnc(m.body)[0]!);
    if (kind === 'complaint' && m.round === this.preparedRound) return this.confirmPhase !== 'none' || this.complained;
    if (kind === 'reveal' && m.round === this.preparedRound + 1) return this.complaints.size > 0;
    return this.readyFor(m.round);
  }

  private statement(kind: 'prepared' | 'activated' | 'never', signer: PartyId, value: Uint8Array): Uint8Array {
    if (!this.sid) throw new Error('no sid');
    return confirmStatement(kind, this.proto, this.sid, signer, value);
  }

  private preparedBody(resend: boolean): Uint8Array {
    return preparedBody(this.value!, this.preparedSig!, resend);
  }

  private activatedBody(to: PartyId, resend: boolean): Uint8Array {
    return activatedBody(this.value!, this.activatedSig!, this.peerPrepared.get(thirdParty(this.id, to)) ?? NO_VALUE, resend);
  }

  /**
   * A peer's signed NEVER (direct, or relayed by the other peer): its signer will never activate
   * this session, so no party can ever erase the old epoch (I1 needs ACTIVATED from both peers).
   * A party that is still PENDING therefore drops its PENDING epochs: it keeps the old epoch, and
   * so does every other honest party. It relays the NEVER so that the other peer does the same.
   * A party that already activated cannot drop anything (I2): among honest parties the first NEVER
   * comes from one that never prepared, so NEVER after every PREPARED means a party cheats.
   */
  private acceptNever(msg: Envelope, f: Uint8Array[]): void {
    const round = msg.round;
    if (round !== this.preparedRound && round !== this.preparedRound + 1) this.abort(round, 'never in the wrong round', msg.from);
    if (f.length !== 3 || f[1]!.length !== 1) this.abort(round, 'malformed never', msg.from);
    const signer = f[1]![0]!;
    const sig = f[2]!;
    if (!isPartyId(signer) || !this.peers.includes(signer)) this.abort(round, 'never signed by a non-peer', msg.from);
    if (!this.cfg.verifier.verify(signer, this.statement('never', signer, NO_VALUE), sig)) this.abort(round, 'bad never signature', msg.from);
    if (this.confirmPhase === 'none') this.abort(round, `party ${signer} will never prepare this session`, null);
    if (this.confirmPhase !== 'pending') {
      return this.event(round, `party ${signer} signed NEVER after every party prepared (a party cheats); waiting`, null);
    }
    this.persist(this.abandonItem());
    this.emit(thirdParty(this.id, signer), round, encodeNever(signer, sig));
    this.confirmPhase = 'none';
    this.stop(new ProtocolAbort(this.proto, round, `party ${signer} never prepared: the pending state was dropped`, null));
  }

  private resendConfirm(resend: boolean, to: readonly PartyId[]): void {
    for (const p of to) {
      this.emit(p, this.preparedRound, this.preparedBody(resend));
      if (this.activatedSig) this.emit(p, this.preparedRound + 1, this.activatedBody(p, resend));
    }
  }

  private acceptConfirm(msg: Envelope): void {
    const from = msg.from;
    const round = msg.round;
    const f = decodeEnc(msg.body);
    const kind = decodeUtf8(f[0]!);
    const isPrepared = kind === 'prepared';
    if (f.length !== (isPrepared ? 4 : 5)) return this.event(round, `malformed ${kind}`, from);
    const [, resendRaw, value, sig] = f as [Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    if (resendRaw.length !== 1 || resendRaw[0]! > 1) return this.event(round, `malformed ${kind}`, from);
    if (!this.cfg.verifier.verify(from, this.statement(isPrepared ? 'prepared' : 'activated', from, value), sig)) {
      return this.event(round, `bad ${kind} signature`, from);
    }
    if (!bytesEqual(value, this.value!)) {
      // Different public data or echo: someone equivocated; we cannot tell who (§1.5).
      return this.event(round, `${kind} differs from ours (equivocation)`, null);
    }
    if (isPrepared) {
      if (!this.peerPrepared.has(from)) this.peerPrepared.set(from, sig);
    } else {
      const relay = f[4]!;
      const third = thirdParty(this.id, from);
      if (relay.length > 0 && !this.peerPrepared.has(third)) {
        if (this.cfg.verifier.verify(third, this.statement('prepared', third, value), relay)) {
          this.peerPrepared.set(third, relay);
        } else {
          this.event(round, 'relayed PREPARED has a bad signature', from);
        }
      }
      this.peerActivated.add(from);
    }
    if (resendRaw[0] === 1 && this.confirmPhase !== 'none') this.resendConfirm(false, [from]);
    this.advanceConfirm();
  }

  private advanceConfirm(): void {
    if (this.confirmPhase === 'pending' && this.peers.every((p) => this.peerPrepared.has(p))) {
      this.confirmPhase = 'active';
      this.activatedSig = this.cfg.signer.sign(this.statement('activated', this.id, this.value!));
      this.onActivate();
      this.persist(this.checkpointItem(this.checkpoint()));
      for (const p of this.peers) this.emit(p, this.preparedRound + 1, this.activatedBody(p, false));
    }
    if (this.confirmPhase === 'active' && this.peers.every((p) => this.peerActivated.has(p))) {
      this.confirmPhase = 'done';
      this.onComplete();
      this.persist(this.checkpointItem(this.checkpoint()));
      this.finished = true;
    }
  }
}
