/**
 * The key routes on a real in-process triplet, through `inject()`: every route's success and its
 * error answers (401, 403, 404, 400, 409, 410), each answer checked against the schema its route
 * declares for that status.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type ApiTriplet, assertError, startApiTriplet } from '../support/api-triplet.js';
import { rsaTestKey } from '../support/rsa-test-keys.js';

const b64 = (b: Uint8Array | string): string => Buffer.from(b).toString('base64');
const unb64 = (s: string): Buffer => Buffer.from(s, 'base64');

type Key = { keyId: string; alg: string; name: string | null; publicKey: string | null; state: string; epoch: number | null };

const ALICE: readonly [string, string] = ['alice@apps', 'Alice-pass-1'];
const AUDREY: readonly [string, string] = ['audrey@apps', 'Audrey-pass-1'];
const OTHER_SO: readonly [string, string] = ['so@other', 'Other-SO-pass-1'];
const APPS_SO: readonly [string, string] = ['so@apps', 'Apps-SO-pass-1'];

describe('key routes', () => {
  let t: ApiTriplet;
  const as = <T = Key>(who: readonly [string, string], method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown) =>
    t.call<T>({ method, path, body, as: who });

  before(async () => {
    t = await startApiTriplet();
    for (const [name, soPassword] of [
      ['apps', 'Apps-SO-pass-1'],
      ['other', 'Other-SO-pass-1'],
    ] as const) {
      assert.equal((await t.root('POST', '/partitions', { name, soPassword })).status, 201);
    }
    assert.equal((await as(APPS_SO, 'POST', '/partitions/apps/users', { name: 'alice', password: ALICE[1], role: 'user' })).status, 201);
    assert.equal((await as(APPS_SO, 'POST', '/partitions/apps/users', { name: 'audrey', password: AUDREY[1], role: 'auditor' })).status, 201);
  });
  after(async () => t?.close());

  it('generates an ECDSA key that signs what node:crypto verifies; show, export and list it', async () => {
    const notAfter = '2099-01-01T00:00:00.000Z';
    const g = await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'release', description: 'release signing', notAfter });
    assert.equal(g.status, 201);
    assert.equal(g.body.name, 'release');
    assert.equal((g.body as Key & { notAfter: string }).notAfter, notAfter);
    const message = Buffer.from('release 1.0');
    const s = await as<{ signature: string; format: string }>(ALICE, 'POST', '/keys/release/sign', { message: b64(message), format: 'der' });
    assert.equal(s.status, 200);
    assert.match(String(s.headers['server-timing']), /^op;dur=[\d.]+, total;dur=[\d.]+$/);
    assert.ok(nodeVerify('sha256', message, createPublicKey(g.body.publicKey!), unb64(s.body.signature)));

    const shown = await as<Key & { presignaturesReady: number }>(AUDREY, 'GET', `/keys/${g.body.keyId}`);
    assert.equal(shown.status, 200);
    assert.equal(shown.body.publicKey, g.body.publicKey);
    for (const format of ['pem', 'der', 'raw', 'jwk']) {
      const pub = await as<{ format: string; value: unknown }>(AUDREY, 'GET', `/keys/release/public?format=${format}`);
      assert.equal(pub.status, 200);
      assert.equal(pub.body.format, format);
    }
    const listed = await as<{ keys: Key[]; total: number }>(AUDREY, 'GET', '/keys?alg=ecdsa-p256&name=release');
    assert.deepEqual(
      listed.body.keys.map((k) => k.keyId),
      [g.body.keyId],
    );
  });

  it('verifies with the key: a good signature is valid, another message is not', async () => {
    const g = await as(ALICE, 'POST', '/keys', { alg: 'eddsa-ed25519', name: 'ed' });
    assert.equal(g.status, 201);
    const message = b64('hello');
    const s = await as<{ signature: string }>(ALICE, 'POST', '/keys/ed/sign', { message });
    const ok = await as<{ valid: boolean }>(AUDREY, 'POST', '/keys/ed/verify', { message, signature: s.body.signature });
    assert.deepEqual(ok.body, { keyId: g.body.keyId, valid: true });
    const bad = await as<{ valid: boolean }>(AUDREY, 'POST', '/keys/ed/verify', { message: b64('hullo'), signature: s.body.signature });
    assert.equal(bad.body.valid, false);
  });

  it('AES: encrypts and decrypts with AAD, makes data keys (body optional), refuses the wrong AAD', async () => {
    assert.equal((await as(ALICE, 'POST', '/keys', { alg: 'aes-256-dprf', name: 'files' })).body.publicKey, null);
    const aad = b64('tenant=42');
    const e = await as<{ ciphertext: string }>(ALICE, 'POST', '/keys/files/encrypt', { plaintext: b64('secret'), aad });
    assert.equal(e.status, 200);
    const d = await as<{ plaintext: string }>(ALICE, 'POST', '/keys/files/decrypt', { ciphertext: e.body.ciphertext, aad });
    assert.equal(unb64(d.body.plaintext).toString(), 'secret');
    assertError(await as(ALICE, 'POST', '/keys/files/decrypt', { ciphertext: e.body.ciphertext, aad: b64('tenant=43') }), 400, 'EKM_OBJECT_AUTH');

    const dk = await as<{ bits: number; plaintextKey: string; ciphertext: string }>(ALICE, 'POST', '/keys/files/datakey');
    assert.equal(dk.status, 200);
    assert.equal(dk.body.bits, 256);
    assert.equal(unb64(dk.body.plaintextKey).length, 32);
    const opened = await as<{ plaintext: string }>(ALICE, 'POST', '/keys/files/decrypt', { ciphertext: dk.body.ciphertext });
    assert.equal(opened.body.plaintext, dk.body.plaintextKey);
    assert.equal((await as<{ bits: number }>(ALICE, 'POST', '/keys/files/datakey', { bits: 128 })).body.bits, 128);
    assertError(await as(ALICE, 'POST', '/keys/files/datakey', { bits: 192 }), 400, 'EKM_BAD_REQUEST', /^body\.bits: /);
  });

  it('imports an RSA private key (it signs and decrypts) and a public key (it verifies, never signs)', async () => {
    const rsa = rsaTestKey(2048);
    const imported = await as(ALICE, 'POST', '/keys/import', { privateKeyPem: rsa.pkcs8Pem, name: 'legacy' });
    assert.equal(imported.status, 201);
    assert.equal(imported.body.alg, 'rsa-2048');
    const message = Buffer.from('invoice');
    const s = await as<{ signature: string }>(ALICE, 'POST', '/keys/legacy/sign', { message: b64(message), scheme: 'pkcs1v15', hash: 'sha256' });
    assert.ok(nodeVerify('sha256', message, rsa.publicKey, unb64(s.body.signature)));
    const e = await as<{ ciphertext: string }>(ALICE, 'POST', '/keys/legacy/encrypt', { plaintext: b64('pin 1234') });
    const d = await as<{ plaintext: string }>(ALICE, 'POST', '/keys/legacy/decrypt', { ciphertext: e.body.ciphertext });
    assert.equal(unb64(d.body.plaintext).toString(), 'pin 1234');

    const vendor = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = await as(ALICE, 'POST', '/keys/import', { publicKeyPem: vendor.publicKey.export({ type: 'spki', format: 'pem' }), name: 'vendor' });
    assert.equal(pub.status, 201);
    assert.equal((pub.body as Key & { imported: string }).imported, 'public');
    const sig = nodeSign('sha256', message, vendor.privateKey);
    assert.equal((await as<{ valid: boolean }>(ALICE, 'POST', '/keys/vendor/verify', { message: b64(message), signature: b64(sig), format: 'der' })).body.valid, true);
    const refused = await as(ALICE, 'POST', '/keys/vendor/sign', { message: b64(message) });
    assert.ok(refused.status >= 400 && refused.status < 500, JSON.stringify(refused.body));

    assertError(await as(ALICE, 'POST', '/keys/import', { privateKeyPem: rsa.pkcs8Pem, publicKeyPem: 'x' }), 400, 'EKM_BAD_REQUEST', /give exactly one of privateKeyPem and publicKeyPem/);
  });

  it('renames, describes, deactivates (no signing, still verifying) and reactivates a key', async () => {
    const g = await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'rotating' });
    const message = b64('m');
    const s = await as<{ signature: string }>(ALICE, 'POST', '/keys/rotating/sign', { message });
    const changed = await as(ALICE, 'PATCH', '/keys/rotating', { name: 'rotated', description: 'old', state: 'deactivated' });
    assert.equal(changed.status, 200);
    assert.equal(changed.body.state, 'deactivated');
    assertError(await as(ALICE, 'POST', '/keys/rotated/sign', { message }), 409, 'EKM_KEY_DEACTIVATED');
    assert.equal((await as<{ valid: boolean }>(ALICE, 'POST', '/keys/rotated/verify', { message, signature: s.body.signature })).body.valid, true);
    assert.equal((await as<{ keys: Key[] }>(ALICE, 'GET', '/keys?state=deactivated&name=rotated')).body.keys.length, 1);
    assert.equal((await as(ALICE, 'PATCH', `/keys/${g.body.keyId}`, { state: 'active', name: null })).body.name, null);
    assertError(await as(ALICE, 'PATCH', `/keys/${g.body.keyId}`, {}), 400, 'EKM_BAD_REQUEST', /give name, description or state/);
  });

  it('refreshes a key: a new epoch, the same public key', async () => {
    const g = await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-secp256k1', name: 'fresh' });
    const r = await as<{ epoch: number }>(ALICE, 'POST', '/keys/fresh/refresh');
    assert.deepEqual(r.body, { keyId: g.body.keyId, epoch: 1 });
    const shown = await as(ALICE, 'GET', '/keys/fresh');
    assert.equal(shown.body.epoch, 1);
    assert.equal(shown.body.publicKey, g.body.publicKey);
    assertError(await as(ALICE, 'POST', '/keys/fresh/refresh', { now: true }), 400, 'EKM_BAD_REQUEST');
  });

  it('refuses key names that render like another name, and descriptions that reorder what is shown', async () => {
    const lookAlikes: [string, RegExp][] = [
      ['rele\u200Base', /invisible character/],
      ['release\u2060', /invisible character/],
      ['\u202Eexe.gnp', /invisible character/],
      ['p\u0430ypal-signing', /mixes Latin and Cyrillic letters/],
      ['\u03A9mega-release', /mixes Latin and Greek letters/],
      ['\uFF52\uFF45\uFF4C\uFF45\uFF41\uFF53\uFF45', /not in Unicode NFKC form \(it would read the same as "release"\)/],
      ['cafe\u0301-2026', /not in Unicode NFKC form/],
      ['release\u00A0key', /a space other than the plain space/],
      ['release ', /ends with a space/],
    ];
    const kept = await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'plain-name' });
    assert.equal(kept.status, 201);
    for (const [name, why] of lookAlikes) {
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name }), 400, 'EKM_BAD_KEY_NAME', why);
      assertError(await as(ALICE, 'PATCH', '/keys/plain-name', { name }), 400, 'EKM_BAD_KEY_NAME', why);
    }
    for (const name of ['caf\u00e9-2026', '\u043a\u043b\u044e\u0447-\u043f\u043e\u0434\u043f\u0438\u0441\u0438', '\u7f72\u540d\u9375', 'release key 2026', '\u{1F511}-signing']) {
      const made = await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name });
      assert.equal(made.status, 201, `${name}: ${JSON.stringify(made.body)}`);
      assert.equal(made.body.name, name);
    }
    assertError(await as(ALICE, 'PATCH', '/keys/plain-name', { description: 'signs \u202Eexe.txt' }), 400, 'EKM_BAD_REQUEST', /bidirectional control/);
    assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', description: 'x\u2066y\u2069' }), 400, 'EKM_BAD_REQUEST', /bidirectional control/);
    assert.equal((await as(ALICE, 'PATCH', '/keys/plain-name', { description: 'family \u{1F468}\u200D\u{1F469}\u200D\u{1F467} key' })).status, 200, 'a joiner in free text is fine');
  });

  it("a user may not destroy a key (an AES key's data would go with it): 403, and the key still serves", async () => {
    const g = await as(ALICE, 'POST', '/keys', { alg: 'aes-256-dprf', name: 'files-of-alice' });
    assert.equal(g.status, 201);
    assertError(await as(ALICE, 'DELETE', '/keys/files-of-alice'), 403, 'EKM_FORBIDDEN', /a user may not destroy keys \(only the partition's SO does; a user may deactivate a key instead\)/);
    assert.equal((await as(ALICE, 'GET', '/keys/files-of-alice')).body.state, 'active');
    assert.equal((await as(ALICE, 'POST', '/keys/files-of-alice/encrypt', { plaintext: Buffer.from('still here').toString('base64') })).status, 200);
  });

  it("destroys a key (the partition's SO): its record stays (state destroyed), using it answers 410", async () => {
    const g = await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'doomed' });
    const d = await as<Key & { pendingPurge: string[] }>(APPS_SO, 'DELETE', '/keys/doomed');
    assert.equal(d.status, 200);
    assert.equal(d.body.state, 'destroyed');
    assert.deepEqual(d.body.pendingPurge, []);
    assert.equal((await as(ALICE, 'GET', `/keys/${g.body.keyId}`)).body.state, 'destroyed');
    assertError(await as(ALICE, 'POST', `/keys/${g.body.keyId}/sign`, { message: b64('m') }), 410, 'EKM_KEY_DESTROYED');
    assertError(await as(ALICE, 'GET', '/keys/doomed'), 404, 'EKM_KEY_NOT_FOUND');
    const destroyed = await as<{ keys: Key[] }>(ALICE, 'GET', '/keys?state=destroyed');
    assert.ok(destroyed.body.keys.some((k) => k.keyId === g.body.keyId));
  });

  it('pages the list with after and limit', async () => {
    const first = await as<{ keys: Key[]; next: string | null }>(ALICE, 'GET', '/keys?limit=1');
    assert.equal(first.body.keys.length, 1);
    assert.equal(first.body.next, first.body.keys[0]!.keyId);
    const second = await as<{ keys: Key[] }>(ALICE, 'GET', `/keys?limit=1&after=${first.body.next}`);
    assert.notEqual(second.body.keys[0]!.keyId, first.body.keys[0]!.keyId);
  });

  it('the root SO re-derives the Aux; nobody else may', async () => {
    const r = await t.root<{ keys: number }>('POST', '/servers/aux/rederive');
    assert.equal(r.status, 200);
    assertError(await as(['so@apps', 'Apps-SO-pass-1'], 'POST', '/servers/aux/rederive'), 403, 'EKM_FORBIDDEN');
    assertError(await as(ALICE, 'POST', '/servers/aux/rederive'), 403, 'EKM_FORBIDDEN');
  });

  describe('refusals', () => {
    it('401 without credentials, with a wrong password or an unknown token, before any word about the input', async () => {
      assertError(await t.call({ method: 'POST', path: '/keys', body: { alg: 'nope' } }), 401, 'EKM_UNAUTHORIZED');
      assertError(await as([ALICE[0], 'Wrong-pass-1'], 'GET', '/keys'), 401, 'EKM_UNAUTHORIZED');
      assertError(await t.call({ method: 'GET', path: '/keys', headers: { authorization: 'Bearer nope' } }), 401, 'EKM_UNAUTHORIZED');
    });

    it('403 for a role that may not, before any word about the input', async () => {
      assertError(await as(AUDREY, 'POST', '/keys', { alg: 'ecdsa-p256' }), 403, 'EKM_FORBIDDEN', /an auditor may not generate keys/);
      assertError(await as(AUDREY, 'POST', '/keys', { alg: 'nope' }), 403, 'EKM_FORBIDDEN');
      assertError(await as(AUDREY, 'POST', '/keys/release/sign', { message: 'not base64!' }), 403, 'EKM_FORBIDDEN');
      assertError(await as(AUDREY, 'DELETE', '/keys/release'), 403, 'EKM_FORBIDDEN');
    });

    it('404 for a key of another partition, as for a missing one, before any word about the body', async () => {
      assertError(await as(OTHER_SO, 'GET', '/keys/release'), 404, 'EKM_KEY_NOT_FOUND');
      assertError(await as(OTHER_SO, 'POST', '/keys/release/sign', { message: b64('m') }), 404, 'EKM_KEY_NOT_FOUND');
      assertError(await as(ALICE, 'POST', '/keys/no-such-key/sign', { message: 'not base64!' }), 404, 'EKM_KEY_NOT_FOUND');
    });

    it('400 with the part and field that is wrong', async () => {
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p257' }), 400, 'EKM_BAD_REQUEST', /^body\.alg: /);
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: '0123456789abcdef' }), 400, 'EKM_BAD_REQUEST', /that is a UID/);
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'a/b' }), 400, 'EKM_BAD_REQUEST', /^body\.name: /);
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', notAfter: 'tomorrow' }), 400, 'EKM_BAD_REQUEST', /^body\.notAfter: /);
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', colour: 'red' }), 400, 'EKM_BAD_REQUEST', /^body: .*colour/);
      assertError(await as(ALICE, 'POST', '/keys'), 400, 'EKM_BAD_REQUEST', /^body: /);
      assertError(await as(ALICE, 'GET', '/keys?state=lost'), 400, 'EKM_BAD_REQUEST', /^query\.state: /);
      assertError(await as(ALICE, 'GET', '/keys?limit=0'), 400, 'EKM_BAD_REQUEST', /^query\.limit: /);
      assertError(await as(ALICE, 'GET', '/keys/release/public?format=xml'), 400, 'EKM_BAD_REQUEST', /^query\.format: /);
      assertError(await as(ALICE, 'POST', '/keys/release/sign', { message: 'not base64!' }), 400, 'EKM_BAD_REQUEST', /^body\.message: must be base64/);
      assertError(await as(ALICE, 'GET', `/keys/${'k'.repeat(65)}`), 400, 'EKM_BAD_REQUEST', /^path\.keyId: /);
      assertError(await as(ALICE, 'GET', `/keys/${'k'.repeat(65)}/public`), 400, 'EKM_BAD_REQUEST', /^path\.keyId: /);
      const malformed = await t.call({ method: 'POST', path: '/keys', as: ALICE, headers: { 'content-type': 'application/json' }, body: '{"alg":' });
      assertError(malformed, 400, 'EKM_BAD_REQUEST');
    });

    it('409 for a name the partition has already', async () => {
      assertError(await as(ALICE, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'release' }), 409);
    });

    it('413 for a body over the limit, 414 for a path segment over 800 characters', async () => {
      const big = await as(ALICE, 'POST', '/keys/files/encrypt', { plaintext: 'A'.repeat(7 * 1024 * 1024) });
      assertError(big, 413);
      assertError(await as(ALICE, 'GET', `/keys/${'k'.repeat(801)}`), 414, 'EKM_URI_TOO_LONG');
    });

    it('a bearer token from the password grant works like the password', async () => {
      const tok = await t.call<{ access_token: string }>({ method: 'POST', path: '/token', body: { username: ALICE[0], password: ALICE[1] } });
      assert.equal(tok.status, 200);
      const r = await t.call<{ keys: Key[] }>({ method: 'GET', path: '/keys', headers: { authorization: `Bearer ${tok.body.access_token}` } });
      assert.equal(r.status, 200);
      assert.ok(r.body.keys.length > 0);
    });
  });
});
