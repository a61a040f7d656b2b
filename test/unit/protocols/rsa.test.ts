/**
 * Threshold RSA (src/protocols/rsa.ts, docs/protocols.md §12.1 option (a)): the dealer, signing
 * (PKCS#1 v1.5, PSS; SHA-256/384/512) verified by node:crypto and the openssl CLI, decryption (OAEP
 * SHA-1/SHA-256, PKCS#1 v1.5) of ciphertexts made by node:crypto and openssl, with Partner or Aux
 * as the helper, at 2048/3072/4096 bits, and public key export.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { addBytesCt, os2ip, subBytesCt } from '../../../src/crypto/modexp.js';
import { hash } from '../../../src/crypto/rsa-padding.js';
import {
  contributionBytes,
  createRsaCoordinator,
  createRsaHelper,
  dealRsaKey,
  exportRsaPublicKey,
  parseRsaRequest,
  pieceBytes,
  RSA_PIECES_OF,
  type DealtRsaKey,
  type RsaBits,
  type RsaKeyShare,
  type RsaOperation,
} from '../../../src/protocols/rsa.js';
import { seededRng } from '../../support/ec-test-keys.js';
import { TRIPLET, dealtRsaKey, rsaResult, rsaTestKey, runRsa } from '../../support/rsa-test-keys.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'ekm-rsa-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** TEST ONLY: d from the shares, a + b − c (never done in production). */
function recombine(key: DealtRsaKey): bigint {
  const { a, b } = key.shares[1].pieces;
  const { c } = key.shares[2].pieces;
  const sum = addBytesCt(a!, b!, a!.length);
  return os2ip(subBytesCt(sum, c!, sum.length).value);
}
const dOf = (bits: RsaBits): bigint =>
  os2ip(new Uint8Array(Buffer.from(rsaTestKey(bits).privateKey.export({ format: 'jwk' }).d!, 'base64url')));

function opensslVerify(bits: RsaBits, h: string, pss: boolean, msg: Uint8Array, sig: Uint8Array): string {
  const pub = path.join(tmp, `pub-${bits}.pem`);
  fs.writeFileSync(pub, rsaTestKey(bits).publicKey.export({ type: 'spki', format: 'pem' }));
  fs.writeFileSync(path.join(tmp, 'msg'), msg);
  fs.writeFileSync(path.join(tmp, 'sig'), sig);
  const pssOpts = pss ? ['-sigopt', 'rsa_padding_mode:pss', '-sigopt', 'rsa_pss_saltlen:digest', '-sigopt', `rsa_mgf1_md:${h}`] : [];
  return execFileSync(
    'openssl',
    ['dgst', `-${h}`, '-verify', pub, ...pssOpts, '-signature', path.join(tmp, 'sig'), path.join(tmp, 'msg')],
    { encoding: 'utf8' },
  ).trim();
}

describe('dealer', () => {
  it('splits d into a, b (|N|+128 bits) and c = a + b − d, held (a,b) / (b,c) / (c,a)', () => {
    const key = dealtRsaKey(2048);
    assert.equal(recombine(key), dOf(2048));
    for (const id of [1, 2, 3] as const) {
      const s = key.shares[id];
      assert.deepEqual(Object.keys(s.pieces).sort(), [...RSA_PIECES_OF[id]].sort());
      for (const p of Object.values(s.pieces)) assert.equal(p.length, pieceBytes('rsa-2048'));
      assert.equal(s.epoch, 0);
    }
    const a = os2ip(key.shares[1].pieces.a!);
    assert.ok(a < 1n << BigInt(8 * contributionBytes('rsa-2048')) && a > 1n << 2048n, 'a has |N| + 128 bits');
    assert.equal(key.shares[1].pieces.a, key.shares[3].pieces.a, 'same piece object at its two holders');
  });

  it('generates a fresh key, imports PKCS#8 DER, and refuses non-RSA keys and other sizes', () => {
    const gen = dealRsaKey('gen', { generate: 2048 }, seededRng('gen'));
    const run = runRsa(gen.shares, 2, { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest: hash('sha256', utf8('x')) });
    const sig = rsaResult(run);
    assert.ok(sig instanceof Uint8Array);
    assert.ok(crypto.verify('sha256', utf8('x'), exportRsaPublicKey(gen.public, 'pem') as string, sig));
    const der = rsaTestKey(2048).privateKey.export({ type: 'pkcs8', format: 'der' });
    assert.equal(dealRsaKey('der', { privateKey: new Uint8Array(der) }, seededRng('der')).public.n, dealtRsaKey(2048).public.n);
    const ec = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.throws(() => dealRsaKey('ec', { privateKey: ec }, seededRng('ec')), /not an RSA key/);
    const small = crypto.generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    assert.throws(() => dealRsaKey('small', { privateKey: small }, seededRng('s')), /2048, 3072 or 4096/);
  });

  it('exports the public key as PEM, DER and JWK equal to the original', () => {
    const key = dealtRsaKey(2048);
    const orig = rsaTestKey(2048).publicKey;
    assert.equal(exportRsaPublicKey(key.public, 'pem'), orig.export({ type: 'spki', format: 'pem' }));
    assert.deepEqual(exportRsaPublicKey(key.public, 'der'), new Uint8Array(orig.export({ type: 'spki', format: 'der' })));
    const jwk = orig.export({ format: 'jwk' });
    assert.deepEqual(exportRsaPublicKey(key.public, 'jwk'), { kty: 'RSA', n: jwk.n, e: jwk.e });
  });
});

