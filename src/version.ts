/** The one release string (package.json), reported by `ekm --version`, `ucl version`, peers and the API. */
import { readFileSync } from 'node:fs';

/** package.json sits above src/ (running from source) or above dist/src/ (compiled). */
function readPackageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ekm' && pkg.version) return pkg.version;
    } catch {
      /* try the next location */
    }
  }
  throw new Error('cannot find the ekm package.json');
}

/** This release; a live binding, so that `overrideVersion` reaches every module that reads it. */
export let VERSION: string = readPackageVersion();

/**
 * Tests of rolling upgrades run one triplet as N+1 (EKM_TEST_VERSION_OVERRIDE, applied once as the
 * CLI starts, before any server code runs); never set in production.
 */
export function overrideVersion(release: string | undefined): void {
  if (release !== undefined) VERSION = release;
}

/**
 * Peer-link protocol version: a link is refused unless both ends speak a version the other accepts.
 * 2: the DKG request carries a key policy (policy/v1 with notAfter), and AuxInfo entries carry it.
 */
export const PEER_PROTOCOL_VERSION = 2;

/** A release string as `major.minor.patch`, with an optional `-prerelease` and `+build` (ignored). */
const RELEASE = /^(\d+)\.(\d+)\.(\d+)(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?$/;

/**
 * Whether servers on releases `a` and `b` may link (the rolling-upgrade rule): the same major and
 * minors at most one apart, e.g. 1.4.x with 1.3.x, 1.4.x and 1.5.x, but not 1.6.x or 2.x; patch
 * and prerelease never matter. Identical strings always match, so unnumbered test builds link.
 */
export function releasesInteroperate(a: string, b: string): boolean {
  if (a === b) return true;
  const x = RELEASE.exec(a);
  const y = RELEASE.exec(b);
  if (!x || !y) return false;
  return Number(x[1]) === Number(y[1]) && Math.abs(Number(x[2]) - Number(y[2])) <= 1;
}
