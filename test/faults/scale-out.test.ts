/**
 * The fault suite, `server create` under crashes: kill -9 of the main EP while `ucl server create -e -p -a`
 * adds a triplet to a cluster on PostgreSQL, after one of the new servers applied its package
 * (failpoints `scale:triplet-add:applied-<role>`, src/cluster/scale-out.ts). Once all three
 * applied, the restarted EP registers the triplet itself; before, the cluster is unchanged and the
 * servers that joined are bootstrapped again, then the command runs again. Either way the new
 * triplet serves every key made before, and the keys still work through the main EP.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { processAlive } from '../../src/config/pidfile.js';
import { apiFor } from '../support/api.js';
import { ROLES, type Role, type Triplet, ekm, makeTriplet, ucl } from '../support/cluster.js';
import { type PgServer, startPostgres } from '../support/postgres.js';
import {
  bootAdditional,
  certFingerprintOf,
  postgresTriplet,
  serverCreate,
  waitClusterInService,
  waitStopped,
} from '../support/scale-out.js';
import { type Fixture, arm, checkLedger, fixture, keysOfEveryType, sleep } from './harness.js';
import { scopeFrom } from './matrix.js';

const SCOPE = scopeFrom(process.env.EKM_FAULTS_SCOPE);
/** The last new server that applied its package before the main EP died. */
const AFTER: Record<typeof SCOPE, readonly Role[]> = { ci: ['partner', 'aux'], full: ['ep', 'partner', 'aux'] };

async function bootWaiting(t: Triplet, roles: readonly Role[]): Promise<void> {
  for (const role of roles) {
    const r = await bootAdditional(t, role);
    assert.equal(r.code, 0, `${role}: ${r.stderr}`);
  }
}

describe(`fault suite: kill -9 of the main EP during ucl server create (${SCOPE})`, () => {
  let pgServer: PgServer;
  let t1: Triplet;
  let fx: Fixture;
  const added: Triplet[] = [];
  before(async () => {
    pgServer = await startPostgres();
    t1 = await postgresTriplet(pgServer);
    fx = await fixture(t1);
    await keysOfEveryType(fx);
  });
  after(async () => {
    console.log(fx?.ledger.summary(`${SCOPE}, triplet addition`));
    for (const t of added) await t.cleanup();
    await t1?.cleanup();
    pgServer?.stop();
  });

  for (const last of AFTER[SCOPE]) {
    it(`after the new ${last} applied its package: the addition is finished or undone, and the new triplet serves every key`, async () => {
      fx.ledger.figures.scenarios++;
      const t = await makeTriplet();
      added.push(t);
      await bootWaiting(t, ROLES);
      assert.equal((await ekm(t1, 'partner', 'approve-join', certFingerprintOf(t, 'partner'))).code, 0);

      const pid = await arm(fx, 'ep', `scale:triplet-add:applied-${last}`);
      assert.ok(pid !== undefined, 'the EP started armed');
      const cut = await serverCreate(t1, t, '-f');
      assert.notEqual(cut.code, 0, `the main EP died during ucl server create: ${cut.stdout}`);
      while (processAlive(pid)) await sleep(20);
      fx.ledger.figures.faults++;
      assert.equal((await ekm(t1, 'ep', 'start')).code, 0);
      fx.api = await apiFor(t1);

      const joined = ROLES.slice(0, ROLES.indexOf(last) + 1);
      if (joined.length < ROLES.length) {
        // Cut short before the triplet existed: the cluster is unchanged, and the servers that
        // joined are bootstrapped again (the others still wait), then the command runs again.
        const list = await ucl(t1, 'server', 'list', '--json');
        assert.ok(!list.stdout.includes(t.names.ep), `the cluster list is unchanged:\n${list.stdout}`);
        for (const role of joined) {
          await waitStopped(t, role);
          rmSync(t.homes[role], { recursive: true, force: true });
        }
        await bootWaiting(t, joined);
        assert.equal((await ekm(t1, 'partner', 'approve-join', certFingerprintOf(t, 'partner'))).code, 0);
        const again = await serverCreate(t1, t, '-f');
        assert.equal(again.code, 0, again.stderr);
      }
      for (const role of ROLES) await waitStopped(t, role);
      for (const role of ['partner', 'aux', 'ep'] as const) assert.equal((await ekm(t, role, 'start')).code, 0);
      await waitClusterInService(t1, added.length + 1, 90_000);

      // Every key through the new triplet's EP (its Aux re-derives its shares on first use), then through the main EP.
      const throughNew = { ...fx, t, api: await apiFor(t) };
      assert.deepEqual(await checkLedger(throughNew), []);
      assert.deepEqual(await checkLedger(fx), []);
    });
  }

  it('figures: no acknowledged operation lost, no invalid output', () => {
    assert.equal(fx.ledger.figures.lost, 0, fx.ledger.problems.join('\n'));
    assert.equal(fx.ledger.figures.invalid, 0, fx.ledger.problems.join('\n'));
  });
});
