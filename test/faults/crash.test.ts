/**
 * Issue 9, crash faults on one real triplet: each scenario arms a failpoint on one server, drives
 * the protocol into it until the process SIGKILLs itself, restarts it, and replays the whole client
 * ledger; then kill -9 of a random server under a mixed load. EKM_FAULTS_SCOPE=ci|full picks the
 * matrix (test/faults/matrix.ts); EKM_FAULTS_SEED replays a run (the seed is printed).
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { homePaths } from '../../src/config/home.js';
import { ROLES, type Triplet, servingTriplet } from '../support/cluster.js';
import { EC_TEST_ALGS } from '../support/verify-ec.js';
import {
  type Fixture,
  arm,
  checkLedger,
  disarm,
  encrypt,
  fixture,
  generate,
  generateAes,
  loadUntilDeath,
  killHard,
  refresh,
  restart,
  seededRandom,
  sign,
  sleep,
} from './harness.js';
import type { SigningKey } from './ledger.js';
import { type Load, SIGKILL_ROUNDS, scenarios, scopeFrom } from './matrix.js';

/** ProtocolHost's default session timeout: a session still open after it is committing. */
const SESSION_TIMEOUT_MS = 15_000;
const SCOPE = scopeFrom(process.env.EKM_FAULTS_SCOPE);
const SEED = Number(process.env.EKM_FAULTS_SEED ?? randomInt(2 ** 31));
/** The faults (victim, failpoint count, kill delay) replay exactly from the seed; the load's choices
 * come from a second stream, so how many operations fit before a crash cannot shift the faults. */
const faultRandom = seededRandom(SEED);
const loadRandom = seededRandom(SEED ^ 0x5bd1e995);
const pick = <T>(xs: readonly T[], random = loadRandom): T => xs[Math.floor(random() * xs.length)]!;

/** Keys every scenario's load may use, made before any fault. */
interface Base {
  readonly ed25519: SigningKey;
  readonly aes: string;
}

/** The operation a load repeats (test/faults/matrix.ts says which protocol each one drives). */
async function loadOp(fx: Fixture, base: Base, load: Load): Promise<() => Promise<unknown>> {
  switch (load) {
    case 'generate':
      return () => generate(fx, pick(EC_TEST_ALGS));
    case 'sign-ecdsa-first':
      return async () => {
        const key = await generate(fx, 'ecdsa-p256');
        return key && sign(fx, key);
      };
    case 'sign-ecdsa-pool': {
      const key = await generate(fx, 'ecdsa-p256');
      assert.ok(key, 'a new ECDSA key');
      // The pause lets the pool presign between signatures, so pool mode is reached.
      return async () => (await sign(fx, key)) || sleep(200);
    }
    case 'sign-frost':
      return () => sign(fx, base.ed25519);
    case 'refresh':
      return () => refresh(fx, pick(fx.ledger.signingKeys).keyId);
    case 'encrypt':
      return () => encrypt(fx, base.aes);
  }
}

/** Two clients issue random operations until `stop` says so. */
function mixedLoad(fx: Fixture, stop: { now: boolean }): Promise<void[]> {
  const op = (): Promise<unknown> =>
    pick([
      () => generate(fx, pick(EC_TEST_ALGS)),
      () => generateAes(fx),
      () => sign(fx, pick(fx.ledger.signingKeys)),
      () => encrypt(fx, pick(fx.ledger.aesKeys)),
      () => refresh(fx, pick(fx.ledger.signingKeys).keyId),
    ])();
  const client = async (): Promise<void> => {
    while (!stop.now) if (!(await op())) await sleep(100);
  };
  return Promise.all([client(), client()]);
}

describe(`fault suite (${SCOPE}, seed ${SEED})`, () => {
  let t: Triplet;
  let fx: Fixture;
  let base: Base;
  before(async () => {
    console.log(`fault suite: scope ${SCOPE}, seed ${SEED} (EKM_FAULTS_SEED=${SEED} replays it)`);
    t = await servingTriplet();
    fx = await fixture(t);
    const ed25519 = await generate(fx, 'eddsa-ed25519');
    const aes = await generateAes(fx);
    assert.ok(ed25519 && aes, 'base keys');
    base = { ed25519, aes };
    for (const alg of EC_TEST_ALGS) assert.ok(await generate(fx, alg), alg);
  });
  after(async () => {
    console.log(fx.ledger.summary(SCOPE, SEED));
    await t.cleanup();
  });

  for (const s of scenarios(SCOPE)) {
    it(`kill -9 of the ${s.role} at ${s.failpoint} (${s.load})`, async () => {
      fx.ledger.figures.scenarios++;
      const op = await loadOp(fx, base, s.load);
      const count = 1 + Math.floor(faultRandom() * 2);
      const pid = await arm(fx, s.role, `${s.failpoint}@${count}`);
      const { died, inFlight } = pid === undefined ? { died: true, inFlight: [] } : await loadUntilDeath(pid, op);
      // Disarmed, so that a failpoint that never fired cannot crash a later scenario.
      if (!died) await disarm(fx, s.role);
      assert.ok(died, `${s.failpoint}@${count} never fired on the ${s.role}`);
      await restart(fx, s.role);
      await Promise.all(inFlight);
      assert.deepEqual(await checkLedger(fx), []);
    });
  }

  for (let round = 1; round <= SIGKILL_ROUNDS[SCOPE]; round++) {
    it(`kill -9 of a random server under a mixed load (round ${round})`, async () => {
      fx.ledger.figures.scenarios++;
      const role = pick(ROLES, faultRandom);
      const delay = 500 + Math.floor(faultRandom() * 2000);
      const stop = { now: false };
      const load = mixedLoad(fx, stop);
      await sleep(delay);
      await killHard(t, role);
      stop.now = true;
      await restart(fx, role);
      await load;
      assert.deepEqual(await checkLedger(fx), [], `after kill -9 of the ${role}`);
    });
  }

  // Found by this suite; see docs/reliability.md §5. Full scope only: it waits out a session timeout.
  it(
    "an EP crash between the helpers' PREPARED and its own leaves no helper session committing forever",
    {
      skip: SCOPE !== 'full',
      todo: "BUG: the helpers' DKG session stays committing forever (resumed and re-sent at every restart) when the EP died before persisting its PENDING",
    },
    async () => {
      fx.ledger.figures.scenarios++;
      const pid = await arm(fx, 'ep', 'proto:dkg:4:before-persist');
      assert.ok(pid !== undefined && (await loadUntilDeath(pid, () => generate(fx, 'ecdsa-p256'))).died, 'the EP crashed');
      await restart(fx, 'ep');
      await sleep(SESSION_TIMEOUT_MS + 5000);
      const log = homePaths(t.homes.partner).logFile;
      const from = statSync(log).size;
      await disarm(fx, 'partner');
      const resumed = readFileSync(log)
        .subarray(from)
        .toString()
        .split('\n')
        .filter((l) => l.includes('resumed a committing protocol session'));
      assert.deepEqual(resumed, [], 'the Partner still resumes a session nobody can finish');
    },
  );

  it('figures: no acknowledged operation lost, no invalid output', () => {
    assert.equal(fx.ledger.figures.lost, 0, fx.ledger.problems.join('\n'));
    assert.equal(fx.ledger.figures.invalid, 0, fx.ledger.problems.join('\n'));
  });
});
