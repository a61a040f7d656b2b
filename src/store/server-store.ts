/**
 * A server's store as its configuration names it: the embedded SQLite file in EKM_HOME, or the
 * role's PostgreSQL database (`-externaldb`). The database password never rests in the clear:
 * server.json keeps the URL without it and the password sealed by the system key, which lives
 * apart (keys/system.key); a copy of server.json alone gives no access to the database.
 */
import type { HomePaths } from '../config/home.js';
import type { Role } from '../config/roles.js';
import type { StoreConfig } from '../config/server-config.js';
import { EkmError } from '../errors.js';
import type { Barrier } from './barrier.js';
import { type PgConnection, PostgresStore, parseDbUrl } from './postgres.js';
import { SqliteStore } from './sqlite.js';
import type { Store } from './store.js';

const PASSWORD_AAD = 'config|store.password';

/** The configuration of an external store from EKM_DB_URL, its password sealed by `systemKey`. */
export function externalStoreConfig(dbUrl: string | undefined, systemKey: Barrier): StoreConfig {
  if (!dbUrl) {
    throw new EkmError('EKM_DB_URL_MISSING', '-externaldb needs the PostgreSQL database in EKM_DB_URL', {
      hint: "set EKM_DB_URL=postgres://<user>:<password>@<host>:5432/<this role's database> in the bootstrap's environment, or bootstrap without -externaldb",
    });
  }
  const conn = parseDbUrl(dbUrl);
  return {
    kind: 'postgres',
    url: conn.url,
    ...(conn.password !== undefined
      ? { passwordSealed: systemKey.seal(Buffer.from(conn.password, 'utf8'), PASSWORD_AAD).toString('base64') }
      : {}),
  };
}

/** The database's URL and, opened with the system key, its password. */
export function pgConnection(cfg: Extract<StoreConfig, { kind: 'postgres' }>, systemKey: Barrier): PgConnection {
  if (cfg.passwordSealed === undefined) return { url: cfg.url };
  return { url: cfg.url, password: systemKey.open(Buffer.from(cfg.passwordSealed, 'base64'), PASSWORD_AAD).toString('utf8') };
}

/**
 * Opens (and migrates) the server's store. `create` makes a missing embedded store or an empty
 * database's schema; the store is claimed for `role`, and refused if another role holds it.
 * `writerThread` (a running server) commits SQLite writes off the event loop.
 */
export async function openServerStore(
  cfg: StoreConfig,
  paths: HomePaths,
  opts: { create: boolean; role: Role; barrier: Barrier; writerThread?: boolean },
): Promise<Store> {
  if (cfg.kind === 'sqlite') return SqliteStore.open(paths.sqlite, opts);
  return PostgresStore.open(pgConnection(cfg, opts.barrier), opts);
}
