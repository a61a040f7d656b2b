/**
 * Triplets made by an earlier release and kept under test/fixtures/<name> (each with its make.sh):
 * the three EKM_HOMEs, copied to a temporary folder with the owner-only modes a bootstrap writes,
 * on the fixed loopback ports their server.json files name.
 */
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, ROLES, ROOT, type Role, type Triplet, ekm } from './cluster.js';

export const FIXTURES = join(ROOT, 'test', 'fixtures');

/** Git keeps no modes but the execute bit: give the copies the owner-only modes a bootstrap writes. */
function ownerOnly(path: string): void {
  const dir = statSync(path).isDirectory();
  chmodSync(path, dir ? 0o700 : 0o600);
  if (dir) for (const f of readdirSync(path)) ownerOnly(join(path, f));
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, '127.0.0.1', () => s.close(() => res(true)));
  });
}

/** The triplet of fixture `name` on fresh copies of its homes (not started); its ports must be free. */
export async function fixtureTriplet(name: string, apiPort: number): Promise<Triplet> {
  const dir = mkdtempSync(join(tmpdir(), `ekm-${name}-`));
  for (const r of ROLES) {
    cpSync(join(FIXTURES, name, r), join(dir, r), { recursive: true });
    ownerOnly(join(dir, r));
  }
  const homes = { ep: join(dir, 'ep'), partner: join(dir, 'partner'), aux: join(dir, 'aux') };
  const config = (r: Role): { name: string; listen: { port: number } } =>
    JSON.parse(readFileSync(join(homes[r], 'server.json'), 'utf8')) as never;
  const ports = { ep: config('ep').listen.port, partner: config('partner').listen.port, aux: config('aux').listen.port };
  const t: Triplet = {
    dir,
    bin: BIN,
    homes,
    ports,
    apiPort,
    names: { ep: config('ep').name, partner: config('partner').name, aux: config('aux').name },
    env: (role) => ({ EKM_HOME: homes[role] }),
    bootArgs: () => {
      throw new Error('the fixture is bootstrapped already');
    },
    async cleanup() {
      await Promise.all(ROLES.map((r) => ekm(t, r, 'stop').catch(() => undefined)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  for (const port of [...Object.values(ports), apiPort]) {
    assert.ok(await portFree(port), `port ${port} (fixed in the fixture's server.json) is taken: free it to run this test`);
  }
  return t;
}
