/**
 * A backup opens every sealed share of the store it copies (checkSealedShares), so that an archive
 * never holds a store its system key cannot open. Shares of keys with a policy are sealed with the
 * policy in their AAD (src/store/sql-store.ts shareAad): the check must open those too.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { checkSealedShares } from '../../../src/backup/snapshot.js';
import { shareToRecord } from '../../../src/service/share-codec.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import { dealKey } from '../../support/ec-test-keys.js';

const dir = mkdtempSync(join(tmpdir(), 'ekm-sealed-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('backup: every sealed share opens', () => {
  it('with and without a policy; another system key is refused', async () => {
    const path = join(dir, 'ekm.db');
    const systemKey = randomBytes(32);
    const store = SqliteStore.open(path, { create: true, barrier: new Barrier(systemKey) });
    for (const [keyId, notAfter] of [
      ['plain', undefined],
      ['expiring', Date.parse('2031-01-01T00:00:00Z')],
    ] as const) {
      const share = { ...dealKey('ecdsa-p256', { keyId }).shares[2], ...(notAfter !== undefined ? { notAfter } : {}) };
      await store.applyKeyWrites([{ op: 'key-create', keyId, alg: share.alg, share: shareToRecord(share) }]);
    }
    await store.close();
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(checkSealedShares(db, systemKey), 2);
      assert.throws(() => checkSealedShares(db, randomBytes(32)), (e: Error & { code?: string }) => e.code === 'EKM_BACKUP_CORRUPT');
    } finally {
      db.close();
    }
  });
});
