/**
 * The release packages: `npm run package` builds them, the .deb unpacks into a scratch
 * root (`dpkg -x`: no maintainer scripts run, nothing touches this machine), and a real triplet
 * is bootstrapped with the installed /opt/ekm/bin/ekm_boot_*.sh scripts and served from the
 * installed tree alone. The maintainer scripts' refusals run against the scratch root through
 * DPKG_ROOT; then `dpkg --root` installs, upgrades and purges the package in a second scratch
 * root with its maintainer scripts (as root: the account goes into that root's /etc/passwd);
 * corrupted packages are refused; the .rpm, where rpmbuild exists, is checked too.
 * About 90 s on 2 cores (115 s with the .rpm), most of it the build.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { apiFor, b64, unb64 } from '../support/api.js';
import { ROLES, ROOT, type Triplet, bootAll, makeTriplet, startSeedOrder, ucl } from '../support/cluster.js';
import { verifyIndependently } from '../support/verify-ec.js';

const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const RELEASE = join(ROOT, 'release');

/** Runs a command to completion (no shell); `env` is added to this process's environment. */
function sh(cmd: string, args: readonly string[], opts: { env?: Record<string, string>; cwd?: string } = {}): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? tmpdir(), timeout: 240_000 });
  return { code: r.status ?? -1, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
}

/** A copy of `file` with bytes in its middle flipped. */
function corruptCopy(file: string, dir: string): string {
  const bytes = readFileSync(file);
  const mid = bytes.length >> 1;
  for (let i = 0; i < 64; i++) bytes[mid + i] = bytes[mid + i]! ^ 0xff;
  const copy = join(dir, `corrupt-${file.split('/').pop()!}`);
  writeFileSync(copy, bytes);
  return copy;
}

