/**
 * The project's own test commands as a developer runs them: `npm run test:faults` starts the fault
 * suite at the scope EKM_FAULTS_SCOPE names (the full matrix when unset). A stand-in `node` first on
 * PATH records how the suite would start instead of running its 35 minutes; npm itself and anything
 * else still run on the real Node.js.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, describe, it } from 'node:test';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** A `node` that prints the scope and arguments of a `node --import tsx --test …` run, and runs
 * every other command on the real Node.js. */
function standInNode(dir: string): void {
  const script = [
    '#!/bin/sh',
    'if [ "$1" = --import ] && [ "$2" = tsx ] && [ "$3" = --test ]; then',
    '  echo "scope=${EKM_FAULTS_SCOPE-unset} $*"',
    '  exit 0',
    'fi',
    `exec '${process.execPath}' "$@"`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'node'), script);
  chmodSync(join(dir, 'node'), 0o755);
}

function runFaultsScript(dir: string, scope: string | undefined): string {
  const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${dir}${delimiter}${process.env.PATH ?? ''}` };
  delete env.EKM_FAULTS_SCOPE;
  if (scope !== undefined) env.EKM_FAULTS_SCOPE = scope;
  const r = spawnSync('npm', ['run', '--silent', 'test:faults'], { cwd: ROOT, env, encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('npm run test:faults', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-test-commands-'));
  standInNode(dir);
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the full matrix when EKM_FAULTS_SCOPE is unset', () => {
    assert.match(runFaultsScript(dir, undefined), /^scope=full .*test\/faults\/crash\.test\.ts/);
  });

  it('runs the scope EKM_FAULTS_SCOPE names', () => {
    assert.match(runFaultsScript(dir, 'ci'), /^scope=ci .*test\/faults\/crash\.test\.ts/);
    assert.match(runFaultsScript(dir, 'full'), /^scope=full /);
  });

  it('runs every fault file, one at a time', () => {
    const out = runFaultsScript(dir, 'ci');
    assert.match(out, /--test-concurrency=1 /);
    for (const file of ['crash', 'clock', 'aux-replace', 'scale-out']) assert.match(out, new RegExp(`test/faults/${file}\\.test\\.ts`));
  });
});
