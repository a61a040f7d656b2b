/**
 * The fault suite, clock jumps: each server's wall clock steps (libfaketime preloaded, its offset moved
 * while the servers run) forward and back by hours and a day, under the mixed load, as an NTP
 * step or a badly set clock would. Timers and timeouts run on the monotonic clock and must not
 * care; tokens expire early at worst (the client logs in again). Afterwards nothing acknowledged is
 * lost, every output verifies, no session is left committing and the audit chain (whose times now
 * go back and forth) verifies. Needs libfaketime (installed when run as root on Debian; skipped
 * with the reason otherwise).
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROLES, type Role, type Triplet, bootAll, makeTriplet, startSeedOrder, ucl, waitInService } from '../support/cluster.js';
import { faketimeEnv, faketimeLibrary, setClockOffset } from '../support/faketime.js';
import { type Fixture, checkLedger, fixture, keysOfEveryType, mixedLoad, seededRandom, sleep } from './harness.js';
import { scopeFrom } from './matrix.js';

const SCOPE = scopeFrom(process.env.EKM_FAULTS_SCOPE);
const SEED = Number(process.env.EKM_FAULTS_SEED ?? 1);
const library = faketimeLibrary();

/** [server, offset from the real time]: each step holds for 2 s under the load. */
const JUMPS: readonly (readonly [Role, string])[] = [
  ['ep', '+2h'],
  ['partner', '-1h'],
  ['aux', '+1d'],
  ['ep', '-3h'],
  ['partner', '+0'],
  ['aux', '+0'],
  ['ep', '+0'],
];

describe(
  `fault suite: wall-clock jumps (${SCOPE})`,
  { skip: library ? false : 'libfaketime is not installed (apt-get install faketime, or run the tests as root on Debian)' },
  () => {
    let t: Triplet;
    let fx: Fixture;
    const clock = (role: Role): string => join(t.dir, `clock-${role}`);
    before(async () => {
      t = await makeTriplet();
      for (const role of ROLES) setClockOffset(clock(role), '+0');
      const plain = t.env;
      t.env = (role) => ({ ...plain(role), ...faketimeEnv(library!, clock(role)) });
      const boots = await bootAll(t);
      for (const role of ROLES) assert.equal(boots[role].code, 0, `${role}: ${boots[role].stderr}`);
      await startSeedOrder(t);
      fx = await fixture(t);
      await keysOfEveryType(fx);
    });
    after(async () => {
      console.log(fx?.ledger.summary(`${SCOPE}, clock jumps`));
      await t?.cleanup();
    });

    it(`each server's clock steps ahead and back (${JUMPS.map(([r, o]) => `${r} ${o}`).join(', ')}) under the mixed load: nothing lost`, async () => {
      fx.ledger.figures.scenarios++;
      const stop = { now: false };
      const load = mixedLoad(fx, stop, seededRandom(SEED));
      try {
        for (const [role, offset] of JUMPS) {
          setClockOffset(clock(role), offset);
          fx.ledger.figures.faults++;
          await sleep(2000);
          const test = await ucl(t, 'server', 'test');
          assert.equal(test.code, 0, `in service with the ${role}'s clock at ${offset}:\n${test.stdout}${test.stderr}`);
        }
      } finally {
        stop.now = true;
        await load;
      }
      await waitInService(t, 30_000);
      assert.ok(fx.ledger.figures.acknowledged > 20, `only ${fx.ledger.figures.acknowledged} operations were acknowledged`);
      assert.deepEqual(await checkLedger(fx), []);
    });

    it('figures: no acknowledged operation lost, no invalid output', () => {
      assert.equal(fx.ledger.figures.lost, 0, fx.ledger.problems.join('\n'));
      assert.equal(fx.ledger.figures.invalid, 0, fx.ledger.problems.join('\n'));
    });
  },
);
