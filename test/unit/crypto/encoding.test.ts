/**
 * Strict codecs (docs/protocols.md §1.2) and the LP encoding (§1.2, §11 R6c).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { CURVE_NAMES, decodePoint, decodeScalar, encodePoint, encodeScalar, getCurve } from '../../../src/crypto/curves.js';
import { decodeEnc, enc, EncodingError, fromHex } from '../../../src/crypto/encoding.js';

const RUNS = Number(process.env.EKM_PROP_RUNS ?? 50);

describe('enc / decodeEnc', () => {
  it('round-trips any list of byte strings, byte-exact', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 8 }), (fields) => {
        const bytes = enc(...fields);
        const back = decodeEnc(bytes);
        assert.deepEqual(
          back.map((b) => [...b]),
          fields.map((b) => [...b]),
        );
        assert.deepEqual([...enc(...back)], [...bytes]);
      }),
      { numRuns: RUNS },
    );
  });

  it('rejects every truncation and any trailing byte', () => {
    const bytes = enc('kind', new Uint8Array([1, 2, 3]), 'x');
    for (let n = 0; n < bytes.length; n++) assert.throws(() => decodeEnc(bytes.subarray(0, n)), EncodingError);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    assert.throws(() => decodeEnc(longer), /trailing/);
  });
});

for (const name of CURVE_NAMES) {
  const curve = getCurve(name);
  describe(`codecs on ${name}`, () => {
    it('scalars: round trip; reject ≥ q, wrong lengths; zero only when allowed', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 0n, max: curve.order - 1n }), (s) => {
          assert.equal(decodeScalar(curve, encodeScalar(curve, s)), s);
        }),
        { numRuns: RUNS },
      );
      const q = curve.order;
      const raw = (v: bigint) => {
        const be = fromHex(v.toString(16).padStart(curve.scalarBytes * 2, '0'));
        return name === 'ed25519' ? be.reverse() : be;
      };
      assert.throws(() => decodeScalar(curve, raw(q)), /out of range/);
      assert.throws(() => decodeScalar(curve, raw(q + 1n)), /out of range/);
      assert.throws(() => decodeScalar(curve, new Uint8Array(curve.scalarBytes).fill(0xff)), /out of range/);
      assert.throws(() => decodeScalar(curve, new Uint8Array(curve.scalarBytes - 1)), /bytes/);
      assert.throws(() => decodeScalar(curve, new Uint8Array(curve.scalarBytes + 1)), /bytes/);
      assert.equal(decodeScalar(curve, new Uint8Array(curve.scalarBytes)), 0n);
      assert.throws(() => decodeScalar(curve, new Uint8Array(curve.scalarBytes), true), /zero/);
    });

    it('points: round trip; reject identity, off-curve, wrong lengths', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 1n, max: curve.order - 1n }), (s) => {
          const P = curve.G.multiply(s);
          assert.ok(decodePoint(curve, encodePoint(curve, P)).equals(P));
        }),
        { numRuns: Math.max(5, RUNS / 5) },
      );
      assert.throws(() => encodePoint(curve, curve.Point.ZERO), /identity/);
      const g = encodePoint(curve, curve.G);
      assert.throws(() => decodePoint(curve, g.subarray(1)), /bytes/);
      assert.throws(() => decodePoint(curve, new Uint8Array([...g, 0])), /bytes/);
      if (name === 'ed25519') {
        // Identity (0, 1) encodes as 01 00…00.
        const id = new Uint8Array(32);
        id[0] = 1;
        assert.throws(() => decodePoint(curve, id));
        // y = 2 is not on the curve... find an off-curve y by trial.
        let rejected = 0;
        for (let y = 2; y < 20; y++) {
          const b = new Uint8Array(32);
          b[0] = y;
          try {
            decodePoint(curve, b);
          } catch {
            rejected++;
          }
        }
        assert.ok(rejected > 0);
      } else {
        const off = g.slice();
        off[0] = 0x04; // uncompressed prefix with a compressed length
        assert.throws(() => decodePoint(curve, off));
        assert.throws(() => decodePoint(curve, new Uint8Array(curve.pointBytes)), /not a valid point/);
        // x = p − 1 style garbage: all-0xff x coordinate is ≥ p on every curve here.
        const big = new Uint8Array(curve.pointBytes).fill(0xff);
        big[0] = 0x02;
        assert.throws(() => decodePoint(curve, big));
      }
    });

    if (name === 'ed25519') {
      it('Ed25519: rejects every point of ED25519_TORSION_SUBGROUP and a mixed-torsion point; non-canonical y', () => {
        for (const hex of ED25519_TORSION_SUBGROUP) assert.throws(() => decodePoint(curve, fromHex(hex)), `torsion ${hex}`);
        const T = curve.Point.fromBytes(fromHex(ED25519_TORSION_SUBGROUP[1]!));
        const mixed = curve.G.add(T);
        assert.throws(() => decodePoint(curve, mixed.toBytes()), /small-order/);
        // Non-canonical: y = p + 1 (≥ p) encodes the same point as y = 1 but must be refused.
        const p = 2n ** 255n - 19n;
        const y = p + 1n;
        const le = fromHex(y.toString(16).padStart(64, '0')).reverse();
        assert.throws(() => decodePoint(curve, le));
        // Setting the x-sign bit on a point with x = 0 (the identity) is non-canonical too.
        const negZero = new Uint8Array(32);
        negZero[0] = 1;
        negZero[31] = 0x80;
        assert.throws(() => decodePoint(curve, negZero));
      });
    }
  });
}
