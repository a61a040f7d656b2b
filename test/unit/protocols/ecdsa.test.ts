/**
 * Threshold ECDSA (docs/protocols.md §3): formats, algebra with injected RNGs, and random
 * keys × signatures verified by node:crypto and noble.
 *
 * Sample size: EKM_PROTOCOL_SAMPLES signatures per curve and mode (default 20, sized to keep this
 * file near 10 s on a 2-core machine; `npm run test:full` runs EKM_PROTOCOL_SAMPLES=1000).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { p256, p384 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { decodeEnc, fromHex } from '../../../src/crypto/encoding.js';
import { decodeScalar } from '../../../src/crypto/curves.js';
import {
  bits2intModQ,
  decodeDer,
  decodeP1363,
  encodeDer,
  encodeP1363,
  normaliseLowS,
} from '../../../src/crypto/ecdsa-format.js';
import {
  decodePresig,
  ecdsaPublicJwk,
  encodePresig,
  parseEcdsaRequest,
  verifyEcdsa,
  ECDSA_ALGS,
  ECDSA_DEFAULT_HASH,
  type EcdsaAlg,
  type EcdsaOutput,
  type EcdsaSignature,
  type SignedInput,
} from '../../../src/protocols/ecdsa.js';
import { randomScalar } from '../../../src/protocols/ecdsa-session.js';
import { ProtocolAbort } from '../../../src/protocols/types.js';
import {
  dealKey,
  presigStores,
  runEcdsaOnline,
  runEcdsaSign,
  seededRng,
} from '../../support/ec-test-keys.js';

const SAMPLES = Number(process.env.EKM_PROTOCOL_SAMPLES ?? 20);
const NOBLE = { 'ecdsa-secp256k1': secp256k1, 'ecdsa-p256': p256, 'ecdsa-p384': p384 } as const;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function signature(out: EcdsaOutput | undefined): EcdsaSignature {
  assert.ok(out && out.kind === 'signature', 'EP produced a signature');
  return out;
}

/** Independent checks: node:crypto on M (P1363 and DER) and noble on the digest. */
function assertValid(alg: EcdsaAlg, Y: Uint8Array, input: SignedInput, sig: EcdsaSignature): void {
  const key = crypto.createPublicKey({ key: ecdsaPublicJwk(alg, Y), format: 'jwk' });
  if (input.kind === 'message') {
    assert.ok(crypto.verify(input.hash, input.data, { key, dsaEncoding: 'ieee-p1363' }, sig.p1363), 'node:crypto P1363');
    assert.ok(crypto.verify(input.hash, input.data, key, sig.der), 'node:crypto DER');
  }
  assert.ok(NOBLE[alg].verify(sig.p1363, sig.digest, Y, { prehash: false, lowS: true }), 'noble verify');
  if (alg === 'ecdsa-secp256k1') {
    assert.ok(sig.recovery !== undefined, 'secp256k1 signatures carry a recovery id');
    const rec = secp256k1.Signature.fromBytes(sig.p1363).addRecoveryBit(sig.recovery).recoverPublicKey(sig.digest);
    assert.deepEqual(rec.toBytes(true), Y, 'recovery id recovers Y');
  } else {
    assert.equal(sig.recovery, undefined, 'recovery ids are for secp256k1 only');
  }
}

