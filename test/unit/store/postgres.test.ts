/**
 * The PostgreSQL store against a real throwaway PostgreSQL server (test/support/postgres.ts): the
 * shared Store contract, then what is PostgreSQL's own: one database per role, migrations under a
 * lock and in one transaction, several servers sharing one database, unreachable databases.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import pg from 'pg';
import { EkmError } from '../../../src/errors.js';
import { Barrier } from '../../../src/store/barrier.js';
import { LATEST_SCHEMA, MIGRATIONS } from '../../../src/store/migrations.js';
import { checkDatabaseFree, copyPostgresToSqlite, loadSqliteIntoPostgres } from '../../../src/store/pg-copy.js';
import { PostgresStore, parseDbUrl, postgresMigrationSql } from '../../../src/store/postgres.js';
import type { Store } from '../../../src/store/store.js';
import { freePorts } from '../../support/cluster.js';
import { type PgServer, startPostgres } from '../../support/postgres.js';
import { auditEntry, storeContract, toyChain } from './store-contract.js';

let server: PgServer;
let n = 0;
before(async () => {
  server = await startPostgres();
});
after(() => server?.stop());

async function freshDb(): Promise<string> {
  const db = `ekm_t${++n}`;
  await server.createDatabase(db);
  return db;
}

async function sql<T>(db: string, text: string, params: unknown[] = []): Promise<T[]> {
  const c = new pg.Client({ connectionString: server.url(db) });
  await c.connect();
  try {
    return (await c.query(text, params)).rows as T[];
  } finally {
    await c.end();
  }
}

/** Everything observable in a database: its tables with their columns, and every row. */
async function snapshot(db: string): Promise<string> {
  const tables = await sql<{ table_name: string }>(
    db,
    "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
  );
  const out: unknown[] = [];
  for (const { table_name: t } of tables) {
    const cols = await sql(
      db,
      'SELECT column_name, data_type FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
      [t],
    );
    const rows = await sql(db, `SELECT coalesce(json_agg(x ORDER BY x::text), '[]') AS rows FROM "${t}" x`);
    out.push([t, cols, rows]);
  }
  return JSON.stringify(out);
}

/** A database migrated by hand to `version`, as an older release left it. */
async function dbAt(version: number): Promise<string> {
  const db = await freshDb();
  for (const m of MIGRATIONS.filter((x) => x.version <= version)) await sql(db, postgresMigrationSql(m));
  if (version > 0) await sql(db, "INSERT INTO meta (name, value) VALUES ('schema_version', $1)", [String(version)]);
  return db;
}

const open = (db: string, opts: { create?: boolean; role?: 'ep' | 'partner' } = {}): Promise<Store> =>
  PostgresStore.open(parseDbUrl(server.url(db)), {
    create: opts.create ?? true,
    role: opts.role ?? 'ep',
    barrier: new Barrier(randomBytes(32)),
  });

