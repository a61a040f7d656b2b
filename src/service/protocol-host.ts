/**
 * Runs protocol sessions over the peer links: routes envelopes by sid, makes every `persist`
 * durable before the same step's messages leave, enforces that an envelope's `from` is the
 * authenticated peer it arrived on, times sessions out, tells peers about aborts, and logs aborts
 * and security events. One session's calls are strictly ordered; its party computes on a
 * PartyRunner (worker threads by default), so curve math never blocks this event loop.
 * The fault suite's crash points (src/failpoints.ts) sit on each step's persist/send boundaries.
 */
import type { Logger } from 'pino';
import { toHex } from '../crypto/encoding.js';
import { EkmError } from '../errors.js';
import { protocolFailpoint } from '../failpoints.js';
import type { PeerManager, PeerRole } from '../net/peers.js';
import { type ConfirmCheckpoint, type IdentitySigner, confirmRepliesFromCheckpoint, isNever, isResentPrepared, neverBody } from '../protocols/session-kit.js';
import { type Envelope, type PartyId, ProtocolAbort, decodeEnvelope, encodeEnvelope } from '../protocols/types.js';
import type { KeyStore, KeyWrite } from '../store/key-records.js';
import type { Recipe } from './party-recipes.js';
import { type Call, type PartyRunner, type RunningParty, type StepResult, fromData } from './party-runner.js';
import { OrphanEnvelopes } from './orphan-envelopes.js';
import { fromJsonWithBytes } from './share-codec.js';
import { BoundedCache } from '../util/bounded-cache.js';
import { KeyedLock } from '../util/keyed-lock.js';

export const PROTO_TOPIC = 'proto';
/** Out-of-protocol notice that a session was aborted here, so peers stop waiting for it. */
export const ABORT_TOPIC = 'proto-abort';
const ROLE_OF: Record<PartyId, PeerRole> = { 1: 'ep', 2: 'partner', 3: 'aux' };
const PARTY_OF: Record<PeerRole, PartyId> = { ep: 1, partner: 2, aux: 3 };

/** A party (as a recipe) plus how the host stores its persist items and output. */
export interface SessionSpec {
  readonly recipe: Recipe;
  /** Names the session in logs and errors (the protocol name). */
  readonly label: string;
  /** Maps the party's persist items to store writes (applied in one transaction, before sending). */
  readonly toWrites: (items: readonly unknown[], sid: string) => KeyWrite[];
  /** Writes that make the party's output durable (e.g. a helper's presignature share). */
  readonly outputWrites?: (output: unknown) => KeyWrite[];
  /** The party runs on the event loop, not in a worker thread (see runsInline). */
  readonly inline?: boolean;
  /**
   * The party's writes may commit while its messages travel, as long as they are durable before
   * its next step runs (so before any output). Only for writes no peer relies on: the EP's USED
   * mark of a presignature, whose single use each helper enforces with its own durable claim
   * before its share leaves (docs/protocols.md §3.4).
   */
  readonly writesTrailSend?: boolean;
}

/** Builds the session for a round-0 request from EP (non-initiators); throws to refuse it. */
export type SessionFactory = (request: Envelope) => Promise<SessionSpec>;
/** Rebuilds a committing session from its stored checkpoint (JSON). */
export type SessionResumer = (proto: string, checkpoint: string) => Promise<SessionSpec>;

interface Session {
  sid: string;
  readonly spec: SessionSpec;
  readonly party: RunningParty;
  queue: Promise<void>;
  timer: NodeJS.Timeout | undefined;
  settle?: { resolve(v: unknown): void; reject(e: Error): void };
  done: boolean;
  committing: boolean;
  /** Timeouts in a row while committing: each re-sends, and doubles the wait before the next. */
  idle: number;
  /** Writes of the last step still committing (writesTrailSend): the next step waits for them. */
  trailing?: Promise<void>;
}