const SIZES: readonly RsaBits[] = [2048, 3072, 4096];

describe('signing', () => {
  it("EP's partial is kept for after its request left (step.more → resume), and the signature is the same either way", () => {
    const key = dealtRsaKey(2048);
    const msg = utf8('overlap');
    const op: RsaOperation = { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest: hash('sha256', msg) };
    const sign = (resume: boolean): Uint8Array => {
      const ep = createRsaCoordinator({ share: key.shares[1], tripletId: TRIPLET, helper: 2, operation: op, rng: seededRng('overlap') });
      const helper = createRsaHelper({ share: key.shares[2], tripletId: TRIPLET });
      const request = ep.start();
      assert.equal(request.more, true, 'EP asks to compute its partial once the request is out');
      if (resume) assert.deepEqual(ep.resume!(), { persist: [], send: [] }, 'local work only: nothing to send yet');
      const out = ep.receive(helper.receive(request.send[0]!).send[0]!).output;
      assert.equal(out?.kind, 'signature');
      return (out as { signature: Uint8Array }).signature;
    };
    const sig = sign(true);
    assert.deepEqual(sign(false), sig);
    assert.ok(crypto.verify('sha256', msg, rsaTestKey(2048).publicKey, sig));
  });

  for (const bits of SIZES) {
    it(`RSA-${bits}: PKCS#1 v1.5 and PSS signatures verify under the original public key (node:crypto, openssl CLI)`, () => {
      const key = dealtRsaKey(bits);
      const { publicKey, privateKey } = rsaTestKey(bits);
      const hashes = bits === 2048 ? (['sha256', 'sha384', 'sha512'] as const) : (['sha256'] as const);
      let n = 0;
      for (const h of hashes) {
        for (const scheme of ['pkcs1v15', 'pss'] as const) {
          for (const helper of [2, 3] as const) {
            const msg = utf8(`${bits} ${h} ${scheme} ${helper}`);
            const op: RsaOperation = { kind: 'sign', scheme, hash: h, digest: hash(h, msg) };
            const run = runRsa(key.shares, helper, op, { seed: `${bits}${h}${scheme}${helper}` });
            assert.equal(run.aborts.size, 0);
            const sig = rsaResult(run);
            assert.ok(sig instanceof Uint8Array, 'signature released');
            assert.equal(run.outputs.get(helper)?.kind, 'partial-sent');
            const pss = scheme === 'pss';
            const vk = pss
              ? { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: crypto.constants.RSA_PSS_SALTLEN_DIGEST }
              : publicKey;
            assert.ok(crypto.verify(h, msg, vk, sig), `node verifies ${scheme} ${h} helper ${helper}`);
            if (!pss) assert.deepEqual(sig, new Uint8Array(crypto.sign(h, msg, privateKey)), 'same bytes as the original key signs');
            if (helper === 2 || bits === 2048) assert.equal(opensslVerify(bits, h, pss, msg, sig), 'Verified OK');
            n++;
          }
        }
      }
      assert.ok(n >= 4);
    });
  }
});

