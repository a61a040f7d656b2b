/**
 * The SQLite store's writer thread (see sqlite-writer.ts): its own connection to the store file,
 * on which every write transaction runs, so that the commit's fsync never blocks the server's
 * event loop. It executes what the main thread sends, one message at a time, in order.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { configureSqlite } from './sqlite-pragmas.js';
import type { Stmt } from './sql-store.js';
import type { WriterReply, WriterRequest } from './sqlite-writer.js';

const port = parentPort!;
const db = new Database((workerData as { path: string }).path, { fileMustExist: true });
configureSqlite(db);
const statements = new Map<string, Database.Statement>();

function run(stmt: Stmt): NonNullable<WriterReply['result']> {
  if (stmt.script) {
    db.exec(stmt.sql);
    return { rows: [], changes: 0 };
  }
  let st = statements.get(stmt.sql);
  if (!st) statements.set(stmt.sql, (st = db.prepare(stmt.sql)));
  return st.reader ? { rows: st.all(...stmt.params), changes: 0 } : { rows: [], changes: st.run(...stmt.params).changes };
}

/** BEGIN, then the statement, then the end, as the request asks (a failed statement skips the commit: the main thread rolls back). */
function execute(req: WriterRequest): WriterReply['result'] {
  if (req.begin) db.exec('BEGIN IMMEDIATE');
  const result = req.stmt ? run(req.stmt) : { rows: [], changes: 0 };
  if (req.end === 'commit') db.exec('COMMIT');
  if (req.end === 'rollback' && db.inTransaction) db.exec('ROLLBACK');
  return result;
}

port.on('message', (req: WriterRequest) => {
  if (req.close) {
    db.close();
    port.postMessage({ id: req.id, result: { rows: [], changes: 0 } } satisfies WriterReply);
    port.close();
    return;
  }
  try {
    port.postMessage({ id: req.id, result: execute(req) } satisfies WriterReply);
  } catch (e) {
    const err = e as { message?: string; code?: string };
    port.postMessage({ id: req.id, error: { message: err.message ?? String(e), ...(err.code ? { code: err.code } : {}) } } satisfies WriterReply);
  }
});
