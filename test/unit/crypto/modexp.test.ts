/**
 * OpenSSL modexp (src/crypto/modexp.ts): equal to BigInt square-and-multiply on random inputs,
 * every value OpenSSL's DH code refuses (bases 0, 1, m−1; results 1 and m−1) handled, constant-time
 * byte arithmetic, and the public BigInt helpers.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  addBytesCt,
  bitLength,
  gcd,
  i2osp,
  ModexpError,
  modInverse,
  modPowPublic,
  modPowSecret,
  os2ip,
  subBytesCt,
} from '../../../src/crypto/modexp.js';

const big = (b64: string): bigint => os2ip(new Uint8Array(Buffer.from(b64, 'base64url')));
const bytes = (x: bigint): Uint8Array => i2osp(x, Math.max(1, Math.ceil(bitLength(x) / 8)));

function rsaNumbers(bits: number) {
  const jwk = crypto.generateKeyPairSync('rsa', { modulusLength: bits }).privateKey.export({ format: 'jwk' });
  return { n: big(jwk.n!), p: big(jwk.p!), q: big(jwk.q!), d: big(jwk.d!), e: big(jwk.e!) };
}

const K1024 = rsaNumbers(1024);
const K2048 = rsaNumbers(2048);

describe('modPowSecret', () => {
  it('equals BigInt square-and-multiply on random bases and exponents (512..2048-bit moduli)', () => {
    const mods = [rsaNumbers(512).n, K1024.n, K2048.n];
    fc.assert(
      fc.property(
        fc.constantFrom(...mods),
        fc.uint8Array({ minLength: 1, maxLength: 300 }),
        fc.bigInt({ min: 0n, max: 1n << 2100n }),
        (m, exp, base) => {
          assert.equal(modPowSecret(base, exp, m), modPowPublic(base, os2ip(exp), m));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('computes x^d of a real key, with exponents longer than the modulus and leading zero bytes', () => {
    const { n, d, e } = K2048;
    const x = 0x1234567890abcdefn;
    const s = modPowSecret(x, bytes(d), n);
    assert.equal(modPowPublic(s, e, n), x);
    const padded = new Uint8Array(300);
    padded.set(bytes(d), 300 - bytes(d).length);
    assert.equal(modPowSecret(x, padded, n), s);
    const long = (1n << 2200n) + 987654321n;
    assert.equal(modPowSecret(x, bytes(long), n), modPowPublic(x, long, n));
  });

  it('bases OpenSSL refuses (0, 1, m−1, and their reductions) give the right value', () => {
    const { n } = K1024;
    for (const base of [0n, 1n, n - 1n, n, n + 1n, 2n * n - 1n, -1n, -n]) {
      for (const exp of [0n, 1n, 2n, 3n, 65537n, (1n << 1100n) + 1n, 1n << 1100n]) {
        assert.equal(modPowSecret(base, bytes(exp), n), modPowPublic(base, exp, n), `base ${base === n - 1n ? 'm−1' : base}, exp ${exp}`);
      }
    }
    assert.equal(modPowSecret(5n, new Uint8Array(0), n), 1n, 'empty exponent is 0');
    assert.equal(modPowSecret(5n, new Uint8Array(40), n), 1n, 'all-zero exponent');
  });

  it('results 1 and m−1 (refused by OpenSSL) are computed through the fallback', () => {
    // λ = 2^s·u with u odd; g = h^(2^s) has odd order dividing u, so g^u = 1 and (−g)^u = −1.
    const { n, p, q } = K1024;
    const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
    let u = lambda;
    let s = 0n;
    while ((u & 1n) === 0n) {
      u >>= 1n;
      s++;
    }
    for (const h of [2n, 3n, 12345n]) {
      const g = modPowPublic(h, 1n << s, n);
      assert.equal(modPowSecret(g, bytes(u), n), 1n, 'g^u = 1');
      assert.equal(modPowSecret(n - g, bytes(u), n), n - 1n, '(−g)^u = −1');
      assert.equal(modPowSecret(g, bytes(2n * u), n), 1n);
      assert.equal(modPowSecret(h, bytes(lambda), n), 1n, 'h^λ = 1');
      assert.equal(modPowSecret(h, bytes(lambda + 1n), n), h % n, 'h^(λ+1) = h');
    }
  });

  it('refuses even, tiny and huge moduli', () => {
    assert.throws(() => modPowSecret(3n, Uint8Array.of(5), K1024.n + 1n), ModexpError);
    assert.throws(() => modPowSecret(3n, Uint8Array.of(5), 241n), ModexpError);
    assert.throws(() => modPowSecret(3n, Uint8Array.of(5), (1n << 10_001n) + 1n), ModexpError);
  });

  it('measures OpenSSL against BigInt (diagnostic)', (t) => {
    const { n } = K2048;
    const exp = crypto.randomBytes(272);
    const reps = 20;
    let t0 = performance.now();
    for (let i = 0; i < reps; i++) modPowSecret(BigInt(i + 2), exp, n);
    const ossl = (performance.now() - t0) / reps;
    const e = os2ip(exp);
    t0 = performance.now();
    for (let i = 0; i < 3; i++) modPowPublic(BigInt(i + 2), e, n);
    const bigint = (performance.now() - t0) / 3;
    t.diagnostic(`2048-bit modulus, 2176-bit exponent: OpenSSL ${ossl.toFixed(2)} ms, BigInt ${bigint.toFixed(2)} ms`);
  });
});

describe('constant-time byte arithmetic and public helpers', () => {
  it('addBytesCt / subBytesCt agree with BigInt', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), fc.uint8Array({ maxLength: 40 }), (a, b) => {
        const len = 41;
        assert.equal(os2ip(addBytesCt(a, b, len)), os2ip(a) + os2ip(b));
        const { value, borrow } = subBytesCt(a, b, len);
        assert.equal(borrow, os2ip(a) < os2ip(b));
        if (!borrow) assert.equal(os2ip(value), os2ip(a) - os2ip(b));
      }),
    );
    assert.throws(() => addBytesCt(Uint8Array.of(0xff), Uint8Array.of(1), 1), RangeError);
  });

  it('modInverse, I2OSP/OS2IP', () => {
    const { n } = K1024;
    fc.assert(
      fc.property(fc.bigInt({ min: 2n, max: n - 1n }), (a) => {
        if (gcd(a, n) === 1n) assert.equal((modInverse(a, n) * a) % n, 1n);
      }),
    );
    assert.throws(() => modInverse(K1024.p, n), ModexpError);
    assert.deepEqual(i2osp(258n, 3), Uint8Array.of(0, 1, 2));
    assert.throws(() => i2osp(1n << 24n, 3), RangeError);
    assert.equal(os2ip(new Uint8Array(0)), 0n);
  });
});
