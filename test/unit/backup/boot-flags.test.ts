/** `--partial` of a restore: EP and Partner only, and only with -restore. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBootArgs } from '../../../src/cluster/boot-args.js';
import { EkmError } from '../../../src/errors.js';

const EP = ['-s', '10.0.0.1', '-p', '10.0.0.2', '-x', '10.0.0.3', '-fips', '-w', 'password1'];
const PARTNER = ['-s', '10.0.0.2', '-p', '10.0.0.1', '-x', '10.0.0.3', '-fips'];
const AUX = ['-s', '10.0.0.3', '-e', '10.0.0.1', '-p', '10.0.0.2', '-fips'];

describe('--partial', () => {
  it('is taken by the EP and Partner bootstraps with -restore', () => {
    assert.equal(parseBootArgs('ep', [...EP, '-restore', '--partial']).partial, true);
    assert.equal(parseBootArgs('partner', [...PARTNER, '-restore', '--partial']).partial, true);
    assert.equal(parseBootArgs('ep', [...EP, '-restore']).partial, false);
  });
  it('is a usage error without -restore, or on the Aux', () => {
    for (const [role, argv] of [
      ['ep', [...EP, '--partial']],
      ['aux', [...AUX, '--partial']],
    ] as const) {
      assert.throws(
        () => parseBootArgs(role, argv),
        (e: unknown) => e instanceof EkmError && e.exitCode === 2,
      );
    }
  });
});
