/**
 * AES-256 keys as a threshold DDH PRF (src/protocols/dprf.ts, docs/protocols.md §8.1): the derived K_obj equals the
 * test-only direct HKDF(k·U), is the same with Partner or Aux, survives refresh; the sealed-object
 * format round-trips and every misuse is a clear typed error (wrong AAD, tampered bytes in every
 * region, wrong key, truncated at every length, unknown version); generateDataKey.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { getCurve } from '../../../src/crypto/curves.js';
import {
  dprfInput,
  dprfPoint,
  type DprfHelpers,
  encodeEncryptionContext,
  generateDataKey,
  newObjectNonce,
  ObjectAuthError,
  OBJECT_FORMAT_VERSION,
  type ObjectFormat,
  ObjectFormatError,
  objectKeyFromPoint,
  ObjectWrongKeyError,
  openObject,
  parseDprfRequest,
  parseObjectHeader,
  sealObject,
  SealedObjectError,
  type ObjectHeader,
} from '../../../src/protocols/dprf.js';
import { seededRng } from '../../support/ec-test-keys.js';
import { dealDprfKey, dprfKeys, refreshDprfKey, runDprf, type DealtDprfKey } from '../../support/rsa-test-keys.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const KEY = dealDprfKey('aes-key-1');
const rng = seededRng('dprf-tests');

/** TEST ONLY: K_obj from the whole k. */
function direct(key: DealtDprfKey, keyId: string, nonce: Uint8Array, format: ObjectFormat = OBJECT_FORMAT_VERSION): Uint8Array {
  const x = dprfInput(keyId, nonce);
  return objectKeyFromPoint(format, dprfPoint(x).multiply(key.k), keyId, x);
}

function derive(key: DealtDprfKey, nonces: readonly Uint8Array[], helper: DprfHelpers = 2, format?: ObjectFormat): readonly Uint8Array[] {
  const keys = dprfKeys(runDprf(key, helper, nonces, format ? { format } : {}));
  assert.ok(Array.isArray(keys), 'keys released');
  return keys as readonly Uint8Array[];
}

/** The service's encrypt / decrypt, in one process: DPRF evaluation + sealed object. */
function encrypt(key: DealtDprfKey, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const objectNonce = newObjectNonce(rng);
  const [kObj] = derive(key, [objectNonce]);
  const header: ObjectHeader = { keyId: key.shares[1].keyId, keyVersion: key.shares[1].epoch, objectNonce };
  return sealObject(kObj!, plaintext, aad, header, rng);
}
function decrypt(key: DealtDprfKey, sealed: Uint8Array, aad: Uint8Array, helper: DprfHelpers = 3): Uint8Array {
  const h = parseObjectHeader(sealed);
  const [kObj] = derive(key, [h.objectNonce], helper, h.format);
  return openObject(kObj!, sealed, aad, key.shares[1].keyId);
}

