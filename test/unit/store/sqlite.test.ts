/** The embedded store's schema versioning: fresh, reopen, too new, and a migration that fails. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { makeDirs } from '../../../src/config/home.js';
import { EkmError } from '../../../src/errors.js';
import { LATEST_SCHEMA, MIGRATIONS } from '../../../src/store/migrations.js';
import { SqliteStore } from '../../../src/store/sqlite.js';

let dir: string;
let n = 0;
const fresh = (): string => join(dir, `s${++n}`, 'ekm.db');

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'ekm-sqlite-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Everything observable about a database file: its schema objects and every row of every table. */
function snapshot(path: string): string {
  const db = new Database(path, { fileMustExist: true, readonly: true });
  try {
    const objects = db.prepare("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name").all() as {
      type: string;
      name: string;
    }[];
    const rows = objects.filter((o) => o.type === 'table').map((o) => [o.name, db.prepare(`SELECT * FROM "${o.name}"`).all()]);
    return JSON.stringify({ objects, rows });
  } finally {
    db.close();
  }
}

function rawVersion(path: string): string | undefined {
  const db = new Database(path, { fileMustExist: true, readonly: true });
  try {
    return (db.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string } | undefined)?.value;
  } finally {
    db.close();
  }
}

/** A database migrated by hand to `version` (as an older release left it). */
function storeAt(path: string, version: number): void {
  makeDirs(dirname(path));
  const db = new Database(path);
  for (const m of MIGRATIONS.filter((x) => x.version <= version)) db.exec(m.sqlite);
  if (version > 0) db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', ?)").run(String(version));
  db.close();
}