export interface HostOptions {
  readonly self: PartyId;
  readonly peers: PeerManager;
  readonly store: KeyStore;
  readonly log: Logger;
  readonly runner: PartyRunner;
  /** This server's identity key: signs NEVER for sessions it has no confirm state of. */
  readonly signer: IdentitySigner;
  /** A session that makes no progress for this long is timed out. */
  readonly timeoutMs?: number;
}

/** A committing session re-sends after 1, 2, 4 and then every 8 timeouts (2 minutes at the default 15 s). */
const MAX_IDLE_DOUBLINGS = 3;
/** An answer to a re-send, or a resume from the store, that failed (the store could not write) is tried again, every 2 s for a minute. */
const RETRY_ATTEMPTS = 30;
const RETRY_MS = 2000;
/**
 * Session ids this helper accepted lately (docs/protocols.md §1.4: a second request for a sid is refused). The
 * state-changing sessions are also refused from the store for ever (`sidSeen`); this covers the
 * stateless ones (FROST, DPRF, RSA, ECDSA), whose sids are not stored. Bounded: the oldest go first.
 */
const ACCEPTED_SIDS = 100_000;

export class ProtocolAbortedError extends EkmError {
  constructor(message: string) {
    super('EKM_PROTOCOL_ABORTED', message, { hint: 'the operation was not performed; it is safe to retry' });
  }
}

/** A peer refused the session's request with an error code (e.g. EKM_KEY_EPOCH: it holds no such share). */
export class PeerRefusedError extends ProtocolAbortedError {
  constructor(
    readonly peer: PeerRole,
    readonly refusal: string,
    message: string,
  ) {
    super(message);
  }
}

const REFUSAL = /^refused: (EKM_[A-Z0-9_]+)(?:: (.*))?$/s;

export class ProtocolHost {
  private readonly sessions = new Map<string, Session>();
  private readonly factories = new Map<string, SessionFactory>();
  /** Envelopes that arrived before their session's round-0 request (another link was faster). */
  private readonly orphans = new OrphanEnvelopes();
  /** One check-and-act at a time per sid: accepting a request, answering a re-send, resuming. */
  private readonly sidLock = new KeyedLock<string>();
  private readonly acceptedSids = new BoundedCache<string, true>(ACCEPTED_SIDS);
  private resumer: SessionResumer | undefined;
  private readonly timeoutMs: number;

  constructor(private readonly opts: HostOptions) {
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    opts.peers.on('up', () => this.onPeerUp());
  }

  register(proto: string, factory: SessionFactory): void {
    this.factories.set(proto, factory);
  }

  /** How a checkpointed session is rebuilt from the store (KeyService). */
  setResumer(resumer: SessionResumer): void {
    this.resumer = resumer;
  }

  /**
   * At start-up: resumes every session of this triplet that was committing when the server
   * stopped, through the same path as a session dropped while running (retried while the store
   * cannot be read). Resolves once each has been tried.
   */
  async resumeOpenSessions(): Promise<void> {
    for (const open of await this.opts.store.openSessions()) await this.resumeFromStore(open.sid);
  }

  /**
   * Runs a session again from its stored checkpoint if it is not running here: as a restart does,
   * for a committing session whose party was dropped while its checkpoint stayed (a failed store
   * write). Retried while the store cannot be read.
   */
  private resumeFromStore(sid: string, attempt = 1): Promise<void> {
    return this.sidLock.run(sid, () => this.resumeFromStoreLocked(sid, attempt));
  }

  private async resumeFromStoreLocked(sid: string, attempt: number): Promise<void> {
    if (this.sessions.has(sid) || !this.resumer) return;
    try {
      const record = await this.opts.store.sessionRecord(sid);
      if (!record || !record.ownTriplet || record.state !== 'open' || record.checkpoint === null || this.sessions.has(sid)) return;
      const spec = await this.resumer(record.proto, record.checkpoint);
      if (this.sessions.has(sid)) return;
      this.opts.log.warn({ proto: record.proto, sid }, 'resumed a committing protocol session from its checkpoint');
      this.resume(spec, sid);
    } catch (e) {
      this.opts.log.error({ sid, err: (e as Error).message, attempt }, 'could not resume a committing session yet');
      if (attempt < RETRY_ATTEMPTS) this.later(() => this.resumeFromStore(sid, attempt + 1));
    }
  }

