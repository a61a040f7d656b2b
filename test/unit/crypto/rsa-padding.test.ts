/**
 * RFC 8017 encodings (src/crypto/rsa-padding.ts) against Wycheproof (the copies vendored under
 * test/vectors/wycheproof, source and licence in test/vectors/README.md) and against node:crypto.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bitLength, byteLength, i2osp, modPowSecret, os2ip } from '../../../src/crypto/modexp.js';
import {
  emsaPkcs1v15Encode,
  emsaPssEncode,
  emsaPssVerify,
  hash,
  RsaDecryptionError,
  rsaesOaepDecode,
  rsaesPkcs1v15DecodeImplicit,
  rsassaPkcs1v15Verify,
  rsassaPssVerify,
  type RsaSignHash,
} from '../../../src/crypto/rsa-padding.js';

const VECTORS = fileURLToPath(new URL('../../vectors/wycheproof/', import.meta.url));

interface WyTest {
  tcId: number;
  msg: string;
  ct?: string;
  sig?: string;
  label?: string;
  result: 'valid' | 'invalid' | 'acceptable';
  flags: string[];
}
interface WyGroup {
  tests: WyTest[];
  privateKeyPem?: string;
  publicKeyPem?: string;
  sLen?: number;
}
function load(file: string): WyGroup[] {
  return (JSON.parse(fs.readFileSync(path.join(VECTORS, file), 'utf8')) as { testGroups: WyGroup[] }).testGroups;
}
const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const big = (b64: string): bigint => os2ip(new Uint8Array(Buffer.from(b64, 'base64url')));

function numbers(key: crypto.KeyObject): { n: bigint; e: bigint; d?: Uint8Array } {
  const jwk = key.export({ format: 'jwk' });
  return { n: big(jwk.n!), e: big(jwk.e!), ...(jwk.d ? { d: new Uint8Array(Buffer.from(jwk.d, 'base64url')) } : {}) };
}

/** TEST ONLY: raw RSA with the whole private exponent, through the same modexp. */
function rawPrivate(key: crypto.KeyObject, x: Uint8Array): Uint8Array {
  const { n, d } = numbers(key);
  return i2osp(modPowSecret(os2ip(x), d!, n), byteLength(n));
}

const K2048 = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const K1025 = crypto.generateKeyPairSync('rsa', { modulusLength: 1025 });

describe('Wycheproof', () => {
  it('RSAES-OAEP SHA-256/MGF1-SHA-256 decrypt: every valid vector decodes to msg, every invalid one fails uniformly', (t) => {
    let valid = 0;
    let invalid = 0;
    for (const g of load('rsa_oaep_2048_sha256_mgf1sha256_test.json')) {
      const key = crypto.createPrivateKey(g.privateKeyPem!);
      const { n } = numbers(key);
      const k = byteLength(n);
      for (const tc of g.tests) {
        const ct = hex(tc.ct!);
        let out: Uint8Array | Error;
        try {
          if (ct.length !== k || os2ip(ct) >= n) throw new RsaDecryptionError();
          out = rsaesOaepDecode('sha256', rawPrivate(key, ct), hex(tc.label!));
        } catch (e) {
          out = e as Error;
        }
        if (tc.result === 'valid') {
          assert.ok(out instanceof Uint8Array, `tc ${tc.tcId} decodes`);
          assert.deepEqual(out, hex(tc.msg), `tc ${tc.tcId} message`);
          valid++;
        } else if (tc.result === 'invalid') {
          assert.ok(out instanceof RsaDecryptionError, `tc ${tc.tcId} fails`);
          assert.equal(out.message, 'decryption error');
          invalid++;
        }
      }
    }
    t.diagnostic(`${valid} valid, ${invalid} invalid`);
    assert.ok(valid > 0 && invalid > 0);
  });

  it('RSASSA-PSS SHA-256/MGF1-SHA-256/sLen 32 verify matches `result`', (t) => {
    let n = 0;
    for (const g of load('rsa_pss_2048_sha256_mgf1_32_test.json')) {
      const pub = numbers(crypto.createPublicKey(g.publicKeyPem!));
      for (const tc of g.tests) {
        if (tc.result === 'acceptable') continue;
        const ok = rsassaPssVerify(pub, 'sha256', hash('sha256', hex(tc.msg)), hex(tc.sig!), g.sLen);
        assert.equal(ok, tc.result === 'valid', `tc ${tc.tcId} (${tc.flags.join(',')})`);
        n++;
      }
    }
    t.diagnostic(`${n} vectors`);
  });

  it('RSASSA-PKCS1-v1_5 SHA-256 verify matches `result` (all key groups)', (t) => {
    let n = 0;
    for (const g of load('rsa_signature_2048_sha256_test.json')) {
      const pub = numbers(crypto.createPublicKey(g.publicKeyPem!));
      for (const tc of g.tests) {
        if (tc.result === 'acceptable') continue;
        const ok = rsassaPkcs1v15Verify(pub, 'sha256', hash('sha256', hex(tc.msg)), hex(tc.sig!));
        assert.equal(ok, tc.result === 'valid', `tc ${tc.tcId} (${tc.flags.join(',')})`);
        n++;
      }
    }
    t.diagnostic(`${n} vectors`);
  });
});

