/**
 * The EP/Partner consistency check of a restore: which keys both archives hold at a common epoch
 * (CURRENT or PREVIOUS, docs/protocols.md §6 and R9), the refusals, `--partial`, and what the bootstrap does
 * to the restored store (one epoch per key, no single-use material, no old server rows, recovery
 * pending on the EP).
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type KeyEpochs, planRestore } from '../../../src/backup/key-epochs.js';
import { applyRestorePlan, checkRestorePair, inspectRestoredStore } from '../../../src/backup/restore-boot.js';
import { EkmError } from '../../../src/errors.js';
import { RECOVERY_META } from '../../../src/service/aux-recovery.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import { Barrier } from '../../../src/store/barrier.js';
import { readFileSync } from 'node:fs';
import { CLUSTER, makeHome, share, tempDir } from './fixture.js';

const dir = tempDir();
after(() => rmSync(dir, { recursive: true, force: true }));

const k = (keyId: string, held: [number, 'current' | 'previous', string?][], alg = 'ecdsa-p256'): KeyEpochs => ({
  keyId,
  alg,
  epoch: held.find((h) => h[1] === 'current')?.[0] ?? 0,
  held: held.map(([epoch, status, pub]) => ({ epoch, status, pub: pub ?? `pub-${keyId}-${epoch}` })),
});

describe('planRestore', () => {
  it('keeps keys at the same CURRENT epoch', () => {
    const p = planRestore([k('a', [[0, 'current']]), k('b', [[3, 'current']])], [k('a', [[0, 'current']]), k('b', [[3, 'current']])]);
    assert.deepEqual(p.keep, [
      { keyId: 'a', epoch: 0 },
      { keyId: 'b', epoch: 3 },
    ]);
    assert.equal(p.problems.length, 0);
    assert.equal(p.rolledBack, 0);
  });

  it('a refresh between the two backups: the common epoch is the PREVIOUS of one side (R9)', () => {
    const p = planRestore(
      [
        k('a', [
          [1, 'previous'],
          [2, 'current'],
        ]),
      ],
      [k('a', [[1, 'current']])],
    );
    assert.deepEqual(p.keep, [{ keyId: 'a', epoch: 1 }]);
    assert.equal(p.rolledBack, 1);
    const q = planRestore(
      [k('a', [[1, 'current']])],
      [
        k('a', [
          [1, 'previous'],
          [2, 'current'],
        ]),
      ],
    );
    assert.deepEqual(q.keep, [{ keyId: 'a', epoch: 1 }]);
  });

  it('names keys held by one side only, with no common epoch, or with different public data', () => {
    const p = planRestore(
      [k('a', [[0, 'current']]), k('b', [[2, 'current']]), k('c', [[0, 'current', 'x']]), k('ok', [[0, 'current']])],
      [k('b', [[0, 'current']]), k('c', [[0, 'current', 'y']]), k('d', [[0, 'current']]), k('ok', [[0, 'current']])],
    );
    assert.deepEqual(p.keep, [{ keyId: 'ok', epoch: 0 }]);
    assert.deepEqual(
      p.problems.map((x) => [x.keyId, x.why]),
      [
        ['a', 'only in the EP archive'],
        ['b', 'no common epoch (EP holds 2, Partner holds 0)'],
        ['c', 'EP and Partner hold different public data for it'],
        ['d', 'only in the Partner archive'],
      ],
    );
  });
});

describe('checkRestorePair', () => {
  const own = (keys: KeyEpochs[], partial = false, clusterId = CLUSTER) => ({
    clusterId,
    keys,
    keysDigest: 'd',
    schemaVersion: 2,
    partial,
  });
  const hello = (keys: KeyEpochs[], partial = false, clusterId = CLUSTER) => ({
    clusterId,
    keysDigest: 'd',
    keyCount: keys.length,
    partial,
  });
  const code = async (p: Promise<unknown>, re: RegExp): Promise<void> => {
    await assert.rejects(p, (e: unknown) => e instanceof EkmError && e.code === 'EKM_RESTORE_MISMATCH' && re.test(e.message));
  };
  const A = [k('a', [[0, 'current']]), k('b', [[0, 'current']])];
  const B = [k('a', [[0, 'current']])];

  it('neither restoring: nothing to check', async () => {
    assert.equal(
      await checkRestorePair(
        'ep',
        undefined,
        null,
        async () => [],
        () => undefined,
      ),
      null,
    );
  });
  it('refuses when only one side restores, or the clusters differ', async () => {
    await code(
      checkRestorePair(
        'ep',
        own(A),
        null,
        async () => [],
        () => undefined,
      ),
      /the Partner is not bootstrapping with -restore/,
    );
    await code(
      checkRestorePair(
        'partner',
        undefined,
        hello(A),
        async () => [],
        () => undefined,
      ),
      /the EP is bootstrapping with -restore and this server is not/,
    );
    await code(
      checkRestorePair(
        'ep',
        own(A),
        hello(A, false, 'ffffffffffffffff'),
        async () => A,
        () => undefined,
      ),
      /belong to different clusters/,
    );
  });
  it('refuses a mismatch naming the keys unless both sides say --partial; both sides reach the same plan', async () => {
    const lines: string[] = [];
    await code(
      checkRestorePair(
        'ep',
        own(A),
        hello(B),
        async () => B,
        (l) => lines.push(l),
      ),
      /1 of 2 keys cannot be restored \(b only in the EP archive\)/,
    );
    assert.match(lines.join('\n'), /key b \(ecdsa-p256\): only in the EP archive/);
    await code(
      checkRestorePair(
        'ep',
        own(A, true),
        hello(B),
        async () => B,
        () => undefined,
      ),
      /--partial was given to this EP only/,
    );
    await code(
      checkRestorePair(
        'partner',
        own(B),
        hello(A, true),
        async () => A,
        () => undefined,
      ),
      /--partial was given to the EP only/,
    );
    const ep = await checkRestorePair(
      'ep',
      own(A, true),
      hello(B, true),
      async () => B,
      () => undefined,
    );
    const partner = await checkRestorePair(
      'partner',
      own(B, true),
      hello(A, true),
      async () => A,
      () => undefined,
    );
    assert.deepEqual(ep, partner);
    assert.deepEqual(ep!.keep, [{ keyId: 'a', epoch: 0 }]);
  });
});

describe('applyRestorePlan on a restored store', () => {
  it('keeps one epoch per kept key, drops the rest, clears single-use material and old servers, marks recovery (EP)', async () => {
    const { paths, keyIds } = await makeHome(join(dir, 'h1'), 'ep', 3);
    // key 0 also holds a PREVIOUS epoch... as if a refresh were between RF3 and RF4.
    const barrier = new Barrier(readFileSync(paths.systemKey));
    const store = SqliteStore.open(paths.sqlite, { create: false, barrier });
    await store.applyKeyWrites([{ op: 'share-put', share: share(keyIds[0]!, 1, 1), status: 'pending' }]);
    await store.applyKeyWrites([{ op: 'epoch-activate', keyId: keyIds[0]!, from: 0, to: 1 }]);
    await store.close();
    const raw = new Database(paths.sqlite);
    raw
      .prepare('INSERT INTO api_tokens (token_sha256, partition_id, user_name, credential_version, expires_at, created_at) VALUES (?, 1, ?, 1, ?, ?)')
      .run('ab'.repeat(32), 'so', '2999-01-01T00:00:00.000Z', new Date().toISOString());
    raw.close();
    const inspected = await inspectRestoredStore(paths.sqlite, 'ep');
    assert.deepEqual(
      inspected.keys[0]!.held.map((h) => [h.epoch, h.status]),
      [
        [0, 'previous'],
        [1, 'current'],
      ],
    );
    applyRestorePlan(paths.sqlite, 'ep', {
      keep: [
        { keyId: keyIds[0]!, epoch: 0 },
        { keyId: keyIds[1]!, epoch: 0 },
      ],
      problems: [],
      rolledBack: 1,
    });
    const db = new Database(paths.sqlite, { readonly: true });
    try {
      assert.deepEqual(db.prepare('SELECT key_id, current_epoch, aux_present FROM keys ORDER BY key_id').all(), [
        { key_id: keyIds[0], current_epoch: 0, aux_present: 0 },
        { key_id: keyIds[1], current_epoch: 0, aux_present: 0 },
      ]);
      assert.deepEqual(db.prepare('SELECT key_id, epoch, status FROM key_shares ORDER BY key_id').all(), [
        { key_id: keyIds[0], epoch: 0, status: 'current' },
        { key_id: keyIds[1], epoch: 0, status: 'current' },
      ]);
      for (const t of ['presignatures', 'servers', 'api_tokens'])
        assert.equal((db.prepare(`SELECT count(*) AS n FROM ${t}`).get() as { n: number }).n, 0, t);
      assert.equal(
        (db.prepare("SELECT count(*) AS n FROM protocol_sessions WHERE state = 'open' OR checkpoint IS NOT NULL").get() as { n: number }).n,
        0,
      );
      const rec = JSON.parse((db.prepare('SELECT value FROM meta WHERE name = ?').get(RECOVERY_META) as { value: string }).value) as {
        phase: string;
        keys: number;
      };
      assert.deepEqual([rec.phase, rec.keys], ['rederive', 2]);
    } finally {
      db.close();
    }
    // The kept share still opens under its (unchanged) row AAD.
    const reopened = SqliteStore.open(paths.sqlite, { create: false, barrier });
    assert.equal((await reopened.getShares(keyIds[0]!)).length, 1);
    await reopened.close();
  });

  it('the Partner does not mark a recovery (the EP drives it)', async () => {
    const { paths, keyIds } = await makeHome(join(dir, 'h2'), 'partner', 1);
    applyRestorePlan(paths.sqlite, 'partner', { keep: [{ keyId: keyIds[0]!, epoch: 0 }], problems: [], rolledBack: 0 });
    const db = new Database(paths.sqlite, { readonly: true });
    assert.equal(db.prepare('SELECT 1 FROM meta WHERE name = ?').get(RECOVERY_META), undefined);
    db.close();
  });
});