  get activeSessions(): number {
    return this.sessions.size;
  }

  /** Initiator (EP): starts the party and resolves with its output (or rejects on abort/timeout). */
  run<Out>(spec: SessionSpec): Promise<Out> {
    return new Promise<Out>((resolve, reject) => {
      const session = this.open('', spec);
      session.settle = { resolve: resolve as (v: unknown) => void, reject };
      this.enqueue(session, { op: 'start' });
    });
  }

  /** Resumes a session recovered from a checkpoint: `start()` re-sends its last confirm message. */
  resume(spec: SessionSpec, sid: string): void {
    if (this.sessions.has(sid)) return;
    const session = this.open(sid, spec);
    this.enqueue(session, { op: 'start' });
    for (const env of this.orphans.take(sid)) this.enqueue(session, { op: 'receive', env });
  }

  /** Runs `fn` again in RETRY_MS (a store that could not write may work by then). */
  private later(fn: () => Promise<void>): void {
    setTimeout(() => void fn(), RETRY_MS).unref();
  }

  /** Entry point for envelopes arriving on a peer link (topic `proto`). */
  deliver(fromRole: PeerRole, bytes: Uint8Array): void {
    let env: Envelope;
    try {
      env = decodeEnvelope(bytes);
    } catch (e) {
      this.security('malformed envelope', { from: fromRole, err: (e as Error).message });
      return;
    }
    if (env.from !== PARTY_OF[fromRole] || env.to !== this.opts.self) {
      this.security('envelope from/to does not match the authenticated link', { from: fromRole, claimed: env.from, to: env.to, proto: env.proto });
      return;
    }
    const sid = toHex(env.sid);
    const session = this.sessions.get(sid);
    if (session) this.enqueue(session, { op: 'receive', env });
    else if (env.round === 0 && env.from === 1) void this.underSidLock(sid, env, () => this.accept(sid, env));
    else if (isResentPrepared(env.body) && this.factories.has(env.proto)) void this.underSidLock(sid, env, () => this.answerUnknown(sid, env));
    else {
      this.orphans.keep(sid, env);
      // A NEVER for a committing session whose party was dropped: run it again, and it takes the NEVER.
      if (isNever(env.body)) void this.resumeFromStore(sid);
    }
  }

  /**
   * A peer in its confirm phase re-sends PREPARED for a session that is not running (nor being
   * opened) here. A re-send comes after a restart, a link-up or a timeout, so the session ended
   * here: it finished (answer from the stored 'done' checkpoint: the peer missed our ACTIVATED), it
   * ended before this party persisted PENDING (crash, timeout, failed write), or this party dropped
   * its PENDING on a NEVER. In the last two cases it records the sid as aborted and promises, signed,
   * never to activate it (NEVER): the pending peers drop their PENDING instead of waiting forever.
   */
  private async answerUnknown(sid: string, env: Envelope, attempt = 1): Promise<void> {
    if (this.sessions.has(sid)) return;
    const reply = (round: number, body: Uint8Array): void => {
      try {
        this.opts.peers.link(ROLE_OF[env.from])?.send(PROTO_TOPIC, encodeEnvelope({ sid: env.sid, proto: env.proto, round, from: this.opts.self, to: env.from, body }));
      } catch {
        /* the peer re-sends when the link is back */
      }
    };
    try {
      const record = await this.opts.store.sessionRecord(sid);
      if (this.sessions.has(sid)) return; // resumed meanwhile: the session answers
      if (record && !record.ownTriplet) {
        this.security("re-send for another triplet's session (shared store)", { proto: env.proto, sid, from: ROLE_OF[env.from] });
        return;
      }
      if (record && record.proto !== env.proto) {
        this.security('confirm message names another protocol than the session', { proto: env.proto, sid });
        return;
      }
      if (record?.state === 'open' && record.checkpoint !== null) {
        // Committing here, but its party is not running (dropped on a failed write): run it again.
        await this.resumeFromStoreLocked(sid, 1);
        return;
      }
      if (record?.state === 'done') {
        if (record.checkpoint === null) return;
        const cp = fromJsonWithBytes<{ checkpoint: ConfirmCheckpoint }>(record.checkpoint).checkpoint;
        for (const r of confirmRepliesFromCheckpoint(cp, env.from)) reply(r.round, r.body);
        return;
      }
      if (record?.state !== 'aborted') {
        await this.opts.store.applyKeyWrites([{ op: 'session-never', sid, proto: env.proto }]);
        // The promise holds only if the store says so (a session that persisted its confirm state is spared).
        const now = await this.opts.store.sessionRecord(sid);
        if (now?.state !== 'aborted' || !now.ownTriplet) return;
      }
      this.opts.log.info({ proto: env.proto, sid, to: ROLE_OF[env.from] }, 'answered NEVER for a session that ended here before PENDING');
      reply(env.round, neverBody(this.opts.signer, env.proto, env.sid, this.opts.self));
    } catch (e) {
      // Typically the store cannot write (disk full): try again soon, so that the peer need not wait
      // for its own next re-send once the store works again.
      this.opts.log.error({ proto: env.proto, sid, err: (e as Error).message, attempt }, 'could not answer a re-sent confirm message');
      if (attempt < RETRY_ATTEMPTS) this.later(() => this.underSidLock(sid, env, () => this.answerUnknown(sid, env, attempt + 1)));
    }
  }

