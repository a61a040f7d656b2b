/**
 * Wall-clock jumps for real server processes: libfaketime (Debian's `faketime` package) preloaded,
 * reading the offset from a file on every call, so that a test moves one server's clock while it
 * runs. Only the wall clock moves (CLOCK_REALTIME: dates, token and approval expiry, audit
 * times); the monotonic clock that timers and timeouts use runs on, as on a machine whose NTP
 * steps the clock.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { installDebianPackage } from './debian.js';

function findLibrary(): string | undefined {
  for (const dir of readdirSync('/usr/lib').filter((d) => existsSync(join('/usr/lib', d, 'faketime')))) {
    const lib = join('/usr/lib', dir, 'faketime', 'libfaketime.so.1');
    if (existsSync(lib)) return lib;
  }
  return undefined;
}

/** The library's path, installing the package where that is possible; undefined where it is not (the test says so and skips). */
export function faketimeLibrary(): string | undefined {
  const found = findLibrary();
  if (found) return found;
  try {
    return installDebianPackage('faketime') ? findLibrary() : undefined;
  } catch {
    // No package archive reachable: the clock test is skipped with the reason, not the suite broken.
    return undefined;
  }
}

/** The environment that gives a process the clock offset kept in `offsetFile` (e.g. "+2h", "-1d", "+0"). */
export function faketimeEnv(library: string, offsetFile: string): Record<string, string> {
  return { LD_PRELOAD: library, FAKETIME_TIMESTAMP_FILE: offsetFile, FAKETIME_NO_CACHE: '1', FAKETIME_DONT_FAKE_MONOTONIC: '1' };
}

/** Moves the clock of every process started with `faketimeEnv(…, offsetFile)` to `offset` from the real time. */
export function setClockOffset(offsetFile: string, offset: string): void {
  writeFileSync(offsetFile, `${offset}\n`);
}
