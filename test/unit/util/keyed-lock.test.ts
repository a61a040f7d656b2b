/** KeyedLock: one piece of work at a time per key, in call order, whatever the previous one did. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedLock } from '../../../src/util/keyed-lock.js';

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 1));

describe('KeyedLock', () => {
  it('runs the work of one key in call order, one at a time, past a failure', async () => {
    const lock = new KeyedLock<string>();
    const log: string[] = [];
    let running = 0;
    const work =
      (name: string, fail = false) =>
      async (): Promise<void> => {
        running++;
        assert.equal(running, 1);
        await tick();
        log.push(name);
        running--;
        if (fail) throw new Error(name);
      };
    const a = lock.run('k', work('a', true));
    const b = lock.run('k', work('b'));
    await assert.rejects(a, /a/);
    await b;
    assert.deepEqual(log, ['a', 'b']);
  });

  it('runs the work of different keys at once', async () => {
    const lock = new KeyedLock<string>();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const first = lock.run('x', () => held);
    let otherRan = false;
    await lock.run('y', async () => {
      otherRan = true;
    });
    assert.equal(otherRan, true);
    release();
    await first;
  });
});
