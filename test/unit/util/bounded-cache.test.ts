import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BoundedCache } from '../../../src/util/bounded-cache.js';

describe('BoundedCache', () => {
  it('keeps at most its capacity, dropping the least recently used entry', () => {
    const c = new BoundedCache<string, number>(2);
    c.set('a', 1);
    c.set('b', 2);
    assert.equal(c.get('a'), 1); // a is now the most recently used
    c.set('c', 3);
    assert.equal(c.size, 2);
    assert.equal(c.get('b'), undefined);
    assert.deepEqual([c.get('a'), c.get('c')], [1, 3]);
  });

  it('replacing a value does not grow it', () => {
    const c = new BoundedCache<string, number>(2);
    c.set('a', 1);
    c.set('a', 2);
    assert.deepEqual([c.size, c.get('a')], [1, 2]);
  });

  it('refuses a capacity that is not a positive integer', () => {
    for (const bad of [0, -1, 1.5, Number.NaN]) assert.throws(() => new BoundedCache(bad), RangeError);
  });
});
