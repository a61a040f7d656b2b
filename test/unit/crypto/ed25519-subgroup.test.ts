/**
 * The subgroup check (libsodium's) answers exactly as noble's isTorsionFree does, on random points
 * with and without each small-order part. The once-per-point check answers as noble's isTorsionFree does (a point that fails
 * fails every time, also after good points were remembered), and the FROST suite built on it runs
 * noble's ed25519_FROST DKG to the same keys and refuses a commitment with a small-order part.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ED25519_TORSION_SUBGROUP, ed25519, ed25519_FROST } from '@noble/curves/ed25519.js';
import { ed25519_FROST_CHECKED, isInPrimeOrderSubgroup, isTorsionFreeOnce } from '../../../src/crypto/ed25519-subgroup.js';
import type { FrostSuite } from '../../../src/protocols/dkg-suites.js';
import { nobleDkg } from '../../support/ec-test-keys.js';

const G = ed25519.Point.BASE;
const T = ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1]!); // a point of order 8

/** A complete 2-of-3 DKG (test/support's nobleDkg): the group public key and every party's share. */
function dkg(suite: FrostSuite, seed: string): { publicKey: Uint8Array; shares: Uint8Array[] } {
  const keys = nobleDkg(suite, seed);
  return { publicKey: keys[0]!.public.commitments[0]!, shares: keys.map((k) => k.secret.signingShare) };
}

describe('ed25519 subgroup check, once per point', () => {
  it('libsodium’s check agrees with noble’s on P + T for random P and every small-order T, and on the identity', () => {
    const torsion = ED25519_TORSION_SUBGROUP.map((h) => ed25519.Point.fromHex(h));
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: ed25519.Point.Fn.ORDER - 1n }), fc.nat({ max: 7 }), (k, t) => {
        const P = (k === 0n ? ed25519.Point.ZERO : G.multiply(k)).add(torsion[t]!);
        assert.equal(isInPrimeOrderSubgroup(P.toBytes()), P.isTorsionFree());
        assert.equal(isInPrimeOrderSubgroup(P.toBytes()), t === 0);
      }),
      { numRuns: 200 },
    );
  });

  it('accepts prime-order points and refuses a point with a small-order part, every time', () => {
    for (let k = 1n; k <= 5n; k++) {
      assert.equal(isTorsionFreeOnce(G.multiply(k * 7919n)), true);
      assert.equal(isTorsionFreeOnce(G.multiply(k * 7919n)), true, 'also when remembered');
    }
    const mixed = G.multiply(7919n).add(T);
    for (let i = 0; i < 3; i++) assert.equal(isTorsionFreeOnce(mixed), false, 'a failing point is never remembered');
    for (const hex of ED25519_TORSION_SUBGROUP.slice(1)) assert.equal(isTorsionFreeOnce(ed25519.Point.fromHex(hex)), false, hex);
  });

  it('the FROST suite runs the DKG to the same keys as noble’s ed25519_FROST', () => {
    for (const seed of ['a', 'b', 'c']) {
      const ours = dkg(ed25519_FROST_CHECKED, seed);
      const noble = dkg(ed25519_FROST as FrostSuite, seed);
      assert.deepEqual(ours.publicKey, noble.publicKey, seed);
      assert.deepEqual(ours.shares, noble.shares, seed);
    }
  });

  it('the FROST suite refuses a point with a small-order part where it parses one, also after its prime-order part passed', () => {
    const suite = ed25519_FROST_CHECKED;
    const { publicKey } = dkg(suite, 'd');
    const mixed = ed25519.Point.fromBytes(publicKey).add(T).toBytes();
    const sig = new Uint8Array(64);
    for (let i = 0; i < 2; i++) assert.throws(() => suite.verify(sig, new Uint8Array(1), mixed), /torsion|prime-order/);
  });
});
