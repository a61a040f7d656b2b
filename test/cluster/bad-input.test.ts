/**
 * Bad input to the bootstrap scripts, `ekm` and `ucl`: one line that says what to do, a
 * non-zero exit, never a stack trace; a failed bootstrap leaves the server un-bootstrapped and
 * retryable.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  BOOT_SCRIPT,
  ROLES,
  type Triplet,
  assertOneLineError,
  bootAll,
  ekm,
  freePorts,
  makeTriplet,
  run,
  ucl,
} from '../support/cluster.js';

const scratch = (): string => mkdtempSync(join(tmpdir(), 'ekm-bad-'));

describe('bootstrap flags', () => {
  const home = { EKM_HOME: join(tmpdir(), 'ekm-bad-never-created') };
  const cases: [string, string, string[], RegExp][] = [
    ['an unknown role', 'ekm', ['boot', 'master', '-s', 'a'], /unknown role "master".*ep, partner, aux/],
    ['an unknown flag', 'ekm_boot_ep.sh', ['-s', 'a:1', '-q'], /unknown argument "-q"/],
    ['a flag of another role', 'ekm_boot_auxiliary.sh', ['-s', 'a:1', '-x', 'b:2'], /-x is not a flag of the aux bootstrap/],
    ['a flag without its value', 'ekm_boot_partner.sh', ['-s'], /-s needs a value/],
    ['a repeated flag', 'ekm_boot_partner.sh', ['-s', 'a:1', '-s', 'b:2'], /-s given twice/],
    ['a missing peer', 'ekm_boot_partner.sh', ['-s', 'a:1', '-x', 'c:3', '-fips'], /-p <ep> is required/],
    ['-fips without -x', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-fips', '-w', 'longenough'], /-fips needs the Aux server: give -x/],
    ['no -fips', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-w', 'longenough'], /-fips is required/],
    ['no root SO password', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-fips'], /-w <root SO password> is required/],
    ['a short root SO password', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-fips', '-w', 'short'], /at least 8 characters/],
    ['-w and -W together', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-fips', '-w', 'longenough', '-W', 'pw'], /give -w or -W, not both/],
    ['a password file that is not there', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-fips', '--password-file', 'no-such.pw'], /--password-file: cannot read no-such\.pw: no such file/],
    ['a short root SO password on standard input', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-fips', '-w', '-'], /at least 8 characters/],
    ['a port out of range', 'ekm_boot_aux' + 'iliary.sh', ['-s', 'a:99999', '-e', 'b:2', '-p', 'c:3', '-fips'], /port 99999 is out of range/],
    ['a bad host name', 'ekm_boot_ep.sh', ['-s', 'bad_host!:1', '-p', 'b:2', '-x', 'c:3', '-fips', '-w', 'longenough'], /not a valid host name/],
    ['the same address twice', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'a:1', '-x', 'c:3', '-fips', '-w', 'longenough'], /three different host:port/],
    ['a bad -e', 'ekm_boot_ep.sh', ['-s', 'a:1', '-p', 'b:2', '-x', 'c:3', '-fips', '-w', 'longenough', '-e', 'ten'], /-e takes the certificate lifetime/],
  ];
  it('the EP bootstrap says in its help how to keep the root SO password out of the process list', async () => {
    const r = await run('ekm_boot_ep.sh', ['--help'], home);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /-w <root SO password> \| -w - \(from standard input\) \| -W <file>/);
    assert.match(r.stdout, /-w - reads the root SO password from the first line of standard input, -W <file> \(or --password-file <file>\)/);
  });
  for (const [what, cmd, args, expected] of cases) {
    it(`refuses ${what}`, async () => {
      const r = await run(cmd, args, home);
      assertOneLineError(r);
      assert.match(r.stderr, expected);
      assert.equal(existsSync(home.EKM_HOME), false, 'nothing was written');
    });
  }
});

describe('bootstrap environment failures', () => {
  it('refuses an unusable EKM_HOME', async () => {
    const r = await run('ekm_boot_aux' + 'iliary.sh', ['-s', '127.0.0.1:1', '-e', '127.0.0.1:2', '-p', '127.0.0.1:3', '-fips', '-f'], {
      EKM_HOME: '/proc/ekm-cannot-be-here',
    });
    assertOneLineError(r);
    assert.match(r.stderr, /EKM_HOME \/proc\/ekm-cannot-be-here is not a writable folder/);
  });

  it('refuses a peer port in use', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as AddressInfo).port;
    const home = scratch();
    const r = await run('ekm_boot_aux' + 'iliary.sh', ['-s', `127.0.0.1:${port}`, '-e', '127.0.0.1:2', '-p', '127.0.0.1:3', '-fips', '-f'], { EKM_HOME: home });
    blocker.close();
    assertOneLineError(r);
    assert.match(r.stderr, new RegExp(`peer port 127\\.0\\.0\\.1:${port} is already in use: stop what listens there`));
    assert.equal(existsSync(join(home, 'server.json')), false);
  });

  it('times out with the names of the peers that never answered, and stays retryable', async () => {
    const [self, p, x] = await freePorts(3);
    const home = scratch();
    const r = await run('ekm_boot_ep.sh', ['-s', `127.0.0.1:${self}`, '-p', `127.0.0.1:${p}`, '-x', `127.0.0.1:${x}`, '-fips', '-w', 'longenough', '-f', '--timeout', '2'], {
      EKM_HOME: home,
    });
    assertOneLineError(r);
    assert.match(r.stderr, /bootstrap timed out after 2 s: .*Partner 127\.0\.0\.1:\d+: connection refused.*Aux 127\.0\.0\.1:\d+: connection refused/);
    assert.equal(existsSync(join(home, 'server.json')), false);
  });

  it('refuses a peer name that does not resolve at once, naming the peer, and writes nothing', async () => {
    const [self, x] = await freePorts(2);
    const home = join(scratch(), 'home');
    const started = performance.now();
    const r = await run(
      'ekm_boot_ep.sh',
      ['-s', `127.0.0.1:${self}`, '-p', 'no-such-host.invalid:7001', '-x', `127.0.0.1:${x}`, '-fips', '-w', 'longenough', '-f', '--timeout', '30'],
      { EKM_HOME: home },
    );
    const seconds = (performance.now() - started) / 1000;
    assertOneLineError(r);
    assert.match(r.stderr, /^ekm: Partner no-such-host\.invalid:7001: unknown host name/);
    assert.doesNotMatch(r.stderr, /timed out/);
    assert.ok(seconds < 10, `failed after ${seconds.toFixed(1)} s, not at once`);
    assert.equal(existsSync(home), false, 'nothing was written, not even EKM_HOME');
  });
});

describe('a refused approval and a second bootstrap', () => {
  let t: Triplet;
  before(async () => {
    t = await makeTriplet();
  });
  after(async () => t.cleanup());

  it('a "no" at the prompt aborts cleanly; the bootstrap can then be run again', async () => {
    const [ep, partner, aux] = await Promise.all([
      run(BOOT_SCRIPT.ep, t.bootArgs('ep', ['--timeout', '30']), t.env('ep'), { answers: ['n', 'n'] }),
      run(BOOT_SCRIPT.partner, t.bootArgs('partner', ['-f', '--timeout', '4']), t.env('partner')),
      run(BOOT_SCRIPT.aux, t.bootArgs('aux', ['-f', '--timeout', '4']), t.env('aux')),
    ]);
    assertOneLineError(ep!);
    assert.match(ep!.stderr, /certificate not approved: bootstrap aborted, nothing was written/);
    for (const r of [partner!, aux!]) {
      assertOneLineError(r);
      assert.match(r.stderr, /timed out.*EP 127\.0\.0\.1:\d+/);
    }
    for (const role of ROLES) assert.equal(existsSync(join(t.homes[role], 'server.json')), false, `${role} left un-bootstrapped`);
    const again = await bootAll(t);
    for (const role of ROLES) assert.equal(again[role].code, 0, again[role].stderr);
  });

  it('refuses to bootstrap an already bootstrapped server', async () => {
    const r = await run(BOOT_SCRIPT.partner, t.bootArgs('partner', ['-f']), t.env('partner'));
    assertOneLineError(r);
    assert.match(r.stderr, /already bootstrapped .*use -restore/);
  });

  it('refuses -restore with a wrong root SO password before contacting anyone', async () => {
    const args = t.bootArgs('ep', ['-f', '-restore']).map((a) => (a === 'Root-SO-pass-1' ? 'Wrong-pass-9' : a));
    const r = await run(BOOT_SCRIPT.ep, args, t.env('ep'));
    assertOneLineError(r);
    assert.match(r.stderr, /-w password does not match the root SO password/);
  });

  it('ekm start says why the service cannot start (API port in use)', async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(t.apiPort, '127.0.0.1', () => r()));
    try {
      const r = await ekm(t, 'ep', 'start');
      assertOneLineError(r);
      assert.match(r.stderr, new RegExp(`API port 127\\.0\\.0\\.1:${t.apiPort} is already in use`));
      assert.equal((await ekm(t, 'ep', 'status')).code, 3);
    } finally {
      blocker.close();
    }
  });
});

describe('ekm and ucl misuse', () => {
  it('ekm start without a bootstrapped server', async () => {
    const r = await run('ekm', ['start'], { EKM_HOME: scratch() });
    assertOneLineError(r);
    assert.match(r.stderr, /no server is bootstrapped in EKM_HOME .*run the bootstrap script/);
  });

  it('an unknown ekm command', async () => {
    const r = await run('ekm', ['strat'], { EKM_HOME: scratch() });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown command 'strat'/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  });

  it('an unknown ucl command', async () => {
    const r = await run('ucl', ['sever', 'test'], { EKM_HOME: scratch() });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /unknown command 'sever'/);
  });

  it('ucl with no EP configured', async () => {
    const r = await run('ucl', ['server', 'test'], { EKM_HOME: scratch(), UCL_SERVERS: '' });
    assertOneLineError(r);
    assert.match(r.stderr, /no EP to talk to/);
  });

  it('ucl server test against an EP that is down', async () => {
    const [port] = await freePorts(1);
    const t = await makeTriplet();
    try {
      await bootAll(t);
      const r = await run('ucl', ['--server', `127.0.0.1:${port}`, 'server', 'test'], t.env('ep'));
      assertOneLineError(r);
      assert.match(r.stderr, /cannot reach the EP \(127\.0\.0\.1:\d+: connection refused\)/);
      assert.equal((await ucl(t, 'server', 'test')).code, 1);
    } finally {
      await t.cleanup();
    }
  });
});
