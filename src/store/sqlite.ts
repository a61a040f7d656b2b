/**
 * The embedded store: one SQLite file per server (better-sqlite3), WAL mode with full fsync, so a
 * crash or kill never loses a committed (acknowledged) write.
 */
import Database from 'better-sqlite3';
import { makeDirs } from '../config/home.js';
import { dirname } from 'node:path';
import { EkmError } from '../errors.js';
import { LATEST_SCHEMA, MIGRATIONS, tooNewError } from './migrations.js';
import type { PartitionRow, ServerRow, Store, UserRow } from './store.js';

interface PartitionDb {
  id: number;
  name: string;
  fips_required: number;
  created_at: string;
}
interface UserDb {
  partition_id: number;
  name: string;
  role: UserRow['role'];
  password_hash: string;
  failed_logins: number;
  locked: number;
  created_at: string;
}
interface ServerDb {
  name: string;
  role: ServerRow['role'];
  triplet_id: string;
  host: string;
  port: number;
  api: string | null;
  fingerprint: string;
  added_at: string;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /** Opens (creating if asked) and migrates the store at `path`. */
  static open(path: string, opts: { create: boolean }): SqliteStore {
    let db: Database.Database;
    try {
      if (opts.create) makeDirs(dirname(path));
      db = new Database(path, { fileMustExist: !opts.create });
    } catch (e) {
      throw new EkmError('EKM_STORE_UNAVAILABLE', `cannot open the store ${path}: ${(e as Error).message}`, 'check EKM_HOME and its permissions');
    }
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const store = new SqliteStore(db);
    store.migrate();
    return store;
  }

  private currentVersion(): number {
    const has = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!has) return 0;
    const row = this.db.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  private migrate(): void {
    // BEGIN IMMEDIATE takes the write lock, so two processes never migrate at once.
    const run = this.db.transaction(() => {
      const from = this.currentVersion();
      if (from > LATEST_SCHEMA) throw tooNewError(from);
      for (const m of MIGRATIONS) {
        if (m.version <= from) continue;
        this.db.exec(m.sqlite);
        this.db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value").run(
          String(m.version),
        );
      }
    });
    run.immediate();
  }

  async schemaVersion(): Promise<number> {
    return this.currentVersion();
  }

  async getMeta(name: string): Promise<string | undefined> {
    return (this.db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  }

  async setMeta(name: string, value: string): Promise<void> {
    this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value').run(name, value);
  }

  async createPartition(p: { name: string; fipsRequired: boolean }): Promise<PartitionRow> {
    const createdAt = new Date().toISOString();
    const info = this.db.prepare('INSERT INTO partitions (name, fips_required, created_at) VALUES (?, ?, ?)').run(p.name, p.fipsRequired ? 1 : 0, createdAt);
    return { id: Number(info.lastInsertRowid), name: p.name, fipsRequired: p.fipsRequired, createdAt };
  }

  async getPartition(name: string): Promise<PartitionRow | undefined> {
    const row = this.db.prepare('SELECT * FROM partitions WHERE name = ?').get(name) as PartitionDb | undefined;
    return row ? partitionFromDb(row) : undefined;
  }

  async listPartitions(): Promise<PartitionRow[]> {
    return (this.db.prepare('SELECT * FROM partitions ORDER BY id').all() as PartitionDb[]).map(partitionFromDb);
  }

  async createUser(u: Omit<UserRow, 'failedLogins' | 'locked' | 'createdAt'>): Promise<void> {
    this.db
      .prepare('INSERT INTO users (partition_id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(u.partitionId, u.name, u.role, u.passwordHash, new Date().toISOString());
  }

  async getUser(partitionId: number, name: string): Promise<UserRow | undefined> {
    const r = this.db.prepare('SELECT * FROM users WHERE partition_id = ? AND name = ?').get(partitionId, name) as UserDb | undefined;
    return r
      ? {
          partitionId: r.partition_id,
          name: r.name,
          role: r.role,
          passwordHash: r.password_hash,
          failedLogins: r.failed_logins,
          locked: r.locked !== 0,
          createdAt: r.created_at,
        }
      : undefined;
  }

  async upsertServer(s: ServerRow): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO servers (name, role, triplet_id, host, port, api, fingerprint, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET role = excluded.role, triplet_id = excluded.triplet_id, host = excluded.host,
           port = excluded.port, api = excluded.api, fingerprint = excluded.fingerprint`,
      )
      .run(s.name, s.role, s.tripletId, s.host, s.port, s.api, s.fingerprint, s.addedAt);
  }

  async listServers(): Promise<ServerRow[]> {
    return (this.db.prepare('SELECT * FROM servers ORDER BY triplet_id, name').all() as ServerDb[]).map((r) => ({
      name: r.name,
      role: r.role,
      tripletId: r.triplet_id,
      host: r.host,
      port: r.port,
      api: r.api,
      fingerprint: r.fingerprint,
      addedAt: r.added_at,
    }));
  }

  async check(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

function partitionFromDb(r: PartitionDb): PartitionRow {
  return { id: r.id, name: r.name, fipsRequired: r.fips_required !== 0, createdAt: r.created_at };
}
