/**
 * The fault suite, `server create` under crashes: kill -9 of the main EP while `ucl server create -a`
 * replaces its triplet's Aux, at each step (failpoints `scale:aux-replace:<step>`, in
 * src/cluster/scale-out.ts). Whatever the step, the replacement either did not happen (the old Aux
 * still serves; the operator runs it again) or the EP finishes it when it starts again; EP and
 * Partner never stay pinned to different Auxes, and every acknowledged key keeps working.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { homePaths } from '../../src/config/home.js';
import { processAlive } from '../../src/config/pidfile.js';
import { apiFor } from '../support/api.js';
import { ROOT_SO_PASSWORD, type Triplet, ekm, makeTriplet, run, servingTriplet, ucl, waitInService } from '../support/cluster.js';
import { type Fixture, arm, checkLedger, fixture, keysOfEveryType, sleep } from './harness.js';
import { scopeFrom } from './matrix.js';

const SCOPE = scopeFrom(process.env.EKM_FAULTS_SCOPE);
/** Where the EP dies: before the new Aux applied its package, after it joined, after the Partner pinned it. */
const STEPS = { ci: ['joined', 'partner-pinned'], full: ['before-apply', 'joined', 'partner-pinned'] } as const;

const pinnedAux = (t: Triplet, role: 'ep' | 'partner'): string =>
  (JSON.parse(readFileSync(homePaths(t.homes[role]).config, 'utf8')) as { peers: { role: string; name: string }[] }).peers.find(
    (p) => p.role === 'aux',
  )!.name;

async function until(what: string, cond: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await sleep(200);
  }
}

describe(`fault suite: kill -9 of the EP during ucl server create -a (${SCOPE})`, () => {
  let t: Triplet;
  let fx: Fixture;
  const spares: Triplet[] = [];
  before(async () => {
    t = await servingTriplet();
    fx = await fixture(t);
    await keysOfEveryType(fx);
  });
  after(async () => {
    console.log(fx.ledger.summary(`${SCOPE}, Aux replacement`));
    await t.cleanup();
    for (const s of spares) await s.cleanup();
  });

  for (const step of STEPS[SCOPE]) {
    it(`at scale:aux-replace:${step}: the replacement is finished (or undone) and every key works through the new Aux`, async () => {
      fx.ledger.figures.scenarios++;
      const spare = await makeTriplet();
      spares.push(spare);
      const boot = await run('ekm_boot_additional_server.sh', ['-s', spare.names.aux, '-fips'], spare.env('aux'));
      assert.equal(boot.code, 0, boot.stderr);
      const fingerprint = new X509Certificate(readFileSync(join(spare.homes.aux, 'tls', 'server.crt'), 'utf8')).fingerprint256;
      assert.equal((await ekm(t, 'partner', 'approve-join', '--as', 'aux', fingerprint)).code, 0);
      const oldAux = t.names.aux;

      const pid = await arm(fx, 'ep', `scale:aux-replace:${step}`);
      assert.ok(pid !== undefined, 'the EP started armed');
      const create = () => ucl(t, 'server', 'create', '-a', spare.names.aux, '-w', ROOT_SO_PASSWORD, '-f');
      const cut = await create();
      assert.notEqual(cut.code, 0, `the EP died during ucl server create -a: ${cut.stdout}`);
      await until('the EP is dead', () => !processAlive(pid));
      fx.ledger.figures.faults++;
      assert.equal((await ekm(t, 'ep', 'start')).code, 0);

      if (step === 'before-apply') {
        // Nothing was pinned: the old Aux serves on, and the replacement simply runs again.
        await waitInService(t, 60_000);
        assert.equal(pinnedAux(t, 'ep'), oldAux);
        assert.equal(pinnedAux(t, 'partner'), oldAux);
        const again = await create();
        assert.equal(again.code, 0, again.stderr);
      }
      // EP and Partner both pin the new Aux (the restarted EP finished the replacement itself).
      await until(
        'EP and Partner pin the new Aux',
        () => pinnedAux(t, 'ep') === spare.names.aux && pinnedAux(t, 'partner') === spare.names.aux,
      );
      assert.equal((await ekm(t, 'aux', 'stop')).code, 0);
      assert.equal((await ekm(spare, 'aux', 'start')).code, 0);
      // From here on the triplet's Aux is the new one (a later scenario replaces it in turn).
      t.homes.aux = spare.homes.aux;
      t.ports.aux = spare.ports.aux;
      t.names.aux = spare.names.aux;
      await waitInService(t, 120_000);
      fx.api = await apiFor(t);
      assert.deepEqual(await checkLedger(fx), []);
    });
  }

  it('figures: no acknowledged operation lost, no invalid output', () => {
    assert.equal(fx.ledger.figures.lost, 0, fx.ledger.problems.join('\n'));
    assert.equal(fx.ledger.figures.invalid, 0, fx.ledger.problems.join('\n'));
  });
});
