/**
 * Upgrade from a store an earlier release wrote. test/fixtures/schema-2 holds the three
 * EKM_HOMEs of a triplet made by the release at schema 2 (its make.sh regenerates them), with four
 * keys. This release starts on copies of them in the seed's order, migrates each store to the
 * latest schema, and signs with every key; the signatures verify outside ekm against the public
 * keys the old release handed out, so every share survived the migration. Last, the other way
 * round: a store a newer release wrote stops this one at start, with one line.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { LATEST_SCHEMA } from '../../src/store/migrations.js';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { ROLES, type Triplet, assertOneLineError, ekm, startSeedOrder } from '../support/cluster.js';
import { FIXTURES, fixtureTriplet } from '../support/fixture-triplet.js';
import { type TestAlg, verifyIndependently } from '../support/verify-ec.js';

const FIXTURE = join(FIXTURES, 'schema-2');
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

describe(`a triplet whose stores were written at schema 2 (commit ${fixture.commit})`, () => {
  let t: Triplet;
  let api: Api;

  before(async () => {
    t = await fixtureTriplet('schema-2', fixture.apiPort);
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
    assert.match(
      start.stderr,
      new RegExp(`schema ${LATEST_SCHEMA + 1}, newer than this release knows \\(${LATEST_SCHEMA}\\).*instead of downgrading`),
    );
    assert.equal(schemaOf(t.homes.aux), LATEST_SCHEMA + 1);
  });
});
