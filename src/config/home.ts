/**
 * EKM_HOME: one folder per server holding its configuration, identity, system key, store, pid
 * file and log. Several servers run on one host by giving each its own EKM_HOME.
 *
 *   server.json        bootstrap configuration (written last: its presence = bootstrapped)
 *   joining.json       a server bootstrapped by ekm_boot_additional_server.sh, waiting to join
 *   tls/server.key     identity private key (0600), tls/server.crt its self-signed certificate
 *   keys/system.key    32-byte system key that encrypts every secret in the store (0600)
 *   data/ekm.db        the embedded store (SQLite)
 *   run/ekm.pid        pid of the running daemon, logs/ekm.log its log
 */
import { accessSync, constants, existsSync, mkdirSync, renameSync, writeFileSync, openSync, fsyncSync, closeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { EkmError } from '../errors.js';

export interface HomePaths {
  readonly home: string;
  readonly config: string;
  readonly joining: string;
  readonly tlsKey: string;
  readonly tlsCert: string;
  readonly systemKey: string;
  readonly dataDir: string;
  readonly sqlite: string;
  readonly pidFile: string;
  readonly logFile: string;
  readonly clientConf: string;
}

/** The files of the server whose home is `home` (the EKM_HOME setting, src/config/settings.ts). */
export function homePaths(home: string): HomePaths {
  const h = resolve(home);
  return {
    home: h,
    config: join(h, 'server.json'),
    joining: join(h, 'joining.json'),
    tlsKey: join(h, 'tls', 'server.key'),
    tlsCert: join(h, 'tls', 'server.crt'),
    systemKey: join(h, 'keys', 'system.key'),
    dataDir: join(h, 'data'),
    sqlite: join(h, 'data', 'ekm.db'),
    pidFile: join(h, 'run', 'ekm.pid'),
    logFile: join(h, 'logs', 'ekm.log'),
    clientConf: join(h, 'client.conf'),
  };
}

/**
 * `mkdir -p` without `{ recursive: true }`: Node 20's recursive mkdir spins forever where a parent
 * cannot be created (e.g. under /proc), so each missing level is made in turn and any error surfaces.
 */
/** Whether a server is bootstrapped in this home (its server.json exists); no schema is loaded. */
export function isBootstrapped(paths: HomePaths): boolean {
  return existsSync(paths.config);
}

/** Whether this home holds a server that waits to join a cluster (ekm_boot_additional_server.sh). */
export function isWaitingToJoin(paths: HomePaths): boolean {
  return !existsSync(paths.config) && existsSync(paths.joining);
}

export function makeDirs(path: string, mode = 0o700): void {
  const missing: string[] = [];
  let p = resolve(path);
  while (!existsSync(p)) {
    missing.push(p);
    const parent = dirname(p);
    if (parent === p) break;
    p = parent;
  }
  for (const dir of missing.reverse()) mkdirSync(dir, { mode });
}

/** Creates EKM_HOME if needed and proves it is writable, or says precisely why not. */
export function ensureWritableHome(paths: HomePaths): void {
  try {
    makeDirs(paths.home);
    accessSync(paths.home, constants.R_OK | constants.W_OK | constants.X_OK);
  } catch (e) {
    throw new EkmError(
      'EKM_HOME_UNUSABLE',
      `EKM_HOME ${paths.home} is not a writable folder (${(e as NodeJS.ErrnoException).code ?? 'error'})`,
      { hint: 'set EKM_HOME to a folder this user can write, or run as the ekm service user' },
    );
  }
}

/** Writes a file so that readers see either the old or the complete new content (write, fsync, rename). */
export function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): void {
  makeDirs(dirname(path));
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, data, { mode });
  const fd = openSync(tmp, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dirFd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
