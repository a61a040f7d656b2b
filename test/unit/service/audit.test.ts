/**
 * The hash-chained, signed audit log (src/service/audit.ts): an intact chain verifies; a row
 * edited, deleted, re-hashed or cut off the end in the SQLite file itself is detected.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { AuditLog, auditHash, canonicalAudit } from '../../../src/service/audit.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import type { AuditRecord } from '../../../src/store/store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function fresh(rows = 6): Promise<{ path: string; key: Barrier; store: SqliteStore; log: AuditLog }> {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-audit-'));
  dirs.push(dir);
  const path = join(dir, 'ekm.db');
  const key = new Barrier(randomBytes(32));
  const store = SqliteStore.open(path, { create: true, barrier: key });
  const log = new AuditLog(store);
  for (let i = 0; i < rows; i++) {
    await log.record({ requestId: `r${i}`, actor: 'so@root', partition: 'root', operation: 'key.sign', keyId: '0123456789abcdef', result: 'ok', status: 200, client: '127.0.0.1', detail: null });
  }
  return { path, key, store, log };
}

/** The attacker's view: the database file, without the system key; triggers dropped first. */
function tamper(path: string, sql: string, ...args: unknown[]): void {
  const db = new Database(path);
  db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;');
  db.prepare(sql).run(...args);
  db.close();
}

/** Reopens as a restarted server would (no memory of what it wrote). */
async function verifyAfterRestart(path: string, key: Barrier) {
  const s = SqliteStore.open(path, { create: false, barrier: key });
  try {
    return await new AuditLog(s).verify();
  } finally {
    await s.close();
  }
}

