/**
 * A bad setting stops every command of the real programs (bin/ekm, the boot scripts, bin/ucl)
 * before it does anything: exit 1 and one line naming the variable, its value and what is allowed.
 * The settings are checked before EKM_HOME is looked at, so an empty home shows it as well as a
 * bootstrapped one (test/cluster/aes-format-1.test.ts starts a bootstrapped EP with a bad value).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { assertOneLineError, run } from '../support/cluster.js';

const WORKERS_LINE = /^(ekm|ucl): EKM_PROTOCOL_WORKERS must be an integer from 0 to 64, got "abc": fix or unset EKM_PROTOCOL_WORKERS/;

describe('a bad setting at start', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-settings-'));
  const home = join(dir, 'home');
  const env = { EKM_HOME: home, EKM_PROTOCOL_WORKERS: 'abc' };
  after(() => rmSync(dir, { recursive: true, force: true }));

  const commands: [string, string[]][] = [
    ['ekm', ['start']],
    ['ekm', ['run']],
    ['ekm_boot_ep.sh', ['-s', '127.0.0.1:1', '-p', '127.0.0.1:2', '-x', '127.0.0.1:3', '-fips', '-w', 'Root-SO-pass-1', '-f']],
    ['ucl', ['server', 'test']],
  ];
  for (const [cmd, args] of commands) {
    it(`EKM_PROTOCOL_WORKERS=abc: ${cmd} ${args[0]} exits 1 with one line naming it, and writes nothing`, async () => {
      const r = await run(cmd, args, env);
      assertOneLineError(r);
      assert.equal(r.code, 1);
      assert.match(r.stderr, WORKERS_LINE);
      assert.equal(existsSync(home), false);
    });
  }

  it('the test-only release override reaches what the programs report (it is applied at start, not at import)', async () => {
    const override = { EKM_HOME: home, EKM_TEST_VERSION_OVERRIDE: '9.9.9' };
    assert.equal((await run('ekm', ['--version'], override)).stdout.trim(), '9.9.9');
    assert.match((await run('ucl', ['version'], override)).stdout, /^ucl 9\.9\.9\n/);
  });

  it('ucl --version and ucl -V print the release as ekm --version does, and exit 0', async () => {
    const override = { EKM_HOME: home, EKM_TEST_VERSION_OVERRIDE: '9.9.9' };
    const ekm = await run('ekm', ['--version'], override);
    for (const flag of ['--version', '-V']) {
      const ucl = await run('ucl', [flag], override);
      assert.equal(ucl.code, 0, ucl.stderr);
      assert.equal(ucl.stdout, ekm.stdout);
      assert.equal(ucl.stderr, '');
    }
  });

  it("a secret's bad value is not shown", async () => {
    const r = await run('ekm', ['status'], { EKM_HOME: home, EKM_DB_URL: 'postgres://ekm:Secret-pw-1@db/ekm\nx' });
    assertOneLineError(r);
    assert.match(r.stderr, /^ekm: EKM_DB_URL must be one line/);
    assert.doesNotMatch(r.stderr, /Secret-pw-1/);
  });
});
