/**
 * ObjectKeyPool (src/service/object-key-pool.ts), with a derive function that counts its calls:
 * a key used now and then never gets keys derived ahead; one used at the minimum rate finds
 * nothing at first and starts a refill sized by its rate; keys are handed out once each; the
 * pool is topped up once a quarter of its aim is missing; a busy key's aim grows with its rate
 * up to maxTarget, with up to maxRefills refills in flight, together at most secondsAhead of the
 * rate; a failed refill is retried only after a pause; keys of another epoch or older than the
 * TTL are never handed out and are wiped; the least recently used key's pool goes beyond
 * maxKeys, wiped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ObjectKeyPool, type PooledObjectKey } from '../../../src/service/object-key-pool.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const allWiped = (keys: readonly PooledObjectKey[]): boolean => keys.every((k) => k.objectKey.every((b) => b === 0));

function fixture(over: { fail?: () => boolean; failAtOnce?: boolean; maxRefills?: number; secondsAhead?: number } = {}) {
  let clock = 1_000;
  let serial = 0;
  const calls: { keyId: string; count: number }[] = [];
  const handedOut: PooledObjectKey[] = [];
  const errors: string[] = [];
  const pool = new ObjectKeyPool({
    secondsPooled: 0.5,
    minTarget: 8,
    maxTarget: 16,
    minRate: 2,
    secondsAhead: over.secondsAhead ?? 8,
    maxRefills: over.maxRefills ?? 1,
    ttlMs: 60_000,
    maxKeys: 2,
    retryMs: 1_000,
    now: () => clock,
    onRefillError: (keyId) => errors.push(keyId),
    derive: (keyId, count) => {
      calls.push({ keyId, count });
      if (over.failAtOnce && over.fail?.()) throw new Error('thrown before any promise');
      return derived(keyId, count);
    },
  });
  const derived = async (keyId: string, count: number): Promise<PooledObjectKey[]> => {
    if (over.fail?.()) throw new Error('helpers down');
    return Array.from({ length: count }, () => {
      const k = { objectNonce: Uint8Array.of(serial++), objectKey: new Uint8Array(32).fill(7), epoch: epochOf(keyId), format: 2 as const };
      handedOut.push(k);
      return k;
    });
  };
  const epochs = new Map<string, number>();
  const epochOf = (keyId: string): number => epochs.get(keyId) ?? 0;
  /** Uses `keyId` at minRate (twice now): its pool's first refill starts. */
  const reachRate = (keyId: string): void => {
    pool.take(keyId, epochOf(keyId));
    pool.take(keyId, epochOf(keyId));
  };
  return { pool, calls, handedOut, errors, epochs, reachRate, advance: (ms: number) => (clock += ms) };
}