  /** A peer aborted a session: fail it here too instead of waiting for the timeout. */
  peerAborted(fromRole: PeerRole, bytes: Uint8Array): void {
    if (bytes.length < 32) return;
    const sid = toHex(bytes.subarray(0, 32));
    const reason = Buffer.from(bytes.subarray(32, 232)).toString('utf8').replace(/[^\x20-\x7e]/g, '?');
    const session = this.sessions.get(sid);
    if (!session || session.done) return;
    // In the session's queue: a step in flight may be the one that enters the confirm phase.
    session.queue = session.queue.then(() => {
      if (session.done) return;
      if (session.committing) {
        // It cannot abort (R4), but the peer can answer a re-send: done, or NEVER if it had no PENDING.
        this.enqueue(session, { op: 'start' });
        return;
      }
      const refused = REFUSAL.exec(reason);
      const err = refused
        ? new PeerRefusedError(fromRole, refused[1]!, `${fromRole} refused: ${refused[2] ?? refused[1]}`)
        : new ProtocolAbort(session.spec.label, -1, `${fromRole} aborted: ${reason}`, PARTY_OF[fromRole]);
      this.fail(session, err, false);
    });
  }

  private async accept(sid: string, env: Envelope): Promise<void> {
    const factory = this.factories.get(env.proto);
    if (!factory) {
      this.security('request for an unknown protocol', { proto: env.proto });
      return;
    }
    if (this.acceptedSids.get(sid)) {
      this.security('replayed session id refused', { proto: env.proto, sid });
      return;
    }
    this.acceptedSids.set(sid, true);
    let spec: SessionSpec;
    try {
      if (await this.opts.store.sidSeen(sid)) {
        this.security('replayed session id refused', { proto: env.proto, sid });
        return;
      }
      spec = await factory(env);
    } catch (e) {
      logAbort(this.opts.log, env.proto, sid, e);
      this.notifyAbort(sid, e);
      return;
    }
    if (this.sessions.has(sid)) return;
    const session = this.open(sid, spec);
    this.enqueue(session, { op: 'receive', env });
    for (const early of this.orphans.take(sid)) this.enqueue(session, { op: 'receive', env: early });
  }

