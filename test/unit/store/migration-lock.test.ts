/**
 * Migrations run under the store's write lock: several processes that open one older
 * store at the same moment (a service start racing an `ekm` command) migrate it exactly once and
 * all see the latest schema; none fails on a half-applied migration.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LATEST_SCHEMA, MIGRATIONS } from '../../../src/store/migrations.js';

const SQLITE_STORE = new URL('../../../src/store/sqlite.ts', import.meta.url).href;

/** One process: waits for the common start moment, opens (and so migrates) the store, prints its schema. */
function opener(path: string, startAt: number): Promise<{ code: number; out: string }> {
  const code = `
    const { SqliteStore } = await import(${JSON.stringify(SQLITE_STORE)});
    while (Date.now() < ${startAt}) {}
    const s = SqliteStore.open(${JSON.stringify(path)}, { create: false });
    console.log(await s.schemaVersion());
    await s.close();`;
  return new Promise((res) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('close', (c) => res({ code: c ?? -1, out }));
  });
}

describe('migrations under the store lock', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-migrate-lock-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('three processes opening one schema-1 store at once: all succeed, the store is migrated once', async () => {
    const path = join(dir, 'ekm.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(MIGRATIONS[0]!.sqlite);
    db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', '1')").run();
    db.prepare("INSERT INTO partitions (name, fips_required, created_at) VALUES ('root', 1, 'then')").run();
    db.close();
    // Loading tsx and the store module takes a second or two; all three then open together.
    const startAt = Date.now() + 4000;
    const runs = await Promise.all([1, 2, 3].map(() => opener(path, startAt)));
    for (const r of runs) {
      assert.equal(r.code, 0, r.out);
      assert.equal(r.out.trim(), String(LATEST_SCHEMA));
    }
    const check = new Database(path, { readonly: true });
    try {
      assert.equal((check.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string }).value, String(LATEST_SCHEMA));
      assert.equal((check.prepare('SELECT count(*) AS n FROM partitions').get() as { n: number }).n, 1, 'data kept, nothing applied twice');
    } finally {
      check.close();
    }
  });
});
