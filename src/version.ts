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

/** Tests of rolling upgrades run one triplet as N+1 through this override; never set it in production. */
export const VERSION: string = process.env.EKM_TEST_VERSION_OVERRIDE ?? readPackageVersion();

/** Peer-link protocol version: a link is refused unless both ends speak a version the other accepts. */
export const PEER_PROTOCOL_VERSION = 1;