  /** A step's writes failed: the session ends here (its messages, if any left, lead nowhere). */
  private writeFailed(session: Session, sid: string, e: unknown): void {
    if (e instanceof EkmError && e.code === 'EKM_PRESIG_USED') {
      // At a helper, another session claimed the presignature first: the EP asked for it twice
      // (docs/protocols.md §3.6). At the EP, a refresh or re-derivation burnt it meanwhile: it signs on demand.
      if (this.opts.self === 1) this.opts.log.info({ proto: session.spec.label, sid }, 'presignature burnt meanwhile: signing on demand');
      else this.security('presignature requested twice: this session is refused', { proto: session.spec.label, sid, err: e.message });
      this.fail(session, new ProtocolAbort(session.spec.label, -1, e.message, PARTY_OF.ep));
      return;
    }
    this.opts.log.error({ proto: session.spec.label, sid, err: (e as Error).message }, 'protocol state could not be stored');
    this.fail(session, new ProtocolAbort(session.spec.label, -1, `store write failed: ${(e as Error).message}`, null));
    // A session that had persisted its confirm state must go on from it, as after a restart.
    if (sid) this.later(() => this.resumeFromStore(sid));
  }

  private open(sid: string, spec: SessionSpec): Session {
    const session: Session = {
      sid,
      spec,
      party: this.opts.runner.create(spec.recipe, spec.label, spec.inline === true),
      queue: Promise.resolve(),
      timer: undefined,
      done: false,
      committing: false,
      idle: 0,
    };
    if (sid) this.sessions.set(sid, session);
    this.arm(session);
    return session;
  }

  private arm(session: Session): void {
    if (session.timer) clearTimeout(session.timer);
    session.timer = setTimeout(() => this.enqueue(session, { op: 'expire' }), this.timeoutMs * 2 ** Math.min(session.idle, MAX_IDLE_DOUBLINGS));
    session.timer.unref();
  }

  private enqueue(session: Session, call: Call): void {
    session.queue = session.queue.then(() => this.process(session, call));
  }

  private async process(session: Session, call: Call): Promise<void> {
    if (session.done) return;
    if (session.trailing) {
      const trailing = session.trailing;
      session.trailing = undefined;
      try {
        await trailing;
      } catch (e) {
        this.writeFailed(session, session.sid, e);
        return;
      }
    }
    let r: StepResult;
    try {
      r = await session.party.call(call);
    } catch (e) {
      // The party itself failed (e.g. its worker died): a committing session goes on from its checkpoint.
      const resume = session.committing && session.sid !== '';
      this.fail(session, e);
      if (resume) this.later(() => this.resumeFromStore(session.sid));
      return;
    }
    // Closed while the party computed (a peer's abort): nothing of this step is stored or sent.
    if (session.done) return;
    for (const ev of r.events) this.security(ev.reason, { proto: session.spec.label, sid: session.sid, round: ev.round, suspect: ev.suspect });
    session.committing = r.committing;
    if (r.thrown) {
      this.fail(session, fromData(r.thrown));
      return;
    }
    if (call.op === 'expire' && !r.failure && !r.finished) {
      // After PREPARED a state-changing session never aborts (R4): it waits for its peers and
      // re-sends, at every link-up and at growing intervals. The caller learns that the outcome is pending.
      session.settle?.reject(
        new EkmError('EKM_PROTOCOL_PENDING', `${session.spec.label} is committing and waits for a peer`, { hint: 'it completes when the peer is back; check again later' }),
      );
      session.settle = undefined;
      session.idle++;
      this.enqueue(session, { op: 'start' });
      return;
    }
    if (call.op === 'receive') session.idle = 0;
    const sid = session.sid || (r.send[0] ? toHex(r.send[0].sid) : '');
    if (!session.sid && sid) {
      session.sid = sid;
      this.sessions.set(sid, session);
    }
    protocolFailpoint(session.spec.label, r, 'before-persist');
    try {
      const writes = session.spec.toWrites(r.persist, sid);
      if (r.output !== undefined && session.spec.outputWrites) writes.push(...session.spec.outputWrites(r.output));
      if (session.spec.writesTrailSend && writes.length > 0 && r.output === undefined && !r.finished && !r.failure) {
        session.trailing = this.opts.store.applyKeyWrites(writes);
        session.trailing.catch(() => {}); // its failure is handled when the next step awaits it
      } else {
        await this.opts.store.applyKeyWrites(writes);
      }
    } catch (e) {
      // Nothing was sent: the peers time out; this server's state is unchanged or fully written.
      this.writeFailed(session, sid, e);
      return;
    }
    protocolFailpoint(session.spec.label, r, 'after-persist');
    for (const env of r.send) {
      try {
        // A missing link: the session times out, or re-sends when the link is back (confirm phase).
        this.opts.peers.link(ROLE_OF[env.to])?.send(PROTO_TOPIC, encodeEnvelope(env));
      } catch {
        /* the link closed between the check and the send: same as above */
      }
    }
    protocolFailpoint(session.spec.label, r, 'after-send');
    // Local work the party kept for after its messages left: it runs while the peers answer.
    if (r.more && !r.finished && !r.failure) this.enqueue(session, { op: 'resume' });
    this.arm(session);
    if (r.output !== undefined && session.settle) {
      session.settle.resolve(r.output);
      session.settle = undefined;
    }
    if (r.failure) this.fail(session, fromData(r.failure));
    else if (r.finished) this.close(session);
  }

