/** The connection settings every connection to an SQLite store uses (main thread and writer thread alike). */
import type Database from 'better-sqlite3';

export function configureSqlite(db: Database.Database): void {
  db.pragma('journal_mode = WAL');
  // Every commit is on disk before it returns: an acknowledged key survives a power loss.
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
}