describe('decryption', () => {
  it('RSA-2048: OAEP (SHA-1, SHA-256, label) and PKCS#1 v1.5 ciphertexts from node:crypto and openssl decrypt, with either helper', () => {
    const key = dealtRsaKey(2048);
    const { publicKey } = rsaTestKey(2048);
    const label = utf8('context label');
    for (const helper of [2, 3] as const) {
      for (const oaepHash of ['sha1', 'sha256'] as const) {
        for (const lbl of [undefined, label]) {
          const msg = crypto.randomBytes(64);
          const ct = crypto.publicEncrypt(
            { key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash, ...(lbl ? { oaepLabel: lbl } : {}) },
            msg,
          );
          const run = runRsa(key.shares, helper, {
            kind: 'decrypt',
            scheme: 'oaep',
            hash: oaepHash,
            ciphertext: new Uint8Array(ct),
            ...(lbl ? { label: lbl } : {}),
          });
          assert.deepEqual(rsaResult(run), new Uint8Array(msg), `OAEP ${oaepHash} label ${!!lbl} helper ${helper}`);
        }
      }
      const msg = crypto.randomBytes(100);
      const ct = crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, msg);
      assert.deepEqual(
        rsaResult(runRsa(key.shares, helper, { kind: 'decrypt', scheme: 'pkcs1v15', ciphertext: new Uint8Array(ct) })),
        new Uint8Array(msg),
      );
    }
    // openssl pkeyutl -encrypt (OAEP SHA-256)
    const pub = path.join(tmp, 'pub-dec.pem');
    fs.writeFileSync(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    fs.writeFileSync(path.join(tmp, 'plain'), 'from the openssl command line');
    execFileSync('openssl', [
      'pkeyutl',
      '-encrypt',
      '-pubin',
      '-inkey',
      pub,
      '-pkeyopt',
      'rsa_padding_mode:oaep',
      '-pkeyopt',
      'rsa_oaep_md:sha256',
      '-pkeyopt',
      'rsa_mgf1_md:sha256',
      '-in',
      path.join(tmp, 'plain'),
      '-out',
      path.join(tmp, 'ct'),
    ]);
    const ct = new Uint8Array(fs.readFileSync(path.join(tmp, 'ct')));
    assert.equal(
      Buffer.from(
        rsaResult(runRsa(key.shares, 2, { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: ct })) as Uint8Array,
      ).toString(),
      'from the openssl command line',
    );
  });

  it('RSA-3072 and RSA-4096: OAEP SHA-256 round trip', () => {
    for (const bits of [3072, 4096] as const) {
      const msg = crypto.randomBytes(32);
      const ct = crypto.publicEncrypt(
        { key: rsaTestKey(bits).publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        msg,
      );
      assert.deepEqual(
        rsaResult(runRsa(dealtRsaKey(bits).shares, 3, { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: new Uint8Array(ct) })),
        new Uint8Array(msg),
      );
    }
  });

  it('OAEP faults (bad padding, wrong label, wrong hash) and out-of-range ciphertexts give one uniform decryption-failed', () => {
    const key = dealtRsaKey(2048);
    const { publicKey } = rsaTestKey(2048);
    const n = key.public.n;
    const oaep = new Uint8Array(
      crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, utf8('m')),
    );
    const pkcs1 = new Uint8Array(crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_PADDING }, utf8('m')));
    const cases: [string, RsaOperation][] = [
      ['wrong label', { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: oaep, label: utf8('x') }],
      ['wrong hash', { kind: 'decrypt', scheme: 'oaep', hash: 'sha1', ciphertext: oaep }],
      ['PKCS#1 as OAEP', { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: pkcs1 }],
      [
        'c = 1',
        { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: Uint8Array.from({ length: 256 }, (_, i) => (i === 255 ? 1 : 0)) },
      ],
      ['c = n', { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: new Uint8Array(Buffer.from(n.toString(16), 'hex')) }],
      ['short', { kind: 'decrypt', scheme: 'oaep', hash: 'sha256', ciphertext: oaep.subarray(1) }],
    ];
    for (const [name, op] of cases) {
      const run = runRsa(key.shares, 2, op);
      assert.equal(run.aborts.size, 0, name);
      assert.equal(rsaResult(run), 'decryption-failed', name);
    }
  });

  it('PKCS#1 v1.5 faults give a synthetic plaintext (implicit rejection): the same from either helper and every run, never an error', () => {
    const key = dealtRsaKey(2048);
    const { publicKey } = rsaTestKey(2048);
    const oaep = new Uint8Array(
      crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, utf8('m')),
    );
    const random = new Uint8Array(crypto.randomBytes(256).map((b, i) => (i === 0 ? 0x10 : b)));
    const seen = new Set<string>();
    for (const [name, ciphertext] of [
      ['OAEP as PKCS#1', oaep],
      ['random ciphertext', random],
    ] as const) {
      const op: RsaOperation = { kind: 'decrypt', scheme: 'pkcs1v15', ciphertext };
      const outs = [2, 3, 2].map((helper) => {
        const run = runRsa(key.shares, helper as 2 | 3, op);
        assert.equal(run.aborts.size, 0, name);
        const out = rsaResult(run);
        assert.ok(out instanceof Uint8Array, `${name}: ${String(out)}`);
        return out;
      });
      assert.ok(outs[0]!.length <= 256 - 11, name);
      assert.deepEqual(outs[1], outs[0], `${name}: Aux as helper gives the same`);
      assert.deepEqual(outs[2], outs[0], `${name}: deterministic`);
      seen.add(Buffer.from(outs[0]!).toString('hex'));
    }
    assert.equal(seen.size, 2);
  });
});

describe('session rules', () => {
  it('the helper refuses another epoch, key, or triplet, and the host can parse the request', () => {
    const key = dealtRsaKey(2048);
    const op: RsaOperation = { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest: hash('sha256', utf8('r')) };
    const clean = runRsa(key.shares, 2, op);
    const info = parseRsaRequest(clean.transcript[0]!);
    assert.deepEqual([info.header.keyId, info.header.epoch, info.helper, info.kind], ['rsa-2048', 0, 2, 'sign']);
    const other = (s: RsaKeyShare, patch: Partial<RsaKeyShare>): RsaKeyShare => ({ ...s, ...patch });
    for (const [name, helperShare] of [
      ['epoch', other(key.shares[2], { epoch: 1 })],
      ['key id', other(key.shares[2], { keyId: 'other' })],
    ] as const) {
      const run = runRsa({ ...key.shares, 2: helperShare }, 2, op);
      assert.equal(rsaResult(run), 'aborted', name);
      assert.match(run.aborts.get(2)!.reason, /mismatch/);
    }
    assert.equal(rsaResult(runRsa(key.shares, 2, op, { tripletId: 'another' })), 'aborted');
  });
});