  private fail(session: Session, err: unknown, notify = true): void {
    if (session.done) return;
    logAbort(this.opts.log, session.spec.label, session.sid, err);
    if (notify && session.sid) this.notifyAbort(session.sid, err);
    const message = err instanceof Error ? err.message : String(err);
    session.settle?.reject(err instanceof EkmError ? err : new ProtocolAbortedError(message));
    session.settle = undefined;
    this.close(session);
  }

  /**
   * Runs work for an envelope of no session yet under its sid's lock. The work handles its own
   * protocol failures; anything that still escapes it (a worker that cannot start, say) is logged as
   * the session's abort and told to the peers, so the EP does not wait for its timeout.
   */
  private underSidLock(sid: string, env: Envelope, work: () => Promise<void>): Promise<void> {
    return this.sidLock.run(sid, work).catch((e: unknown) => {
      logAbort(this.opts.log, env.proto, sid, e);
      this.notifyAbort(sid, e);
    });
  }

  private notifyAbort(sid: string, err: unknown): void {
    // A refusal keeps its code, so that the initiator can act on it (AuxShares.withAuxShares).
    const reason = err instanceof ProtocolAbort ? err.reason : err instanceof EkmError ? `refused: ${err.code}: ${err.message}` : 'refused';
    const body = Buffer.concat([Buffer.from(sid, 'hex'), Buffer.from(reason.slice(0, 200), 'utf8')]);
    for (const role of ['ep', 'partner', 'aux'] as const) {
      if (PARTY_OF[role] === this.opts.self) continue;
      try {
        this.opts.peers.link(role)?.send(ABORT_TOPIC, body);
      } catch {
        /* the peer times the session out instead */
      }
    }
  }

  private close(session: Session): void {
    session.done = true;
    if (session.timer) clearTimeout(session.timer);
    if (session.sid) this.sessions.delete(session.sid);
    session.party.dispose();
    if (session.settle) {
      session.settle.reject(new ProtocolAbortedError(`${session.spec.label} ended without a result`));
      session.settle = undefined;
    }
  }

  private security(what: string, fields: Record<string, unknown>): void {
    this.opts.log.warn({ event: 'security', kind: 'protocol_event', ...fields }, what);
  }

  /** A link came back: sessions in their confirm phase re-send (docs/protocols.md §5 I4). */
  private onPeerUp(): void {
    for (const s of this.sessions.values()) if (s.committing) this.enqueue(s, { op: 'start' });
  }
}

/** An aborted session in the log: a protocol abort is a security event naming its suspect. */
function logAbort(log: Logger, proto: string, sid: string, err: unknown): void {
  if (err instanceof ProtocolAbort) {
    log.warn(
      { event: 'security', kind: 'protocol_abort', proto, sid, round: err.round, reason: err.reason, suspect: err.suspect },
      'protocol session aborted',
    );
  } else {
    log.warn({ event: 'protocol_refused', proto, sid, err: err instanceof Error ? err.message : String(err) }, 'protocol session refused');
  }
}
