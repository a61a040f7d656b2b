/** The at-rest barrier: AES-256-GCM under the system key, bound to its AAD. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { EkmError } from '../../../src/errors.js';
import { Barrier } from '../../../src/store/barrier.js';

const key = randomBytes(32);
const barrier = new Barrier(key);
const secret = Buffer.from('share of key k1, epoch 3');
const aad = 'share|k1|3|1';

const corrupt = (e: unknown): boolean => e instanceof EkmError && e.code === 'EKM_SEALED_CORRUPT';

describe('Barrier', () => {
  it('round-trips, with a fresh nonce every time', () => {
    const a = barrier.seal(secret, aad);
    const b = barrier.seal(secret, aad);
    assert.notDeepEqual(a, b);
    assert.equal(a.length, 1 + 12 + secret.length + 16);
    assert.equal(a[0], 1, 'format byte');
    assert.ok(!a.includes(secret), 'no plaintext in the sealed value');
    assert.deepEqual(barrier.open(a, aad), secret);
    assert.deepEqual(barrier.open(b, aad), secret);
    assert.deepEqual(new Barrier(Uint8Array.from(key)).open(a, aad), secret, 'another Barrier with the same key');
    assert.deepEqual(barrier.open(barrier.seal(new Uint8Array(0), aad), aad).length, 0);
  });

  it('refuses another AAD (a value moved to another row)', () => {
    const sealed = barrier.seal(secret, aad);
    for (const other of ['share|k1|3|2', 'share|k1|4|1', 'share|k2|3|1', '', `${aad} `]) {
      assert.throws(() => barrier.open(sealed, other), corrupt, other);
    }
  });

  it('refuses any single flipped bit, in nonce, ciphertext or tag', () => {
    const sealed = barrier.seal(secret, aad);
    for (let i = 1; i < sealed.length; i++) {
      const t = Buffer.from(sealed);
      t[i]! ^= 0x01;
      assert.throws(() => barrier.open(t, aad), corrupt, `byte ${i}`);
    }
  });

  it('refuses an unknown format byte', () => {
    const t = barrier.seal(secret, aad);
    t[0] = 2;
    assert.throws(
      () => barrier.open(t, aad),
      (e: unknown) => corrupt(e) && /malformed/.test((e as Error).message),
    );
  });

  it('refuses the wrong key, saying which file to check', () => {
    const sealed = barrier.seal(secret, aad);
    assert.throws(
      () => new Barrier(randomBytes(32)).open(sealed, aad),
      (e: unknown) => corrupt(e) && /wrong system key/.test((e as Error).message) && /keys\/system\.key/.test((e as EkmError).oneLine()),
    );
  });

  it('refuses truncated values of every length', () => {
    const sealed = barrier.seal(secret, aad);
    for (let len = 0; len < sealed.length; len++) assert.throws(() => barrier.open(sealed.subarray(0, len), aad), corrupt, `length ${len}`);
    assert.throws(() => barrier.open(Buffer.concat([sealed, Buffer.of(0)]), aad), corrupt, 'one byte appended');
  });

  it('takes only a 32-byte system key', () => {
    for (const n of [0, 16, 31, 33, 64]) {
      assert.throws(
        () => new Barrier(randomBytes(n)),
        (e: unknown) => e instanceof EkmError && e.code === 'EKM_SYSTEM_KEY',
        `${n} bytes`,
      );
    }
  });
});