test('formats: P1363 and DER round trip, strict DER, low-s, bits2int', () => {
  const q = p256.Point.Fn.ORDER;
  for (const [r, s] of [
    [1n, 1n],
    [q - 1n, q >> 1n],
    [0x80n, 0x7fn],
    [q >> 3n, 0xff00n],
  ] as const) {
    assert.deepEqual(decodeP1363(encodeP1363(r, s, q, 32), q, 32), { r, s });
    const der = encodeDer(r, s, q);
    assert.deepEqual(decodeDer(der, q), { r, s });
    assert.deepEqual(der, p256.Signature.fromBytes(encodeP1363(r, s, q, 32)).toBytes('der'));
  }
  assert.throws(() => encodeP1363(0n, 1n, q, 32));
  assert.throws(() => decodeP1363(encodeP1363(1n, 1n, q, 32).subarray(1), q, 32));
  assert.throws(() => decodeDer(fromHex('3006020100020101'), q), 'zero r');
  assert.throws(() => decodeDer(fromHex('300702020001020101'), q), 'non-minimal integer');
  assert.throws(() => decodeDer(fromHex('3006020180020101'), q), 'negative integer');
  assert.throws(() => decodeDer(fromHex('300602010102010100'), q), 'trailing bytes');
  assert.throws(() => decodeDer(fromHex('30810602010102010'), q), 'long form for a short length');
  assert.equal(normaliseLowS(q - 1n, q), 1n);
  assert.equal(normaliseLowS(5n, q), 5n);
  // bits2int keeps the leftmost bitlen(q) bits (SHA-512 on P-256, SHA-256 on P-384).
  const d = new Uint8Array(64).fill(0xff);
  assert.equal(bits2intModQ(d, q), ((1n << 256n) - 1n) % q);
  const q384 = p384.Point.Fn.ORDER;
  assert.equal(bits2intModQ(new Uint8Array(32).fill(1), q384), BigInt('0x' + '01'.repeat(32)));
});

test('presignature record codec round-trips and rejects a zero c', () => {
  const key = dealKey('ecdsa-p256');
  const stores = presigStores(key, 1, 'codec');
  const p = [...stores[2].shares.values()][0]!;
  assert.deepEqual(decodePresig(encodePresig(p)), p);
  assert.throws(() => decodePresig(encodePresig({ ...p, c: 0n })));
});

test('algebra with injected RNGs: R = k·G, w = a·k, s = k⁻¹(m + r·x)', () => {
  for (const alg of ECDSA_ALGS) {
    const key = dealKey(alg);
    const curve = key.curve;
    const Fn = curve.Fn;
    const seed = `algebra-${alg}`;
    const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('algebra') };
    const run = runEcdsaSign(key, input, { seed, nonce: new Uint8Array(32).fill(7) });
    const sig = signature(run.outputs.get(1));
    // Replay each party's RNG: PresignCore draws k0, k1, a0, a1, u1, u2, v1, v2, e1, e2 in order.
    let k = 0n;
    let a = 0n;
    for (const j of [1, 2, 3]) {
      const rng = seededRng(`${seed}/${j}`);
      const draws = Array.from({ length: 10 }, () => randomScalar(curve, rng));
      k = Fn.add(k, draws[0]!);
      a = Fn.add(a, draws[2]!);
    }
    const R = curve.G.multiply(k);
    assert.equal(Fn.create(R.toAffine().x), sig.r, 'r = x(k·G)');
    const ws = run.transcript
      .filter((e) => e.round === 2 && (e.to === (e.from === 1 ? 2 : 1)))
      .sort((x, y) => x.from - y.from)
      .map((e) => decodeScalar(curve, decodeEnc(e.body)[1]!));
    assert.equal(ws.length, 3);
    const w = Fn.add(Fn.sub(Fn.mul(3n, ws[0]!), Fn.mul(3n, ws[1]!)), ws[2]!);
    assert.equal(w, Fn.mul(a, k), 'w = a·k');
    const m = bits2intModQ(sig.digest, curve.order);
    const s = Fn.mul(Fn.inv(k), Fn.add(m, Fn.mul(sig.r, key.x)));
    assert.equal(sig.s, normaliseLowS(s, curve.order), 's = k⁻¹(m + r·x), low-s');
    assertValid(alg, key.pub.Y, input, sig);
  }
});

for (const alg of ECDSA_ALGS) {
  test(`${alg}: ${SAMPLES} random keys × on-demand signatures verify (node:crypto + noble)`, () => {
    for (let i = 0; i < SAMPLES; i++) {
      const key = dealKey(alg, { rng: seededRng(`${alg}-key-${i}`) });
      const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8(`message ${i}`) };
      const run = runEcdsaSign(key, input);
      assert.equal(run.aborts.size, 0, [...run.aborts.values()].map((e) => e.message).join('; '));
      assertValid(alg, key.pub.Y, input, signature(run.outputs.get(1)));
      for (const j of [2, 3] as const) assert.equal(run.outputs.get(j)?.kind, 'share-sent');
    }
  });

  test(`${alg}: ${SAMPLES} pool-mode signatures verify; every presignature used once`, () => {
    const key = dealKey(alg, { rng: seededRng(`${alg}-pool-key`) });
    const stores = presigStores(key, SAMPLES, `${alg}-pool`);
    const psids = [...stores[1].shares.values()].map((p) => p.psid);
    for (const [i, psid] of psids.entries()) {
      const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8(`pool ${i}`) };
      const run = runEcdsaOnline(key, stores, psid, input);
      assert.equal(run.aborts.size, 0, [...run.aborts.values()].map((e) => e.message).join('; '));
      assertValid(alg, key.pub.Y, input, signature(run.outputs.get(1)));
      // Each party persisted presig-used exactly once, in the step that first sent for it.
      for (const j of [1, 2, 3] as const) assert.equal(run.persisted.get(j)!.length, 1);
    }
    for (const j of [1, 2, 3] as const) assert.equal(stores[j].shares.size, 0);
  });
}

