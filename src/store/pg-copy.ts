/**
 * A role's store on PostgreSQL to and from a SQLite store file (the rows are copied by
 * store-copy.ts, once for both directions):
 *
 *  - `copyPostgresToSqlite` (ekm backup): one REPEATABLE READ READ ONLY transaction reads every
 *    table, so the copy is the database as of one moment while the cluster keeps serving; the
 *    SQLite file is made by the SQLite store's own migrations at the same schema version.
 *  - `loadSqliteIntoPostgres` (-restore -externaldb): the restored store replaces the empty
 *    database's schema in one transaction under the write lock every ekm server takes, so a kill
 *    leaves the database either as it was or holding the whole restored store.
 */
import Database from 'better-sqlite3';
import type pg from 'pg';
import { ROLE_LABEL, type Role } from '../config/roles.js';
import { EkmError } from '../errors.js';
import { MIGRATIONS } from './migrations.js';
import { type PgConnection, WRITE_LOCK, connectPool, databaseLabel, postgresMigrationSql } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { SqlValue } from './sql-store.js';
import {
  BATCH_ROWS,
  type RowReader,
  type RowWriter,
  type TableShape,
  checkCopySchema,
  copyTables,
  ident,
  multiRowInsert,
  pagedSelect,
  sqliteRowReader,
  sqliteRowWriter,
  sqliteSchemaVersion,
  tableShapes,
} from './store-copy.js';

/**
 * The meta row naming the restore a database was loaded by: the same random value sits in the
 * restored SQLite file, so a rerun of that same `-restore` bootstrap (after a kill) may load the
 * database again, and no other restore may.
 */
export const RESTORE_TOKEN_META = 'restore_token';

function pgRowReader(c: pg.PoolClient): RowReader {
  return {
    async *batches(t) {
      for (let offset = 0; ;) {
        const r = await c.query<SqlValue[]>({ text: pagedSelect(t), values: [offset], rowMode: 'array' });
        if (r.rows.length === 0) return;
        yield r.rows;
        offset += r.rows.length;
        if (r.rows.length < BATCH_ROWS) return;
      }
    },
  };
}

function pgRowWriter(c: pg.PoolClient): RowWriter {
  return {
    async insert(t, rows) {
      await c.query(multiRowInsert(t, rows.length), rows.flat());
    },
  };
}

async function pgTableExists(c: pg.PoolClient, table: string): Promise<boolean> {
  const r = await c.query('SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1', [table]);
  return (r.rowCount ?? 0) > 0;
}

async function pgMeta(c: pg.PoolClient, name: string): Promise<string | undefined> {
  return (await c.query<{ value: string }>('SELECT value FROM meta WHERE name = $1', [name])).rows[0]?.value;
}

async function withClient<T>(conn: PgConnection, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const pool = await connectPool(conn);
  const c = await pool.connect();
  let broken = false;
  try {
    return await fn(c);
  } catch (e) {
    await c.query('ROLLBACK').catch(() => (broken = true));
    throw e;
  } finally {
    c.release(broken);
    await pool.end();
  }
}

/** Copies the role's database into a new SQLite store file at `sqlitePath`, as of one moment; returns the rows per table. */
export function copyPostgresToSqlite(conn: PgConnection, sqlitePath: string): Promise<Record<string, number>> {
  return withClient(conn, async (c) => {
    // The snapshot is taken at the transaction's first query: every read below sees that one moment.
    await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const version = (await pgTableExists(c, 'meta')) ? Number((await pgMeta(c, 'schema_version')) ?? 0) : 0;
    if (version === 0)
      throw new EkmError('EKM_STORE_UNAVAILABLE', `${databaseLabel(conn)} holds no ekm store`, {
        hint: "check EKM_HOME: server.json names the role's database",
      });
    checkCopySchema(version, databaseLabel(conn));
    await SqliteStore.open(sqlitePath, { create: true }).close();
    const db = new Database(sqlitePath, { fileMustExist: true });
    try {
      db.exec('BEGIN IMMEDIATE');
      // The copy brings the database's own meta rows, the schema version among them.
      db.exec('DELETE FROM meta');
      const counts = await copyTables(tableShapes(db), pgRowReader(c), sqliteRowWriter(db));
      db.exec('COMMIT');
      await c.query('COMMIT');
      return counts;
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.close();
    }
  });
}