describe('DPRF evaluation', () => {
  it('K_obj = HKDF(k·U): equal with Partner, Aux or both, per object in a batch, distinct per nonce, key id and format', () => {
    const nonces = [newObjectNonce(rng), newObjectNonce(rng), newObjectNonce(rng)];
    const viaP = derive(KEY, nonces, 2);
    const viaA = derive(KEY, nonces, 3);
    assert.deepEqual(viaP, viaA);
    assert.deepEqual(derive(KEY, nonces, 'both'), viaP);
    nonces.forEach((n, i) => assert.deepEqual(viaP[i], direct(KEY, 'aes-key-1', n)));
    for (const helper of [2, 3, 'both'] as const) {
      const v1 = derive(KEY, nonces, helper, 1);
      nonces.forEach((n, i) => assert.deepEqual(v1[i], direct(KEY, 'aes-key-1', n, 1), `format 1 via ${helper}`));
      nonces.forEach((_, i) => assert.notDeepEqual(v1[i], viaP[i]));
    }
    assert.equal(new Set(viaP.map((k) => Buffer.from(k).toString('hex'))).size, 3);
    assert.notDeepEqual(direct(KEY, 'other-id', nonces[0]!), viaP[0]);
    const run = runDprf(KEY, 2, nonces);
    const info = parseDprfRequest(run.transcript[0]!);
    assert.equal(info.objectNonces.length, 3);
    assert.equal(run.outputs.get(2)?.kind, 'partial-sent');
  });

  it('keys (and so ciphertexts) survive a refresh of the shares: k is unchanged', () => {
    const refreshed = refreshDprfKey(KEY, 'r1');
    assert.notEqual(refreshed.shares[2].share, KEY.shares[2].share);
    const sealed = encrypt(KEY, utf8('before refresh'), utf8('ctx'));
    assert.equal(new TextDecoder().decode(decrypt(refreshed, sealed, utf8('ctx'))), 'before refresh');
    assert.equal(parseObjectHeader(sealed).keyVersion, 0, 'key version is the epoch at encryption (informational)');
  });

  it('a helper at another epoch refuses (the epoch is in the sid)', () => {
    const refreshed = refreshDprfKey(KEY, 'r2');
    const mixed = { k: KEY.k, shares: { ...KEY.shares, 2: refreshed.shares[2] } };
    const run = runDprf(mixed, 2, [newObjectNonce(rng)]);
    assert.equal(dprfKeys(run), 'aborted');
    assert.match(run.aborts.get(2)!.reason, /epoch mismatch/);
  });
});

