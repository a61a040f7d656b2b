/**
 * The embedded store: one SQLite file per server (better-sqlite3), WAL mode with full fsync, so a
 * crash or kill never loses a committed (acknowledged) write. The store logic is SqlStore's; this
 * is its driver. A transaction is one BEGIN IMMEDIATE (the database's write lock) around its
 * statements. In a server (`writerThread`), every write — transactions and single statements —
 * runs on the writer thread (sqlite-writer.ts) so that no fsync blocks the event loop, and reads
 * stay on this thread; tools that open a store briefly run everything here, synchronously.
 */
import Database from 'better-sqlite3';
import { dirname } from 'node:path';
import { makeDirs } from '../config/home.js';
import { EkmError } from '../errors.js';
import type { Barrier } from './barrier.js';
import type { Migration } from './migrations.js';
import { configureSqlite } from './sqlite-pragmas.js';
import { SqliteWriter } from './sqlite-writer.js';
import {
  type SqlDriver,
  SqlStore,
  type Steps,
  type Stmt,
  type StmtResult,
  type StoreRole,
  asMigrationError,
  migrateSteps,
} from './sql-store.js';

/** Runs steps to their end, each statement answered at once. */
function driveSync<T>(steps: Steps<T>, exec: (s: Stmt) => StmtResult): T {
  let next = steps.next();
  while (!next.done) next = steps.next(exec(next.value));
  return next.value;
}

class SqliteDriver implements SqlDriver {
  readonly kind = 'sqlite' as const;
  readonly tableExistsSql = "SELECT 1 AS x FROM sqlite_master WHERE type = 'table' AND name = ?";
  private readonly statements = new Map<string, Database.Statement>();
  /** Set once the store is open in a server: writes go to the writer thread from then on. */
  writer: SqliteWriter | undefined;

  constructor(
    private readonly db: Database.Database,
    readonly where: string,
  ) {}

  migrationSql(m: Migration): string {
    return m.sqlite;
  }

  isUniqueViolation(e: unknown): boolean {
    const code = (e as { code?: string }).code;
    return code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
  }

  private prepared(sql: string): Database.Statement {
    let st = this.statements.get(sql);
    if (!st) this.statements.set(sql, (st = this.db.prepare(sql)));
    return st;
  }

  private readonly exec = (s: Stmt): StmtResult => {
    if (s.script) {
      this.db.exec(s.sql);
      return { rows: [], changes: 0 };
    }
    const st = this.prepared(s.sql);
    return st.reader ? { rows: st.all(...s.params), changes: 0 } : { rows: [], changes: st.run(...s.params).changes };
  };

  async run<T>(steps: Steps<T>): Promise<T> {
    const writer = this.writer;
    if (!writer) return driveSync(steps, this.exec);
    // A store that can no longer write is down, reads included: health checks must see it.
    if (writer.failure) throw writer.failure;
    let next = steps.next();
    while (!next.done) {
      const stmt = next.value;
      next = steps.next(stmt.script || !this.prepared(stmt.sql).readonly ? await writer.transaction(single(stmt)) : this.exec(stmt));
    }
    return next.value;
  }

  transactionSync<T>(steps: Steps<T>): T {
    return this.db.transaction(() => driveSync(steps, this.exec)).immediate();
  }

  async transaction<T>(steps: Steps<T>): Promise<T> {
    return this.writer ? this.writer.transaction(steps) : this.transactionSync(steps);
  }

  async close(): Promise<void> {
    await this.writer?.close();
    this.db.close();
  }
}

/** One statement as steps (a write outside any transaction, run by the writer thread). */
function* single(stmt: Stmt): Steps<StmtResult> {
  return yield { ...stmt, last: true };
}

export class SqliteStore extends SqlStore {
  /** Opens (creating if asked) and migrates the store at `path`, claimed for `role` when given; secrets need the barrier. */
  static open(path: string, opts: { create: boolean; role?: StoreRole; barrier?: Barrier; writerThread?: boolean }): SqliteStore {
    let db: Database.Database;
    try {
      if (opts.create) makeDirs(dirname(path));
      db = new Database(path, { fileMustExist: !opts.create });
    } catch (e) {
      throw new EkmError('EKM_STORE_UNAVAILABLE', `cannot open the store ${path}: ${(e as Error).message}`, {
        hint: 'check EKM_HOME and its permissions',
      });
    }
    configureSqlite(db);
    const d = new SqliteDriver(db, `the store ${path}`);
    try {
      // A file that exists (or was just created) is an ekm store: an empty one gets the schema.
      d.transactionSync(migrateSteps(d, { create: true, ...(opts.role ? { role: opts.role } : {}) }));
    } catch (e) {
      db.close();
      throw asMigrationError(d, e);
    }
    if (opts.writerThread) d.writer = new SqliteWriter(path);
    return new SqliteStore(d, opts.barrier);
  }
}