export function storeInUseError(conn: PgConnection, role: Role, clusterId: string | undefined): EkmError {
  return new EkmError(
    'EKM_STORE_IN_USE',
    `${databaseLabel(conn)} already holds the ${ROLE_LABEL[role]} store of ${clusterId ? `cluster ${clusterId}` : 'an unfinished bootstrap'}`,
    { hint: 'give a new cluster a new, empty database (drop and create this one again only if its cluster is gone for good)' },
  );
}

/**
 * Refuses a database that holds ekm data: a cluster id or a partition. An empty schema (what a
 * bootstrap's first check leaves) is free, and so is a database loaded by an unfinished restore
 * holding `restoreToken`.
 */
async function checkFree(c: pg.PoolClient, conn: PgConnection, role: Role, restoreToken: string | undefined): Promise<void> {
  if (!(await pgTableExists(c, 'meta'))) return;
  const cluster = await pgMeta(c, 'cluster_id');
  const partitions = (await pgTableExists(c, 'partitions')) ? ((await c.query('SELECT 1 FROM partitions LIMIT 1')).rowCount ?? 0) : 0;
  if (cluster === undefined && partitions === 0) return;
  if (restoreToken !== undefined && (await pgMeta(c, RESTORE_TOKEN_META)) === restoreToken) return;
  throw storeInUseError(conn, role, cluster);
}

/** The bootstrap's early check (-externaldb): the role's database holds no store, or only this restore's unfinished one. */
export function checkDatabaseFree(conn: PgConnection, role: Role, restoreToken: string | undefined): Promise<void> {
  return withClient(conn, (c) => checkFree(c, conn, role, restoreToken));
}

/** After a copy with explicit ids, the identity sequences continue after the highest one. */
async function resetIdentities(c: pg.PoolClient, tables: readonly TableShape[]): Promise<void> {
  for (const t of tables) {
    for (const col of t.columns) {
      const seq = (await c.query<{ s: string | null }>('SELECT pg_get_serial_sequence($1, $2) AS s', [t.name, col])).rows[0]?.s;
      if (!seq) continue;
      await c.query(`SELECT setval($1, COALESCE((SELECT max(${ident(col)}) FROM ${ident(t.name)}), 0) + 1, false)`, [seq]);
    }
  }
}

/**
 * Loads the SQLite store at `sqlitePath` (at this release's schema) into the role's database, in
 * one transaction: the database must be free (`checkFree`); its ekm tables are dropped and made
 * again by the migrations, then every row is copied. Returns the rows per table.
 */
export function loadSqliteIntoPostgres(
  conn: PgConnection,
  sqlitePath: string,
  role: Role,
  restoreToken: string | undefined,
): Promise<Record<string, number>> {
  const db = new Database(sqlitePath, { fileMustExist: true, readonly: true });
  return withClient(conn, async (c) => {
    checkCopySchema(sqliteSchemaVersion(db), `the store ${sqlitePath}`);
    const tables = tableShapes(db);
    await c.query('BEGIN');
    await c.query('SELECT pg_advisory_xact_lock($1)', [WRITE_LOCK]);
    await checkFree(c, conn, role, restoreToken);
    // Dropped and made again rather than emptied: the audit table refuses DELETE and TRUNCATE.
    for (const t of [...tables].reverse()) await c.query(`DROP TABLE IF EXISTS ${ident(t.name)} CASCADE`);
    for (const m of MIGRATIONS) await c.query(postgresMigrationSql(m));
    // Migrations seed meta rows (the partition id high-water mark); the copy brings the store's own.
    await c.query('DELETE FROM meta');
    const counts = await copyTables(tables, sqliteRowReader(db), pgRowWriter(c));
    await resetIdentities(c, tables);
    await c.query('COMMIT');
    return counts;
  }).finally(() => db.close());
}

/** Marks the database as loaded by the restore holding `token` (a rerun copies it back first: src/backup/restore-boot.ts). */
export function writeRestoreToken(conn: PgConnection, token: string): Promise<void> {
  return withClient(conn, async (c) => {
    await c.query('INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET value = excluded.value', [
      RESTORE_TOKEN_META,
      token,
    ]);
  });
}

/** Forgets the restore token once the restored server is bootstrapped (its SQLite file is gone). */
export function clearRestoreToken(conn: PgConnection): Promise<void> {
  return withClient(conn, async (c) => {
    await c.query('DELETE FROM meta WHERE name = $1', [RESTORE_TOKEN_META]);
  });
}