describe('release packages', () => {
  let scratch: string;
  let deb: string;
  let tarball: string;
  let rpm: string | undefined;
  let control: string;
  let t: Triplet | undefined;

  before(async () => {
    const build = sh('bash', [join(ROOT, 'packaging', 'build.sh')], { cwd: ROOT });
    assert.equal(build.code, 0, `npm run package failed:\n${build.stdout}\n${build.stderr}`);
    const debLine = /package: (release\/ekm_\S+\.deb)/.exec(build.stdout);
    assert.ok(debLine, `no .deb was built (this test needs dpkg-deb):\n${build.stdout}`);
    deb = join(ROOT, debLine[1]!);
    // Where rpmbuild is missing the build says so in one line, and the .rpm test below is skipped.
    const rpmLine = /package: (release\/ekm-\S+\.rpm)|package: \.rpm skipped: rpmbuild is not installed/.exec(build.stdout);
    assert.ok(rpmLine, build.stdout);
    rpm = rpmLine[1] ? join(ROOT, rpmLine[1]) : undefined;
    tarball = join(RELEASE, `ekm-${VERSION}.tar.gz`);
    scratch = mkdtempSync(join(tmpdir(), 'ekm-pkg-'));
    const x = sh('dpkg', ['-x', deb, join(scratch, 'root')]);
    assert.equal(x.code, 0, x.stderr);
    control = join(scratch, 'control');
    assert.equal(sh('dpkg-deb', ['-e', deb, control]).code, 0);
  });

  after(async () => {
    await t?.cleanup();
    rmSync(scratch, { recursive: true, force: true });
  });

  const root = (...p: string[]): string => join(scratch, 'root', ...p);

  it('the .deb carries the release version and installs the documented layout', () => {
    assert.equal(sh('dpkg-deb', ['-f', deb, 'Version']).stdout.trim(), VERSION);
    for (const f of ['ekm_boot_ep.sh', 'ekm_boot_partner.sh', 'ekm_boot_auxiliary.sh', 'ekm_boot_additional_server.sh', 'ekm', 'ucl']) {
      assert.ok(statSync(root('opt/ekm/bin', f)).mode & 0o111, `/opt/ekm/bin/${f} is executable`);
    }
    for (const b of ['ekm', 'ucl']) {
      assert.ok(lstatSync(root('usr/bin', b)).isSymbolicLink());
      assert.equal(readlinkSync(root('usr/bin', b)), `/opt/ekm/bin/${b}`);
    }
    assert.match(readFileSync(root('lib/systemd/system/ekm.service'), 'utf8'), /ExecStart=\/opt\/ekm\/bin\/ekm run/);
    assert.ok(statSync(root('etc/init.d/ekm')).mode & 0o111);
    assert.deepEqual(readFileSync(join(control, 'conffiles'), 'utf8').trim().split('\n'), ['/etc/default/ekm', '/etc/init.d/ekm']);
    // Runs compiled, with production dependencies only, and the native module built.
    assert.ok(!existsSync(root('opt/ekm/src')), 'no sources: bin/ekm runs dist/');
    assert.ok(existsSync(root('opt/ekm/dist/src/cli/ekm.js')));
    assert.ok(existsSync(root('opt/ekm/node_modules/better-sqlite3/build/Release/better_sqlite3.node')));
    for (const dev of ['typescript', 'eslint', 'fast-check']) assert.ok(!existsSync(root('opt/ekm/node_modules', dev)), `no dev dependency ${dev}`);
    // Data and keys are never package files: postinst creates /var/lib/ekm once, so no upgrade or removal touches it.
    assert.ok(!existsSync(root('var/lib/ekm')));
  });

  it('the tar.gz holds the same tree and its .sha256 verifies', () => {
    const check = sh('sha256sum', ['-c', `ekm-${VERSION}.tar.gz.sha256`], { cwd: RELEASE });
    assert.equal(check.code, 0, check.stderr);
    const list = sh('tar', ['-tzf', tarball]).stdout.split('\n');
    for (const f of ['bin/ekm', 'bin/ekm_boot_ep.sh', 'dist/src/cli/ucl.js', 'node_modules/better-sqlite3/package.json']) assert.ok(list.includes(`ekm-${VERSION}/${f}`), f);
  });

  it('the installed ekm reports the release from any working directory', () => {
    for (const cwd of ['/', tmpdir()]) {
      const v = sh(root('opt/ekm/bin/ekm'), ['--version'], { cwd });
      assert.equal(v.stdout.trim(), VERSION, v.stderr);
    }
  });

  it('a triplet bootstrapped with the installed ekm_boot_*.sh -fips -f serves from the installed tree, and ucl server test shows the release', async () => {
    t = await makeTriplet({}, root('opt/ekm/bin'));
    const boots = await bootAll(t);
    for (const role of ROLES) assert.equal(boots[role].code, 0, `${role}: ${boots[role].stderr}`);
    await startSeedOrder(t);
    const test = await ucl(t, 'server', 'test');
    assert.equal(test.code, 0, test.stdout);
    for (const role of ROLES) {
      assert.match(test.stdout, new RegExp(`${t.names[role].replace(/\./g, '\\.')}\\s+${VERSION.replace(/\./g, '\\.')}\\s+ok`));
    }
    const version = await ucl(t, 'version');
    assert.match(version.stdout, new RegExp(`^ucl ${VERSION}\\nEP \\S+ \\(\\S+\\) ${VERSION}$`, 'm'));
    // The server process itself runs the installed compiled code.
    const pid = readFileSync(join(t.homes.ep, 'run', 'ekm.pid'), 'utf8').trim();
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), new RegExp(`${root('opt/ekm/dist/src/cli/ekm.js')}\\0run`));
  });

  it('the installed triplet generates a key and signs with production dependencies only', async () => {
    assert.ok(t, 'the triplet of the previous test runs');
    const api = await apiFor(t);
    const key = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg: 'ecdsa-p256' });
    assert.equal(key.status, 201, JSON.stringify(key.body));
    const message = Buffer.from('signed by an installed triplet');
    const signed = await api.call<{ signature: string }>('POST', `/keys/${key.body.keyId}/sign`, { message: b64(message) });
    assert.equal(signed.status, 200, JSON.stringify(signed.body));
    assert.ok(verifyIndependently({ alg: 'ecdsa-p256', pem: key.body.publicKey }, message, unb64(signed.body.signature)));
  });

  it('preinst refuses to install over a running server, with the pid and what to do', () => {
    assert.ok(t, 'the triplet of the previous test runs');
    const pidDir = root('var/lib/ekm/run');
    mkdirSync(pidDir, { recursive: true });
    copyFileSync(join(t.homes.ep, 'run', 'ekm.pid'), join(pidDir, 'ekm.pid'));
    const r = sh('sh', [join(control, 'preinst'), 'upgrade', VERSION], { env: { DPKG_ROOT: root() } });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^ekm: the ekm service is running on this server \(pid \d+\): stop the triplet first .*nothing was changed\n$/);
  });

  it('preinst refuses a downgrade and accepts an upgrade or a reinstall', async () => {
    await t!.cleanup();
    t = undefined;
    const preinst = (...args: string[]): ReturnType<typeof sh> => sh('sh', [join(control, 'preinst'), ...args], { env: { DPKG_ROOT: root() } });
    const down = preinst('upgrade', '99.0.0');
    assert.equal(down.code, 1);
    assert.match(down.stderr, new RegExp(`^ekm: refusing to downgrade ekm 99\\.0\\.0 to ${VERSION.replace(/\./g, '\\.')}: .*EKM_SCHEMA_TOO_NEW.*nothing was changed\\n$`));
    assert.equal(preinst('upgrade', '0.0.1').code, 0, 'from an older release (the stale pid file is ignored)');
    assert.equal(preinst('upgrade', VERSION).code, 0, 'reinstall');
    assert.equal(preinst('install').code, 0);
  });

  it('preinst refuses a host without Node.js >= 20.19, saying so', () => {
    const none = sh('/bin/sh', [join(control, 'preinst'), 'install'], { env: { DPKG_ROOT: root(), PATH: '/nonexistent' } });
    assert.equal(none.code, 1);
    assert.equal(none.stderr, `ekm ${VERSION} cannot be installed: Node.js >= 20.19 is required but 'node' is not on PATH: install Node.js 20.19 or newer\n`);
    const fake = join(scratch, 'old-node');
    mkdirSync(fake);
    writeFileSync(join(fake, 'node'), '#!/bin/sh\necho 18.20.4\n', { mode: 0o755 });
    const old = sh('/bin/sh', [join(control, 'preinst'), 'install'], { env: { DPKG_ROOT: root(), PATH: fake } });
    assert.equal(old.code, 1);
    assert.match(old.stderr, /Node\.js >= 20\.19 is required, found 18\.20\.4 at .*old-node\/node: install Node\.js 20\.19 or newer/);
  });

  it('dpkg --root installs it for real into a scratch root: the ekm account, /var/lib/ekm, /etc/ekm, boot links; an upgrade keeps them, a downgrade and a running server are refused, removal keeps the data; this machine is untouched', (ctx) => {
    // The maintainer scripts run unchrooted with DPKG_ROOT set (--force-script-chrootless); useradd --prefix needs root.
    if (process.getuid?.() !== 0) return ctx.skip('dpkg --root with maintainer scripts needs root (useradd --prefix writes the target /etc/passwd)');
    const host = { account: sh('getent', ['passwd', 'ekm']).stdout, data: existsSync('/var/lib/ekm'), conf: existsSync('/etc/ekm') };
    const target = join(scratch, 'dpkg-root');
    const at = (...p: string[]): string => join(target, ...p);
    for (const d of ['var/lib/dpkg/info', 'var/lib/dpkg/updates', 'var/lib/dpkg/triggers', 'etc']) mkdirSync(at(d), { recursive: true });
    for (const [f, text] of Object.entries({
      'var/lib/dpkg/status': '',
      'var/lib/dpkg/available': '',
      'etc/passwd': 'root:x:0:0:root:/root:/bin/sh\n',
      'etc/group': 'root:x:0:\n',
      'etc/shadow': 'root:*:19000:0:99999:7:::\n',
      'etc/gshadow': 'root:*::\n',
    }))
      writeFileSync(at(f), text);
    const dpkg = (...args: string[]): ReturnType<typeof sh> => sh('dpkg', [`--root=${target}`, '--force-script-chrootless', '--log=/dev/null', ...args]);
    const installedVersion = (): string => /^Version: (\S+)$/m.exec(dpkg('-s', 'ekm').stdout)?.[1] ?? '(not installed)';

    const install = dpkg('-i', deb);
    assert.equal(install.code, 0, install.stderr);
    assert.match(install.stdout, new RegExp(`ekm ${VERSION.replace(/\./g, '\\.')} installed in /opt/ekm`));
    const account = /^ekm:x:(\d+):(\d+)::\/var\/lib\/ekm:\/usr\/sbin\/nologin$/m.exec(readFileSync(at('etc/passwd'), 'utf8'));
    assert.ok(account, 'a system account ekm, home /var/lib/ekm, no login shell');
    const [uid, gid] = [Number(account[1]), Number(account[2])];
    assert.ok(uid < 1000, `a system uid (${uid})`);
    assert.match(readFileSync(at('etc/group'), 'utf8'), new RegExp(`^ekm:x:${gid}:$`, 'm'));
    const data = statSync(at('var/lib/ekm'));
    assert.ok(data.isDirectory());
    assert.equal(data.mode & 0o777, 0o700, 'keys and identity: readable by ekm alone');
    assert.deepEqual([data.uid, data.gid], [uid, gid]);
    assert.ok(statSync(at('etc/ekm')).isDirectory());
    const wants = at('etc/systemd/system/multi-user.target.wants/ekm.service');
    if (sh('sh', ['-c', 'command -v systemctl']).code === 0) assert.ok(lstatSync(wants).isSymbolicLink(), 'enabled for boot under systemd');
    if (sh('sh', ['-c', 'command -v update-rc.d']).code === 0) assert.ok(existsSync(at('etc/rc2.d/S01ekm')), 'enabled for boot under SysV init');
    assert.equal(installedVersion(), VERSION);
    assert.equal(sh(at('opt/ekm/bin/ekm'), ['--version'], { cwd: '/' }).stdout.trim(), VERSION);

    // What an operator made since: data, configuration, an edited conffile. An upgrade keeps all of it.
    writeFileSync(at('var/lib/ekm/server.json'), '{"kept":true}');
    writeFileSync(at('etc/ekm/site.conf'), 'kept\n');
    const defaults = `${readFileSync(at('etc/default/ekm'), 'utf8')}# local setting\n`;
    writeFileSync(at('etc/default/ekm'), defaults);
    // Release N+1: this package relabelled (control Version and the scripts' EKM_VERSION), which is what dpkg and the scripts see.
    const [major, minor, patch] = VERSION.split('.').map(Number) as [number, number, number];
    const next = `${major}.${minor}.${patch + 1}`;
    const tree = join(scratch, 'next-deb');
    assert.equal(sh('dpkg-deb', ['-R', deb, tree]).code, 0);
    writeFileSync(join(tree, 'DEBIAN/control'), readFileSync(join(tree, 'DEBIAN/control'), 'utf8').replace(/^Version: .*$/m, `Version: ${next}`));
    for (const f of ['preinst', 'postinst', 'prerm', 'postrm']) {
      writeFileSync(join(tree, 'DEBIAN', f), readFileSync(join(tree, 'DEBIAN', f), 'utf8').replace(`EKM_VERSION='${VERSION}'`, `EKM_VERSION='${next}'`));
    }
    const nextDeb = join(scratch, `ekm_${next}.deb`);
    const built = sh('dpkg-deb', ['--root-owner-group', '-Zgzip', '-z1', '--build', tree, nextDeb]);
    assert.equal(built.code, 0, built.stderr);

    const upgrade = dpkg('-i', nextDeb);
    assert.equal(upgrade.code, 0, upgrade.stderr);
    assert.match(upgrade.stdout, new RegExp(`ekm upgraded from ${VERSION.replace(/\./g, '\\.')} to ${next.replace(/\./g, '\\.')}; /var/lib/ekm and /etc/ekm kept`));
    assert.equal(installedVersion(), next);
    assert.equal(readFileSync(at('var/lib/ekm/server.json'), 'utf8'), '{"kept":true}');
    assert.equal(readFileSync(at('etc/ekm/site.conf'), 'utf8'), 'kept\n');
    assert.equal(readFileSync(at('etc/default/ekm'), 'utf8'), defaults, 'the edited conffile is kept');
    assert.equal(readFileSync(at('etc/passwd'), 'utf8').match(/^ekm:/gm)?.length, 1, 'the account is not created twice');
    assert.deepEqual([statSync(at('var/lib/ekm')).uid, statSync(at('var/lib/ekm')).mode & 0o777], [uid, 0o700]);

    const downgrade = dpkg('-i', deb);
    assert.notEqual(downgrade.code, 0);
    assert.match(downgrade.stderr, new RegExp(`ekm: refusing to downgrade ekm ${next.replace(/\./g, '\\.')} to ${VERSION.replace(/\./g, '\\.')}: .*nothing was changed`));
    assert.equal(installedVersion(), next);

    // A server running from the target (its pid file names a live process): reinstalling is refused.
    mkdirSync(at('var/lib/ekm/run'));
    writeFileSync(at('var/lib/ekm/run/ekm.pid'), `${process.pid}\n`);
    const busy = dpkg('-i', nextDeb);
    assert.notEqual(busy.code, 0);
    assert.match(busy.stderr, new RegExp(`ekm: the ekm service is running on this server \\(pid ${process.pid}\\)`));
    assert.match(dpkg('-s', 'ekm').stdout, /^Status: install ok installed$/m);
    const busyRemove = dpkg('-r', 'ekm');
    assert.notEqual(busyRemove.code, 0, 'nor is removing it');
    assert.ok(existsSync(at('opt/ekm/bin/ekm')));
    rmSync(at('var/lib/ekm/run'), { recursive: true });

    const purge = dpkg('-P', 'ekm');
    assert.equal(purge.code, 0, purge.stderr);
    assert.match(purge.stdout, /ekm removed; \/var\/lib\/ekm \(keys, identity, configuration\) and \/etc\/ekm are kept/);
    assert.ok(!existsSync(at('opt/ekm')), 'the code is gone');
    assert.equal(readFileSync(at('var/lib/ekm/server.json'), 'utf8'), '{"kept":true}', 'no package manager deletes keys');
    assert.equal(readFileSync(at('etc/ekm/site.conf'), 'utf8'), 'kept\n');
    assert.ok(!existsSync(wants) && !existsSync(at('etc/rc2.d/S01ekm')), 'no longer started at boot');

    assert.deepEqual({ account: sh('getent', ['passwd', 'ekm']).stdout, data: existsSync('/var/lib/ekm'), conf: existsSync('/etc/ekm') }, host, 'this machine is untouched');
  });

  it('the .rpm (where rpmbuild exists) installs the same tree, its ekm reports the release, its scriptlets are the shared ones', (ctx) => {
    if (!rpm) return ctx.skip('rpmbuild is not installed');
    assert.equal(sh('rpm', ['-qp', '--qf', '%{VERSION}', rpm]).stdout, VERSION);
    const scripts = sh('rpm', ['-qp', '--scripts', rpm]).stdout;
    for (const f of ['ekm_preinst install', 'ekm_postinst', 'ekm_prerm remove', 'ekm_postrm remove', 'ekm_require_node']) assert.ok(scripts.includes(f), f);
    // The files alone, into a scratch root: the scriptlets would create a user on this machine.
    const rpmRoot = join(scratch, 'rpm-root');
    assert.equal(sh('rpm', ['--root', rpmRoot, '--initdb']).code, 0);
    const install = sh('rpm', ['-i', '--root', rpmRoot, '--nodeps', '--noscripts', rpm]);
    assert.equal(install.code, 0, install.stderr);
    assert.equal(sh(join(rpmRoot, 'opt/ekm/bin/ekm'), ['--version'], { cwd: '/' }).stdout.trim(), VERSION);
    assert.equal(sh(join(rpmRoot, 'usr/bin/ucl'), ['--help'], { cwd: '/' }).code, 0, 'the /usr/bin links resolve inside the root');
    for (const f of ['usr/lib/systemd/system/ekm.service', 'etc/rc.d/init.d/ekm', 'etc/sysconfig/ekm']) assert.ok(existsSync(join(rpmRoot, f)), f);
  });

  it('a corrupted .deb or tar.gz is refused', () => {
    const badDeb = corruptCopy(deb, scratch);
    const x = sh('dpkg-deb', ['-x', badDeb, join(scratch, 'bad-root')]);
    assert.notEqual(x.code, 0);
    assert.match(x.stderr, /dpkg-deb: error/);
    const badTar = corruptCopy(tarball, scratch);
    copyFileSync(badTar, join(scratch, `ekm-${VERSION}.tar.gz`));
    copyFileSync(`${tarball}.sha256`, join(scratch, `ekm-${VERSION}.tar.gz.sha256`));
    const check = sh('sha256sum', ['-c', `ekm-${VERSION}.tar.gz.sha256`], { cwd: scratch });
    assert.notEqual(check.code, 0);
    assert.match(check.stdout, new RegExp(`ekm-${VERSION.replace(/\./g, '\\.')}\\.tar\\.gz: FAILED`));
    assert.notEqual(sh('tar', ['-tzf', badTar]).code, 0, 'gzip\'s own CRC catches it too');
  });
});
