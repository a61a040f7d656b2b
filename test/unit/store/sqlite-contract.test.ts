/**
 * The embedded store against the shared Store contract (test/unit/store/store-contract.ts): as tools
 * open it (everything on this thread) and as a server does (writes on the writer thread).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before } from 'node:test';
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
