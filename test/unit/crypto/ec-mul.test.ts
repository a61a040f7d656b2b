/**
 * Scalar multiplication in native and WebAssembly code (src/crypto/ec-mul.ts) against noble's own,
 * on random and edge-case scalars and points, for every curve (k·G through OpenSSL on P-256 and
 * P-384, k·P through OpenSSL on P-256, both through libsecp256k1 on secp256k1 and through libsodium
 * on Ed25519, the rest on noble).
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { CURVE_NAMES, getCurve } from '../../../src/crypto/curves.js';
import { mulBase, mulPoint, mulPointX, mulPointsX, mulPublic, mulPublicX } from '../../../src/crypto/ec-mul.js';
import { libsecp256k1 } from '../../../src/crypto/libsecp256k1.js';

describe('ec-mul', () => {
  it('libsecp256k1’s native binding loads here (else secp256k1 would silently run on noble)', () => {
    assert.ok(libsecp256k1);
  });

  for (const name of CURVE_NAMES) {
    const c = getCurve(name);
    const n = c.order;
    const random = (): bigint => c.Fn.create(BigInt(`0x${randomBytes(c.scalarBytes + 8).toString('hex')}`));
    const edges = [0n, 1n, 2n, n - 1n, n - 2n, n, n + 1n, 2n ** BigInt(8 * c.scalarBytes) - 1n];

    it(`${name}: k·G and k·P equal noble's, random and edge scalars, random points, G and −G`, () => {
      const points = [c.G, c.G.negate(), ...Array.from({ length: 4 }, () => c.G.multiply(random() || 1n))];
      const scalars = [...edges, ...Array.from({ length: 20 }, random)];
      for (const k of scalars) {
        const expectedBase = c.Fn.create(k) === 0n ? c.Point.ZERO : c.G.multiply(c.Fn.create(k));
        assert.ok(mulBase(c, k).equals(expectedBase), `mulBase k=${k}`);
        for (const P of points) {
          const expected = c.Fn.create(k) === 0n ? c.Point.ZERO : P.multiply(c.Fn.create(k));
          assert.ok(mulPoint(c, P, k).equals(expected), `mulPoint k=${k} P=${P.toHex()}`);
          assert.ok(mulPublic(c, P, k).equals(expected), `mulPublic k=${k} P=${P.toHex()}`);
        }
      }
    });

    it(`${name}: x(k·P) from P's encoding equals noble's; an encoding decodePoint refuses is refused`, () => {
      if (name === 'ed25519') return; // r = x(R) is ECDSA's: Weierstrass curves only
      const P = c.G.multiply(random() || 1n);
      const Pbytes = P.toBytes();
      for (const k of [1n, 2n, n - 1n, ...Array.from({ length: 20 }, () => random() || 1n)]) {
        assert.equal(mulPublicX(c, Pbytes, k), P.multiply(k).toAffine().x, `k=${k}`);
      }
      for (const k of [0n, n]) assert.throws(() => mulPublicX(c, Pbytes, k), RangeError);
      const noX = new Uint8Array(Pbytes.length).fill(0xff); // no point has this x (on any of the curves)
      noX[0] = 0x02;
      // x₀ + p for a valid small x₀: the same point mod p, but not a canonical encoding.
      const p = c.Point.Fp.ORDER;
      let x0 = 1n;
      while (!validX(c, x0)) x0++;
      const wrapped = Uint8Array.from([
        0x02,
        ...c.Point.Fp.toBytes(0n).map((_, i, a) => Number(((x0 + p) >> BigInt(8 * (a.length - 1 - i))) & 0xffn)),
      ]);
      const badPrefix = Uint8Array.from(Pbytes);
      badPrefix[0] = 0x04;
      for (const bad of [
        noX,
        ...(x0 + p < 1n << BigInt(8 * (Pbytes.length - 1)) ? [wrapped] : []),
        badPrefix,
        Pbytes.subarray(1),
        (c.G as unknown as { toBytes(compressed: boolean): Uint8Array }).toBytes(false),
      ]) {
        assert.throws(() => mulPublicX(c, bad, 5n), /not a valid point encoding|must be/);
      }
    });

    it(`${name}: x(k·P) for a secret k equals noble's; the identity as a product is refused`, () => {
      if (name === 'ed25519') return; // x-only products serve the P-256 DPRF: Weierstrass curves only
      const points = [c.G, c.G.negate(), c.G.multiply(random() || 1n)];
      for (const k of [1n, 2n, n - 1n, n + 1n, ...Array.from({ length: 10 }, () => random() || 1n)]) {
        for (const P of points) assert.equal(mulPointX(c, P, k), P.multiply(c.Fn.create(k)).toAffine().x, `k=${k}`);
        assert.deepEqual(
          mulPointsX(c, points, k),
          points.map((P) => P.multiply(c.Fn.create(k)).toAffine().x),
          `batch, k=${k}`,
        );
      }
      for (const k of [0n, n]) assert.throws(() => mulPointX(c, c.G, k), RangeError);
      assert.throws(() => mulPointX(c, c.Point.ZERO, 5n), RangeError);
      assert.throws(() => mulPointsX(c, [c.G, c.Point.ZERO], 5n), RangeError);
    });

    it(`${name}: the identity times anything is the identity`, () => {
      for (const k of [0n, 1n, random()]) assert.ok(mulPoint(c, c.Point.ZERO, k).is0());
    });
  }
});

/** Whether some point of the curve has x (a compressed encoding of it decodes). */
function validX(c: ReturnType<typeof getCurve>, x: bigint): boolean {
  try {
    c.Point.fromBytes(Uint8Array.from([0x02, ...c.Point.Fp.toBytes(x)]));
    return true;
  } catch {
    return false;
  }
}