const isCode =
  (code: string, message?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof EkmError, `an EkmError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.oneLine(), message);
    return true;
  };

storeContract('PostgreSQL', { fresh: async () => open(await freshDb()) });

describe('PostgreSQL store: one database per role', () => {
  it('claims a new database for its role and refuses it to another role, naming both', async () => {
    const db = await freshDb();
    await (await open(db, { role: 'ep' })).close();
    await (await open(db, { role: 'ep', create: false })).close();
    await assert.rejects(
      open(db, { role: 'partner' }),
      isCode('EKM_STORE_OTHER_ROLE', /holds the store of the EP role; this server is a Partner: give each role its own database/),
    );
    assert.deepEqual(await sql(db, "SELECT value FROM meta WHERE name = 'role'"), [{ value: 'ep' }]);
  });

  it('two roles opening one new database at once: exactly one gets it', async () => {
    const db = await freshDb();
    const results = await Promise.allSettled([open(db, { role: 'ep' }), open(db, { role: 'partner' })]);
    const won = results.filter((r) => r.status === 'fulfilled');
    assert.equal(won.length, 1);
    for (const r of results) {
      if (r.status === 'fulfilled') await r.value.close();
      else isCode('EKM_STORE_OTHER_ROLE')(r.reason);
    }
  });

  it('several servers of one role share the database: migrated once, one audit chain, keys seen by all', async () => {
    const db = await freshDb();
    const key = new Barrier(randomBytes(32));
    const stores = await Promise.all(
      [1, 2, 3].map(() => PostgresStore.open(parseDbUrl(server.url(db)), { create: true, role: 'ep', barrier: key })),
    );
    try {
      assert.deepEqual(await sql(db, "SELECT value FROM meta WHERE name = 'schema_version'"), [{ value: String(LATEST_SCHEMA) }]);
      await Promise.all(stores.flatMap((s) => Array.from({ length: 5 }, () => s.appendAudit([auditEntry('x')], toyChain))));
      const rows = await stores[0]!.listAudit({ limit: 100 });
      assert.deepEqual(
        rows.map((r) => r.seq),
        Array.from({ length: 15 }, (_, i) => i + 1),
      );
      for (let i = 1; i < rows.length; i++) assert.equal(rows[i]!.prevHash, rows[i - 1]!.hash);
      // Partitions created at once through every server: distinct ids, none given twice after a delete.
      const made = await Promise.all(
        stores.flatMap((s, i) => [0, 1].map((j) => s.createPartition({ name: `s${i}p${j}`, fipsRequired: false }))),
      );
      assert.equal(new Set(made.map((p) => p.id)).size, made.length);
      const newest = made.reduce((a, b) => (a.id > b.id ? a : b));
      await stores[0]!.deletePartition(newest.id, { withKeys: true });
      assert.ok((await stores[2]!.createPartition({ name: 'after', fipsRequired: false })).id > newest.id);
      await stores[1]!.applyKeyWrites([
        {
          op: 'rsa-key-create',
          keyId: 'r1',
          alg: 'rsa-2048',
          share: {
            keyId: 'r1',
            alg: 'rsa-2048',
            epoch: 1,
            partyId: 1,
            n: Uint8Array.of(1),
            e: Uint8Array.of(3),
            pieces: Uint8Array.of(5, 6),
          },
        },
      ]);
      assert.deepEqual([...(await stores[2]!.getRsaShares('r1'))[0]!.pieces], [5, 6]);
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
  });

  it('keeps secrets sealed: no share in the clear in the database', async () => {
    const db = await freshDb();
    const s = await open(db);
    const secret = randomBytes(32);
    await s.applyKeyWrites([
      {
        op: 'key-create',
        keyId: 'k1',
        alg: 'ecdsa-p256',
        share: {
          keyId: 'k1',
          alg: 'ecdsa-p256',
          epoch: 1,
          partyId: 1,
          share: secret,
          Y: secret,
          C1: secret,
          A1: secret,
          A2: secret,
          A3: secret,
        },
      },
    ]);
    await s.close();
    const [row] = await sql<{ share_sealed: Buffer }>(db, 'SELECT share_sealed FROM key_shares');
    assert.equal(row!.share_sealed.indexOf(secret), -1);
  });

  it('the audit table is append-only in the database too: UPDATE, DELETE and TRUNCATE refused', async () => {
    const db = await freshDb();
    const s = await open(db);
    await s.appendAudit([auditEntry('x')], toyChain);
    await s.close();
    for (const stmt of ["UPDATE audit SET operation = 'y'", 'DELETE FROM audit', 'TRUNCATE audit']) {
      await assert.rejects(sql(db, stmt), /the audit log is append-only/, stmt);
    }
    assert.equal((await sql(db, 'SELECT * FROM audit')).length, 1);
  });
});

describe('PostgreSQL store: schema versions and migrations', () => {
  it('migrates a database an older release left, keeping its data', async () => {
    const db = await dbAt(1);
    await sql(db, "INSERT INTO partitions (name, fips_required, created_at) VALUES ('old', 1, 'then')");
    const s = await open(db, { create: false });
    assert.equal(await s.schemaVersion(), LATEST_SCHEMA);
    assert.equal((await s.getPartition('old'))?.fipsRequired, true);
    await s.close();
  });

  it('migrating to schema 8 starts partition ids past the highest id found anywhere, also of deleted partitions', async () => {
    const db = await dbAt(7);
    await sql(db, "INSERT INTO partitions (name, fips_required, created_at) VALUES ('root', 0, 'then')");
    // Partition 5 was deleted; one of its keys (never destroyed, left by a delete without keys) still names it.
    await sql(
      db,
      "INSERT INTO keys (key_id, alg, state, current_epoch, created_at, partition_id) VALUES ('k', 'rsa-2048', 'active', 1, 'then', 5)",
    );
    const s = await open(db, { create: false });
    assert.equal((await s.createPartition({ name: 'next', fipsRequired: false })).id, 6);
    await s.close();
  });

  it('refuses a database whose schema is newer than this release, and leaves it alone', async () => {
    const db = await freshDb();
    await (await open(db)).close();
    await sql(db, "UPDATE meta SET value = $1 WHERE name = 'schema_version'", [String(LATEST_SCHEMA + 1)]);
    const before = await snapshot(db);
    await assert.rejects(
      open(db),
      isCode(
        'EKM_SCHEMA_TOO_NEW',
        new RegExp(`schema ${LATEST_SCHEMA + 1}, newer than this release knows \\(${LATEST_SCHEMA}\\).*instead of downgrading`),
      ),
    );
    assert.equal(await snapshot(db), before);
  });

  it('a migration that fails part-way leaves the database exactly as it was', async () => {
    const db = await dbAt(0);
    await sql(db, "CREATE TABLE users (x TEXT); INSERT INTO users VALUES ('keep me')");
    const before = await snapshot(db);
    await assert.rejects(open(db), isCode('EKM_MIGRATION_FAILED', /could not be migrated.*"users" already exists: nothing was changed/));
    assert.equal(await snapshot(db), before);
    assert.doesNotMatch(before, /"meta"/);
  });

  it('a failing later migration leaves the older schema and its data untouched', async () => {
    // The newest migration that creates a table fails on it; it and every later migration stay unapplied.
    const last = [...MIGRATIONS].reverse().find((m) => /CREATE TABLE \w+/.test(m.sqlite))!;
    const created = [...last.sqlite.matchAll(/CREATE TABLE (\w+)/g)].map((m) => m[1]!);
    const db = await dbAt(last.version - 1);
    await sql(db, "INSERT INTO partitions (name, fips_required, created_at) VALUES ('data', 0, 'then')");
    await sql(db, `CREATE TABLE ${created.at(-1)!} (x INTEGER)`);
    const before = await snapshot(db);
    await assert.rejects(open(db), isCode('EKM_MIGRATION_FAILED'));
    assert.equal(await snapshot(db), before);
  });

  it('refuses an empty database unless asked to create the store', async () => {
    const db = await freshDb();
    await assert.rejects(open(db, { create: false }), isCode('EKM_STORE_UNAVAILABLE', /holds no ekm store/));
    assert.deepEqual(await sql(db, "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'"), []);
  });

  it('renders every migration for PostgreSQL (types, byte-order text, append-only triggers)', () => {
    for (const m of MIGRATIONS) assert.doesNotMatch(postgresMigrationSql(m), /\bBLOB\b|RAISE\(ABORT/);
    assert.throws(
      () => postgresMigrationSql({ version: 99, name: 'x', sqlite: 'CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT)' }),
      /migration 99 uses SQLite-only SQL \(AUTOINCREMENT\)/,
    );
  });
});

describe('PostgreSQL store: connection', () => {
  it('an unreachable server or a missing database is one clear error', async () => {
    const [port] = await freePorts(1);
    await assert.rejects(
      PostgresStore.open(parseDbUrl(`postgres://ekm:secret@127.0.0.1:${port}/ekm`), { create: true }),
      isCode(
        'EKM_STORE_UNAVAILABLE',
        new RegExp(`cannot reach the PostgreSQL database postgres://ekm@127.0.0.1:${port}/ekm: .*ECONNREFUSED.*check that PostgreSQL runs`),
      ),
    );
    await assert.rejects(open('no_such_db'), isCode('EKM_STORE_UNAVAILABLE', /database "no_such_db" does not exist/));
  });

  it('comes back by itself after PostgreSQL restarts (a crash or a failover), its data intact', async () => {
    const s = await open(await freshDb());
    try {
      await s.setMeta('before', 'restart');
      server.restart();
      // Connections that died with the old server are dropped; the next request opens a new one.
      const until = Date.now() + 10_000;
      for (;;) {
        try {
          await s.check();
          break;
        } catch (e) {
          if (Date.now() > until) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      assert.equal(await s.getMeta('before'), 'restart');
      await s.setMeta('after', 'restart');
      assert.equal(await s.getMeta('after'), 'restart');
    } finally {
      await s.close();
    }
  });

  it('EKM_DB_URL: the password is split off the URL; anything but a PostgreSQL URL naming a database is refused', () => {
    assert.deepEqual(parseDbUrl('postgres://ekm:p%40ss@db.example:5433/ekm_ep?sslmode=require'), {
      url: 'postgres://ekm@db.example:5433/ekm_ep?sslmode=require',
      password: 'p@ss',
    });
    assert.deepEqual(parseDbUrl('postgresql://ekm@db/ekm'), { url: 'postgresql://ekm@db/ekm' });
    for (const bad of ['', 'db.example/ekm', 'mysql://u@h/db', 'postgres://u@h', 'postgres://u@h/']) {
      assert.throws(() => parseDbUrl(bad), isCode('EKM_DB_URL_INVALID', /postgres:\/\/<user>/), bad);
    }
  });
});