describe('audit chain', () => {
  it('an intact chain verifies; the integrity key is made once and stored sealed', async () => {
    const { store, log, path } = await fresh();
    const r = await log.verify();
    assert.deepEqual({ ok: r.ok, rows: r.rows, problems: r.problems }, { ok: true, rows: 6, problems: [] });
    assert.equal(r.head?.seq, 6);
    const keys = await store.listIntegrityKeys();
    assert.equal(keys.length, 1);
    await store.close();
    const db = new Database(path, { readonly: true });
    const sealed = db.prepare('SELECT sealed FROM integrity_keys').get() as { sealed: Buffer };
    db.close();
    assert.equal(sealed.sealed[0], 1, 'barrier format byte');
  });

  it('SQL UPDATE and DELETE on the audit table are refused', async () => {
    const { store, path } = await fresh(2);
    await store.close();
    const db = new Database(path);
    assert.throws(() => db.prepare("UPDATE audit SET result = 'denied'").run(), /append-only/);
    assert.throws(() => db.prepare('DELETE FROM audit').run(), /append-only/);
    db.close();
  });

  it('detects an edited row', async () => {
    const { store, path, key } = await fresh();
    await store.close();
    tamper(path, "UPDATE audit SET actor = 'mallory@root' WHERE seq = 3");
    const r = await verifyAfterRestart(path, key);
    assert.equal(r.ok, false);
    assert.deepEqual(r.problems, [{ seq: 3, problem: 'its content does not match its hash (the row was altered)' }]);
  });

  it('a row without a partition id hashes as rows were hashed before ids existed: old chains still verify', () => {
    const row = { seq: 7, at: '2026-01-01T00:00:00.000Z', requestId: 'r', actor: 'so@p2', partition: 'p2', operation: 'key.list', keyId: null, result: 'ok' as const, status: 200, client: '::1', detail: null };
    const before = JSON.stringify([7, row.at, 'r', 'so@p2', 'p2', 'key.list', null, 'ok', 200, '::1', null]);
    assert.equal(canonicalAudit(row), before);
    assert.equal(canonicalAudit({ ...row, partitionId: null }), before);
    assert.equal(canonicalAudit({ ...row, partitionId: 3 }), JSON.stringify([...(JSON.parse(before) as unknown[]), 3]));
  });

  it('rows with and without a partition id verify in one chain; an id edited, added or removed is detected', async () => {
    const { store, log, path, key } = await fresh(3);
    for (let i = 0; i < 3; i++) {
      await log.record({ requestId: `p${i}`, actor: 'so@p2', partition: 'p2', partitionId: 2, operation: 'key.list', keyId: null, result: 'ok', status: 200, client: '::1', detail: null });
    }
    assert.deepEqual((await store.listAudit({ limit: 10 })).map((r) => r.partitionId), [null, null, null, 2, 2, 2]);
    assert.equal((await log.verify()).ok, true);
    await store.close();
    tamper(path, 'UPDATE audit SET partition_id = 9 WHERE seq = 4');
    tamper(path, 'UPDATE audit SET partition_id = 2 WHERE seq = 2');
    tamper(path, 'UPDATE audit SET partition_id = NULL WHERE seq = 6');
    const r = await verifyAfterRestart(path, key);
    assert.deepEqual(r.problems.map((p) => p.seq), [2, 4, 6]);
  });

  it('detects rows re-signed with an integrity key added to the database (its seal does not open)', async () => {
    const { store, path, key } = await fresh();
    const [real] = await store.listIntegrityKeys();
    await store.close();
    // The attacker's own Ed25519 key, listed beside the real one (older, so signing keeps the real
    // one), with junk where the sealed private key goes; rows 3.. edited and re-chained with it.
    const { publicKey, privateKey } = generateKeyPairSync('ed25519');
    tamper(
      path,
      "INSERT INTO integrity_keys (id, partition_id, public_key, sealed, created_at) VALUES ('evil', 1, ?, ?, '2000-01-01T00:00:00.000Z')",
      publicKey.export({ format: 'pem', type: 'spki' }),
      randomBytes(64),
    );
    const db = new Database(path);
    db.exec('DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;');
    const rows = db.prepare('SELECT * FROM audit ORDER BY seq').all() as Record<string, unknown>[];
    let prev = rows[1]!.hash as string;
    for (const r of rows.slice(2)) {
      const row = { seq: r.seq as number, at: r.at as string, requestId: r.request_id as string, actor: 'mallory@root', partition: r.partition as string, operation: r.operation as string, keyId: r.key_id as string, result: r.result as 'ok', status: r.status as number, client: r.client as string, detail: null };
      const hash = auditHash(prev, row);
      const sig = sign(null, Buffer.concat([Buffer.from('ekm-audit-v1\0', 'utf8'), Buffer.from(hash, 'hex')]), privateKey).toString('base64');
      db.prepare("UPDATE audit SET actor = 'mallory@root', prev_hash = ?, hash = ?, sig = ?, key_ref = 'evil' WHERE seq = ?").run(prev, hash, sig, row.seq);
      prev = hash;
    }
    db.close();
    assert.ok(real);
    const r = await verifyAfterRestart(path, key);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.problems.map((p) => p.seq),
      [3, 4, 5, 6],
    );
    assert.match(r.problems[0]!.problem, /integrity key evil, which the store lists but this server's system key did not seal/);
  });

  it('detects a deleted row in the middle', async () => {
    const { store, path, key } = await fresh();
    await store.close();
    tamper(path, 'DELETE FROM audit WHERE seq = 4');
    const r = await verifyAfterRestart(path, key);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.problems.map((p) => p.seq),
      [4, 5],
    );
    assert.match(r.problems[0]!.problem, /row 4 is missing/);
    assert.match(r.problems[1]!.problem, /link to the previous row is broken/);
  });

  it('detects an edit whose hashes were recomputed down the chain (signatures fail)', async () => {
    const { store, path, key } = await fresh();
    await store.close();
    const db = new Database(path);
    db.exec('DROP TRIGGER audit_no_update;');
    const rows = db.prepare('SELECT * FROM audit ORDER BY seq').all() as Record<string, unknown>[];
    let prev = '0'.repeat(64);
    for (const raw of rows) {
      const r = {
        seq: raw.seq as number,
        at: raw.at as string,
        requestId: raw.request_id as string,
        actor: raw.seq === 2 ? 'mallory@root' : (raw.actor as string),
        partition: raw.partition as string,
        operation: raw.operation as string,
        keyId: raw.key_id as string,
        result: raw.result as AuditRecord['result'],
        status: raw.status as number,
        client: raw.client as string,
        detail: raw.detail as string | null,
      };
      const h = auditHash(prev, r);
      db.prepare('UPDATE audit SET actor = ?, prev_hash = ?, hash = ? WHERE seq = ?').run(r.actor, prev, h, r.seq);
      prev = h;
    }
    db.close();
    const r = await verifyAfterRestart(path, key);
    assert.equal(r.ok, false);
    assert.deepEqual(
      r.problems.map((p) => p.seq),
      [2, 3, 4, 5, 6],
    );
    assert.ok(r.problems.every((p) => /signature does not verify/.test(p.problem)));
  });

  it('the running server detects rows cut off the end', async () => {
    const { store, path, log } = await fresh();
    tamper(path, 'DELETE FROM audit WHERE seq >= 5');
    const r = await log.verify();
    assert.equal(r.ok, false);
    assert.match(r.problems[0]!.problem, /rows after 4 up to 6 were written by this server and are gone/);
    await store.close();
  });

  it('appends stay chained under concurrency', async () => {
    const { store, log } = await fresh(0);
    await Promise.all(Array.from({ length: 50 }, (_, i) => log.record({ requestId: `c${i}`, actor: null, partition: null, operation: 'auth.token', keyId: null, result: 'denied', status: 401, client: '::1', detail: 'EKM_UNAUTHORIZED' })));
    const r = await log.verify();
    assert.equal(r.ok, true);
    assert.equal(r.rows, 50);
    assert.equal((await store.listIntegrityKeys()).length, 1, 'one key despite concurrent first use');
    await store.close();
  });

  it('rows recorded together share one transaction (group commit), in the order they were recorded', async () => {
    const { store, log } = await fresh(0);
    const transactions: number[] = [];
    const append = store.appendAudit.bind(store);
    store.appendAudit = async (entries, chain) => {
      transactions.push(entries.length);
      return append(entries, chain);
    };
    const recs = await Promise.all(Array.from({ length: 20 }, (_, i) => log.record({ requestId: `g${i}`, actor: null, partition: null, operation: 'key.sign', keyId: null, result: 'ok', status: 200, client: '::1', detail: null })));
    assert.deepEqual(
      recs.map((r) => [r.seq, r.requestId]),
      Array.from({ length: 20 }, (_, i) => [i + 1, `g${i}`]),
    );
    assert.ok(transactions.length < 20, `20 rows in ${transactions.length} transactions`);
    assert.equal((await log.verify()).ok, true);
    await store.close();
  });

  it('drain() commits the rows still waiting for their group commit', async () => {
    const { store, log } = await fresh(0);
    const waiting = log.record({ requestId: 'last', actor: null, partition: null, operation: 'key.sign', keyId: null, result: 'ok', status: 200, client: '::1', detail: null });
    assert.equal((await store.listAudit({ limit: 10 })).length, 0, 'not committed yet');
    await log.drain();
    assert.deepEqual((await store.listAudit({ limit: 10 })).map((r) => r.requestId), ['last']);
    assert.equal((await waiting).seq, 1);
    await store.close();
  });
});
