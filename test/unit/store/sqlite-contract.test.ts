/**
 * The embedded store against the shared Store contract (test/unit/store/store-contract.ts): as tools
 * open it (everything on this thread) and as a server does (writes on the writer thread).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EkmError } from '../../../src/errors.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import { storeContract } from './store-contract.js';

let dir: string;
let n = 0;
before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ekm-sqlite-contract-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

storeContract('SQLite', {
  fresh: async () => SqliteStore.open(join(dir, `s${++n}`, 'ekm.db'), { create: true, barrier: new Barrier(randomBytes(32)) }),
});

storeContract('SQLite with its writer thread', {
  fresh: async () => SqliteStore.open(join(dir, `s${++n}`, 'ekm.db'), { create: true, barrier: new Barrier(randomBytes(32)), writerThread: true }),
});

describe('SQLite writer thread', () => {
  it('a writer thread that dies makes the store report itself down (writes and reads) instead of half-working', async () => {
    const s = SqliteStore.open(join(dir, `s${++n}`, 'ekm.db'), { create: true, barrier: new Barrier(randomBytes(32)), writerThread: true });
    await s.setMeta('before', '1');
    // The thread's death, from outside: what an out-of-memory kill of the thread would look like.
    await (s as unknown as { d: { writer: { worker: { terminate(): Promise<number> } } } }).d.writer.worker.terminate();
    await assert.rejects(s.setMeta('after', '1'), (e: unknown) => e instanceof EkmError && e.code === 'EKM_STORE_UNAVAILABLE' && e.httpStatus === 503);
    await assert.rejects(s.check(), (e: unknown) => e instanceof EkmError && e.code === 'EKM_STORE_UNAVAILABLE');
    await s.close();
  });
});