test('hash choices: SHA-384/512 messages and caller digests; wrong digest length refused', () => {
  const key = dealKey('ecdsa-p256');
  for (const input of [
    { kind: 'message', hash: 'sha384', data: utf8('x') },
    { kind: 'message', hash: 'sha512', data: utf8('y') },
    { kind: 'digest', hash: 'sha256', data: sha256(utf8('z')) },
  ] as SignedInput[]) {
    const run = runEcdsaSign(key, input);
    assertValid('ecdsa-p256', key.pub.Y, input, signature(run.outputs.get(1)));
  }
  assert.throws(() => runEcdsaSign(key, { kind: 'digest', hash: 'sha256', data: new Uint8Array(31) }), RangeError);
  const k384 = dealKey('ecdsa-p384');
  const input: SignedInput = { kind: 'digest', hash: 'sha512', data: crypto.createHash('sha512').update('w').digest() };
  assertValid('ecdsa-p384', k384.pub.Y, input, signature(runEcdsaSign(k384, input).outputs.get(1)));
});

test('verifyEcdsa refuses high-s, wrong message and wrong key', () => {
  const key = dealKey('ecdsa-secp256k1');
  const input: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('v') };
  const sig = signature(runEcdsaSign(key, input).outputs.get(1));
  const q = key.curve.order;
  assert.ok(verifyEcdsa('ecdsa-secp256k1', key.pub.Y, input, sig.p1363));
  assert.ok(!verifyEcdsa('ecdsa-secp256k1', key.pub.Y, input, encodeP1363(sig.r, q - sig.s, q, 32)));
  assert.ok(!verifyEcdsa('ecdsa-secp256k1', key.pub.Y, { ...input, data: utf8('w') }, sig.p1363));
  assert.ok(!verifyEcdsa('ecdsa-secp256k1', key.pub.A[1], input, sig.p1363));
  const digest: SignedInput = { kind: 'digest', hash: 'sha256', data: sig.digest };
  assert.ok(verifyEcdsa('ecdsa-secp256k1', key.pub.Y, digest, sig.p1363));
  // Verification of presented signatures (lowS: false) takes the high-s twin too, message or digest; never a wrong one.
  const high = encodeP1363(sig.r, q - sig.s, q, 32);
  assert.ok(verifyEcdsa('ecdsa-secp256k1', key.pub.Y, input, high, { lowS: false }));
  assert.ok(verifyEcdsa('ecdsa-secp256k1', key.pub.Y, digest, high, { lowS: false }));
  assert.ok(!verifyEcdsa('ecdsa-secp256k1', key.pub.Y, { ...input, data: utf8('w') }, high, { lowS: false }));
});

test('parseEcdsaRequest recomputes the sid from the request (R6 b)', () => {
  const key = dealKey('ecdsa-p256');
  const run = runEcdsaSign(key, { kind: 'message', hash: 'sha256', data: utf8('r') });
  const req = run.transcript.find((e) => e.round === 0)!;
  const info = parseEcdsaRequest(req);
  assert.equal(info.header.keyId, key.pub.keyId);
  assert.equal(info.proto, 'ecdsa-sign');
  const badSid = new Uint8Array(req.sid);
  badSid[0]! ^= 1;
  assert.throws(() => parseEcdsaRequest({ ...req, sid: badSid }), ProtocolAbort);
  assert.throws(() => parseEcdsaRequest({ ...req, from: 2 }), ProtocolAbort);
});

