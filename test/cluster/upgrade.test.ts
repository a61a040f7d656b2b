/**
 * Upgrade from a store an earlier release wrote (issue 8). test/fixtures/schema-2 holds the three
 * EKM_HOMEs of a triplet made by the release at schema 2 (its make.sh regenerates them), with four
 * keys. This release starts on copies of them in the seed's order, migrates each store to the
 * latest schema, and signs with every key; the signatures verify outside ekm against the public
 * keys the old release handed out, so every share survived the migration. Last, the other way
 * round: a store a newer release wrote stops this one at start, with one line.
 */
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LATEST_SCHEMA } from '../../src/store/migrations.js';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { BIN, ROLES, ROOT, type Role, type Triplet, assertOneLineError, ekm, startSeedOrder } from '../support/cluster.js';
import { type TestAlg, verifyIndependently } from '../support/verify-ec.js';

const FIXTURE = join(ROOT, 'test', 'fixtures', 'schema-2');
const fixture = JSON.parse(readFileSync(join(FIXTURE, 'keys.json'), 'utf8')) as {
  commit: string;
  rootSoPassword: string;
  apiPort: number;
  keys: { keyId: string; alg: TestAlg; publicKey: string }[];
};

function schemaOf(home: string): number {
  const db = new Database(join(home, 'data', 'ekm.db'), { readonly: true, fileMustExist: true });
  try {
    return Number((db.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string }).value);
  } finally {
    db.close();
  }
}

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

/** The fixture's triplet, on copies of its homes: its addresses are fixed in each server.json. */
function fixtureTriplet(dir: string): Triplet {
  const homes = { ep: join(dir, 'ep'), partner: join(dir, 'partner'), aux: join(dir, 'aux') };
  const config = (r: Role): { name: string; listen: { port: number } } => JSON.parse(readFileSync(join(homes[r], 'server.json'), 'utf8')) as never;
  const ports = { ep: config('ep').listen.port, partner: config('partner').listen.port, aux: config('aux').listen.port };
  const t: Triplet = {
    dir,
    bin: BIN,
    homes,
    ports,
    apiPort: fixture.apiPort,
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
  return t;
}

describe(`a triplet whose stores were written at schema 2 (commit ${fixture.commit})`, () => {
  let t: Triplet;
  let api: Api;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekm-upgrade-'));
    for (const r of ROLES) {
      cpSync(join(FIXTURE, r), join(dir, r), { recursive: true });
      ownerOnly(join(dir, r));
    }
    t = fixtureTriplet(dir);
    for (const port of [...Object.values(t.ports), t.apiPort]) {
      assert.ok(await portFree(port), `port ${port} (fixed in the fixture's server.json) is taken: free it to run this test`);
    }
  });
  after(async () => t.cleanup());

  it('the fixture is at schema 2, older than this release', () => {
    for (const r of ROLES) assert.equal(schemaOf(t.homes[r]), 2, r);
    assert.ok(LATEST_SCHEMA > 2);
  });

  it('starts in the seed order, each server migrating its own store to the latest schema', async () => {
    await startSeedOrder(t);
    for (const r of ROLES) assert.equal(schemaOf(t.homes[r]), LATEST_SCHEMA, r);
    api = await apiFor(t, fixture.rootSoPassword);
    const info = await api.call<{ schemaVersion: number }>('GET', '/info');
    assert.equal(info.body.schemaVersion, LATEST_SCHEMA);
  });

  it('every key of the old release is still there, with the same public key, and signs', async () => {
    for (const k of fixture.keys) {
      const shown = await api.call<{ alg: string; publicKey: string }>('GET', `/keys/${k.keyId}`);
      assert.equal(shown.status, 200, JSON.stringify(shown.body));
      assert.equal(shown.body.alg, k.alg);
      assert.equal(shown.body.publicKey, k.publicKey);
      const message = Buffer.from(`signed after the upgrade by ${k.alg}`);
      const signed = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { message: b64(message) });
      assert.equal(signed.status, 200, JSON.stringify(signed.body));
      assert.ok(verifyIndependently({ alg: k.alg, pem: k.publicKey }, message, unb64(signed.body.signature)), `${k.alg} ${k.keyId}`);
    }
  });

  it('a store a newer release migrated is refused at start with one line, and left as it was', async () => {
    assert.equal((await ekm(t, 'aux', 'stop')).code, 0);
    const path = join(t.homes.aux, 'data', 'ekm.db');
    const db = new Database(path);
    db.prepare("UPDATE meta SET value = ? WHERE name = 'schema_version'").run(String(LATEST_SCHEMA + 1));
    db.close();
    const start = await ekm(t, 'aux', 'start');
    assertOneLineError(start);
    assert.match(start.stderr, new RegExp(`schema ${LATEST_SCHEMA + 1}, newer than this release knows \\(${LATEST_SCHEMA}\\).*instead of downgrading`));
    assert.equal(schemaOf(t.homes.aux), LATEST_SCHEMA + 1);
  });
});
