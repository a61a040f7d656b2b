/**
 * Where protocol parties compute. A party lives on one thread for its whole session: in a pool of
 * worker threads (the default, so elliptic-curve math never blocks the server's event loop), or
 * in-process (tests, and `EKM_PROTOCOL_WORKERS=0`). Both run a step through `executeStep`.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { spawnModuleWorker } from '../worker-spawn.js';
import type { Envelope, Party, PartyId } from '../protocols/types.js';
import { ProtocolAbort } from '../protocols/types.js';
import { buildParty, type Recipe } from './party-recipes.js';

export interface AbortData {
  readonly proto: string;
  readonly round: number;
  readonly reason: string;
  readonly suspect: PartyId | null;
}

export interface SecurityEventData {
  readonly round: number;
  readonly reason: string;
  readonly suspect: PartyId | null;
}

/** The outcome of one call into a party, as plain data. */
export interface StepResult {
  readonly persist: readonly unknown[];
  readonly send: readonly Envelope[];
  readonly output?: unknown;
  /** The party asked for a `resume` call once this step's messages have left. */
  readonly more?: boolean;
  /** The call threw a ProtocolAbort. */
  readonly thrown?: AbortData;
  /** The party stopped without throwing (e.g. after a REVEAL), or a timeout aborted it. */
  readonly failure: AbortData | null;
  readonly finished: boolean;
  readonly events: readonly SecurityEventData[];
  /** In the confirm phase of a two-phase commit: never aborts, re-sends when a link is back. */
  readonly committing: boolean;
}

export type Call = { readonly op: 'start' } | { readonly op: 'receive'; readonly env: Envelope } | { readonly op: 'resume' } | { readonly op: 'expire' };

interface CommitCapable {
  failure?: ProtocolAbort | null;
  events?: SecurityEventData[];
  committing?: boolean;
  expire?: () => ProtocolAbort | null;
}

const toData = (a: ProtocolAbort): AbortData => ({ proto: a.proto, round: a.round, reason: a.reason, suspect: a.suspect });
export const fromData = (a: AbortData): ProtocolAbort => new ProtocolAbort(a.proto, a.round, a.reason, a.suspect);

/** Runs one call into a party and reports everything the host needs. */
export function executeStep(party: Party<unknown, unknown>, call: Call, label: string): StepResult {
  const p = party as Party<unknown, unknown> & CommitCapable;
  let persist: readonly unknown[] = [];
  let send: readonly Envelope[] = [];
  let output: unknown;
  let more = false;
  let thrown: AbortData | undefined;
  try {
    if (call.op === 'expire') {
      // A party without a commit phase simply times out.
      if (typeof p.expire === 'function') p.expire();
      else thrown = { proto: label, round: -1, reason: 'timeout', suspect: null };
    } else {
      const step = call.op === 'start' ? p.start() : call.op === 'resume' ? (p.resume?.() ?? { persist: [], send: [] }) : p.receive(call.env);
      persist = step.persist;
      send = step.send;
      output = step.output;
      more = step.more === true;
    }
  } catch (e) {
    if (!(e instanceof ProtocolAbort)) throw e;
    thrown = toData(e);
  }
  const events = p.events ? p.events.splice(0) : [];
  return {
    persist,
    send,
    ...(output !== undefined ? { output } : {}),
    ...(more ? { more } : {}),
    ...(thrown ? { thrown } : {}),
    failure: p.failure ? toData(p.failure) : null,
    finished: p.finished,
    events,
    committing: p.committing === true,
  };
}

export interface RunningParty {
  call(c: Call): Promise<StepResult>;
  dispose(): void;
}

export interface PartyRunner {
  /** A party for the recipe; `inline`: on this thread even when the runner has workers. */
  create(recipe: Recipe, label: string, inline?: boolean): RunningParty;
  close(): Promise<void>;
}

export class InProcessRunner implements PartyRunner {
  create(recipe: Recipe, label: string): RunningParty {
    const party = buildParty(recipe);
    return {
      call: (c) => Promise.resolve().then(() => executeStep(party, c, label)),
      dispose() {},
    };
  }

  async close(): Promise<void> {}
}

interface WorkerSlot {
  worker: Worker;
  readonly waiting: Map<number, { resolve(r: StepResult): void; reject(e: Error): void }>;
}

/** Parties in worker threads; each session is pinned to one worker, sessions are spread round-robin. */
export class WorkerRunner implements PartyRunner {
  private readonly slots: WorkerSlot[] = [];
  private next = 0;
  private seq = 0;
  private partyIds = 0;

  private closed = false;
  private readonly inProcess = new InProcessRunner();

  /** Workers start on the first session, not with the server: they would compete with its start-up. */
  constructor(private readonly size = Math.max(1, Math.min(2, availableParallelism()))) {}

  private ensureStarted(): void {
    while (this.slots.length < this.size) {
      const slot: WorkerSlot = { worker: undefined as unknown as Worker, waiting: new Map() };
      this.attach(slot);
      this.slots.push(slot);
    }
  }

  /** Starts the slot's worker; if it dies, its sessions fail (they abort cleanly) and a new one starts. */
  private attach(slot: WorkerSlot): void {
    const worker = spawnModuleWorker(import.meta.url, 'protocol-worker');
    slot.worker = worker;
    worker.on('message', (m: { seq: number; result?: StepResult; error?: string }) => {
      const w = slot.waiting.get(m.seq);
      if (!w) return;
      slot.waiting.delete(m.seq);
      // Idle workers do not keep the process alive; a pending call does.
      if (slot.waiting.size === 0) worker.unref();
      if (m.result) w.resolve(m.result);
      else w.reject(new Error(m.error ?? 'protocol worker failed'));
    });
    const died = (err: Error): void => {
      if (slot.worker !== worker) return;
      for (const w of slot.waiting.values()) w.reject(err);
      slot.waiting.clear();
      if (!this.closed) this.attach(slot);
    };
    worker.on('error', (err) => died(err));
    worker.on('exit', (code) => died(new Error(`protocol worker exited (${code})`)));
    worker.unref();
  }

  create(recipe: Recipe, label: string, inline = false): RunningParty {
    if (inline) return this.inProcess.create(recipe, label);
    this.ensureStarted();
    const slot = this.slots[this.next++ % this.slots.length]!;
    const id = ++this.partyIds;
    let created = false;
    const worker = slot.worker;
    const post = (msg: object): Promise<StepResult> =>
      new Promise((resolve, reject) => {
        // A session lives in one worker: if that worker was replaced, the party is gone.
        if (slot.worker !== worker) {
          reject(new Error('the protocol worker of this session restarted'));
          return;
        }
        const seq = ++this.seq;
        if (slot.waiting.size === 0) worker.ref();
        slot.waiting.set(seq, { resolve, reject });
        worker.postMessage({ seq, id, ...msg });
      });
    return {
      call: (c) => {
        const msg = created ? { call: c } : { call: c, recipe, label };
        created = true;
        return post(msg);
      },
      dispose: () => {
        if (created && slot.worker === worker) worker.postMessage({ seq: 0, id, dispose: true });
      },
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
