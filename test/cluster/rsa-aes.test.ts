/**
 * RSA and AES keys on a real triplet: RSA signatures verified by node:crypto and the
 * openssl command line, OAEP / PKCS#1 v1.5 decryption of node:crypto ciphertexts, an imported key
 * that signs like the original; AES-256 round trips, wrong AAD, tampering, wrong key and
 * truncation as clear errors; concurrent requests; ciphertexts and keys survive refresh and a
 * restart; AES falls back to proofs with the Partner when the Aux cannot answer; a wiped Aux gets
 * its RSA pieces back by re-derivation.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { constants, generateKeyPairSync, publicEncrypt, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { type Triplet, ekm, servingTriplet, startSeedOrder, waitInService } from '../support/cluster.js';

describe('RSA and AES keys on a real triplet', () => {
  let t: Triplet;
  let api: Api;
  let rsa: { keyId: string; publicKey: string };
  let aes: { keyId: string };
  const sealed: { ciphertext: string; aad: string; plaintext: string }[] = [];

  before(async () => {
    t = await servingTriplet();
    api = await apiFor(t);
  });
  after(async () => t.cleanup());

  it('RSA-2048: PKCS#1 v1.5 and PSS signatures verify with node:crypto and openssl', async () => {
    const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg: 'rsa-2048' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    rsa = r.body;
    const msg = Buffer.from('document to sign');
    for (const hash of ['sha256', 'sha384', 'sha512'] as const) {
      for (const scheme of ['pkcs1v15', 'pss'] as const) {
        const s = await api.call<{ signature: string }>('POST', `/keys/${rsa.keyId}/sign`, { message: b64(msg), hash, scheme });
        assert.equal(s.status, 200, JSON.stringify(s.body));
        const sig = unb64(s.body.signature);
        const padding = scheme === 'pss' ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
        assert.ok(
          nodeVerify(hash, msg, { key: rsa.publicKey, padding, saltLength: { sha256: 32, sha384: 48, sha512: 64 }[hash] }, sig),
          `${scheme} ${hash}`,
        );
      }
    }
    const s = await api.call<{ signature: string }>('POST', `/keys/${rsa.keyId}/sign`, { message: b64(msg) });
    writeFileSync(join(t.dir, 'rsa.pem'), rsa.publicKey);
    writeFileSync(join(t.dir, 'msg'), msg);
    writeFileSync(join(t.dir, 'rsa.sig'), unb64(s.body.signature));
    const out = execFileSync('openssl', [
      'dgst',
      '-sha256',
      '-verify',
      join(t.dir, 'rsa.pem'),
      '-signature',
      join(t.dir, 'rsa.sig'),
      join(t.dir, 'msg'),
    ]).toString();
    assert.match(out, /Verified OK/);
  });

  it('RSA: OAEP (SHA-1, SHA-256) and PKCS#1 v1.5 decryption of node:crypto ciphertexts; bad ciphertext is one uniform error', async () => {
    const secret = Buffer.from('the data key');
    for (const hash of ['sha1', 'sha256'] as const) {
      const ct = publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, secret);
      const d = await api.call<{ plaintext: string }>('POST', `/keys/${rsa.keyId}/decrypt`, { ciphertext: b64(ct), scheme: 'oaep', hash });
      assert.equal(d.status, 200, JSON.stringify(d.body));
      assert.deepEqual(unb64(d.body.plaintext), secret);
    }
    const ct = publicEncrypt({ key: rsa.publicKey, padding: constants.RSA_PKCS1_PADDING }, secret);
    const d = await api.call<{ plaintext: string }>('POST', `/keys/${rsa.keyId}/decrypt`, { ciphertext: b64(ct), scheme: 'pkcs1v15' });
    assert.deepEqual(unb64(d.body.plaintext), secret);
    const bad = await api.call<{ error: { code: string } }>('POST', `/keys/${rsa.keyId}/decrypt`, {
      ciphertext: b64(Buffer.alloc(256, 7)),
      scheme: 'oaep',
    });
    assert.equal(bad.status, 400);
    assert.equal(bad.body.error.code, 'EKM_DECRYPTION_FAILED');
    // PKCS#1 v1.5 answers a faulty padding with a synthetic plaintext, not an error (implicit rejection).
    const synthetic = await Promise.all(
      [0, 1].map(() =>
        api.call<{ plaintext: string }>('POST', `/keys/${rsa.keyId}/decrypt`, {
          ciphertext: b64(Buffer.alloc(256, 7)),
          scheme: 'pkcs1v15',
        }),
      ),
    );
    for (const s of synthetic) assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.equal(synthetic[1]!.body.plaintext, synthetic[0]!.body.plaintext);
    assert.ok(unb64(synthetic[0]!.body.plaintext).length <= 245);
  });

  it('an imported RSA key signs exactly like the original', async () => {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys/import', { privateKeyPem: pem });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    const msg = Buffer.from('imported');
    const s = await api.call<{ signature: string }>('POST', `/keys/${r.body.keyId}/sign`, { message: b64(msg) });
    assert.deepEqual(unb64(s.body.signature), nodeSign('sha256', msg, privateKey), 'PKCS#1 v1.5 is deterministic: the same bytes');
    assert.ok(nodeVerify('sha256', msg, publicKey, unb64(s.body.signature)));
    const bad = await api.call('POST', '/keys/import', { privateKeyPem: 'not a key' });
    assert.equal(bad.status, 400);
  });

  it('AES-256: round trips, with and without AAD, and data keys', async () => {
    const r = await api.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    aes = r.body;
    for (const [plaintext, aad] of [
      ['', ''],
      ['short', 'tenant=a'],
      ['x'.repeat(100_000), ''],
    ] as const) {
      const e = await api.call<{ ciphertext: string }>('POST', `/keys/${aes.keyId}/encrypt`, {
        plaintext: b64(plaintext),
        ...(aad ? { aad: b64(aad) } : {}),
      });
      assert.equal(e.status, 200, JSON.stringify(e.body));
      sealed.push({ ciphertext: e.body.ciphertext, aad, plaintext });
      const d = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, {
        ciphertext: e.body.ciphertext,
        ...(aad ? { aad: b64(aad) } : {}),
      });
      assert.equal(d.status, 200, JSON.stringify(d.body));
      assert.equal(unb64(d.body.plaintext).toString(), plaintext);
    }
    const dk = await api.call<{ plaintextKey: string; ciphertext: string }>('POST', `/keys/${aes.keyId}/datakey`, { bits: 256 });
    assert.equal(unb64(dk.body.plaintextKey).length, 32);
    const back = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: dk.body.ciphertext });
    assert.equal(back.body.plaintext, dk.body.plaintextKey);
  });

  it('AES-256: 48 concurrent encryptions and decryptions (sessions shared by concurrent requests) all round-trip', async () => {
    const texts = Array.from({ length: 48 }, (_, i) => `object ${i}`);
    const enc = await Promise.all(
      texts.map((p, i) =>
        api.call<{ ciphertext: string }>('POST', `/keys/${aes.keyId}/encrypt`, { plaintext: b64(p), aad: b64(`n=${i}`) }),
      ),
    );
    enc.forEach((e) => assert.equal(e.status, 200, JSON.stringify(e.body)));
    assert.equal(new Set(enc.map((e) => e.body.ciphertext)).size, 48);
    const dec = await Promise.all(
      enc.map((e, i) =>
        api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: e.body.ciphertext, aad: b64(`n=${i}`) }),
      ),
    );
    dec.forEach((d, i) => assert.equal(unb64(d.body.plaintext).toString(), texts[i], JSON.stringify(d.body)));
    // One wrong AAD among concurrent good ones fails alone.
    const mixed = await Promise.all(
      enc
        .slice(0, 8)
        .map((e, i) =>
          api.call('POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: e.body.ciphertext, aad: b64(`n=${i === 3 ? 99 : i}`) }),
        ),
    );
    assert.deepEqual(
      mixed.map((r) => r.status),
      [200, 200, 200, 400, 200, 200, 200, 200],
    );
  });

  it('AES-256: wrong AAD, tampered ciphertext, wrong key and truncated input are clear errors', async () => {
    const { ciphertext, aad } = sealed[1]!;
    const expectError = async (body: Record<string, string>, keyId: string, code: RegExp): Promise<void> => {
      const r = await api.call<{ error: { code: string; message: string } }>('POST', `/keys/${keyId}/decrypt`, body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.match(r.body.error.code, code, r.body.error.message);
    };
    await expectError({ ciphertext, aad: b64('tenant=b') }, aes.keyId, /AUTH/);
    await expectError({ ciphertext }, aes.keyId, /AUTH/);
    const tampered = unb64(ciphertext);
    tampered[tampered.length - 20]! ^= 1;
    await expectError({ ciphertext: b64(tampered), aad: b64(aad) }, aes.keyId, /AUTH/);
    await expectError({ ciphertext: b64(unb64(ciphertext).subarray(0, 30)), aad: b64(aad) }, aes.keyId, /FORMAT/);
    const other = await api.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' });
    await expectError({ ciphertext, aad: b64(aad) }, other.body.keyId, /WRONG_KEY/);
    const signAes = await api.call('POST', `/keys/${aes.keyId}/sign`, { message: b64('x') });
    assert.equal(signAes.status, 400);
  });

  it('refresh and a restart of the triplet: old ciphertexts decrypt, RSA signs under the same public key', async () => {
    assert.equal((await api.call('POST', `/keys/${rsa.keyId}/refresh`)).status, 200);
    assert.equal((await api.call('POST', `/keys/${aes.keyId}/refresh`)).status, 200);
    for (const role of ['ep', 'partner', 'aux'] as const) await ekm(t, role, 'stop');
    await startSeedOrder(t);
    api = await apiFor(t);
    for (const s of sealed) {
      const d = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, {
        ciphertext: s.ciphertext,
        ...(s.aad ? { aad: b64(s.aad) } : {}),
      });
      assert.equal(d.status, 200, JSON.stringify(d.body));
      assert.equal(unb64(d.body.plaintext).toString(), s.plaintext);
    }
    const msg = Buffer.from('after refresh and restart');
    const s = await api.call<{ signature: string; epoch: number }>('POST', `/keys/${rsa.keyId}/sign`, { message: b64(msg) });
    assert.equal(s.body.epoch, 1);
    assert.ok(nodeVerify('sha256', msg, rsa.publicKey, unb64(s.body.signature)));
    // With the Partner down, EP + Aux still sign RSA and decrypt AES.
    await ekm(t, 'partner', 'stop');
    const s2 = await api.call<{ signature: string }>('POST', `/keys/${rsa.keyId}/sign`, { message: b64(msg) });
    assert.equal(s2.status, 200, JSON.stringify(s2.body));
    assert.ok(nodeVerify('sha256', msg, rsa.publicKey, unb64(s2.body.signature)));
    const d = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: sealed[0]!.ciphertext });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal((await ekm(t, 'partner', 'start')).code, 0);
  });

  it('a wiped Aux gets its RSA pieces again from EP and Partner: it signs with the EP alone, and the keys move to a new epoch', async () => {
    await waitInService(t);
    await ekm(t, 'aux', 'stop');
    rmSync(join(t.homes.aux, 'data'), { recursive: true, force: true });
    assert.equal((await ekm(t, 'aux', 'start')).code, 0);
    await waitInService(t);
    // All three up, but the Aux holds no share: it refuses the cross-checked AES session, and EP +
    // Partner answer with proofs instead (AesKeys.objectKeys), for every request of the batch.
    const viaProofs = await Promise.all(
      sealed.map((x) =>
        api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, {
          ciphertext: x.ciphertext,
          ...(x.aad ? { aad: b64(x.aad) } : {}),
        }),
      ),
    );
    viaProofs.forEach((d, i) => assert.equal(unb64(d.body.plaintext).toString(), sealed[i]!.plaintext, JSON.stringify(d.body)));
    assert.match(
      readFileSync(join(t.homes.ep, 'logs', 'ekm.log'), 'utf8'),
      /the cross-checked AES session failed; evaluating again with proofs/,
    );
    const before = (await api.call<{ epoch: number }>('GET', `/keys/${rsa.keyId}`)).body.epoch;
    const r = await api.call<{ keys: number }>('POST', '/servers/aux/rederive');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.ok(r.body.keys >= 3, JSON.stringify(r.body)); // the RSA, imported RSA and AES keys
    assert.equal((await api.call<{ epoch: number }>('GET', `/keys/${rsa.keyId}`)).body.epoch, before + 1);
    // EP + the re-derived Aux only: the Partner is down.
    await ekm(t, 'partner', 'stop');
    const msg = Buffer.from('EP and the new Aux');
    const sg = await api.call<{ signature: string }>('POST', `/keys/${rsa.keyId}/sign`, {
      message: b64(msg),
      scheme: 'pss',
      hash: 'sha384',
    });
    assert.equal(sg.status, 200, JSON.stringify(sg.body));
    assert.ok(
      nodeVerify('sha384', msg, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 48 }, unb64(sg.body.signature)),
    );
    const d = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, {
      ciphertext: sealed[0]!.ciphertext,
      ...(sealed[0]!.aad ? { aad: b64(sealed[0]!.aad) } : {}),
    });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal((await ekm(t, 'partner', 'start')).code, 0);
  });
});
