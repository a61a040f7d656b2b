/**
 * A real, throwaway PostgreSQL server for tests: `initdb` into a temporary folder, `pg_ctl start`
 * on a free 127.0.0.1 port with trust authentication on loopback, stopped and removed by `stop()`
 * (and when the test process exits, whatever happened). Debian keeps initdb and pg_ctl under
 * /usr/lib/postgresql/<version>/bin; where PostgreSQL is missing and we are root with apt, it is
 * installed. PostgreSQL refuses to run as root, so as root the server runs as user `postgres`.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { freePorts } from './cluster.js';
import { installDebianPackage } from './debian.js';

export interface PgServer {
  readonly port: number;
  /** A URL for the database `db` as user postgres (any password is accepted: trust auth). */
  url(db: string, password?: string): string;
  createDatabase(db: string): Promise<void>;
  /** DROP DATABASE, closing its connections (the servers using it should be stopped). */
  dropDatabase(db: string): Promise<void>;
  /** Stops PostgreSQL at once (as a crash or a failover would) and starts it again on the same port. */
  restart(): void;
  stop(): void;
}

function pgBinDir(): string | undefined {
  const base = '/usr/lib/postgresql';
  if (!existsSync(base)) return undefined;
  const versions = readdirSync(base)
    .filter((v) => existsSync(join(base, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] === undefined ? undefined : join(base, versions[0], 'bin');
}

function installedPgBinDir(): string {
  const found = pgBinDir();
  if (found) return found;
  if (installDebianPackage('postgresql')) {
    const now = pgBinDir();
    if (now) return now;
  }
  throw new Error(
    'the PostgreSQL store tests need PostgreSQL (initdb and pg_ctl under /usr/lib/postgresql/*/bin): install it with `apt-get install -y postgresql` (or run the tests as root on Debian, which installs it)',
  );
}

export async function startPostgres(): Promise<PgServer> {
  const bin = installedPgBinDir();
  const root = process.getuid?.() === 0;
  const dir = mkdtempSync(join(tmpdir(), 'ekm-pg-'));
  const data = join(dir, 'data');
  // As root, every PostgreSQL command runs as `postgres`, which owns the folder.
  const asServer = (cmd: string, args: string[]): void => {
    const [file, argv] = root ? ['runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args]] : [join(bin, cmd), args];
    const r = spawnSync(file, argv, { encoding: 'utf8' });
    if (r.status !== 0)
      throw new Error(
        `${cmd} failed (${r.status ?? r.signal}): ${r.stderr || r.stdout}${existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8') : ''}`,
      );
  };
  if (root) {
    const pgUser = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    if (pgUser.status !== 0)
      throw new Error('PostgreSQL refuses to run as root and there is no user postgres to run it as (reinstall the postgresql package)');
    const uid = Number(pgUser.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
    chownSync(dir, uid, gid);
  }
  const [port] = await freePorts(1);
  let running = false;
  const stop = (): void => {
    if (running) {
      running = false;
      try {
        asServer('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      } catch {
        // Already gone: nothing to stop.
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stop);
  try {
    asServer('initdb', ['-D', data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync']);
    running = true;
    startServer();
  } catch (e) {
    stop();
    throw e;
  }
  function startServer(): void {
    // Throwaway data: no fsync; the socket in our own folder (Debian's /run/postgresql may not exist).
    const opts = `-p ${port} -c listen_addresses=127.0.0.1 -k ${dir} -c fsync=off -c max_connections=200`;
    asServer('pg_ctl', ['-D', data, '-o', opts, '-l', join(dir, 'log'), '-w', '-t', '60', 'start']);
  }
  const url = (db: string, password?: string): string =>
    `postgres://postgres${password ? `:${encodeURIComponent(password)}` : ''}@127.0.0.1:${port}/${db}`;
  const asAdmin = async (sql: string): Promise<void> => {
    const c = new pg.Client({ connectionString: url('postgres') });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  return {
    port: port!,
    url,
    createDatabase: (db: string) => asAdmin(`CREATE DATABASE "${db}"`),
    dropDatabase: (db: string) => asAdmin(`DROP DATABASE "${db}" WITH (FORCE)`),
    restart: () => {
      asServer('pg_ctl', ['-D', data, '-m', 'immediate', '-w', 'stop']);
      startServer();
    },
    stop: () => {
      process.removeListener('exit', stop);
      stop();
    },
  };
}
