/**
 * Chaum–Pedersen DLEQ (src/crypto/dleq.ts): honest proofs verify on P-256 and secp256k1; a proof
 * fails for any other statement, label, context or tampered proof; the codec is strict.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { p256_hasher } from '@noble/curves/nist.js';
import { getCurve, type Point } from '../../../src/crypto/curves.js';
import { decodeDleqProof, encodeDleqProof, proveDleq, verifyDleq } from '../../../src/crypto/dleq.js';
import { seededRng, testScalar } from '../../support/ec-test-keys.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('DLEQ', () => {
  for (const name of ['p256', 'secp256k1'] as const) {
    const curve = getCurve(name);
    const rng = seededRng(`dleq-${name}`);
    const statement = () => {
      const k = testScalar(curve, rng);
      const U = curve.G.multiply(testScalar(curve, rng));
      return { k, st: { U, A: curve.G.multiply(k), V: U.multiply(k) } };
    };

    it(`${name}: honest proofs verify (random statements)`, () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (ctx) => {
          const { k, st } = statement();
          const proof = proveDleq(curve, 'test', [ctx], k, st, rng);
          assert.ok(verifyDleq(curve, 'test', [ctx], st, proof));
          assert.deepEqual(decodeDleqProof(curve, encodeDleqProof(curve, proof)), proof);
        }),
        { numRuns: 20 },
      );
    });

    it(`${name}: any other statement, label, context or proof fails`, () => {
      const { k, st } = statement();
      const ctx = [utf8('sid'), Uint8Array.of(2)];
      const proof = proveDleq(curve, 'test', ctx, k, st, rng);
      const G = curve.G as Point;
      const bad: [string, boolean][] = [
        ['V + G', verifyDleq(curve, 'test', ctx, { ...st, V: st.V.add(G) }, proof)],
        ['A + G', verifyDleq(curve, 'test', ctx, { ...st, A: st.A.add(G) }, proof)],
        ['other U', verifyDleq(curve, 'test', ctx, { ...st, U: st.U.add(G) }, proof)],
        ['V = (k+1)·U with A = k·G', verifyDleq(curve, 'test', ctx, { ...st, V: st.U.multiply(curve.Fn.add(k, 1n)) }, proof)],
        ['label', verifyDleq(curve, 'other', ctx, st, proof)],
        ['context', verifyDleq(curve, 'test', [utf8('sid'), Uint8Array.of(3)], st, proof)],
        ['c + 1', verifyDleq(curve, 'test', ctx, st, { ...proof, c: curve.Fn.add(proof.c, 1n) })],
        ['z + 1', verifyDleq(curve, 'test', ctx, st, { ...proof, z: curve.Fn.add(proof.z, 1n) })],
        ['c = 0', verifyDleq(curve, 'test', ctx, st, { c: 0n, z: proof.z })],
      ];
      for (const [what, ok] of bad) assert.equal(ok, false, what);
      // A prover with the wrong k cannot convince either.
      const forged = proveDleq(curve, 'test', ctx, curve.Fn.add(k, 1n), st, rng);
      assert.equal(verifyDleq(curve, 'test', ctx, st, forged), false);
    });

    it(`${name}: strict proof decoding`, () => {
      const n = curve.scalarBytes;
      assert.throws(() => decodeDleqProof(curve, new Uint8Array(2 * n - 1)), RangeError);
      assert.throws(() => decodeDleqProof(curve, new Uint8Array(2 * n)), /zero scalar/);
      const over = new Uint8Array(2 * n).fill(0xff);
      assert.throws(() => decodeDleqProof(curve, over), /out of range/);
    });
  }

  it('works with a hash-to-curve base (the DPRF use)', () => {
    const curve = getCurve('p256');
    const rng = seededRng('h2c');
    const k = testScalar(curve, rng);
    const U = p256_hasher.hashToCurve(utf8('x'), { DST: 'CORE-TSS/v1/dprf' }) as unknown as Point;
    const st = { U, A: curve.G.multiply(k), V: U.multiply(k) };
    assert.ok(verifyDleq(curve, 'dprf', [], st, proveDleq(curve, 'dprf', [], k, st, rng)));
  });
});
