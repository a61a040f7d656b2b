/**
 * The release rule on a real triplet: a server on release N+1 (EKM_TEST_VERSION_OVERRIDE)
 * links with the others on N and the triplet serves; one on N+2 is refused by its peers, and
 * `ucl server test` says so with both versions.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../../src/version.js';
import { type Triplet, ekm, run, servingTriplet, ucl, waitInService } from '../support/cluster.js';

const [major, minor] = VERSION.split('.').map(Number) as [number, number];
const esc = (s: string): string => s.replace(/\./g, '\\.');

/** Restarts the Aux as if it ran `release` (the test-only override). */
async function restartAuxAs(t: Triplet, release: string | undefined): Promise<void> {
  assert.equal((await ekm(t, 'aux', 'stop')).code, 0);
  const env = release ? { ...t.env('aux'), EKM_TEST_VERSION_OVERRIDE: release } : t.env('aux');
  const start = await run(join(t.bin, 'ekm'), ['start'], env);
  assert.equal(start.code, 0, start.stderr);
}

describe('releases within one triplet', () => {
  let t: Triplet;
  before(async () => {
    t = await servingTriplet();
  });
  after(async () => t.cleanup());

  it(`an Aux on the next minor release (${major}.${minor + 1}.0) links and the triplet serves`, async () => {
    const next = `${major}.${minor + 1}.0`;
    await restartAuxAs(t, next);
    await waitInService(t);
    const r = await ucl(t, 'server', 'test');
    assert.match(r.stdout, new RegExp(`${esc(t.names.aux)}\\s+${esc(next)}\\s+ok`));
    assert.match(r.stdout, new RegExp(`${esc(t.names.ep)}\\s+${esc(VERSION)}\\s+ok`));
  });

  it(`an Aux two minor releases ahead (${major}.${minor + 2}.0) is refused, with both versions in ucl server test and the log`, async () => {
    const tooNew = `${major}.${minor + 2}.0`;
    await restartAuxAs(t, tooNew);
    let r = await ucl(t, 'server', 'test');
    for (let i = 0; i < 50 && !/incompatible/.test(r.stdout); i++) {
      await new Promise((res) => setTimeout(res, 200));
      r = await ucl(t, 'server', 'test');
    }
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`${esc(t.names.aux)}\\s+${esc(tooNew)}\\s+incompatible\\s+-\\s+aux \\S+ runs ekm ${esc(tooNew)}, this server ekm ${esc(VERSION)}: releases link only within one major version`));
    assert.match(r.stdout, /NOT in service/);
    const auxLog = readFileSync(join(t.homes.aux, 'logs', 'ekm.log'), 'utf8');
    assert.match(auxLog, /"code":"EKM_RELEASE_INCOMPATIBLE"/);
    assert.match(auxLog, new RegExp(`runs ekm ${esc(VERSION)}, this server ekm ${esc(tooNew)}`));
  });

  it('back on the same release, the triplet returns to service', async () => {
    await restartAuxAs(t, undefined);
    await waitInService(t);
  });
});
