/** The failpoint spec (EKM_FAILPOINTS) and step names; the crash itself is exercised by test/faults/. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EkmError } from '../../src/errors.js';
import { parseFailpoints, stepName } from '../../src/failpoints.js';

describe('failpoints', () => {
  it('parses name[@count] lists; the count defaults to 1', () => {
    assert.deepEqual([...parseFailpoints(undefined)], []);
    assert.deepEqual([...parseFailpoints('')], []);
    assert.deepEqual(
      [...parseFailpoints('proto:dkg:4:after-persist@3, proto:frost-sign:1:after-send')],
      [
        ['proto:dkg:4:after-persist', 3],
        ['proto:frost-sign:1:after-send', 1],
      ],
    );
  });

  it('refuses a malformed spec with a typed error', () => {
    for (const bad of ['x@0', 'x@-1', 'x@two', 'has space', 'x@1@2']) {
      assert.throws(
        () => parseFailpoints(bad),
        (e: unknown) => e instanceof EkmError && e.code === 'EKM_FAILPOINTS',
        bad,
      );
    }
  });

  it('names a step by the highest round it sends, `end` when it finishes, none when it only buffers', () => {
    assert.equal(stepName({ finished: false, send: [{ round: 0 }, { round: 1 }, { round: 1 }] }), '1');
    assert.equal(stepName({ finished: true, send: [{ round: 5 }] }), 'end');
    assert.equal(stepName({ finished: true, send: [] }), 'end');
    assert.equal(stepName({ finished: false, send: [] }), undefined);
  });
});
