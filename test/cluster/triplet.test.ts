/**
 * The triplet runs: the seed's bootstrap with and without -f, the seed's start order,
 * every other start order, and single-server restarts while the EP runs — on real processes over
 * mutual TLS.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { homePaths } from '../../src/config/home.js';
import {
  ROLES,
  ROOT_SO_PASSWORD,
  type Role,
  type Triplet,
  assertOneLineError,
  BOOT_SCRIPT,
  ekm,
  makeTriplet,
  permutations,
  run,
  ucl,
  waitInService,
} from '../support/cluster.js';

describe('a FIPS triplet bootstrapped with -f', () => {
  let t: Triplet;
  before(async () => {
    t = await makeTriplet();
  });
  after(async () => t.cleanup());

  it('bootstraps all three concurrently, the EP reading the root SO password from a file (-W)', async () => {
    const passwordFile = join(t.dir, 'root-so.pw');
    writeFileSync(passwordFile, `${ROOT_SO_PASSWORD}\n`, { mode: 0o600 });
    const epArgs = t.bootArgs('ep', ['-f', '--timeout', '60']);
    const w = epArgs.indexOf('-w');
    epArgs.splice(w, 2, '-W', passwordFile);
    assert.ok(!epArgs.includes(ROOT_SO_PASSWORD), 'the password is not on the command line');
    const [ep, partner, aux] = await Promise.all([
      run(BOOT_SCRIPT.ep, epArgs, t.env('ep')),
      ...(['partner', 'aux'] as const).map((role) => run(BOOT_SCRIPT[role], t.bootArgs(role, ['-f', '--timeout', '60']), t.env(role))),
    ]);
    const r = { ep: ep!, partner: partner!, aux: aux! };
    for (const role of ROLES) {
      assert.equal(r[role].code, 0, `${role}: ${r[role].stderr}`);
      assert.match(r[role].stdout, /bootstrapped: cluster [0-9a-f]{16}, triplet [0-9a-f]{16}/);
    }
    const cluster = (s: string): string => /cluster ([0-9a-f]{16})/.exec(s)![1]!;
    assert.equal(cluster(r.partner.stdout), cluster(r.ep.stdout));
    assert.equal(cluster(r.aux.stdout), cluster(r.ep.stdout));
  });

  it('serves after the seed order (Partner and Aux, then EP) and ucl server test lists three servers', async () => {
    for (const role of ['partner', 'aux', 'ep'] as Role[]) {
      const s = await ekm(t, role, 'start');
      assert.equal(s.code, 0, s.stderr);
      assert.match(s.stdout, /ekm started \(pid \d+\)/);
    }
    await waitInService(t);
    const r = await ucl(t, 'server', 'test');
    assert.equal(r.code, 0);
    for (const role of ROLES) assert.match(r.stdout, new RegExp(`${t.names[role].replace(/\./g, '\\.')}\\s+\\S+\\s+ok`));
    assert.match(r.stdout, /All servers are in service/);
    const list = await ucl(t, 'server', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.equal((list.stdout.match(/127\.0\.0\.1:\d+/g) ?? []).length, 3);
    const root = await ucl(t, 'partition', 'list', '-w', ROOT_SO_PASSWORD);
    assert.equal(root.code, 0, `the root SO logs in with the password of the -W file: ${root.stderr}`);
  });

  it("ucl server test|list away from the EP's home: a one-line 401 without credentials, the servers with any role's", async () => {
    const home = mkdtempSync(join(tmpdir(), 'ekm-client-'));
    writeFileSync(join(home, 'client.conf'), `servers=127.0.0.1:${t.apiPort}\ntrust=${homePaths(t.homes.ep).tlsCert}\n`);
    const env = { EKM_HOME: home };
    const passwordFile = join(home, 'so.pw');
    writeFileSync(passwordFile, `${ROOT_SO_PASSWORD}\r\n`, { mode: 0o600 });
    // The password three ways: -w, -W <file> (its first line) and -w - (the first line of standard input).
    const ways: [string[], { input?: string }][] = [
      [['-w', ROOT_SO_PASSWORD], {}],
      [['-W', passwordFile], {}],
      [['-w', '-'], { input: `${ROOT_SO_PASSWORD}\nnot this line\n` }],
    ];
    for (const cmd of ['test', 'list']) {
      const refused = await run('ucl', ['server', cmd], env);
      assertOneLineError(refused);
      assert.match(refused.stderr, /the EP answered 401: authentication required.*--user <user@partition> and -w/);
      for (const [flags, opts] of ways) {
        const listed = await run('ucl', ['server', cmd, '--user', 'so@root', ...flags], env, opts);
        assert.equal(listed.code, 0, `${flags.join(' ')}: ${listed.stderr}`);
        assert.equal((listed.stdout.match(/127\.0\.0\.1:\d+/g) ?? []).length, 3);
      }
    }
    const both = await run('ucl', ['server', 'list', '--user', 'so@root', '-w', ROOT_SO_PASSWORD, '-W', passwordFile], env);
    assertOneLineError(both);
    assert.match(both.stderr, /give -w or -W <file>, not both/);
    const missing = await run('ucl', ['server', 'list', '--user', 'so@root', '-W', join(home, 'nowhere.pw')], env);
    assertOneLineError(missing);
    assert.match(missing.stderr, /-W: cannot read .*nowhere\.pw: no such file/);
  });

  it('answers /api/v1/health with 200 in service and 503 with a server down', async () => {
    const health = async (): Promise<number> => {
      const r = await run('ucl', ['--json', 'server', 'test'], t.env('ep'));
      return r.code;
    };
    assert.equal(await health(), 0);
    const { default: https } = await import('node:https');
    const status = (): Promise<number> =>
      new Promise((res, rej) =>
        https.get({ host: '127.0.0.1', port: t.apiPort, path: '/api/v1/health', rejectUnauthorized: false }, (r) => {
          r.resume();
          res(r.statusCode ?? 0);
        }).on('error', rej),
      );
    assert.equal(await status(), 200);
    await ekm(t, 'aux', 'stop');
    assert.equal(await status(), 503);
    await ekm(t, 'aux', 'start');
    await waitInService(t);
    assert.equal(await status(), 200);
  });

  for (const role of ['partner', 'aux'] as Role[]) {
    it(`restarting only the ${role} while the EP runs: unreachable, then back in service with no manual step`, async () => {
      const stop = await ekm(t, role, 'stop');
      assert.match(stop.stdout, /ekm stopped/);
      const down = await ucl(t, 'server', 'test');
      assert.equal(down.code, 1);
      assert.match(down.stdout, new RegExp(`${t.names[role].replace(/\./g, '\\.')}\\s+\\S+\\s+unreachable`));
      assert.match(down.stdout, /NOT in service/);
      assert.equal((await ekm(t, role, 'start')).code, 0);
      await waitInService(t);
    });
  }

  it('restarting the EP alone converges too', async () => {
    assert.equal((await ekm(t, 'ep', 'restart')).code, 0);
    await waitInService(t);
  });

  for (const order of permutations(ROLES)) {
    it(`stop all, start in the order ${order.join(', ')}: converges`, async () => {
      for (const role of ROLES) await ekm(t, role, 'stop');
      const down = await ucl(t, 'server', 'test');
      assert.notEqual(down.code, 0);
      assert.match(down.stderr, /^ucl: cannot reach the EP/);
      for (const role of order) assert.equal((await ekm(t, role, 'start')).code, 0);
      await waitInService(t);
    });
  }

  it('stop is graceful and status follows', async () => {
    assert.equal((await ekm(t, 'aux', 'status')).code, 0);
    const s = await ekm(t, 'aux', 'stop');
    assert.match(s.stdout, /ekm stopped/);
    const st = await ekm(t, 'aux', 'status');
    assert.equal(st.code, 3);
    assert.match(st.stdout, /not running/);
    assert.match((await ekm(t, 'aux', 'stop')).stdout, /not running/);
  });
});

describe('a FIPS triplet bootstrapped by answering the prompts', () => {
  let t: Triplet;
  before(async () => {
    t = await makeTriplet();
  });
  after(async () => t.cleanup());

  it('asks each boot to approve the other two fingerprints and finishes when all said yes (the EP read its password from standard input first)', async () => {
    const args = (r: Role): string[] => {
      const a = t.bootArgs(r, ['--timeout', '60']);
      if (r === 'ep') a.splice(a.indexOf('-w') + 1, 1, '-');
      return a;
    };
    const results = await Promise.all(
      ROLES.map((r) => run(BOOT_SCRIPT[r], args(r), t.env(r), { answers: ['y', 'yes'], ...(r === 'ep' ? { input: `${ROOT_SO_PASSWORD}\n` } : {}) })),
    );
    const fps = results.map((r) => /fingerprint:\n {2}([0-9A-F:]{95})/.exec(r.stdout)?.[1]);
    results.forEach((r, i) => {
      assert.equal(r.code, 0, `${ROLES[i]}: ${r.stderr}`);
      assert.equal((r.stdout.match(/Approve this certificate\? \[y\/N\]/g) ?? []).length, 2);
      // Each boot was shown exactly the other two servers' fingerprints.
      fps.forEach((fp, j) => assert.equal(r.stdout.includes(`presents certificate SHA256 fingerprint\n  ${fp}`), i !== j));
    });
    for (const role of ['partner', 'aux', 'ep'] as Role[]) assert.equal((await ekm(t, role, 'start')).code, 0);
    await waitInService(t);
    const root = await ucl(t, 'partition', 'list', '-w', ROOT_SO_PASSWORD);
    assert.equal(root.code, 0, `the root SO logs in with the password read from standard input: ${root.stderr}`);
  });
});
