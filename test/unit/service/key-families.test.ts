/**
 * The key-family registry (src/service/keys/registry.ts): which family a stored key and a new
 * algorithm belong to, which share scheme a key's batch runs in, and the refusals a family gives
 * for what it does not offer (the same words the API has always answered with).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { EkmError } from '../../../src/errors.js';
import type { KeyRow } from '../../../src/store/key-records.js';
import { KEY_ALGS } from '../../../src/service/key-service.js';
import type { FamilyDeps, KeyFamily } from '../../../src/service/keys/family.js';
import { KeyFamilies } from '../../../src/service/keys/registry.js';

/** Building the registry touches none of its dependencies; lookups never do. */
const families = new KeyFamilies({} as FamilyDeps);

function row(alg: string, publicKey: string | null = null): KeyRow {
  return { keyId: '0011223344556677', alg, publicKey } as KeyRow;
}

describe('KeyFamilies', () => {
  it('finds the family of a stored key, imported public keys first', () => {
    assert.equal(families.of(row('ecdsa-p256')).name, 'ec');
    assert.equal(families.of(row('eddsa-ed25519')).name, 'ec');
    assert.equal(families.of(row('rsa-3072')).name, 'rsa');
    assert.equal(families.of(row('aes-256-dprf')).name, 'aes');
    assert.equal(families.of(row('rsa-2048', '-----BEGIN PUBLIC KEY-----')).name, 'imported-public');
    assert.equal(families.of(row('ecdsa-p384', '-----BEGIN PUBLIC KEY-----')).name, 'imported-public');
    assert.throws(
      () => families.of(row('dsa-1024')),
      (e: unknown) => e instanceof EkmError && e.code === 'EKM_BAD_ALG',
    );
  });

  it('has exactly one family generating each algorithm the service offers', () => {
    for (const alg of KEY_ALGS) {
      const generating = families.all.filter((f) => (f.algs as readonly string[]).includes(alg));
      assert.equal(generating.length, 1, alg);
      assert.equal(families.generating(alg), generating[0]);
    }
    assert.equal(families.generating('dsa-1024'), undefined);
    assert.deepEqual(families.imported.algs, []);
  });

  it('runs EC and AES keys in one share scheme, RSA keys in another', () => {
    assert.equal(families.ec.shares, families.aes.shares);
    assert.equal(families.schemeOf('ecdsa-secp256k1'), families.threshold);
    assert.equal(families.schemeOf('aes-256-dprf'), families.threshold);
    assert.equal(families.schemeOf('rsa-4096'), families.rsa.shares);
    // A key whose record is gone by now goes with the threshold batch.
    assert.equal(families.schemeOf(''), families.threshold);
    assert.equal(families.imported.shares, undefined);
  });

  it('refuses what a family does not offer, in the words the API answers with', () => {
    const keyId = '0011223344556677';
    const refusal = (e: EkmError): [string, string, number] => [e.code, e.message, e.httpStatus];
    assert.deepEqual(refusal(families.aes.refusal(keyId, 'sign')), [
      'EKM_WRONG_KEY_TYPE',
      `key ${keyId} is an AES key: it encrypts, it does not sign`,
      400,
    ]);
    assert.deepEqual(refusal(families.aes.refusal(keyId, 'export a public key')), [
      'EKM_WRONG_KEY_TYPE',
      `key ${keyId} is an AES key: it has no public key`,
      400,
    ]);
    assert.deepEqual(refusal(families.imported.refusal(keyId, 'sign')), [
      'EKM_PUBLIC_KEY_ONLY',
      `key ${keyId} is an imported public key: it cannot sign`,
      409,
    ]);
    assert.deepEqual(refusal(families.imported.refusal(keyId, 'be refreshed')), [
      'EKM_PUBLIC_KEY_ONLY',
      `key ${keyId} is an imported public key: it cannot be refreshed`,
      409,
    ]);
    const aes: KeyFamily = families.aes;
    const imported: KeyFamily = families.imported;
    assert.equal(aes.sign, undefined);
    assert.equal(aes.publicMaterial, undefined);
    assert.equal(imported.sign, undefined);
  });
});
