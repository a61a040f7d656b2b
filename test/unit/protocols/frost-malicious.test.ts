/**
 * Malicious-party tests for FROST signing (docs/protocols.md §4, §13): every tamper case on
 * both messages ends in a signature the standard verifier accepts, or an abort; named cases
 * check blame (a wrong z_h or commitment names the helper) and strict point decoding.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ed25519, ED25519_TORSION_SUBGROUP } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { decodeEnc, enc, fromHex } from '../../../src/crypto/encoding.js';
import { createFrostHelper, type FrostAlg, type FrostOutput } from '../../../src/protocols/frost.js';
import { ProtocolAbort } from '../../../src/protocols/types.js';
import type { RunResult } from '../../support/protocol-harness.js';
import { dealKey, mutationCases, runFrost, seededRng, type DealtKey } from '../../support/ec-test-keys.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const NONCE = new Uint8Array(32).fill(3);
const ALGS: readonly FrostAlg[] = ['eddsa-ed25519', 'schnorr-bip340'];

function judge(alg: FrostAlg, key: DealtKey, msg: Uint8Array, run: RunResult<FrostOutput, never>, name: string): string {
  const out = run.outputs.get(1);
  if (out?.kind === 'signature') {
    const ok =
      alg === 'eddsa-ed25519'
        ? ed25519.verify(out.signature, msg, key.pub.Y)
        : schnorr.verify(out.signature, msg, key.pub.Y.subarray(1));
    assert.ok(ok, `${name}: released signature verifies`);
    return 'signed';
  }
  return run.aborts.size > 0 ? 'aborted' : 'stalled';
}

for (const alg of ALGS) {
  test(`${alg}: tamper matrix on FrostReq and the helper's reply`, (t) => {
    const key = dealKey(alg, { rng: seededRng(`frost-mal-${alg}`) });
    const msg = utf8('frost tamper');
    for (const helper of [2, 3] as const) {
      const clean = runFrost(key, helper, msg, { seed: 'mal', nonce: NONCE });
      assert.equal(judge(alg, key, msg, clean, 'clean'), 'signed');
      const earlier = runFrost(key, helper, msg, { seed: 'earlier' }).transcript;
      const results = mutationCases(key.curve, clean.transcript, earlier).map((c) =>
        judge(alg, key, msg, runFrost(key, helper, msg, { seed: 'mal', nonce: NONCE, intercept: c.intercept }), c.name),
      );
      t.diagnostic(`helper ${helper}: ${results.length} cases, ${results.filter((r) => r === 'signed').length} signed, ${results.filter((r) => r === 'aborted').length} aborted`);
      assert.ok(results.filter((r) => r === 'aborted').length > results.length / 2);
    }
  });

  test(`${alg}: a wrong z_h or helper commitment aborts and blames the helper`, () => {
    const key = dealKey(alg);
    const msg = utf8('blame');
    const curve = key.curve;
    const tamper = (k: number) => (m: { round: number; body: Uint8Array }) => {
      if (m.round !== 1) return [m];
      const f = decodeEnc(m.body);
      f[k] = k === 2 ? curve.Fn.toBytes(curve.Fn.add(curve.Fn.fromBytes(f[2]!), 1n)) : curve.Point.fromBytes(f[k]!).add(curve.G).toBytes();
      return [{ ...m, body: enc(...f) }];
    };
    for (const k of [0, 1, 2]) {
      const run = runFrost(key, 3, msg, { intercept: (m) => tamper(k)(m) as typeof m[] });
      assert.equal(judge(alg, key, msg, run, `field ${k}`), 'aborted');
      const a = run.aborts.get(1)!;
      assert.equal(a.reason, 'signature-invalid');
      assert.equal(a.suspect, 3, 'aggregate names the helper whose share fails verify_signature_share');
    }
  });
}

test('eddsa-ed25519: a commitment with a small-order component is refused by the helper', () => {
  const key = dealKey('eddsa-ed25519');
  const msg = utf8('torsion');
  for (const hex of ED25519_TORSION_SUBGROUP.slice(1)) {
    const T = ed25519.Point.fromHex(hex);
    const run = runFrost(key, 2, msg, {
      intercept: (m) => {
        if (m.round !== 0) return [m];
        const f = decodeEnc(m.body);
        f[7] = ed25519.Point.fromBytes(f[7]!).add(T).toBytes();
        return [{ ...m, body: enc(...f) }];
      },
    });
    assert.equal(run.outputs.get(1), undefined);
    assert.match(run.aborts.get(2)!.reason, /small-order|not a valid point/);
  }
});

test('a helper answers one FrostReq per session: nonces are never reused', () => {
  const key = dealKey('schnorr-bip340');
  const run = runFrost(key, 2, utf8('once'));
  const req = run.transcript[0]!;
  const helper = createFrostHelper({ share: key.shares[2], tripletId: 'triplet-test', rng: seededRng('h') });
  const first = helper.receive(req);
  assert.equal(first.send.length, 1);
  assert.ok(helper.finished);
  assert.throws(() => helper.receive(req), (e: unknown) => e instanceof ProtocolAbort && e.reason === 'session-ended');
  // A non-canonical identity encoding as EP's commitment is refused too.
  const f = decodeEnc(req.body);
  f[7] = fromHex('00'.repeat(33));
  const fresh = createFrostHelper({ share: key.shares[2], tripletId: 'triplet-test', rng: seededRng('h2') });
  assert.throws(() => fresh.receive({ ...req, body: enc(...f) }), ProtocolAbort);
});