describe('sealed objects', () => {
  const aad = encodeEncryptionContext({ tenant: 'a', purpose: 'test' });

  it('round trips 0 B, 1 KiB and 1 MiB with AAD; the header says version, key id, key version, nonces', () => {
    for (const len of [0, 1024, 1 << 20]) {
      const pt = new Uint8Array(crypto.randomBytes(len));
      const sealed = encrypt(KEY, pt, aad);
      assert.deepEqual(decrypt(KEY, sealed, aad), pt);
      const h = parseObjectHeader(sealed);
      assert.equal(h.format, OBJECT_FORMAT_VERSION);
      assert.equal(h.keyId, 'aes-key-1');
      assert.equal(h.objectNonce.length, 32);
      assert.equal(h.gcmNonce.length, 12);
      assert.equal(h.ciphertext.length, len);
    }
  });

  it('format-1 objects (sealed before format 2) still open, with either helper or both; the format byte is authenticated', () => {
    const objectNonce = newObjectNonce(rng);
    const [k1] = derive(KEY, [objectNonce], 2, 1);
    const sealed = sealObject(k1!, utf8('old object'), aad, { keyId: 'aes-key-1', keyVersion: 0, objectNonce, format: 1 }, rng);
    assert.equal(parseObjectHeader(sealed).format, 1);
    const fresh = encrypt(KEY, utf8('new object'), aad);
    for (const helper of [2, 3, 'both'] as const) {
      assert.deepEqual(decrypt(KEY, sealed, aad, helper), utf8('old object'), `format 1 via ${helper}`);
      assert.deepEqual(decrypt(KEY, fresh, aad, helper), utf8('new object'), `format 2 via ${helper}`);
    }
    for (const [object, other] of [
      [sealed, 2],
      [fresh, 1],
    ] as const) {
      const relabelled = object.slice();
      relabelled[4] = other;
      assert.throws(() => decrypt(KEY, relabelled, aad, 'both'), ObjectAuthError);
    }
  });

  it('encryption context encoding is canonical (order of keys does not matter, values do)', () => {
    assert.deepEqual(encodeEncryptionContext({ purpose: 'test', tenant: 'a' }), aad);
    assert.notDeepEqual(encodeEncryptionContext({ tenant: 'a', purpose: 'tests' }), aad);
  });

  it('wrong AAD, wrong key, wrong key id: each a clear typed error', () => {
    const sealed = encrypt(KEY, utf8('secret'), aad);
    for (const other of [new Uint8Array(0), encodeEncryptionContext({ tenant: 'b', purpose: 'test' }), aad.subarray(1)]) {
      assert.throws(() => decrypt(KEY, sealed, other), ObjectAuthError);
    }
    const otherKey = dealDprfKey('aes-key-1', 'another-k');
    assert.throws(() => decrypt(otherKey, sealed, aad), ObjectAuthError, 'same key id, different k');
    const kObj = direct(KEY, 'aes-key-1', parseObjectHeader(sealed).objectNonce);
    assert.throws(
      () => openObject(kObj, sealed, aad, 'aes-key-2'),
      (e: unknown) => e instanceof ObjectWrongKeyError && e.code === 'EKM_OBJECT_WRONG_KEY',
    );
    assert.deepEqual(openObject(kObj, sealed, aad, 'aes-key-1'), utf8('secret'));
  });

  it('tampering any byte of any region fails; truncation at every length fails; never a plaintext', () => {
    const sealed = encrypt(KEY, utf8('sixteen byte msg'), aad);
    const kObj = direct(KEY, 'aes-key-1', parseObjectHeader(sealed).objectNonce);
    const codes = new Map<string, number>();
    for (let i = 0; i < sealed.length; i++) {
      const t = sealed.slice();
      t[i]! ^= 0x01;
      assert.throws(
        () => openObject(kObj, t, aad, 'aes-key-1'),
        (e: unknown) => e instanceof SealedObjectError && (codes.set(e.code, (codes.get(e.code) ?? 0) + 1), true),
        `byte ${i}`,
      );
    }
    assert.deepEqual([...codes.keys()].sort(), ['EKM_OBJECT_AUTH', 'EKM_OBJECT_FORMAT', 'EKM_OBJECT_WRONG_KEY']);
    for (let len = 0; len < sealed.length; len++) {
      assert.throws(() => openObject(kObj, sealed.subarray(0, len), aad), SealedObjectError, `length ${len}`);
    }
    assert.throws(
      () => openObject(kObj, sealed.subarray(0, 20), aad),
      (e: unknown) => e instanceof ObjectFormatError && e.reason === 'truncated',
    );
    const v3 = sealed.slice();
    v3[4] = 3;
    assert.throws(
      () => parseObjectHeader(v3),
      (e: unknown) => e instanceof ObjectFormatError && e.reason === 'unsupported-version',
    );
    const magic = sealed.slice();
    magic[0] = 0;
    assert.throws(
      () => parseObjectHeader(magic),
      (e: unknown) => e instanceof ObjectFormatError && e.reason === 'bad-magic',
    );
    assert.throws(() => openObject(kObj, new Uint8Array([...sealed, 0]), aad), ObjectAuthError, 'trailing byte');
  });

  it('generateDataKey: a random data key and its sealed form, which opens to it', () => {
    const objectNonce = newObjectNonce(rng);
    const [kObj] = derive(KEY, [objectNonce]);
    for (const bits of [128, 256] as const) {
      const { plaintextKey, sealed } = generateDataKey(kObj!, { keyId: 'aes-key-1', keyVersion: 0, objectNonce }, bits, aad);
      assert.equal(plaintextKey.length, bits / 8);
      assert.deepEqual(decrypt(KEY, sealed, aad), plaintextKey);
    }
    assert.throws(() => generateDataKey(kObj!, { keyId: 'aes-key-1', keyVersion: 0, objectNonce }, 192 as 128), RangeError);
  });

  it('the curve is P-256 and the PRF input is domain-separated', () => {
    const U = dprfPoint(dprfInput('k', new Uint8Array(32)));
    assert.ok(getCurve('p256').Point.fromBytes(U.toBytes()).equals(U));
    assert.throws(() => dprfInput('k', new Uint8Array(31)), RangeError);
  });
});
