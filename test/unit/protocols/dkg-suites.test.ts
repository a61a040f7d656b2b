/**
 * The DKG suites with native k·G (src/protocols/dkg-suites.ts) run noble's FROST DKG to exactly the
 * keys noble's own suites give (P-256 and secp256k1 against `p256_FROST` / `secp256k1_FROST`; P-384
 * against the same suite built over noble's plain point class), and still refuse what noble refuses.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createFROST } from '@noble/curves/abstract/frost.js';
import { p256_FROST, p384, p384_hasher } from '@noble/curves/nist.js';
import { secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { sha384 } from '@noble/hashes/sha2.js';
import { dkgSuite, type FrostSuite } from '../../../src/protocols/dkg-suites.js';
import { nobleDkg } from '../../support/ec-test-keys.js';

const p384Plain = createFROST({ name: 'CORE-P384-SHA384-DKG-v1', Point: p384.Point, hash: sha384, hashToScalar: p384_hasher.hashToScalar });

const CASES = [
  ['ecdsa-p256', p256_FROST],
  ['ecdsa-secp256k1', secp256k1_FROST],
  ['ecdsa-p384', p384Plain],
] as const;

describe('DKG suites with native k·G', () => {
  for (const [alg, noble] of CASES) {
    it(`${alg}: the same commitments, shares and group key as noble's suite`, () => {
      for (const seed of ['a', 'b']) {
        const ours = nobleDkg(dkgSuite(alg), `${alg}-${seed}`);
        const theirs = nobleDkg(noble as FrostSuite, `${alg}-${seed}`);
        assert.deepEqual(
          ours.map((k) => [k.public.commitments, k.secret.signingShare]),
          theirs.map((k) => [k.public.commitments, k.secret.signingShare]),
        );
      }
    });

    it(`${alg}: a round-2 package whose proof of possession is altered is refused`, () => {
      const suite = dkgSuite(alg);
      const ids = ([1, 2] as const).map((j) => suite.Identifier.fromNumber(j));
      const r1 = ids.map((id) => suite.DKG.round1(id, { min: 2, max: 2 }));
      const bad = { ...r1[1]!.public, proofOfKnowledge: r1[1]!.public.proofOfKnowledge.slice() };
      bad.proofOfKnowledge[bad.proofOfKnowledge.length - 1]! ^= 1;
      assert.throws(() => suite.DKG.round2(r1[0]!.secret, [bad]));
    });
  }
});
