/**
 * The fault suite, crash faults on one real triplet: each scenario arms a failpoint on one server, drives
 * the protocol into it until the process SIGKILLs itself, restarts it, and replays the whole client
 * ledger; then kill -9 of a random server under a mixed load. EKM_FAULTS_SCOPE=ci|full picks the
 * matrix (test/faults/matrix.ts); EKM_FAULTS_SEED replays a run (the seed is printed).
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROLES, type Triplet, permutations, run, servingTriplet, waitInService } from '../support/cluster.js';
import { EC_TEST_ALGS } from '../support/verify-ec.js';
import {
  type Fixture,
  arm,
  canMountTmpfs,
  checkLedger,
  disarm,
  diskAlmostFull,
  encrypt,
  fixture,
  generate,
  generateAes,
  generateRsa,
  loadUntilDeath,
  killHard,
  logMark,
  logSince,
  loseAuxDisk,
  mixedLoad,
  rederive,
  rederiveOrWhy,
  refresh,
  restart,
  routeThroughProxy,
  seededRandom,
  sign,
  sleep,
  startInOrder,
} from './harness.js';
import type { SigningKey } from './ledger.js';
import type { FaultProxy } from './proxy.js';
import { BACKUP_KILLS, type Load, RESTART_ORDERS, SIGKILL_ROUNDS, SOAK, scenarios, scopeFrom } from './matrix.js';

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
  readonly rsa: SigningKey;
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
    case 'sign-rsa':
      return () => sign(fx, base.rsa);
    case 'rederive':
      return () => rederive(fx);
  }
}

/** A fault on the peer links, through the proxies every scenario's traffic passes (test/faults/proxy.ts). */
interface LinkFault {
  readonly name: string;
  readonly inject: (p: { epPartner: FaultProxy; partnerAux: FaultProxy }) => void;
  readonly ms: number;
  /** The link whose dialler must log it down (the fault reached it), or none (a delay only slows it). */
  readonly down?: { readonly dialler: 'ep' | 'partner'; readonly peer: 'partner' | 'aux' };
  readonly ci: boolean;
}

const LINK_FAULTS: readonly LinkFault[] = [
  { name: 'the EP–Partner link cut for 3 s', inject: (p) => p.epPartner.cut(), ms: 3000, down: { dialler: 'ep', peer: 'partner' }, ci: true },
  {
    name: 'the EP–Partner path black-holed for 6 s (nothing closes: the heartbeats must find it)',
    inject: (p) => p.epPartner.blackhole(),
    ms: 6000,
    down: { dialler: 'ep', peer: 'partner' },
    ci: false,
  },
  {
    name: 'every EP–Partner and Partner–Aux chunk delayed by up to 150 ms for 5 s',
    inject: (p) => {
      p.epPartner.delay(150);
      p.partnerAux.delay(150);
    },
    ms: 5000,
    ci: false,
  },
  {
    name: 'one corrupted chunk from the EP to the Partner (TLS must refuse it)',
    inject: (p) => p.epPartner.corruptNext(),
    ms: 2000,
    down: { dialler: 'ep', peer: 'partner' },
    ci: true,
  },
  { name: 'the Partner–Aux link cut for 3 s', inject: (p) => p.partnerAux.cut(), ms: 3000, down: { dialler: 'partner', peer: 'aux' }, ci: false },
];

/** The "peer link down" lines for `peer` that `role`'s log gained since byte `from`. */
function linkDownLines(t: Triplet, role: 'ep' | 'partner', peer: string, from: number): string[] {
  return logSince(t, role, from)
    .split('\n')
    .filter((l) => l.includes('"peer link down"') && l.includes(`"peer":"${peer}"`));
}

