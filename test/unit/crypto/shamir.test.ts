/**
 * Shamir rows of docs/protocols.md §1.1, Feldman checks, and the random-scalar source.
 * fast-check runs 50 cases per property by default; `EKM_PROP_RUNS=N` runs N.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { CURVE_NAMES, getCurve } from '../../../src/crypto/curves.js';
import { expectedShareCommitment, feldmanCommit, verifyFeldmanShare } from '../../../src/crypto/feldman.js';
import { randomNonZeroScalar } from '../../../src/crypto/random.js';
import {
  degree2At0,
  evalLine,
  interpolateAt3From12,
  isDegree1,
  isDegree1InExponent,
  lagrangeWeights,
  openInExponentAt0,
  recombineAt0,
  shareLine,
} from '../../../src/crypto/shamir.js';
import type { PartyId } from '../../../src/protocols/types.js';
import { testRng } from '../../support/threshold-fixtures.js';

const RUNS = Number(process.env.EKM_PROP_RUNS ?? 50);

for (const name of CURVE_NAMES) {
  const curve = getCurve(name);
  const { Fn } = curve;
  const scalar = fc.bigInt({ min: 1n, max: curve.order - 1n });
  const line = fc.record({ a0: scalar, a1: scalar });

  describe(`shamir on ${name}`, () => {
    it('§1.1 f(0) from {1,2}, {1,3}, {2,3} (any order of the pair) equals f(0); weights match Lagrange', () => {
      fc.assert(
        fc.property(line, (f) => {
          const y = shareLine(curve, f);
          for (const [a, b] of [
            [1, 2],
            [1, 3],
            [2, 3],
            [2, 1],
            [3, 1],
            [3, 2],
          ] as [PartyId, PartyId][]) {
            assert.equal(recombineAt0(curve, a, y[a], b, y[b]), Fn.create(f.a0));
          }
        }),
        { numRuns: RUNS },
      );
      const w = (xs: number[]) => lagrangeWeights(curve, xs, 0);
      assert.deepEqual(w([1, 2]), [2n, Fn.neg(1n)]);
      assert.deepEqual(w([1, 3]), [Fn.div(3n, 2n), Fn.neg(Fn.div(1n, 2n))]);
      assert.deepEqual(w([2, 3]), [3n, Fn.neg(2n)]);
      assert.deepEqual(lagrangeWeights(curve, [1, 2], 3), [Fn.neg(1n), 2n]);
      assert.deepEqual(lagrangeWeights(curve, [1, 2, 3], 0), [3n, Fn.neg(3n), 1n]);
    });

    it('§1.1 f(3) from {1,2} = −f(1) + 2f(2); degree-1 check f(1) − 2f(2) + f(3) = 0, also in the exponent', () => {
      fc.assert(
        fc.property(line, scalar, (f, delta) => {
          const y = shareLine(curve, f);
          assert.equal(interpolateAt3From12(curve, y[1], y[2]), y[3]);
          assert.ok(isDegree1(curve, y[1], y[2], y[3]));
          assert.ok(!isDegree1(curve, y[1], y[2], Fn.add(y[3], delta)));
          // A share can be 0 (e.g. a1 = −a0 makes f(1) = 0): multiplyUnsafe maps it to the identity.
          const V = ([1, 2, 3] as const).map((j) => curve.G.multiplyUnsafe(y[j]));
          assert.ok(isDegree1InExponent(V[0]!, V[1]!, V[2]!));
          assert.ok(!isDegree1InExponent(V[0]!, V[1]!, V[2]!.add(curve.G.multiply(delta))));
          assert.ok(openInExponentAt0(V[0]!, V[1]!).equals(curve.G.multiply(Fn.create(f.a0))));
        }),
        { numRuns: RUNS, examples: [[{ a0: 24n, a1: curve.order - 24n }, 1n]] },
      );
    });

    it('§1.1 g(0) of a degree-2 polynomial from all three = 3g(1) − 3g(2) + g(3)', () => {
      fc.assert(
        fc.property(scalar, scalar, scalar, (g0, g1, g2) => {
          const g = (x: bigint) => Fn.add(Fn.add(g0, Fn.mul(g1, x)), Fn.mul(g2, x * x));
          assert.equal(degree2At0(curve, g(1n), g(2n), g(3n)), g0);
        }),
        { numRuns: RUNS },
      );
    });

    it('Feldman: x_j·G == C0 + j·C1 for the true share, fails for any other; zero-constant lines too', () => {
      fc.assert(
        fc.property(line, scalar, fc.constantFrom<PartyId>(1, 2, 3), (f, delta, j) => {
          const C = feldmanCommit(curve, f);
          const xj = evalLine(curve, f, j);
          assert.ok(verifyFeldmanShare(curve, C, j, xj));
          assert.ok(!verifyFeldmanShare(curve, C, j, Fn.add(xj, delta)));
          assert.ok(curve.G.multiplyUnsafe(xj).equals(expectedShareCommitment(C, j)));
          const Z = feldmanCommit(curve, { a0: 0n, a1: f.a1 });
          assert.ok(Z.C0.is0());
          assert.ok(verifyFeldmanShare(curve, Z, j, Fn.mul(f.a1, BigInt(j))));
        }),
        { numRuns: Math.max(5, RUNS / 5) },
      );
    });

    it('randomNonZeroScalar: in [1, q), deterministic for a given rng, rejects a short rng', () => {
      const rng = testRng(`rand-${name}`);
      for (let i = 0; i < 200; i++) {
        const s = randomNonZeroScalar(curve, rng);
        assert.ok(s >= 1n && s < curve.order);
      }
      assert.equal(randomNonZeroScalar(curve, testRng('same')), randomNonZeroScalar(curve, testRng('same')));
      assert.throws(() => randomNonZeroScalar(curve, (n) => new Uint8Array(n - 1)), RangeError);
      // All-zero and all-one rng outputs still give valid non-zero scalars (wide reduction + 1).
      assert.equal(
        randomNonZeroScalar(curve, (n) => new Uint8Array(n)),
        1n,
      );
      const s = randomNonZeroScalar(curve, (n) => new Uint8Array(n).fill(0xff));
      assert.ok(s >= 1n && s < curve.order);
    });
  });
}
