/** The one release string (package.json), reported by `ekm --version`, `ucl version`, peers and the API. */
import { readFileSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };

/** Tests of rolling upgrades run one triplet as N+1 through this override; never set it in production. */
export const VERSION: string = process.env.EKM_TEST_VERSION_OVERRIDE ?? pkg.version;

/** Peer-link protocol version: a link is refused unless both ends speak a version the other accepts. */
export const PEER_PROTOCOL_VERSION = 1;