describe('SqliteStore schema', () => {
  it('has migrations numbered 1..LATEST_SCHEMA without gaps', () => {
    assert.deepEqual(
      MIGRATIONS.map((m) => m.version),
      Array.from({ length: LATEST_SCHEMA }, (_, i) => i + 1),
    );
  });

  it('creates a fresh store at LATEST_SCHEMA in WAL mode', async () => {
    const path = fresh();
    const s = SqliteStore.open(path, { create: true });
    assert.equal(await s.schemaVersion(), LATEST_SCHEMA);
    await s.close();
    assert.equal(rawVersion(path), String(LATEST_SCHEMA));
    const db = new Database(path, { readonly: true });
    assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    db.close();
  });

  it('reopens idempotently: same schema, same data', async () => {
    const path = fresh();
    const s = SqliteStore.open(path, { create: true });
    await s.createPartition({ name: 'root', fipsRequired: false });
    await s.setMeta('cluster_id', '0123456789abcdef');
    await s.close();
    const before = snapshot(path);
    for (const create of [false, true]) {
      const again = SqliteStore.open(path, { create });
      assert.equal(await again.schemaVersion(), LATEST_SCHEMA);
      assert.equal((await again.getPartition('root'))?.name, 'root');
      assert.equal(await again.getMeta('cluster_id'), '0123456789abcdef');
      await again.close();
      assert.equal(snapshot(path), before);
    }
  });

  it('migrates a store an older release left behind, keeping its data', async () => {
    if (LATEST_SCHEMA < 2) return;
    const path = fresh();
    storeAt(path, 1);
    const db = new Database(path);
    db.prepare("INSERT INTO partitions (name, fips_required, created_at) VALUES ('old', 1, 'then')").run();
    db.close();
    const s = SqliteStore.open(path, { create: false });
    assert.equal(await s.schemaVersion(), LATEST_SCHEMA);
    assert.equal((await s.getPartition('old'))?.fipsRequired, true);
    await s.close();
  });

  it('migrating to schema 8 starts partition ids past the highest id found anywhere, also of deleted partitions', async () => {
    const path = fresh();
    storeAt(path, 7);
    const db = new Database(path);
    db.prepare("INSERT INTO partitions (id, name, fips_required, created_at) VALUES (1, 'root', 0, 'then')").run();
    // Partition 5 was deleted; one of its destroyed keys still names it.
    db.prepare(
      "INSERT INTO destroyed_keys (key_id, partition_id, alg, created_at, destroyed_at) VALUES ('k', 5, 'rsa-2048', 'then', 'then')",
    ).run();
    db.close();
    const s = SqliteStore.open(path, { create: false });
    assert.equal((await s.createPartition({ name: 'next', fipsRequired: false })).id, 6);
    await s.close();
  });

  it('refuses a store whose schema is newer than this release, and leaves it alone', async () => {
    const path = fresh();
    await SqliteStore.open(path, { create: true }).close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = ? WHERE name = 'schema_version'").run(String(LATEST_SCHEMA + 1));
    db.close();
    const before = snapshot(path);
    assert.throws(
      () => SqliteStore.open(path, { create: false }),
      (e: unknown) => {
        assert.ok(e instanceof EkmError);
        assert.equal(e.code, 'EKM_SCHEMA_TOO_NEW');
        assert.match(e.message, new RegExp(`schema ${LATEST_SCHEMA + 1}, newer than this release knows \\(${LATEST_SCHEMA}\\)`));
        assert.match(e.hint ?? '', /instead of downgrading/);
        return true;
      },
    );
    assert.equal(snapshot(path), before);
  });

  it('a migration that fails part-way leaves the store exactly as it was (from an empty file)', () => {
    // A table the first migration creates after others already exists: it fails at that statement.
    const path = fresh();
    storeAt(path, 0);
    const db = new Database(path);
    db.exec("CREATE TABLE users (x TEXT); INSERT INTO users VALUES ('keep me')");
    db.close();
    const before = snapshot(path);
    assert.throws(() => SqliteStore.open(path, { create: false }), /table users already exists/);
    const afterFailure = snapshot(path);
    assert.equal(afterFailure, before);
    assert.doesNotMatch(afterFailure, /"name":"meta"/, 'no meta table was left behind');
  });

  it('a failing later migration leaves the older schema and its data untouched', () => {
    if (LATEST_SCHEMA < 2) return;
    // The newest migration that creates tables fails on its last one; it and every later migration stay unapplied.
    const last = [...MIGRATIONS].reverse().find((m) => (m.sqlite.match(/CREATE TABLE \w+/g) ?? []).length >= 2)!;
    const tables = [...last.sqlite.matchAll(/CREATE TABLE (\w+)/g)].map((m) => m[1]!);
    const path = fresh();
    storeAt(path, last.version - 1);
    const db = new Database(path);
    db.prepare("INSERT INTO partitions (name, fips_required, created_at) VALUES ('data', 0, 'then')").run();
    db.exec(`CREATE TABLE ${tables.at(-1)!} (x INTEGER)`); // makes the last statement of the migration fail
    db.close();
    const before = snapshot(path);
    assert.throws(() => SqliteStore.open(path, { create: false }), new RegExp(`table ${tables.at(-1)!} already exists`));
    const afterFailure = snapshot(path);
    assert.equal(afterFailure, before);
    assert.equal(rawVersion(path), String(last.version - 1));
    assert.doesNotMatch(afterFailure, new RegExp(`"name":"${tables[0]!}"`), 'the tables created before the failure were rolled back');
  });

  it("is claimed for the first role that opens it and refuses another role's server", async () => {
    const path = fresh();
    await SqliteStore.open(path, { create: true, role: 'partner' }).close();
    await SqliteStore.open(path, { create: false, role: 'partner' }).close();
    assert.throws(
      () => SqliteStore.open(path, { create: false, role: 'ep' }),
      (e: unknown) =>
        e instanceof EkmError &&
        e.code === 'EKM_STORE_OTHER_ROLE' &&
        /holds the store of the Partner role; this server is an EP: this EKM_HOME/.test(e.oneLine()),
    );
  });

  it('refuses to open a missing store unless asked to create it', () => {
    assert.throws(
      () => SqliteStore.open(join(dir, 'nothing-here', 'ekm.db'), { create: false }),
      (e: unknown) => e instanceof EkmError && e.code === 'EKM_STORE_UNAVAILABLE' && /check EKM_HOME/.test(e.oneLine()),
    );
  });
});
