/**
 * packaging/: the init.d script drives real ekm servers the way `service ekm start`
 * does — install root and EKM_HOME from the environment or from a defaults file — with LSB exit
 * codes; the systemd unit passes `systemd-analyze verify` where that tool exists.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { userInfo, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, type Role, type RunResult, type Triplet, bootAll, makeTriplet, run, ucl, waitInService } from '../support/cluster.js';

const INIT = join(ROOT, 'packaging', 'init.d', 'ekm');
const UNIT = join(ROOT, 'packaging', 'systemd', 'ekm.service');
const NO_DEFAULTS = '/nonexistent/ekm-defaults';

/**
 * An install root that `user` can enter and read, beside `dir`: the programs the init script runs
 * as that user (bin/, the sources, package.json, node_modules) copied out of the checkout. The
 * checkout itself may sit in a folder only root can enter (a clone under /root), where another
 * user cannot even start bin/ekm.
 */
function installRootFor(user: string, dir: string): string {
  const root = join(dir, 'install-root');
  mkdirSync(root);
  for (const entry of ['bin', 'src', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, entry), join(root, entry), { recursive: true });
  // node_modules may be a symlink into another checkout: its contents are copied, links within kept.
  const copy = spawnSync('cp', ['-a', `${join(ROOT, 'node_modules')}/.`, join(root, 'node_modules')], { encoding: 'utf8' });
  assert.equal(copy.status, 0, copy.stderr);
  assert.equal(spawnSync('chmod', ['-R', 'a+rX', dir]).status, 0);
  assert.equal(spawnSync('runuser', ['-u', user, '--', 'test', '-r', join(root, 'bin', 'ekm')]).status, 0, `${user} reads ${root}`);
  return root;
}

/** The init script as `service` runs it, from the root folder (so a server run as another user does not
 * start in a folder it cannot enter); `run` resolves commands under bin/, hence the relative path. */
function service(action: string, env: Record<string, string>): Promise<RunResult> {
  return run('../packaging/init.d/ekm', [action], { EKM_USER: userInfo().username, EKM_DEFAULTS: NO_DEFAULTS, ...env }, { cwd: '/' });
}

