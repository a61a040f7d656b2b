/**
 * Where protocol parties compute. A party lives on one thread for its whole session: in a pool of
 * worker threads (the default, so elliptic-curve math never blocks the server's event loop), or
 * in-process (tests, and `EKM_PROTOCOL_WORKERS=0`). Both run a step through `executeStep`.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
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
  /** The call threw a ProtocolAbort. */
  readonly thrown?: AbortData;
  /** The party stopped without throwing (e.g. after a REVEAL), or a timeout aborted it. */
  readonly failure: AbortData | null;
  readonly finished: boolean;
  readonly events: readonly SecurityEventData[];
  /** In the confirm phase of a two-phase commit: never aborts, re-sends when a link is back. */
  readonly committing: boolean;
}

export type Call = { readonly op: 'start' } | { readonly op: 'receive'; readonly env: Envelope } | { readonly op: 'expire' };

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
  let thrown: AbortData | undefined;
  try {
    if (call.op === 'expire') {
      // A party without a commit phase simply times out.
      if (typeof p.expire === 'function') p.expire();
      else thrown = { proto: label, round: -1, reason: 'timeout', suspect: null };
    } else {
      const step = call.op === 'start' ? p.start() : p.receive(call.env);
      persist = step.persist;
      send = step.send;
      output = step.output;
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
  create(recipe: Recipe, label: string): RunningParty;
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

const WORKER_ENTRY = new URL(import.meta.url.endsWith('.ts') ? './protocol-worker.ts' : './protocol-worker.js', import.meta.url);

interface WorkerSlot {
  readonly worker: Worker;
  readonly waiting: Map<number, { resolve(r: StepResult): void; reject(e: Error): void }>;
}

/** Parties in worker threads; each session is pinned to one worker, sessions are spread round-robin. */
export class WorkerRunner implements PartyRunner {
  private readonly slots: WorkerSlot[] = [];
  private next = 0;
  private seq = 0;
  private partyIds = 0;

  constructor(size = Math.max(1, Math.min(2, availableParallelism()))) {
    for (let i = 0; i < size; i++) {
      const worker = new Worker(WORKER_ENTRY, { execArgv: process.execArgv });
      const slot: WorkerSlot = { worker, waiting: new Map() };
      worker.on('message', (m: { seq: number; result?: StepResult; error?: string }) => {
        const w = slot.waiting.get(m.seq);
        if (!w) return;
        slot.waiting.delete(m.seq);
        if (m.result) w.resolve(m.result);
        else w.reject(new Error(m.error ?? 'protocol worker failed'));
      });
      worker.on('error', (err) => {
        for (const w of slot.waiting.values()) w.reject(err);
        slot.waiting.clear();
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  create(recipe: Recipe, label: string): RunningParty {
    const slot = this.slots[this.next++ % this.slots.length]!;
    const id = ++this.partyIds;
    let created = false;
    const post = (msg: object): Promise<StepResult> =>
      new Promise((resolve, reject) => {
        const seq = ++this.seq;
        slot.waiting.set(seq, { resolve, reject });
        slot.worker.postMessage({ seq, id, ...msg });
      });
    return {
      call: (c) => {
        const msg = created ? { call: c } : { call: c, recipe, label };
        created = true;
        return post(msg);
      },
      dispose: () => {
        if (created) slot.worker.postMessage({ seq: 0, id, dispose: true });
      },
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }
}
