/**
 * Where a protocol party runs (src/service/party-recipes.ts runsInline): on the event loop only
 * for single-key P-256/secp256k1 ECDSA, FROST and small AES batches; everything heavier in a worker thread.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Recipe, runsInline } from '../../../src/service/party-recipes.js';

// Only the fields runsInline reads; the rest of a recipe does not decide where it runs.
const recipe = (r: object): Recipe => r as Recipe;
const share = (alg: string): object => ({ alg });
const nonces = (n: number): Uint8Array[] => Array.from({ length: n }, () => new Uint8Array(32));

describe('runsInline', () => {
  it('P-256 and secp256k1 ECDSA sessions run inline; P-384 in workers', () => {
    for (const kind of ['ecdsa-sign', 'ecdsa-presign', 'ecdsa-online']) {
      for (const alg of ['ecdsa-p256', 'ecdsa-secp256k1'])
        assert.equal(runsInline(recipe({ kind, share: share(alg) })), true, `${kind} ${alg}`);
      assert.equal(runsInline(recipe({ kind, share: share('ecdsa-p384') })), false, kind);
    }
  });

  it('FROST signatures run inline', () => {
    for (const alg of ['eddsa-ed25519', 'schnorr-bip340'])
      assert.equal(runsInline(recipe({ kind: 'frost', share: share(alg) })), true, alg);
  });

  it("AES (DPRF): a helper's sessions of up to 16 objects run inline, EP's of one or two (its event loop serves the API)", () => {
    const dprf = (n: number): Recipe =>
      recipe({
        kind: 'dprf',
        share: share('aes-256-dprf'),
        coordinate: { helper: 'both', objects: nonces(n).map((nonce) => ({ nonce, format: 2 as const })) },
      });
    assert.equal(runsInline(dprf(1)), true);
    assert.equal(runsInline(dprf(2)), true);
    assert.equal(runsInline(dprf(3)), false);
    const helper = recipe({ kind: 'dprf', share: share('aes-256-dprf') });
    assert.equal(runsInline(helper, 1), true);
    assert.equal(runsInline(helper, 16), true);
    assert.equal(runsInline(helper, 17), false);
    assert.equal(runsInline(helper), false, 'batch size unknown: a worker');
  });

  it('RSA-2048 operations run inline, RSA-3072 and 4096 in workers', () => {
    assert.equal(runsInline(recipe({ kind: 'rsa', share: share('rsa-2048') })), true);
    for (const alg of ['rsa-3072', 'rsa-4096']) assert.equal(runsInline(recipe({ kind: 'rsa', share: share(alg) })), false, alg);
  });

  it('RSA refresh, DKG, refresh and re-derivation run in workers', () => {
    for (const kind of ['rsa-refresh', 'dkg', 'refresh', 'aux'])
      assert.equal(runsInline(recipe({ kind, share: share('ecdsa-p256') })), false, kind);
  });
});