describe('packaging/init.d/ekm', () => {
  let t: Triplet;
  let scratch: string;
  const env = (role: Role): Record<string, string> => ({ EKM_ROOT: ROOT, EKM_HOME: t.homes[role] });

  before(async () => {
    t = await makeTriplet();
    scratch = mkdtempSync(join(tmpdir(), 'ekm-svc-'));
    const r = await bootAll(t);
    for (const role of ['ep', 'partner', 'aux'] as const) assert.equal(r[role].code, 0, r[role].stderr);
  });
  after(async () => {
    await t.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('is an LSB init script', () => {
    const text = readFileSync(INIT, 'utf8');
    assert.ok(statSync(INIT).mode & 0o111, 'executable');
    assert.match(text, /^#!\/bin\/sh\n### BEGIN INIT INFO\n/);
    for (const k of ['Provides', 'Required-Start', 'Required-Stop', 'Default-Start', 'Default-Stop', 'Short-Description']) {
      assert.match(text, new RegExp(`^# ${k}:`, 'm'));
    }
    assert.equal(spawnSync('sh', ['-n', INIT]).status, 0, 'sh -n');
  });

  it('answers bad actions and missing pieces with LSB exit codes and one line', async () => {
    const usage = await service('frobnicate', env('partner'));
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^usage: .*\{start\|stop\|restart\|force-reload\|try-restart\|status\}\n$/);
    assert.equal((await service('', env('partner'))).code, 2);
    assert.equal((await service('reload', env('partner'))).code, 3);

    const notInstalled = { EKM_ROOT: join(scratch, 'no-such-root'), EKM_HOME: t.homes.partner };
    const s = await service('start', notInstalled);
    assert.equal(s.code, 5);
    assert.match(s.stderr, /no-such-root\/bin\/ekm is not installed/);
    assert.equal((await service('status', notInstalled)).code, 4);

    const empty = { EKM_ROOT: ROOT, EKM_HOME: join(scratch, 'empty-home') };
    const nb = await service('start', empty);
    assert.equal(nb.code, 6);
    assert.match(nb.stderr, /no server is bootstrapped in .*empty-home: run .*ekm_boot_<role>\.sh first/);
    const st = await service('status', empty);
    assert.equal(st.code, 3, st.stderr);
    assert.match(st.stdout, /ekm is not running \(no server is bootstrapped/);
    assert.equal((await service('stop', empty)).code, 0, 'stop of a stopped service succeeds (LSB)');
  });

  it('starts Partner and Aux, then the EP (settings from a defaults file); status 0; ucl server test 0', async () => {
    for (const role of ['partner', 'aux'] as const) {
      const st = await service('status', env(role));
      assert.equal(st.code, 3, `${role} not running yet`);
      const r = await service('start', env(role));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ekm started \(pid \d+\)/);
    }
    // The EP takes EKM_ROOT and EKM_HOME only from its settings file, as from /etc/default/ekm.
    const defaults = join(scratch, 'default-ekm');
    writeFileSync(defaults, `# as /etc/default/ekm\nEKM_ROOT=${ROOT}\nEKM_HOME=${t.homes.ep}\n`);
    const epEnv = { EKM_ROOT: '', EKM_HOME: '', EKM_DEFAULTS: defaults };
    const r = await service('start', epEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /ekm started \(pid \d+\): EP /);

    for (const role of ['partner', 'aux'] as const) {
      const st = await service('status', env(role));
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout, /ekm is running \(pid \d+\)/);
    }
    assert.equal((await service('status', epEnv)).code, 0);
    await waitInService(t);
    const test = await ucl(t, 'server', 'test');
    assert.equal(test.code, 0, test.stdout);
    assert.match(test.stdout, /All servers are in service/);

    const again = await service('start', env('partner'));
    assert.equal(again.code, 0, 'start of a running service succeeds (LSB)');
    assert.match(again.stdout, /already running/);
  });

  it('stop makes status exit 3; restart and try-restart follow LSB', async () => {
    for (const role of ['ep', 'partner', 'aux'] as const) {
      const r = await service('stop', env(role));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ekm stopped \(pid \d+\)/);
      const st = await service('status', env(role));
      assert.equal(st.code, 3);
      assert.match(st.stdout, /^ekm is not running\n$/);
    }
    assert.notEqual((await ucl(t, 'server', 'test')).code, 0);

    const tr = await service('try-restart', env('partner'));
    assert.equal(tr.code, 0);
    assert.match(tr.stdout, /not running: nothing to restart/);
    assert.equal((await service('status', env('partner'))).code, 3, 'try-restart does not start a stopped service');

    // restart (= force-reload) starts a stopped server; the seed's order again.
    for (const [role, action] of [
      ['partner', 'restart'],
      ['aux', 'force-reload'],
      ['ep', 'restart'],
    ] as const) {
      const r = await service(action, env(role));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /ekm restarted \(pid \d+\)/);
    }
    await waitInService(t);
    const before = (await service('status', env('aux'))).stdout;
    const rr = await service('try-restart', env('aux'));
    assert.equal(rr.code, 0, rr.stderr);
    assert.notEqual(rr.stdout.match(/pid (\d+)/)?.[1], before.match(/pid (\d+)/)?.[1], 'a running server gets a new process');
    await waitInService(t);
  });

  it('started by root, runs the server as EKM_USER', { skip: process.getuid?.() !== 0 && 'needs root (runuser)' }, async () => {
    const user = 'nobody';
    const ids = spawnSync('id', ['-u', user], { encoding: 'utf8' });
    if (ids.status !== 0) return;
    const uid = Number(ids.stdout.trim());
    const gid = Number(spawnSync('id', ['-g', user], { encoding: 'utf8' }).stdout.trim());
    assert.equal((await service('stop', env('aux'))).code, 0);
    chmodSync(t.dir, 0o711);
    const chownTree = (p: string): void => {
      chownSync(p, uid, gid);
      if (statSync(p).isDirectory()) for (const e of readdirSync(p)) chownTree(join(p, e));
    };
    chownTree(t.homes.aux);
    const asUser = { ...env('aux'), EKM_ROOT: installRootFor(user, scratch), EKM_USER: user };
    const r = await service('start', asUser);
    assert.equal(r.code, 0, r.stderr);
    const pid = Number(/pid (\d+)/.exec(r.stdout)?.[1]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s`, 'm'), `the daemon runs as ${user}`);
    assert.equal((await service('status', asUser)).code, 0);
    await waitInService(t);
    const stop = await service('stop', asUser);
    assert.equal(stop.code, 0, stop.stderr);

    const missing = await service('start', { ...env('aux'), EKM_USER: 'ekm-no-such-user' });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /user ekm-no-such-user does not exist: create it/);
  });
});

describe('packaging/systemd/ekm.service', () => {
  const unit = readFileSync(UNIT, 'utf8');
  const setting = (key: string): string[] => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!);

  it('runs `ekm run` as the ekm user with EKM_HOME=/var/lib/ekm and a graceful SIGTERM stop', () => {
    assert.deepEqual(setting('Type'), ['simple']);
    assert.deepEqual(setting('ExecStart'), ['/opt/ekm/bin/ekm run']);
    assert.deepEqual(setting('Environment'), ['EKM_HOME=/var/lib/ekm']);
    assert.deepEqual(setting('User'), ['ekm']);
    assert.deepEqual(setting('KillSignal'), ['SIGTERM']);
    assert.deepEqual(setting('TimeoutStopSec'), ['30']);
    assert.deepEqual(setting('Restart'), ['on-failure']);
    assert.deepEqual(setting('ReadWritePaths'), ['/var/lib/ekm']);
  });

  const analyze = spawnSync('systemd-analyze', ['--version']);
  const skip = analyze.error ? 'systemd-analyze is not installed: the unit is checked by the assertions above only' : false;
  it('passes systemd-analyze verify (install root pointed at this checkout)', { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekm-unit-'));
    try {
      // verify checks that ExecStart exists, so /opt/ekm becomes this checkout (which has bin/ekm).
      const file = join(dir, 'ekm.service');
      writeFileSync(file, unit.replaceAll('/opt/ekm/', `${ROOT}/`));
      const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
      // Unknown keys or sections are only warnings (exit 0), so stderr must name nothing in the unit.
      const complaints = r.stderr.split('\n').filter((l) => l.includes('ekm.service'));
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(complaints, []);
      // The check can fail: a unit with a typo or a missing program is reported.
      writeFileSync(file, unit.replaceAll('/opt/ekm/', `${ROOT}/`).replace('KillSignal=', 'KilSignal='));
      assert.match(spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' }).stderr, /Unknown key 'KilSignal'/);
      if (!existsSync('/opt/ekm/bin/ekm')) {
        writeFileSync(file, unit);
        assert.match(spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' }).stderr, /\/opt\/ekm\/bin\/ekm is not executable/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
