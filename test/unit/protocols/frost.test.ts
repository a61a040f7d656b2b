/**
 * FROST signing sessions (docs/protocols.md §4): EP + Partner or Aux, one round trip.
 * Every signature is checked by the standard verifiers (Ed25519: node:crypto and noble;
 * BIP340: noble schnorr.verify with the x-only key), and the core is compared byte for byte with
 * noble's ed25519_FROST / schnorr_FROST on the same keys and nonce randomness.
 *
 * Sample size: EKM_PROTOCOL_SAMPLES signatures per alg (default 20; `npm run test:full` runs
 * EKM_PROTOCOL_SAMPLES=1000).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { ed25519, ed25519_FROST } from '@noble/curves/ed25519.js';
import { schnorr, schnorr_FROST, secp256k1_FROST } from '@noble/curves/secp256k1.js';
import {
  createFrostCoordinator,
  createFrostHelper,
  FROST_ALG_SUITE,
  frostAggregate,
  frostCommit,
  frostContext,
  frostSignShare,
  parseFrostRequest,
  type FrostAlg,
  type FrostOutput,
} from '../../../src/protocols/frost.js';
import { decodePoint } from '../../../src/crypto/curves.js';
import { toHex } from '../../../src/crypto/encoding.js';
import type { KeyShare } from '../../../src/protocols/key-share.js';
import { ProtocolAbort, type PartyId } from '../../../src/protocols/types.js';
import { runLocal } from '../../support/protocol-harness.js';
import { dealKey, nobleDkg, nobleSeededRng, runFrost, seededRng } from '../../support/ec-test-keys.js';
import type { FrostSuite } from '../../../src/protocols/dkg-suites.js';

const SAMPLES = Number(process.env.EKM_PROTOCOL_SAMPLES ?? 20);
const ALGS: readonly FrostAlg[] = ['eddsa-ed25519', 'schnorr-bip340'];
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function standardVerify(alg: FrostAlg, Y: Uint8Array, msg: Uint8Array, sig: Uint8Array): void {
  assert.equal(sig.length, 64);
  if (alg === 'eddsa-ed25519') {
    const key = crypto.createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(Y).toString('base64url') }, format: 'jwk' });
    assert.ok(crypto.verify(null, msg, key, sig), 'node:crypto Ed25519');
    assert.ok(ed25519.verify(sig, msg, Y), 'noble ed25519.verify');
  } else {
    assert.ok(schnorr.verify(sig, msg, Y.subarray(1)), 'noble schnorr.verify (x-only key)');
  }
}

function signatureOf(out: FrostOutput | undefined): Uint8Array {
  assert.ok(out && out.kind === 'signature', 'EP produced a signature');
  return out.signature;
}

for (const alg of ALGS) {
  test(`${alg}: ${SAMPLES} random keys × signatures with Partner and Aux verify under the standard verifier`, () => {
    let odd = 0;
    for (let i = 0; i < SAMPLES; i++) {
      const key = dealKey(alg, { rng: seededRng(`${alg}-frost-key-${i}`) });
      if (alg === 'schnorr-bip340' && key.pub.Y[0] === 3) odd++;
      const helper = i % 2 === 0 ? 2 : 3;
      const msg = utf8(`frost message ${i}`);
      const run = runFrost(key, helper, msg);
      assert.equal(run.aborts.size, 0, [...run.aborts.values()].map((e) => e.message).join('; '));
      standardVerify(alg, key.pub.Y, msg, signatureOf(run.outputs.get(1)));
      assert.equal(run.outputs.get(helper)?.kind, 'share-sent');
      assert.equal(run.transcript.length, 2, 'one round trip');
    }
    if (alg === 'schnorr-bip340' && SAMPLES >= 8) assert.ok(odd > 0, 'some keys have odd y (negation path exercised)');
  });

  test(`${alg}: core equals noble FROST byte for byte (shares and signature), odd and even keys`, () => {
    const S = alg === 'eddsa-ed25519' ? ed25519_FROST : schnorr_FROST;
    const suite = FROST_ALG_SUITE[alg];
    const Fn = suite.curve.Fn;
    for (let i = 0; i < 6; i++) {
      const key = dealKey(alg, { rng: seededRng(`${alg}-noble-${i}`) });
      const ids = [1, i % 2 === 0 ? 2 : 3] as const;
      const pub = {
        signers: { min: 2, max: 3 },
        commitments: [key.pub.Y, key.pub.C1],
        verifyingShares: Object.fromEntries(([1, 2, 3] as const).map((j) => [S.Identifier.fromNumber(j), key.pub.A[j]])),
      };
      const msg = utf8(`noble ${i}`);
      const secret = (j: PartyId) => ({ identifier: S.Identifier.fromNumber(j), signingShare: Fn.toBytes(key.shares[j].share) });
      const ours = ids.map((j) => frostCommit(suite, j, key.shares[j].share, seededRng(`n-${alg}-${i}-${j}`)));
      const theirs = ids.map((j) => S.commit(secret(j), nobleSeededRng(`n-${alg}-${i}-${j}`)));
      const list = theirs.map((t) => t.commitments);
      const ctx = frostContext(suite, decodePoint(suite.curve, key.pub.Y), ours.map((o) => o.commitment), msg);
      const zs = ids.map((j, k) => {
        const z = frostSignShare(ctx, j, key.shares[j].share, ours[k]!.nonces);
        const zn = S.signShare(secret(j), pub, theirs[k]!.nonces, list, msg);
        assert.equal(toHex(Fn.toBytes(z)), toHex(zn), 'signature share equals noble');
        return { z, zn };
      });
      const agg = frostAggregate(ctx, zs.map((x) => x.z));
      const nob = S.aggregate(pub, list, msg, Object.fromEntries(ids.map((j, k) => [S.Identifier.fromNumber(j), zs[k]!.zn])));
      assert.ok(agg.valid);
      assert.equal(toHex(agg.signature), toHex(nob), 'signature equals noble aggregate');
      standardVerify(alg, key.pub.Y, msg, agg.signature);
    }
  });
}

test('docs/protocols.md §2/§4 claim: untweaked secp256k1_FROST.DKG key + schnorr_FROST signing verifies under schnorr.verify (x-only)', () => {
  const ids = ([1, 2, 3] as const).map((j) => secp256k1_FROST.Identifier.fromNumber(j));
  for (let run = 0; run < 3; run++) {
    const keys = nobleDkg(secp256k1_FROST as FrostSuite, `dkg-${run}`);
    const pubPkg = keys[0]!.public;
    const msg = utf8(`dkg ${run}`);
    // (a) noble's schnorr_FROST directly on the untweaked key package.
    const T = schnorr_FROST;
    const c = [0, 2].map((k) => T.commit(keys[k]!.secret));
    const list = c.map((x) => x.commitments);
    const shares = Object.fromEntries([0, 2].map((k, n) => [ids[k]!, T.signShare(keys[k]!.secret, pubPkg, c[n]!.nonces, list, msg)]));
    const sig = T.aggregate(pubPkg, list, msg, shares);
    assert.ok(schnorr.verify(sig, msg, pubPkg.commitments[0]!.subarray(1)), 'noble schnorr_FROST verifies under the x-only DKG key');
    // (b) ekm's session on the same DKG output.
    const Fn = FROST_ALG_SUITE['schnorr-bip340'].curve.Fn;
    const share = (k: 0 | 1 | 2): KeyShare => ({
      keyId: 'dkg-key',
      alg: 'schnorr-bip340',
      epoch: 0,
      Y: pubPkg.commitments[0]!,
      C1: pubPkg.commitments[1]!,
      A: { 1: pubPkg.verifyingShares[ids[0]!]!, 2: pubPkg.verifyingShares[ids[1]!]!, 3: pubPkg.verifyingShares[ids[2]!]! },
      partyId: (k + 1) as PartyId,
      share: Fn.fromBytes(keys[k]!.secret.signingShare),
    });
    const res = runLocal<FrostOutput, never>([
      createFrostCoordinator({ share: share(0), tripletId: 't', helper: 3, message: msg, rng: seededRng(`dkg-ep-${run}`) }),
      createFrostHelper({ share: share(2), tripletId: 't', rng: seededRng(`dkg-aux-${run}`) }),
    ]);
    standardVerify('schnorr-bip340', pubPkg.commitments[0]!, msg, signatureOf(res.outputs.get(1)));
  }
});

test('FrostReq: sid recomputed, wrong helper / triplet / key refused', () => {
  const key = dealKey('eddsa-ed25519');
  const run = runFrost(key, 2, utf8('req'));
  const req = run.transcript[0]!;
  assert.equal(parseFrostRequest(req).helper, 2);
  assert.throws(() => parseFrostRequest({ ...req, to: 3 }), ProtocolAbort);
  const sid = new Uint8Array(req.sid);
  sid[5]! ^= 0x10;
  assert.throws(() => parseFrostRequest({ ...req, sid }), ProtocolAbort);
  const other = dealKey('eddsa-ed25519');
  const wrongKey = createFrostHelper({ share: other.shares[2], tripletId: 'triplet-test', rng: seededRng('w') });
  assert.throws(() => wrongKey.receive(req), /key, alg or epoch/);
  const wrongTriplet = createFrostHelper({ share: key.shares[2], tripletId: 'other', rng: seededRng('w') });
  assert.throws(() => wrongTriplet.receive(req), /wrong triplet/);
});