describe('PostgreSQL store: copied to a SQLite store file and back (backup and restore)', () => {
  const conn = (db: string) => parseDbUrl(server.url(db));
  let scratch: string;
  before(() => {
    scratch = mkdtempSync(join(tmpdir(), 'ekm-pg-copy-'));
  });
  after(() => rmSync(scratch, { recursive: true, force: true }));

  /** A store with a row in every table, written through the store and, for shares and sessions, by hand. */
  async function populated(): Promise<string> {
    const db = await freshDb();
    const s = await open(db);
    try {
      await s.setMeta('cluster_id', '0123456789abcdef');
      const root = await s.createPartition({ name: 'root', fipsRequired: false });
      const p2 = await s.createPartition({ name: 'p2', fipsRequired: true });
      await s.createUser({ partitionId: root.id, name: 'so', role: 'so', passwordHash: 'hash' });
      await s.createUser({ partitionId: p2.id, name: 'u', role: 'user', passwordHash: 'hash2' });
      await s.upsertServer({
        name: 'ep1',
        role: 'ep',
        tripletId: 'aaaaaaaaaaaaaaaa',
        host: 'h',
        port: 1,
        api: null,
        fingerprint: 'f',
        addedAt: 'now',
      });
      await s.putIntegrityKey({ id: 'ik1', partitionId: root.id, publicKeyPem: 'pem', privateKeyDer: randomBytes(40) });
      await s.appendAudit([auditEntry('a'), auditEntry('b', 'p2')], toyChain);
      await s.createPublicKey({ keyId: 'pub1', alg: 'ec', publicKeyPem: 'PEM' });
    } finally {
      await s.close();
    }
    await sql(
      db,
      "INSERT INTO keys (key_id, alg, state, current_epoch, created_at, partition_id, name) VALUES ('k1', 'ecdsa-p256', 'active', 2, 't', 2, 'named')",
    );
    await sql(db, "INSERT INTO key_shares VALUES ('k1', 1, 'previous', 1, '{}', $1), ('k1', 2, 'current', 1, '{\"x\":1}', $2)", [
      randomBytes(64),
      randomBytes(3000),
    ]);
    await sql(
      db,
      "INSERT INTO presignatures (psid, key_id, epoch, sealed, created_at, triplet_id) VALUES ('ps', 'k1', 2, $1, 't', 'aaaaaaaaaaaaaaaa')",
      [randomBytes(9)],
    );
    await sql(db, "INSERT INTO protocol_sessions VALUES ('s1', 'sign', 'done', '{\"c\":1}', 't', NULL)");
    await sql(db, "INSERT INTO destroyed_keys VALUES ('gone', 1, 'rsa', NULL, NULL, 't', 't')");
    await sql(db, "INSERT INTO key_purges VALUES ('gone', 'aux')");
    return db;
  }

  it('PostgreSQL → SQLite → PostgreSQL gives the same tables and rows; ids and the audit chain continue', async () => {
    const from = await populated();
    const file = join(scratch, 'round.db');
    const counts = await copyPostgresToSqlite(conn(from), file);
    assert.equal(counts.key_shares, 2);
    assert.equal(counts.audit, 2);
    const lite = new Database(file, { readonly: true });
    try {
      const share = lite.prepare('SELECT share_sealed FROM key_shares WHERE epoch = 2').get() as { share_sealed: Buffer };
      assert.ok(Buffer.isBuffer(share.share_sealed) && share.share_sealed.length === 3000, 'bytea arrives as a BLOB');
      assert.equal(
        (lite.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string }).value,
        String(LATEST_SCHEMA),
      );
    } finally {
      lite.close();
    }
    const to = await freshDb();
    await (await open(to)).close(); // an empty schema, as the bootstrap's first check leaves it
    assert.deepEqual(await loadSqliteIntoPostgres(conn(to), file, 'ep', undefined), counts);
    assert.equal(await snapshot(to), await snapshot(from));
    const s = await open(to, { create: false });
    try {
      assert.equal((await s.createPartition({ name: 'p3', fipsRequired: false })).id, 3);
      assert.equal((await s.appendAudit([auditEntry('c')], toyChain))[0]!.seq, 3);
    } finally {
      await s.close();
    }
  });

  it('refuses to load into a database that holds a store, except the same unfinished restore', async () => {
    const from = await populated();
    await sql(from, "INSERT INTO meta VALUES ('restore_token', 'tok')");
    const file = join(scratch, 'token.db');
    await copyPostgresToSqlite(conn(from), file);
    await assert.rejects(
      loadSqliteIntoPostgres(conn(from), file, 'ep', 'other'),
      isCode('EKM_STORE_IN_USE', /already holds the EP store of cluster 0123456789abcdef/),
    );
    const to = await freshDb();
    await loadSqliteIntoPostgres(conn(to), file, 'ep', 'tok');
    await sql(
      to,
      'INSERT INTO audit SELECT seq + 10, at, request_id, actor, partition, operation, key_id, result, status, client, detail, prev_hash, hash, sig, key_ref FROM audit WHERE seq = 1',
    );
    // A kill after the load: the rerun of the same restore loads again, over what the first left.
    await loadSqliteIntoPostgres(conn(to), file, 'ep', 'tok');
    assert.equal(await snapshot(to), await snapshot(from));
    await assert.rejects(checkDatabaseFree(conn(to), 'ep', undefined), isCode('EKM_STORE_IN_USE'));
  });

  it('refuses to copy a database at another schema version, or one with no store', async () => {
    await assert.rejects(
      copyPostgresToSqlite(conn(await dbAt(LATEST_SCHEMA - 1)), join(scratch, 'old.db')),
      isCode('EKM_SCHEMA_TOO_OLD', /older than this release's/),
    );
    const newer = await dbAt(LATEST_SCHEMA);
    await sql(newer, "UPDATE meta SET value = $1 WHERE name = 'schema_version'", [String(LATEST_SCHEMA + 1)]);
    await assert.rejects(copyPostgresToSqlite(conn(newer), join(scratch, 'new.db')), isCode('EKM_SCHEMA_TOO_NEW'));
    await assert.rejects(
      copyPostgresToSqlite(conn(await freshDb()), join(scratch, 'none.db')),
      isCode('EKM_STORE_UNAVAILABLE', /holds no ekm store/),
    );
  });
});
