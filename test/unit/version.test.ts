/** The release string and the rolling-upgrade rule: which releases may link. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { releasesInteroperate, VERSION } from '../../src/version.js';

describe('release version', () => {
  it('is package.json\'s version (no override in the test environment)', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    assert.equal(process.env.EKM_TEST_VERSION_OVERRIDE, undefined);
    assert.equal(VERSION, pkg.version);
  });
});

describe('releasesInteroperate', () => {
  const yes: [string, string][] = [
    ['1.4.0', '1.4.0'],
    ['1.4.0', '1.4.7'],
    ['1.4.3', '1.5.0'],
    ['1.5.0', '1.4.3'],
    ['0.1.0', '0.2.0'],
    ['2.0.0', '2.1.0-rc.1'],
    ['1.4.0+build.7', '1.5.0'],
    ['dev-build', 'dev-build'],
  ];
  const no: [string, string][] = [
    ['1.4.0', '1.6.0'],
    ['1.6.0', '1.4.0'],
    ['1.9.0', '2.0.0'],
    ['0.1.0', '1.1.0'],
    ['1.4', '1.4.0'],
    ['1.4.0', 'garbage'],
    ['', '1.4.0'],
  ];
  for (const [a, b] of yes) it(`${a} and ${b} link`, () => assert.equal(releasesInteroperate(a, b), true));
  for (const [a, b] of no) it(`${a || '(empty)'} and ${b} do not link`, () => assert.equal(releasesInteroperate(a, b), false));
  it('is symmetric', () => {
    for (const [a, b] of [...yes, ...no]) assert.equal(releasesInteroperate(a, b), releasesInteroperate(b, a), `${a} / ${b}`);
  });
});
