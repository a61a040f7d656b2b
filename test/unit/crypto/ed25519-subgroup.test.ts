/**
 * The once-per-point subgroup check: it answers as noble's isTorsionFree does (a point that fails
 * fails every time, also after good points were remembered), and the FROST suite built on it runs
 * noble's ed25519_FROST DKG to the same keys and refuses a commitment with a small-order part.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ED25519_TORSION_SUBGROUP, ed25519, ed25519_FROST } from '@noble/curves/ed25519.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { ed25519_FROST_CHECKED, isTorsionFreeOnce } from '../../../src/crypto/ed25519-subgroup.js';

const G = ed25519.Point.BASE;
const T = ed25519.Point.fromHex(ED25519_TORSION_SUBGROUP[1]!); // a point of order 8

/** A deterministic RNG (SHA-256 counter) so that two runs draw the same randomness. */
function seededRng(seed: string): (n?: number) => Uint8Array {
  let counter = 0;
  return (n = 32) => {
    const out = new Uint8Array(n);
    for (let off = 0; off < n; off += 32) out.set(sha256(new TextEncoder().encode(`${seed}/${counter++}`)).subarray(0, Math.min(32, n - off)), off);
    return out;
  };
}

type Suite = typeof ed25519_FROST;

/** A complete 2-of-3 DKG among identifiers 1, 2, 3 with the given suite and per-party RNGs. */
function dkg(suite: Suite, seed: string): { publicKey: Uint8Array; shares: Uint8Array[] } {
  const signers = { min: 2, max: 3 };
  const ids = [1, 2, 3].map((i) => suite.Identifier.fromNumber(i));
  const r1 = ids.map((id, i) => suite.DKG.round1(id, signers, undefined, seededRng(`${seed}/${i}`)));
  const r2 = r1.map((mine, i) => suite.DKG.round2(mine.secret, r1.filter((_, j) => j !== i).map((o) => o.public)));
  const keys = r1.map((mine, i) =>
    suite.DKG.round3(
      mine.secret,
      r1.filter((_, j) => j !== i).map((o) => o.public),
      r2.filter((_, j) => j !== i).map((o) => o[ids[i]!]!),
    ),
  );
  return { publicKey: keys[0]!.public.commitments[0]!, shares: keys.map((k) => k.secret.signingShare) };
}

describe('ed25519 subgroup check, once per point', () => {
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
      const ours = dkg(ed25519_FROST_CHECKED as unknown as Suite, seed);
      const noble = dkg(ed25519_FROST, seed);
      assert.deepEqual(ours.publicKey, noble.publicKey, seed);
      assert.deepEqual(ours.shares, noble.shares, seed);
    }
  });

  it('the FROST suite refuses a point with a small-order part where it parses one, also after its prime-order part passed', () => {
    const suite = ed25519_FROST_CHECKED as unknown as Suite;
    const { publicKey } = dkg(suite, 'd');
    const mixed = ed25519.Point.fromBytes(publicKey).add(T).toBytes();
    const sig = new Uint8Array(64);
    for (let i = 0; i < 2; i++) assert.throws(() => suite.verify(sig, new Uint8Array(1), mixed), /torsion|prime-order/);
  });
});
