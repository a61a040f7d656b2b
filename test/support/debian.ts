/** Debian packages the tests need (PostgreSQL, libfaketime): installed where they are missing and we are root with apt. */
import { execFileSync, spawnSync } from 'node:child_process';

/** Installs `pkg` with apt-get if this process is root on a system with apt; false where it cannot. */
export function installDebianPackage(pkg: string): boolean {
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version']).status !== 0) return false;
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { env, stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', pkg], { env, stdio: 'ignore' });
  return true;
}
