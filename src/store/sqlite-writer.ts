/**
 * Write transactions of the SQLite store on a thread of their own. better-sqlite3 is synchronous,
 * and a commit at synchronous=FULL waits for fsync (milliseconds, more under load): on the
 * server's event loop every protocol message, API request and heartbeat would wait with it. Here
 * the store's steps still run on the main thread (they are generators, see sql-store.ts), but
 * each statement of a transaction, and the commit, execute on the writer thread's connection.
 *
 * Transactions are queued and run one at a time (BEGIN IMMEDIATE on the writer's connection), so
 * they never interleave. Reads outside transactions stay on the main connection: in WAL mode they
 * never wait for the writer and see every transaction that has committed.
 */
import type { Worker } from 'node:worker_threads';
import { EkmError } from '../errors.js';
import { spawnModuleWorker } from '../worker-spawn.js';
import type { Steps, Stmt, StmtResult } from './sql-store.js';

export interface WriterRequest {
  readonly id: number;
  /** Opens the transaction before running `stmt`. */
  readonly begin?: true;
  readonly stmt?: Stmt;
  /** Ends the transaction (after `stmt`, when both are given: the statement marked last). */
  readonly end?: 'commit' | 'rollback';
  readonly close?: true;
}

export interface WriterReply {
  readonly id: number;
  readonly result?: StmtResult;
  readonly error?: { readonly message: string; readonly code?: string };
}

/** BLOB columns cross the thread boundary as Uint8Array; the main connection gives Buffers: so do we. */
function asBuffers(row: unknown): unknown {
  if (row === null || typeof row !== 'object') return row;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) out[k] = v instanceof Uint8Array && !Buffer.isBuffer(v) ? Buffer.from(v.buffer, v.byteOffset, v.byteLength) : v;
  return out;
}

export class SqliteWriter {
  private readonly worker: Worker;
  private readonly waiting = new Map<number, { resolve(r: StmtResult): void; reject(e: Error): void }>();
  private nextId = 1;
  /** The tail of the transaction queue. */
  private queue: Promise<unknown> = Promise.resolve();
  private failed: EkmError | undefined;
  private closing = false;

  /** Why writes can no longer be made (the thread died), if so: the store reports itself down. */
  get failure(): EkmError | undefined {
    return this.failed;
  }

  constructor(path: string) {
    this.worker = spawnModuleWorker(import.meta.url, 'sqlite-writer-worker', { workerData: { path } });
    this.worker.on('message', (m: WriterReply) => {
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (this.waiting.size === 0) this.worker.unref();
      if (m.error) w.reject(Object.assign(new Error(m.error.message), m.error.code ? { code: m.error.code } : {}));
      else w.resolve({ rows: m.result!.rows.map(asBuffers), changes: m.result!.changes });
    });
    // A writer that dies takes no transaction half-done with it (SQLite rolls back an open one);
    // every later write fails with this error until the server restarts.
    const die = (e: Error): void => {
      if (this.closing) return;
      this.failed = new EkmError('EKM_STORE_UNAVAILABLE', `the store's writer thread stopped: ${e.message}`, { hint: 'restart the server (ekm restart); every acknowledged write is on disk' });
      for (const w of this.waiting.values()) w.reject(this.failed);
      this.waiting.clear();
    };
    this.worker.on('error', die);
    this.worker.on('exit', (code) => die(new Error(`the store's writer thread exited (code ${code})`)));
    // Idle, the thread does not keep the process alive; a pending request does (see send).
    this.worker.unref();
  }

  /** Runs the steps as one write transaction on the writer thread, after those queued before it. */
  transaction<T>(steps: Steps<T>): Promise<T> {
    const run = this.queue.then(() => this.drive(steps));
    this.queue = run.catch(() => undefined);
    return run;
  }

  async close(): Promise<void> {
    await this.queue;
    if (this.failed) return;
    this.closing = true; // the thread's exit that follows is not a failure
    await this.send({ close: true }).catch(() => undefined);
  }

  private async drive<T>(steps: Steps<T>): Promise<T> {
    let begun = false;
    try {
      let next = steps.next();
      let committed = false;
      while (!next.done) {
        if (committed) throw new Error('a statement was yielded after the one marked last');
        const stmt = next.value;
        const req: Omit<WriterRequest, 'id'> = { ...(begun ? {} : { begin: true as const }), stmt, ...(stmt.last ? { end: 'commit' as const } : {}) };
        begun = true; // even if this first statement fails, its BEGIN has run: roll back below
        const result = await this.send(req);
        committed = stmt.last === true;
        next = steps.next(result);
      }
      if (begun && !committed) await this.send({ end: 'commit' });
      return next.value;
    } catch (e) {
      if (begun) await this.send({ end: 'rollback' }).catch(() => undefined);
      throw e;
    }
  }

  private send(req: Omit<WriterRequest, 'id'>): Promise<StmtResult> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.waiting.size === 0) this.worker.ref();
      this.waiting.set(id, { resolve, reject });
      this.worker.postMessage({ ...req, id } satisfies WriterRequest);
    });
  }
}
