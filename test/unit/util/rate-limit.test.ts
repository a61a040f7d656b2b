import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedConcurrency, RateLimiter } from '../../../src/util/rate-limit.js';

describe('RateLimiter', () => {
  it('a full bucket of `burst` tokens, refilled at the rate, never above the burst', () => {
    let now = 0;
    const r = new RateLimiter<string>(2, 4, 10, () => now);
    for (let i = 0; i < 4; i++) {
      assert.equal(r.wait('a'), 0);
      r.take('a');
    }
    assert.equal(r.wait('a'), 0.5);
    r.take('a'); // taking from an empty bucket leaves it empty
    assert.equal(r.wait('a'), 0.5);
    now += 250;
    assert.equal(r.wait('a'), 0.25);
    now += 250;
    assert.equal(r.wait('a'), 0);
    now += 60_000;
    for (let i = 0; i < 4; i++) r.take('a');
    assert.equal(r.wait('a'), 0.5, 'the refill stops at the burst');
    assert.equal(r.wait('b'), 0, 'keys are apart');
  });

  it('remembers at most `capacity` keys; a forgotten one starts full', () => {
    const r = new RateLimiter<number>(1, 1, 2, () => 0);
    r.take(1);
    r.take(2);
    r.take(3);
    assert.equal(r.wait(1), 0);
    assert.equal(r.wait(3), 1);
  });

  it('refuses a nonsensical rate or burst', () => {
    assert.throws(() => new RateLimiter(0, 1), RangeError);
    assert.throws(() => new RateLimiter(1, 0), RangeError);
  });
});

describe('BoundedConcurrency', () => {
  it('runs `concurrent` at once, queues `queued`, refuses the rest without running them', async () => {
    const b = new BoundedConcurrency(2, 3);
    let running = 0;
    let most = 0;
    const ran: number[] = [];
    const task = (i: number) => async (): Promise<number> => {
      running++;
      most = Math.max(most, running);
      await new Promise((r) => setTimeout(r, 10));
      running--;
      ran.push(i);
      return i;
    };
    const results = await Promise.all(Array.from({ length: 8 }, (_, i) => b.run(task(i))));
    assert.deepEqual(
      results.map((r) => r?.value),
      [0, 1, 2, 3, 4, undefined, undefined, undefined],
    );
    assert.equal(most, 2);
    assert.deepEqual(ran.sort(), [0, 1, 2, 3, 4]);
    assert.deepEqual((await b.run(task(9)))?.value, 9, 'free again once the line is gone');
  });

  it('a failing task frees its slot', async () => {
    const b = new BoundedConcurrency(1, 0);
    await assert.rejects(b.run(async () => Promise.reject(new Error('boom'))), /boom/);
    assert.equal((await b.run(async () => 1))?.value, 1);
  });
});
