/**
 * Service control (`ekm start|stop|restart|status`): the daemon is this same program run as
 * `ekm run` in the background, with its output in `EKM_HOME/logs/ekm.log` and its pid in
 * `EKM_HOME/run/ekm.pid` (written only once it serves, so `start` knows when it is up).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type HomePaths, isWaitingToJoin, makeDirs } from '../config/home.js';
import { ROLE_LABEL } from '../config/roles.js';
import { loadServerConfig } from '../config/server-config.js';
import { EkmError } from '../errors.js';
import { daemonPid, processAlive, readPid } from '../config/pidfile.js';

/** The CLI entry point, as source (.ts, under tsx) or compiled (.js), whichever this module is. */
const CLI_ENTRY = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? '../cli/ekm.ts' : '../cli/ekm.js', import.meta.url));

export interface StartResult {
  readonly pid: number;
  readonly alreadyRunning: boolean;
}

export async function startDaemon(paths: HomePaths, timeoutMs = 60_000): Promise<StartResult> {
  if (!isWaitingToJoin(paths)) loadServerConfig(paths);
  const running = daemonPid(paths);
  if (running !== undefined) return { pid: running, alreadyRunning: true };
  makeDirs(dirname(paths.logFile));
  const logStart = fileSize(paths.logFile);
  const fd = openSync(paths.logFile, 'a', 0o600);
  const child = spawn(process.execPath, [...process.execArgv, CLI_ENTRY, 'run'], {
    detached: true,
    stdio: ['ignore', fd, fd],
    env: { ...process.env, EKM_HOME: paths.home, EKM_DAEMON: '1' },
  });
  closeSync(fd);
  child.unref();
  const pid = child.pid!;
  let exited: number | null | undefined;
  child.once('exit', (code) => (exited = code));
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (readPid(paths) === pid) return { pid, alreadyRunning: false };
    if (exited !== undefined) {
      throw new EkmError('EKM_START_FAILED', `ekm did not start: ${lastFatal(paths.logFile, logStart) ?? `exit code ${exited}`}`, { hint: `see ${paths.logFile}` });
    }
    await sleep(50);
  }
  throw new EkmError('EKM_START_FAILED', `ekm did not report ready within ${timeoutMs / 1000} s (pid ${pid})`, { hint: `see ${paths.logFile}` });
}

export async function stopDaemon(paths: HomePaths, timeoutMs = 30_000): Promise<{ pid: number | undefined; killed: boolean }> {
  const pid = daemonPid(paths);
  if (pid === undefined) return { pid: undefined, killed: false };
  process.kill(pid, 'SIGTERM');
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    if (!processAlive(pid)) return { pid, killed: false };
    await sleep(50);
  }
  process.kill(pid, 'SIGKILL');
  while (processAlive(pid)) await sleep(50);
  return { pid, killed: true };
}

export function describeRunning(paths: HomePaths, pid: number): string {
  if (isWaitingToJoin(paths)) return `ekm is running (pid ${pid}): waiting to join a cluster (run ucl server create on the main EP)`;
  const cfg = loadServerConfig(paths);
  const api = cfg.api ? `, API https://${cfg.api.host}:${cfg.api.port}` : '';
  return `ekm is running (pid ${pid}): ${ROLE_LABEL[cfg.role]} ${cfg.name}, peer port ${cfg.listen.port}${api}`;
}

function fileSize(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

/** The one-line reason a failed `ekm run` printed (`ekm: …`) in the log since `from`. */
function lastFatal(logFile: string, from: number): string | undefined {
  try {
    const text = readFileSync(logFile).subarray(from).toString('utf8');
    const lines = text.split('\n').filter((l) => l.startsWith('ekm: '));
    return lines.at(-1)?.slice('ekm: '.length);
  } catch {
    return undefined;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
