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
import { AUDIT_GENESIS } from '../../../src/store/sql-store.js';
import { auditEntry, storeContract, toyChain } from './store-contract.js';

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

  it('two stores on one file (as two EPs on a shared database) append to one audit chain: a stale head hint never forks it nor leaves a gap', async () => {
    const path = join(dir, `s${++n}`, 'ekm.db');
    const barrier = new Barrier(randomBytes(32));
    const a = SqliteStore.open(path, { create: true, barrier, writerThread: true });
    const b = SqliteStore.open(path, { create: false, barrier, writerThread: true });
    try {
      // Each store's hint is stale from the second round on: the other appended in between.
      for (let i = 0; i < 6; i++) await (i % 2 ? b : a).appendAudit([auditEntry(`op${i}`)], toyChain);
      await Promise.all([a, b].flatMap((s) => Array.from({ length: 4 }, (_, i) => s.appendAudit([auditEntry(`race${i}`)], toyChain))));
      const rows = await a.listAudit({ limit: 100 });
      assert.deepEqual(
        rows.map((r) => r.seq),
        Array.from({ length: 14 }, (_, i) => i + 1),
      );
      assert.equal(rows[0]!.prevHash, AUDIT_GENESIS);
      for (let i = 1; i < rows.length; i++) assert.equal(rows[i]!.prevHash, rows[i - 1]!.hash, `row ${i + 1} links to the one before`);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('a failing statement marked last (committed with it) leaves nothing of its transaction', async () => {
    const s = SqliteStore.open(join(dir, `s${++n}`, 'ekm.db'), { create: true, barrier: new Barrier(randomBytes(32)), writerThread: true });
    try {
      await s.appendAudit([auditEntry('first')], toyChain);
      // The row breaks a NOT NULL constraint in the statement that carries the commit.
      await assert.rejects(s.appendAudit([{ ...auditEntry('bad'), operation: null as unknown as string }], toyChain));
      const next = (await s.appendAudit([auditEntry('second')], toyChain))[0]!;
      assert.deepEqual((await s.listAudit({ limit: 10 })).map((r) => [r.seq, r.operation]), [
        [1, 'first'],
        [2, 'second'],
      ]);
      assert.equal(next.seq, 2);
    } finally {
      await s.close();
    }
  });
});
