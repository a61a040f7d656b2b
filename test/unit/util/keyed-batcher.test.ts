/**
 * KeyedBatcher (src/util/keyed-batcher.ts): a lone request runs at once and alone; requests that
 * arrive while a key's batches run leave together in the next batch (bounded by maxBatch), other
 * keys are not held up, every request gets its own item's result, and a batch's error reaches
 * exactly the requests of that batch.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KeyedBatcher } from '../../../src/util/keyed-batcher.js';

/** A runner whose batches the test ends by hand, recording what each received. */
function manualRunner(): {
  calls: { key: string; items: readonly number[]; finish: (err?: Error) => void }[];
  run: (key: string, items: readonly number[]) => Promise<readonly string[]>;
} {
  const calls: { key: string; items: readonly number[]; finish: (err?: Error) => void }[] = [];
  return {
    calls,
    run: (key, items) =>
      new Promise((resolve, reject) => {
        calls.push({ key, items, finish: (err) => (err ? reject(err) : resolve(items.map((i) => `${key}:${i * 10}`))) });
      }),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('KeyedBatcher', () => {
  it('runs a lone request at once, alone', async () => {
    const r = manualRunner();
    const b = new KeyedBatcher(r.run, 8, 1);
    const p = b.submit('k', 1);
    assert.deepEqual(
      r.calls.map((c) => c.items),
      [[1]],
    );
    r.calls[0]!.finish();
    assert.equal(await p, 'k:10');
  });

  it('coalesces what arrives while the in-flight limit is reached, up to maxBatch per batch', async () => {
    const r = manualRunner();
    const b = new KeyedBatcher(r.run, 3, 2);
    const ps = [1, 2, 3, 4, 5, 6, 7].map((i) => b.submit('k', i));
    assert.deepEqual(
      r.calls.map((c) => c.items),
      [[1], [2]],
      'two batches in flight',
    );
    r.calls[0]!.finish();
    await tick();
    assert.deepEqual(r.calls[2]!.items, [3, 4, 5], 'the next batch takes up to maxBatch waiting items');
    r.calls[1]!.finish();
    await tick();
    assert.deepEqual(r.calls[3]!.items, [6, 7]);
    r.calls[2]!.finish();
    r.calls[3]!.finish();
    assert.deepEqual(await Promise.all(ps), ['k:10', 'k:20', 'k:30', 'k:40', 'k:50', 'k:60', 'k:70']);
  });

  it('does not hold one key up behind another', () => {
    const r = manualRunner();
    const b = new KeyedBatcher(r.run, 8, 1);
    void b.submit('a', 1);
    void b.submit('a', 2);
    void b.submit('b', 3);
    assert.deepEqual(
      r.calls.map((c) => [c.key, c.items]),
      [
        ['a', [1]],
        ['b', [3]],
      ],
    );
  });

  it("rejects exactly the failed batch's requests, and goes on with the next", async () => {
    const r = manualRunner();
    const b = new KeyedBatcher(r.run, 8, 1);
    const first = b.submit('k', 1);
    const second = b.submit('k', 2);
    const third = b.submit('k', 3);
    r.calls[0]!.finish(new Error('session aborted'));
    await assert.rejects(first, /session aborted/);
    await tick();
    assert.deepEqual(r.calls[1]!.items, [2, 3]);
    r.calls[1]!.finish();
    assert.deepEqual(await Promise.all([second, third]), ['k:20', 'k:30']);
  });

  it('a runner that returns the wrong number of results fails its batch', async () => {
    let release: () => void = () => undefined;
    const held = new Promise<void>((r) => (release = r));
    const b = new KeyedBatcher<number, number>(async (_k, items) => (items.length === 1 ? (await held, [1]) : [1]), 8, 1);
    const first = b.submit('k', 0);
    const [x, y] = [b.submit('k', 1), b.submit('k', 2)];
    release();
    assert.equal(await first, 1);
    await assert.rejects(x, /1 results for 2 items/);
    await assert.rejects(y, /1 results for 2 items/);
  });

  it('refuses limits below one', () => {
    assert.throws(() => new KeyedBatcher(async () => [], 0, 1), RangeError);
    assert.throws(() => new KeyedBatcher(async () => [], 1, 0), RangeError);
  });
});
