/** The daemon's pid file (`EKM_HOME/run/ekm.pid`): who runs, and whether it is still alive. */
import { readFileSync, rmSync } from 'node:fs';
import { type HomePaths, writeFileAtomic } from './home.js';

export function readPid(paths: HomePaths): number | undefined {
  try {
    const pid = Number(readFileSync(paths.pidFile, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The pid of the running daemon, or undefined (a stale pid file counts as not running). */
export function daemonPid(paths: HomePaths): number | undefined {
  const pid = readPid(paths);
  return pid !== undefined && processAlive(pid) ? pid : undefined;
}

export function daemonRunning(paths: HomePaths): boolean {
  return daemonPid(paths) !== undefined;
}

export function writePid(paths: HomePaths, pid: number): void {
  writeFileAtomic(paths.pidFile, `${pid}\n`, 0o644);
}

export function removePid(paths: HomePaths, pid: number): void {
  if (readPid(paths) === pid) rmSync(paths.pidFile, { force: true });
}