describe(`fault suite (${SCOPE}, seed ${SEED})`, () => {
  let t: Triplet;
  let fx: Fixture;
  let base: Base;
  let proxies: { epPartner: FaultProxy; partnerAux: FaultProxy };
  before(async () => {
    console.log(`fault suite: scope ${SCOPE}, seed ${SEED} (EKM_FAULTS_SEED=${SEED} replays it)`);
    t = await servingTriplet();
    fx = await fixture(t);
    // Every scenario's peer traffic EP→Partner and Partner→Aux passes the proxies (invisible until a link fault).
    proxies = { epPartner: await routeThroughProxy(fx, 'ep', 'partner'), partnerAux: await routeThroughProxy(fx, 'partner', 'aux') };
    const ed25519 = await generate(fx, 'eddsa-ed25519');
    const rsa = await generateRsa(fx);
    const aes = await generateAes(fx);
    assert.ok(ed25519 && rsa && aes, 'base keys');
    base = { ed25519, rsa, aes };
    for (const alg of EC_TEST_ALGS) assert.ok(await generate(fx, alg), alg);
    assert.ok(await encrypt(fx, aes), 'a first AES ciphertext');
  });
  after(async () => {
    console.log(fx.ledger.summary(SCOPE, SEED));
    await t.cleanup();
    await Promise.all(Object.values(proxies).map((p) => p.close()));
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
      const load = mixedLoad(fx, stop, loadRandom);
      await sleep(delay);
      await killHard(t, role);
      stop.now = true;
      await restart(fx, role);
      await load;
      assert.deepEqual(await checkLedger(fx), [], `after kill -9 of the ${role}`);
    });
  }

  for (const f of LINK_FAULTS.filter((l) => SCOPE === 'full' || l.ci)) {
    it(`${f.name}, under a mixed load`, async () => {
      fx.ledger.figures.scenarios++;
      fx.ledger.figures.faults++;
      const logFrom = { ep: logMark(t, 'ep'), partner: logMark(t, 'partner') };
      const chunks = proxies.epPartner.counts.chunks + proxies.partnerAux.counts.chunks;
      const stop = { now: false };
      const load = mixedLoad(fx, stop, loadRandom);
      await sleep(500 + Math.floor(faultRandom() * 1000));
      f.inject(proxies);
      await sleep(f.ms);
      proxies.epPartner.pass();
      proxies.partnerAux.pass();
      stop.now = true;
      await load;
      await waitInService(t, 60_000);
      assert.ok(proxies.epPartner.counts.chunks + proxies.partnerAux.counts.chunks > chunks, 'the peer traffic went through the proxies');
      if (f.down) {
        assert.ok(linkDownLines(t, f.down.dialler, f.down.peer, logFrom[f.down.dialler]).length > 0, `the ${f.down.dialler} saw its link to the ${f.down.peer} go down`);
      }
      assert.deepEqual(await checkLedger(fx), [], `after ${f.name}`);
    });
  }

  it(
    "the Partner's disk fills up under a mixed load: its writes fail (nothing acknowledged is lost), and it serves again once space is given back",
    { skip: canMountTmpfs() ? false : "needs root: the Partner's store goes on a small tmpfs" },
    async () => {
      fx.ledger.figures.scenarios++;
      fx.ledger.figures.faults++;
      const disk = await diskAlmostFull(fx, 'partner', 64 * 1024);
      let unmounted = false;
      try {
        const from = logMark(t, 'partner');
        const stop = { now: false };
        const load = mixedLoad(fx, stop, loadRandom);
        await sleep(8000);
        const full = logSince(t, 'partner', from).match(/database or disk is full|SQLITE_FULL|ENOSPC/g) ?? [];
        disk.free();
        await sleep(3000);
        stop.now = true;
        await load;
        assert.ok(full.length > 0, "the Partner's store did run out of space (its log says so)");
        await waitInService(t, 60_000);
        assert.deepEqual(await checkLedger(fx), [], 'after the disk filled up and got space again');
        await disk.unmount();
        unmounted = true;
        assert.deepEqual(await checkLedger(fx), [], 'with the store back on the real disk');
      } finally {
        // A failed check must not leave the tmpfs behind (the later scenarios and the clean-up need the real disk).
        if (!unmounted) await disk.unmount();
      }
    },
  );

  it('kill -9 of `ekm backup` at random moments under a mixed load: a backup file exists only whole (it verifies), and the servers serve on', async () => {
    fx.ledger.figures.scenarios++;
    const dir = mkdtempSync(join(tmpdir(), 'ekm-backup-fault-'));
    try {
      const keygen = await run('ekm', ['backup-keygen', '--out', dir, '--name', 'ep'], {});
      assert.equal(keygen.code, 0, keygen.stderr);
      const backup = (out: string): ChildProcess =>
        spawn(join(t.bin, 'ekm'), ['backup', '--out', out, '--to', join(dir, 'ep.pub.pem')], { env: { ...process.env, ...t.env('ep') }, stdio: 'ignore' });
      const exit = (c: ChildProcess): Promise<number | null> => new Promise((resolve) => c.once('exit', (code) => resolve(code)));
      // How long a whole backup takes here: the kills land anywhere within twice that (under the load
      // a backup takes longer), so that some backups are cut and some complete.
      const t0 = Date.now();
      assert.equal(await exit(backup(join(dir, 'whole.tar.gz'))), 0, 'a backup without a fault');
      const wholeMs = Date.now() - t0;
      const stop = { now: false };
      const load = mixedLoad(fx, stop, loadRandom);
      let killed = 0;
      for (let i = 0; i < BACKUP_KILLS[SCOPE]; i++) {
        const out = join(dir, `ep-${i}.tar.gz`);
        const child = backup(out);
        // The first within half a whole backup's time, so that at least one is surely cut short.
        const timer = setTimeout(() => child.kill('SIGKILL'), Math.floor(faultRandom() * (i === 0 ? 0.5 : 2) * wholeMs));
        const code = await exit(child);
        clearTimeout(timer);
        if (code !== 0) {
          killed++;
          fx.ledger.figures.faults++;
        }
        if (code === 0) assert.ok(existsSync(out), `${out}: ekm backup exited 0 without writing it`);
        if (existsSync(out)) {
          const v = await run('ekm', ['backup', 'verify', '--in', out, '--key', join(dir, 'ep.key')], {});
          assert.equal(v.code, 0, `${out} exists after ${code === 0 ? 'a clean exit' : 'a kill -9'} but does not verify: ${v.stderr}`);
        }
      }
      assert.ok(killed > 0, 'at least one backup was cut short');
      stop.now = true;
      await load;
      console.log(`backup kills: ${killed} of ${BACKUP_KILLS[SCOPE]} backups killed (a whole one takes ${wholeMs} ms)`);
      assert.deepEqual(await checkLedger(fx), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the Aux loses its disk: re-derived from EP and Partner, then every FROST, RSA and AES key works through EP + Aux alone (Partner killed), and every key once the Partner is back', async () => {
    fx.ledger.figures.scenarios++;
    const from = logMark(t, 'ep');
    await loseAuxDisk(fx);
    // Retried for a minute; a refusal that lasts (before NEVER: a refresh an earlier crash left
    // committing, docs/reliability.md §5) fails the test with the EP's answers and warnings.
    const answers: string[] = [];
    let rederived = false;
    for (const t0 = Date.now(); !rederived && Date.now() - t0 < 60_000; ) {
      const why = await rederiveOrWhy(fx);
      rederived = why === undefined;
      if (why !== undefined) answers.push(why);
      if (!rederived) await sleep(2000);
    }
    const warnings = logSince(t, 'ep', from)
      .split('\n')
      .filter((l) => /"level":(40|50)/.test(l))
      .slice(-5);
    assert.ok(rederived, `POST /servers/aux/rederive failed ${answers.length} times: ${[...new Set(answers)].join(' | ')}; EP warnings: ${warnings.join(' | ')}`);
    if (answers.length > 0) console.log(`aux re-derivation: acknowledged after ${answers.length} refusals: ${[...new Set(answers)].join(' | ')}`);
    await killHard(t, 'partner');
    assert.deepEqual(await checkLedger(fx, { twoServers: true }), [], 'with the Partner down: EP + the re-derived Aux');
    await restart(fx, 'partner');
    assert.deepEqual(await checkLedger(fx), [], 'with the Partner back');
  });

  const orders = permutations(ROLES);
  for (const order of RESTART_ORDERS[SCOPE] === 'all' ? orders : [pick(orders, faultRandom)]) {
    it(`power loss: kill -9 of all three under a mixed load, then start in the order ${order.join(', ')}`, async () => {
      fx.ledger.figures.scenarios++;
      const stop = { now: false };
      const load = mixedLoad(fx, stop, loadRandom);
      await sleep(500 + Math.floor(faultRandom() * 2000));
      await Promise.all(ROLES.map((role) => killHard(t, role)));
      stop.now = true;
      await load;
      await startInOrder(fx, order);
      assert.deepEqual(await checkLedger(fx), [], `after the power loss and a start in the order ${order.join(', ')}`);
    });
  }

  it(`soak: a mixed load for ${SOAK[SCOPE].ms / 1000} s or ${SOAK[SCOPE].operations} acknowledged operations, a kill -9 of a random server every ~${SOAK[SCOPE].faultEveryMs / 1000} s`, async () => {
    fx.ledger.figures.scenarios++;
    const { ms, operations, faultEveryMs } = SOAK[SCOPE];
    const start = fx.ledger.figures.acknowledged;
    const end = Date.now() + ms;
    const stop = { now: false };
    const load = mixedLoad(fx, stop, loadRandom);
    const done = (): boolean => Date.now() >= end || fx.ledger.figures.acknowledged - start >= operations;
    while (!done()) {
      const wait = Math.floor(faultEveryMs * (0.5 + faultRandom()));
      const until = Date.now() + wait;
      while (!done() && Date.now() < until) await sleep(100);
      if (done()) break;
      const role = pick(ROLES, faultRandom);
      await killHard(t, role);
      await sleep(Math.floor(faultRandom() * 1000));
      await restart(fx, role);
    }
    stop.now = true;
    await load;
    console.log(`soak: ${fx.ledger.figures.acknowledged - start} operations acknowledged in ${Math.round((ms - (end - Date.now())) / 1000)} s`);
    assert.deepEqual(await checkLedger(fx), []);
  });

  // Found by this suite (docs/reliability.md §5): such a refresh stayed committing at EP and
  // Partner forever and refused every later refresh of the key (I3). The Aux's NEVER ends it.
  it("a crash before the Aux's PENDING leaves no refresh committing: the key refreshes again", async () => {
    fx.ledger.figures.scenarios++;
    const key = await generate(fx, 'ecdsa-p256');
    assert.ok(key, `a new key (refused: ${fx.lastRefusal ?? '?'})`);
    const pid = await arm(fx, 'aux', 'proto:refresh:3:before-persist');
    assert.ok(pid !== undefined && (await loadUntilDeath(pid, () => refresh(fx, key.keyId))).died, 'the Aux crashed');
    const from = logMark(t, 'ep');
    await restart(fx, 'aux');
    let refreshed = false;
    for (let i = 0; i < 20 && !refreshed; i++) {
      refreshed = await refresh(fx, key.keyId);
      if (!refreshed) await sleep(1000);
    }
    assert.ok(refreshed, 'the key refreshes again (I3 no longer refuses it)');
    assert.match(logSince(t, 'ep', from), /never prepared: the pending state was dropped/);
    assert.deepEqual(await checkLedger(fx), []);
  });

  it('figures: no acknowledged operation lost, no invalid output', () => {
    assert.equal(fx.ledger.figures.lost, 0, fx.ledger.problems.join('\n'));
    assert.equal(fx.ledger.figures.invalid, 0, fx.ledger.problems.join('\n'));
  });
});
