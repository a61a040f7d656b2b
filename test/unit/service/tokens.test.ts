/**
 * Bearer tokens (src/service/tokens.ts) over a real SQLite store: expiry by the checking EP's
 * clock, and a login whose password check races a password reset gets no token.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../../src/crypto/password.js';
import { Accounts } from '../../../src/service/accounts.js';
import { ApiTokens } from '../../../src/service/tokens.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import type { Store } from '../../../src/store/store.js';

const PASSWORD = 'Carol-pass-1';
let dir: string;
let store: SqliteStore;
let rootId: number;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ekm-tokens-'));
  store = SqliteStore.open(join(dir, 'ekm.db'), { create: true, barrier: new Barrier(randomBytes(32)) });
  rootId = (await store.createPartition({ name: 'root', fipsRequired: false })).id;
  await store.createUser({ partitionId: rootId, name: 'carol', role: 'user', passwordHash: await hashPassword(PASSWORD) });
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('bearer tokens', () => {
  it('a token is accepted until its lifetime has passed on the clock of the EP that checks it', async () => {
    let now = Date.parse('2030-01-01T00:00:00Z');
    const tokens = new ApiTokens(store, new Accounts(store), 60, () => now);
    const issued = await tokens.issue('carol@root', PASSWORD);
    assert.ok(issued);
    assert.equal(issued.expiresInSeconds, 60);
    now += 59_999;
    assert.equal((await tokens.holder(issued.token))?.user, 'carol');
    now += 1;
    assert.equal(await tokens.holder(issued.token), undefined);
  });

  it('a login whose password check races a reset gets no token', async () => {
    // The reset lands after the login read the password hash and before its token is recorded.
    const racing: Store = Object.create(store, {
      createApiToken: {
        value: async (...args: Parameters<Store['createApiToken']>) => {
          await store.setUserPassword(rootId, 'carol', await hashPassword('Carol-pass-2'));
          return store.createApiToken(...args);
        },
      },
    }) as Store;
    const tokens = new ApiTokens(racing, new Accounts(racing), 60);
    assert.equal(await tokens.issue('carol@root', PASSWORD), undefined);
    // With the new password, and no reset in between, a token is issued.
    const fresh = new ApiTokens(store, new Accounts(store), 60);
    const issued = await fresh.issue('carol@root', 'Carol-pass-2');
    assert.equal((await fresh.holder(issued!.token))?.user, 'carol');
  });
});