describe('ObjectKeyPool', () => {
  it('a key used less than minRate times a second gets no pool: nothing is derived for it', async () => {
    const f = fixture();
    for (let i = 0; i < 5; i++) {
      assert.equal(f.pool.take('k', 0), undefined);
      f.advance(1_000);
    }
    assert.deepEqual(f.calls, []);
  });

  it('at minRate: nothing yet, a refill starts (up to the aim); then keys come out once each, topped up once a quarter is missing', async () => {
    const f = fixture();
    assert.equal(f.pool.take('k', 0), undefined);
    assert.deepEqual(f.calls, [], 'one use: no pool yet');
    assert.equal(f.pool.take('k', 0), undefined);
    assert.deepEqual(f.calls, [{ keyId: 'k', count: 8 }]);
    assert.equal(f.pool.take('k', 0), undefined, 'the refill is still running: none yet, and no second one (maxRefills 1)');
    assert.equal(f.calls.length, 1);
    await tick();
    assert.equal(f.pool.size('k'), 8);
    assert.equal(f.pool.take('k', 0)!.objectNonce[0], 0);
    assert.equal(f.calls.length, 1, 'one missing: less than a quarter of the aim');
    assert.equal(f.pool.take('k', 0)!.objectNonce[0], 1);
    assert.deepEqual(f.calls[1], { keyId: 'k', count: 2 }, 'a quarter missing: topped up');
    await tick();
    assert.equal(f.pool.size('k'), 8);
  });

  it('keys of another epoch, or older than the TTL, are dropped and wiped, never handed out', async () => {
    const f = fixture();
    f.reachRate('k');
    await tick();
    f.epochs.set('k', 1);
    assert.equal(f.pool.take('k', 1), undefined, 'all eight were derived at epoch 0');
    assert.ok(allWiped(f.handedOut.slice(0, 8)), 'wiped');
    await tick();
    assert.equal(f.pool.take('k', 1)!.epoch, 1);
    f.advance(60_000);
    assert.equal(f.pool.take('k', 1), undefined, 'expired');
  });

  for (const how of ['rejects', 'throws at once'] as const) {
    it(`a refill whose derive ${how} is logged, not tried again before retryMs, and no longer counts as in flight`, async () => {
      let failing = true;
      const f = fixture({ fail: () => failing, failAtOnce: how === 'throws at once' });
      assert.doesNotThrow(() => f.reachRate('k'));
      await tick();
      await tick();
      assert.deepEqual(f.errors, ['k']);
      f.pool.take('k', 0);
      assert.equal(f.calls.length, 1, 'within retryMs');
      failing = false;
      f.advance(1_000);
      f.pool.take('k', 0);
      assert.equal(f.calls.length, 2, 'the failed refill no longer counts as in flight');
      await tick();
      assert.equal(f.pool.size('k'), 8);
    });
  }

  it('the sweep wipes keys older than the TTL that no one took, and drops pools idle that long', async () => {
    const f = fixture();
    f.reachRate('k');
    await tick();
    assert.equal(f.pool.size('k'), 8);
    f.advance(59_999);
    f.pool.sweep();
    assert.equal(f.pool.size('k'), 8, 'not yet expired');
    f.advance(1);
    f.pool.sweep();
    assert.equal(f.pool.size('k'), 0);
    assert.ok(allWiped(f.handedOut), 'wiped without a take');
    f.pool.close();
  });

  it('close wipes every pooled key', async () => {
    const f = fixture();
    f.reachRate('k');
    await tick();
    f.pool.close();
    assert.equal(f.pool.size('k'), 0);
    assert.ok(allWiped(f.handedOut));
  });

  it('keeps pools for the maxKeys keys used last; an evicted pool is wiped, and one evicted during its refill keeps nothing', async () => {
    const f = fixture();
    f.reachRate('a');
    await tick();
    f.reachRate('b');
    await tick();
    f.reachRate('c'); // a (least recently used) was evicted at c's first take; c's refill is running
    assert.equal(f.pool.size('a'), 0);
    assert.ok(allWiped(f.handedOut.slice(0, 8)), "a's keys wiped");
    f.pool.take('b', 0);
    f.pool.take('a', 0); // evicts c while its refill runs
    await tick();
    assert.equal(f.pool.size('c'), 0);
  });

  it('a busy key gets a deeper pool (secondsPooled of its rate, up to maxTarget), topped up by overlapping refills', async () => {
    for (const maxRefills of [1, 3]) {
      const f = fixture({ maxRefills });
      for (let i = 0; i < 40; i++) f.pool.take('k', 0); // 40/s, no refill lands meanwhile
      const counts = f.calls.map((c) => c.count);
      if (maxRefills === 1) assert.deepEqual(counts, [8], 'one refill at a time: the aim at 2/s (minTarget)');
      else
        assert.deepEqual(
          counts,
          [8, 3, 4],
          'the aim grows with the rate (11 at 21/s, 15 at 29/s): a quarter of it missing starts another refill, overlapping the first',
        );
      await tick();
      assert.equal(
        f.pool.size('k'),
        counts.reduce((a, b) => a + b),
      );
      for (let i = 0; i < 40; i++) {
        f.pool.take('k', 0);
        await tick();
        assert.ok(f.pool.size('k') <= 16, 'never more than maxTarget');
      }
    }
  });

  it('refills in flight derive at most secondsAhead of the rate together', () => {
    const f = fixture({ maxRefills: 3, secondsAhead: 1 });
    for (let i = 0; i < 4; i++) f.pool.take('k', 0);
    assert.deepEqual(
      f.calls.map((c) => c.count),
      [2, 1, 1],
      'at 2, 3 and 4/s with one second ahead: 2, then 1 more each time, never the aim (8) at once',
    );
  });

  it('refuses targets outside 2 <= minTarget <= maxTarget and a non-positive secondsPooled', () => {
    const base = {
      secondsPooled: 1,
      minRate: 2,
      secondsAhead: 8,
      maxRefills: 1,
      ttlMs: 1,
      maxKeys: 1,
      retryMs: 1,
      derive: async () => [],
      onRefillError: () => undefined,
    };
    assert.throws(() => new ObjectKeyPool({ ...base, minTarget: 1, maxTarget: 4 }), RangeError);
    assert.throws(() => new ObjectKeyPool({ ...base, minTarget: 4, maxTarget: 3 }), RangeError);
    assert.throws(() => new ObjectKeyPool({ ...base, minTarget: 2, maxTarget: 4, secondsPooled: 0 }), RangeError);
    assert.doesNotThrow(() => new ObjectKeyPool({ ...base, minTarget: 2, maxTarget: 4 }));
  });
});