describe('against node:crypto', () => {
  const HASHES: RsaSignHash[] = ['sha256', 'sha384', 'sha512'];
  for (const [name, kp] of [
    ['2048', K2048],
    ['1025 (emBits not a multiple of 8)', K1025],
  ] as const) {
    it(`EMSA-PKCS1-v1_5 and EMSA-PSS encodings sign what node verifies, and verify what node signs (${name})`, () => {
      const pub = numbers(kp.publicKey);
      const k = byteLength(pub.n);
      const msg = new TextEncoder().encode(`message ${name}`);
      for (const h of HASHES) {
        const digest = hash(h, msg);
        if (k >= 19 + digest.length + 11) {
          const sig = rawPrivate(kp.privateKey, emsaPkcs1v15Encode(h, digest, k));
          assert.ok(crypto.verify(h, msg, kp.publicKey, sig), `node verifies our PKCS#1 ${h}`);
          assert.ok(rsassaPkcs1v15Verify(pub, h, digest, crypto.sign(h, msg, kp.privateKey)));
        }
        const sLen = digest.length;
        const emBits = bitLength(pub.n) - 1;
        if (Math.ceil(emBits / 8) < 2 * sLen + 2) continue;
        const em = emsaPssEncode(h, digest, emBits, crypto.randomBytes(sLen));
        assert.ok(emsaPssVerify(h, digest, em, emBits));
        const sig = rawPrivate(kp.privateKey, em);
        const opts = { key: kp.publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: sLen };
        assert.ok(crypto.verify(h, msg, opts, sig), `node verifies our PSS ${h}`);
        const nodeSig = crypto.sign(h, msg, { key: kp.privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: sLen });
        assert.ok(rsassaPssVerify(pub, h, digest, nodeSig));
        assert.ok(!rsassaPssVerify(pub, h, hash(h, Uint8Array.of(1)), nodeSig), 'other digest');
      }
    });
  }

  it('PSS with salt length 0 and 20, and a wrong salt length is refused', () => {
    const pub = numbers(K2048.publicKey);
    const digest = hash('sha256', Uint8Array.of(7));
    for (const sLen of [0, 20]) {
      const em = emsaPssEncode('sha256', digest, 2047, crypto.randomBytes(sLen));
      const sig = rawPrivate(K2048.privateKey, em);
      assert.ok(rsassaPssVerify(pub, 'sha256', digest, sig, sLen));
      assert.ok(!rsassaPssVerify(pub, 'sha256', digest, sig, sLen + 1));
    }
  });

  it('OAEP (SHA-1, SHA-256, with and without label) decodes what node:crypto publicEncrypt made', () => {
    const k = 256;
    for (const oaepHash of ['sha1', 'sha256'] as const) {
      for (const label of [undefined, new TextEncoder().encode('a label')]) {
        for (const len of [0, 1, 100, k - 2 * (oaepHash === 'sha1' ? 20 : 32) - 2]) {
          const msg = crypto.randomBytes(len);
          const ct = crypto.publicEncrypt(
            { key: K2048.publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash, ...(label ? { oaepLabel: label } : {}) },
            msg,
          );
          const em = rawPrivate(K2048.privateKey, ct);
          assert.deepEqual(rsaesOaepDecode(oaepHash, em, label), new Uint8Array(msg));
          assert.throws(() => rsaesOaepDecode(oaepHash, em, new TextEncoder().encode('other label')), RsaDecryptionError);
          assert.throws(() => rsaesOaepDecode(oaepHash === 'sha1' ? 'sha256' : 'sha1', em, label), RsaDecryptionError);
        }
      }
    }
  });

  it('PKCS#1 v1.5 decodes what node:crypto publicEncrypt made', () => {
    for (const len of [0, 1, 100, 245]) {
      const msg = crypto.randomBytes(len);
      const ct = crypto.publicEncrypt({ key: K2048.publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, msg);
      assert.deepEqual(rsaesPkcs1v15DecodeImplicit(rawPrivate(K2048.privateKey, ct), new Uint8Array(ct)), new Uint8Array(msg));
    }
  });

  it('PKCS#1 v1.5 padding faults give a synthetic message, never an error: deterministic, ≤ k − 11 bytes, bound to EM and ciphertext', () => {
    const ct = new Uint8Array(256).fill(0x33);
    const good = (): Uint8Array => {
      const em = new Uint8Array(256).fill(0x5a);
      em[0] = 0;
      em[1] = 2;
      em[200] = 0;
      return em;
    };
    assert.deepEqual(rsaesPkcs1v15DecodeImplicit(good(), ct), good().slice(201));
    const faults: [string, (em: Uint8Array) => void][] = [
      ['first byte', (em) => (em[0] = 1)],
      ['block type 1', (em) => (em[1] = 1)],
      ['no separator', (em) => (em[200] = 7)],
      ['PS of 7 bytes', (em) => (em[9] = 0)],
      ['separator right after the type', (em) => (em[2] = 0)],
    ];
    const outputs = new Set<string>();
    for (const [name, f] of faults) {
      const em = good();
      f(em);
      const out = rsaesPkcs1v15DecodeImplicit(em, ct);
      assert.ok(out.length <= 256 - 11, name);
      assert.deepEqual(rsaesPkcs1v15DecodeImplicit(em, ct), out, `${name}: the same input gives the same message`);
      assert.notDeepEqual(
        rsaesPkcs1v15DecodeImplicit(
          em,
          ct.map((b, i) => (i === 0 ? b ^ 1 : b)),
        ),
        out,
        `${name}: bound to the ciphertext`,
      );
      const tail = em.slice(em.length - out.length);
      assert.notDeepEqual(out, tail, `${name}: not a piece of EM`);
      outputs.add(Buffer.from(out).toString('hex'));
    }
    assert.equal(outputs.size, faults.length, 'another EM, another synthetic message');
    // Lengths spread over 0..k − 11 as the draft's selection makes them.
    const lengths = Array.from({ length: 200 }, (_, i) => rsaesPkcs1v15DecodeImplicit(new Uint8Array(256).fill(i + 1), ct).length);
    assert.ok(Math.max(...lengths) <= 245 && new Set(lengths).size > 100, `lengths ${Math.min(...lengths)}..${Math.max(...lengths)}`);
    const em = good();
    em[10] = 0; // PS of exactly 8 bytes: valid
    assert.equal(rsaesPkcs1v15DecodeImplicit(em, ct).length, 245);
    assert.throws(
      () => rsaesPkcs1v15DecodeImplicit(good(), ct.subarray(1)),
      RsaDecryptionError,
      'a ciphertext of the wrong length is refused (public)',
    );
  });
});
