/**
 * Copies an ekm store table by table, row by row, between the two backends: PostgreSQL → SQLite
 * for a backup of a store on PostgreSQL (the archive always carries a SQLite store file), SQLite →
 * PostgreSQL when a restored store moves into the role's database. Both sides have the schema of
 * the same migrations (src/store/migrations.ts), so the table list and columns are read from the
 * SQLite side, whichever way the copy goes. The column types are those both backends share:
 * INTEGER ↔ integer (flags are 0/1 integers, timestamps and JSON are TEXT), BLOB ↔ bytea.
 */
import type Database from 'better-sqlite3';
import { EkmError } from '../errors.js';
import { LATEST_SCHEMA, tooNewError } from './migrations.js';
import type { SqlValue } from './sql-store.js';

export interface TableShape {
  readonly name: string;
  readonly columns: readonly string[];
  /** The primary key's columns: a stable order to page through a table in. */
  readonly key: readonly string[];
}
export type Row = readonly SqlValue[];

/** How many rows one read or one INSERT carries: few round trips, bounded memory. */
export const BATCH_ROWS = 500;

export interface RowReader {
  batches(t: TableShape): AsyncIterable<Row[]>;
}
export interface RowWriter {
  insert(t: TableShape, rows: readonly Row[]): Promise<void>;
}

/** A quoted identifier (the schema's names are plain words, some of them SQL keywords: partition, role). */
export function ident(name: string): string {
  if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`not a plain SQL name: ${name}`);
  return `"${name}"`;
}

/**
 * The tables of the SQLite store `db`, each after the tables it references (PostgreSQL checks
 * foreign keys row by row, so a parent's rows must be there first).
 */
export function tableShapes(db: Database.Database): TableShape[] {
  const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[])
    .map((r) => r.name)
    .sort();
  const parents = new Map(
    names.map((n) => [n, (db.pragma(`foreign_key_list(${ident(n)})`) as { table: string }[]).map((f) => f.table).filter((p) => p !== n)]),
  );
  const ordered: string[] = [];
  while (ordered.length < names.length) {
    const ready = names.filter((n) => !ordered.includes(n) && parents.get(n)!.every((p) => ordered.includes(p)));
    if (ready.length === 0) throw new Error('the store schema has a foreign key cycle');
    ordered.push(...ready);
  }
  return ordered.map((name) => {
    const cols = db.pragma(`table_info(${ident(name)})`) as { name: string; pk: number }[];
    return {
      name,
      columns: cols.map((c) => c.name),
      key: cols
        .filter((c) => c.pk > 0)
        .sort((a, b) => a.pk - b.pk)
        .map((c) => c.name),
    };
  });
}

/** The store's schema version as its meta table says it (0: none). */
export function sqliteSchemaVersion(db: Database.Database): number {
  const row = db.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string } | undefined;
  return Number(row?.value ?? 0);
}

/**
 * A copy needs both sides at this release's schema: a newer one was written by a newer ekm, an
 * older one is migrated by starting a server of this release on it first.
 */
export function checkCopySchema(found: number, where: string): void {
  if (found > LATEST_SCHEMA) throw tooNewError(found);
  if (found < LATEST_SCHEMA) {
    throw new EkmError('EKM_SCHEMA_TOO_OLD', `${where} is at schema ${found}, older than this release's (${LATEST_SCHEMA})`, {
      hint: 'start a server of this release on it once (it migrates the store), or use the ekm release that wrote it',
    });
  }
}

/** Copies every row of `tables` from `from` to `to`; returns the row count of each table. */
export async function copyTables(tables: readonly TableShape[], from: RowReader, to: RowWriter): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const t of tables) {
    let n = 0;
    for await (const rows of from.batches(t)) {
      await to.insert(t, rows);
      n += rows.length;
    }
    counts[t.name] = n;
  }
  return counts;
}

function selectAll(t: TableShape): string {
  return `SELECT ${t.columns.map(ident).join(', ')} FROM ${ident(t.name)} ORDER BY ${t.key.map(ident).join(', ')}`;
}

/** Reads a SQLite store's rows (the caller holds a read transaction when the copy must be of one moment). */
export function sqliteRowReader(db: Database.Database): RowReader {
  return {
    async *batches(t) {
      let batch: Row[] = [];
      for (const row of db.prepare(selectAll(t)).raw().iterate() as Iterable<SqlValue[]>) {
        batch.push(row);
        if (batch.length === BATCH_ROWS) {
          yield batch;
          batch = [];
        }
      }
      if (batch.length > 0) yield batch;
    },
  };
}

/** Inserts into a SQLite store (the caller holds the write transaction). */
export function sqliteRowWriter(db: Database.Database): RowWriter {
  return {
    async insert(t, rows) {
      const st = db.prepare(
        `INSERT INTO ${ident(t.name)} (${t.columns.map(ident).join(', ')}) VALUES (${t.columns.map(() => '?').join(', ')})`,
      );
      for (const r of rows) st.run(...r);
    },
  };
}

/** The SQL to page through a table in PostgreSQL (`$1` the offset), in the primary key's order. */
export function pagedSelect(t: TableShape): string {
  return `${selectAll(t)} LIMIT ${BATCH_ROWS} OFFSET $1`;
}

/** One multi-row INSERT for PostgreSQL with `$n` placeholders. */
export function multiRowInsert(t: TableShape, rowCount: number): string {
  const width = t.columns.length;
  const values = Array.from({ length: rowCount }, (_, r) => `(${t.columns.map((_c, c) => `$${r * width + c + 1}`).join(', ')})`);
  return `INSERT INTO ${ident(t.name)} (${t.columns.map(ident).join(', ')}) VALUES ${values.join(', ')}`;
}
