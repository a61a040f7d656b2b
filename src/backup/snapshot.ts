/**
 * A consistent copy of a live store: `VACUUM INTO` reads the database in one read transaction
 * (WAL mode lets the server keep writing meanwhile), so the copy is the store as of one commit.
 * Single-use material is then removed from the copy: presignatures, protocol sessions that were
 * still open (their checkpoints hold nonces bound to the old triplet), and bearer tokens. The copy
 * is vacuumed again so the removed rows leave no bytes behind. A store on PostgreSQL is copied into
 * a SQLite store file first (src/store/pg-copy.ts), then scrubbed the same way.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { makeDirs } from '../config/home.js';
import { EkmError } from '../errors.js';
import { Barrier } from '../store/barrier.js';
import { RESTORE_TOKEN_META, copyPostgresToSqlite } from '../store/pg-copy.js';
import type { PgConnection } from '../store/postgres.js';
import { shareAad } from '../store/sql-store.js';
import { type KeyEpochs, readKeyEpochs } from './key-epochs.js';

export interface Snapshot {
  readonly db: Buffer;
  readonly schemaVersion: number;
  readonly clusterId: string | undefined;
  readonly role: string | undefined;
  readonly keys: KeyEpochs[];
  readonly removed: { presignatures: number; openSessions: number };
}

/** Copies the store at `sqlitePath` into memory, with single-use material removed. `scratch` holds the temporary file. */
export function snapshotStore(sqlitePath: string, scratch: string): Snapshot {
  return inScratch(scratch, (tmp) => {
    let src: Database.Database;
    try {
      src = new Database(sqlitePath, { fileMustExist: true });
    } catch (e) {
      throw new EkmError('EKM_STORE_UNAVAILABLE', `cannot open the store ${sqlitePath}: ${(e as Error).message}`, {
        hint: 'check EKM_HOME and its permissions',
      });
    }
    try {
      src.pragma('busy_timeout = 10000');
      src.prepare('VACUUM INTO ?').run(tmp);
    } finally {
      src.close();
    }
    return scrubbedCopy(tmp);
  });
}

/**
 * The same snapshot of a store on PostgreSQL: the role's database, read in one repeatable-read
 * transaction while the cluster serves, copied into a SQLite store file (what an archive holds).
 */
export function snapshotPostgresStore(conn: PgConnection, scratch: string): Promise<Snapshot> {
  return inScratch(scratch, async (tmp) => {
    await copyPostgresToSqlite(conn, tmp);
    return scrubbedCopy(tmp);
  });
}

/** Runs `fn` with a temporary file name in a folder of its own under `scratch`, removed afterwards. */
function inScratch<T>(scratch: string, fn: (tmp: string) => T): T {
  makeDirs(scratch);
  const dir = mkdtempSync(join(scratch, 'backup-'));
  const cleanup = (): void => rmSync(dir, { recursive: true, force: true });
  let out: T;
  try {
    out = fn(join(dir, 'snapshot.db'));
  } catch (e) {
    cleanup();
    throw e;
  }
  if (out instanceof Promise) return out.finally(cleanup) as T;
  cleanup();
  return out;
}

/** Scrubs the copy at `tmp` and reads it whole: one self-contained file (no WAL), its removed rows vacuumed away. */
function scrubbedCopy(tmp: string): Snapshot {
  const snap = new Database(tmp, { fileMustExist: true });
  try {
    snap.pragma('journal_mode = DELETE');
    const result = scrub(snap);
    snap.exec('VACUUM');
    snap.close();
    return { ...result, db: readFileSync(tmp) };
  } finally {
    if (snap.open) snap.close();
  }
}

function scrub(db: Database.Database): Omit<Snapshot, 'db'> {
  const meta = (name: string): string | undefined =>
    (db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  const schemaVersion = Number(meta('schema_version') ?? 0);
  const hasTable = (t: string): boolean => db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== undefined;
  let presignatures = 0;
  let openSessions = 0;
  db.transaction(() => {
    if (hasTable('presignatures')) presignatures = db.prepare('DELETE FROM presignatures').run().changes;
    if (hasTable('protocol_sessions')) {
      openSessions = db.prepare("DELETE FROM protocol_sessions WHERE state = 'open'").run().changes;
      db.prepare('UPDATE protocol_sessions SET checkpoint = NULL WHERE checkpoint IS NOT NULL').run();
    }
    // Bearer tokens are short-lived session state, not data: a backup holds none (not even their SHA-256).
    if (hasTable('api_tokens')) db.prepare('DELETE FROM api_tokens').run();
    // A restore in progress is not part of what the backup holds (nor the token that lets a
    // rerun of that restore load the database again).
    db.prepare("DELETE FROM meta WHERE name IN ('recovery_pending', ?)").run(RESTORE_TOKEN_META);
  })();
  return {
    schemaVersion,
    clusterId: meta('cluster_id'),
    role: meta('role'),
    keys: hasTable('keys') ? readKeyEpochs(db) : [],
    removed: { presignatures, openSessions },
  };
}

/** Opens every sealed share of the store in `db` with `systemKey`: proves the pair belongs together. */
export function checkSealedShares(db: Database.Database, systemKey: Buffer): number {
  const hasShares = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'key_shares'").get() !== undefined;
  if (!hasShares) return 0;
  const barrier = new Barrier(systemKey);
  let n = 0;
  for (const r of db.prepare('SELECT key_id, epoch, party_id, public_data, share_sealed FROM key_shares').iterate() as Iterable<{
    key_id: string;
    epoch: number;
    party_id: number;
    public_data: string;
    share_sealed: Buffer;
  }>) {
    try {
      const { notAfter } = JSON.parse(r.public_data) as { notAfter?: string };
      barrier.open(r.share_sealed, shareAad(r.key_id, r.epoch, r.party_id, notAfter)).fill(0);
    } catch {
      throw new EkmError(
        'EKM_BACKUP_CORRUPT',
        `the share of key ${r.key_id} at epoch ${r.epoch} does not open with the archive's system key`,
        { hint: 'the store and system key do not belong together: use another backup' },
      );
    }
    n++;
  }
  return n;
}
