/**
 * Malicious-party tests for threshold ECDSA (docs/protocols.md §13, §3.5, §11 R1/R2).
 *
 * Every tamper case (each message × drop, duplicate, reorder, wrong from, wrong sid, replay from
 * an earlier session, per field flip-a-bit and valid-but-wrong, and equivocation per broadcast)
 * must end in a valid signature or an abort (or a stall, which a host's timeout ends): never an
 * output that fails verification, never a presignature used twice. Named cases check the
 * abort reason the docs/protocols.md §3.5 table gives.
 *
 * Coverage: the full matrix on secp256k1 (on-demand, pool online, presign), every 4th case on
 * P-256 and every 12th on P-384 (EKM_MALICIOUS_STRIDE=1 runs all of them everywhere).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { p256, p384 } from '@noble/curves/nist.js';
import {
  createEcdsaOnlineHelper,
  verifyEcdsa,
  ECDSA_ALGS,
  ECDSA_DEFAULT_HASH,
  type EcdsaAlg,
  type EcdsaOutput,
  type EcdsaPersist,
  type PresigShare,
  type SignedInput,
} from '../../../src/protocols/ecdsa.js';
import { bits2intModQ, hashMessage } from '../../../src/crypto/ecdsa-format.js';
import { ecdsaEcho } from '../../../src/protocols/ecdsa-presign.js';
import type { RunResult } from '../../support/protocol-harness.js';
import { ProtocolAbort, type Envelope, type PartyId } from '../../../src/protocols/types.js';
import { decodeEnc, enc } from '../../../src/crypto/encoding.js';
import {
  dealKey,
  mutationCases,
  PresigStore,
  presigStores,
  runEcdsaOnline,
  runEcdsaPresign,
  runEcdsaSign,
  seededRng,
  shiftScalar,
  type DealtKey,
} from '../../support/ec-test-keys.js';

const NOBLE = { 'ecdsa-secp256k1': secp256k1, 'ecdsa-p256': p256, 'ecdsa-p384': p384 } as const;
const STRIDE_OVERRIDE = process.env.EKM_MALICIOUS_STRIDE ? Number(process.env.EKM_MALICIOUS_STRIDE) : undefined;
const STRIDE: Record<EcdsaAlg, number> = {
  'ecdsa-secp256k1': STRIDE_OVERRIDE ?? 1,
  'ecdsa-p256': STRIDE_OVERRIDE ?? 4,
  'ecdsa-p384': STRIDE_OVERRIDE ?? 12,
};
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const NONCE = new Uint8Array(32).fill(9);

type Outcome = 'signed' | 'aborted' | 'stalled';

/** The only allowed outcomes: a signature that verifies (two verifiers), or no signature. */
function judge(alg: EcdsaAlg, key: DealtKey, input: SignedInput, run: RunResult<EcdsaOutput, EcdsaPersist>, name: string): Outcome {
  for (const [id, out] of run.outputs) {
    if (out.kind !== 'signature') continue;
    assert.equal(id, 1, `${name}: only EP outputs signatures`);
    assert.ok(verifyEcdsa(alg, key.pub.Y, input, out.p1363), `${name}: released signature verifies`);
    assert.ok(NOBLE[alg].verify(out.p1363, out.digest, key.pub.Y, { prehash: false }), `${name}: noble agrees`);
    const m = bits2intModQ(hashMessage(input.hash, input.data), key.curve.order);
    assert.equal(bits2intModQ(out.digest, key.curve.order), m, `${name}: signed EP's message`);
    return 'signed';
  }
  return run.aborts.size > 0 ? 'aborted' : 'stalled';
}

function reasons(run: RunResult<EcdsaOutput, EcdsaPersist>): Map<PartyId, string> {
  return new Map([...run.aborts].map(([id, a]) => [id, a.reason]));
}

function freshStores(records: Record<PartyId, PresigShare>): Record<PartyId, PresigStore> {
  const s = { 1: new PresigStore(), 2: new PresigStore(), 3: new PresigStore() };
  for (const j of [1, 2, 3] as const) s[j].add(records[j]);
  return s;
}

function tally(results: Outcome[]): string {
  const c = { signed: 0, aborted: 0, stalled: 0 };
  for (const r of results) c[r]++;
  return `${results.length} cases: ${c.signed} signed, ${c.aborted} aborted, ${c.stalled} stalled`;
}

for (const alg of ['ecdsa-secp256k1', 'ecdsa-p256', 'ecdsa-p384'] as const) {
  const stride = STRIDE[alg];

  test(`${alg}: on-demand tamper matrix (1/${stride} of the cases)`, (t) => {
    const key = dealKey(alg, { rng: seededRng(`mal-${alg}`) });
    const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('tamper') };
    const clean = runEcdsaSign(key, input, { seed: 'mal', nonce: NONCE });
    assert.equal(judge(alg, key, input, clean, 'clean'), 'signed');
    const earlier = runEcdsaSign(key, input, { seed: 'earlier' }).transcript;
    const cases = mutationCases(key.curve, clean.transcript, earlier).filter((_, i) => i % stride === 0);
    const results = cases.map((c) => judge(alg, key, input, runEcdsaSign(key, input, { seed: 'mal', nonce: NONCE, intercept: c.intercept }), c.name));
    t.diagnostic(tally(results));
    assert.ok(results.filter((r) => r === 'aborted').length > results.length / 2, 'most tampering aborts');
  });

  test(`${alg}: pool online tamper matrix; no presignature used twice`, (t) => {
    const key = dealKey(alg, { rng: seededRng(`mal-pool-${alg}`) });
    const base = presigStores(key, 1, `mal-pool-${alg}`);
    const records = { 1: [...base[1].shares.values()][0]!, 2: [...base[2].shares.values()][0]!, 3: [...base[3].shares.values()][0]! };
    const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('pool tamper') };
    const clean = runEcdsaOnline(key, freshStores(records), records[1].psid, input, { seed: 'mal', nonce: NONCE });
    assert.equal(judge(alg, key, input, clean, 'clean'), 'signed');
    const earlierRecords = presigStores(key, 1, `mal-pool-earlier-${alg}`);
    const e1 = [...earlierRecords[1].shares.values()][0]!;
    const earlier = runEcdsaOnline(key, earlierRecords, e1.psid, input, { seed: 'earlier' }).transcript;
    const cases = mutationCases(key.curve, clean.transcript, earlier).filter((_, i) => i % Math.max(1, stride / 2) === 0);
    const results = cases.map((c) => {
      const stores = freshStores(records); // markUsed throws if any party would use it twice
      const run = runEcdsaOnline(key, stores, records[1].psid, input, { seed: 'mal', nonce: NONCE, intercept: c.intercept });
      for (const j of [1, 2, 3] as const) assert.ok(run.persisted.get(j)!.length <= 1, `${c.name}: one USED mark`);
      return judge(alg, key, input, run, c.name);
    });
    t.diagnostic(tally(results));
  });
}

test('ecdsa-secp256k1: presign tamper matrix: records at all three only if consistent; they then sign or abort', (t) => {
  const alg = 'ecdsa-secp256k1';
  const key = dealKey(alg, { rng: seededRng('mal-presign') });
  const input: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('after presign tamper') };
  const clean = runEcdsaPresign(key, { seed: 'mal', nonce: NONCE });
  const earlier = runEcdsaPresign(key, { seed: 'earlier' }).transcript;
  const cases = mutationCases(key.curve, clean.transcript, earlier).filter((_, i) => i % 3 === 0);
  const results = cases.map((c) => {
    const run = runEcdsaPresign(key, { seed: 'mal', nonce: NONCE, intercept: c.intercept });
    const recs = ([1, 2, 3] as const).map((j) => run.outputs.get(j));
    if (recs.every((r) => r?.kind === 'presignature')) {
      const records = Object.fromEntries(recs.map((r, k) => [k + 1, (r as { presig: PresigShare }).presig])) as Record<PartyId, PresigShare>;
      assert.deepEqual(records[1].R, records[2].R, `${c.name}: same R`);
      assert.deepEqual(records[1].R, records[3].R, `${c.name}: same R`);
      return judge(alg, key, input, runEcdsaOnline(key, freshStores(records), records[1].psid, input), c.name);
    }
    return run.aborts.size > 0 ? 'aborted' : 'stalled';
  });
  t.diagnostic(tally(results));
});

// ---------------------------------------------------------------------------------------------
// Named cases (docs/protocols.md §13 "MUST exist")

test('named: EP sends different m to P and A → PS1 req mismatch, no signature', () => {
  for (const alg of ['ecdsa-secp256k1', 'ecdsa-p256'] as const) {
    const key = dealKey(alg);
    const input: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('m for P') };
    const other = { kind: 'message', hash: 'sha256', data: utf8('m-prime for A') } as const;
    // Same header (so the sid still matches), a different signed input for A.
    const run = runEcdsaSign(key, input, {
      intercept: (m) => (m.round === 0 && m.to === 3 ? [{ ...m, body: reencodeInput(m.body, other) }] : [m]),
    });
    assert.equal(judge(alg, key, input, run, 'different m'), 'aborted');
    const r = reasons(run);
    assert.ok([...r.values()].every((x) => x === 'req-mismatch'), `reasons ${[...r.values()]}`);
    assert.ok(r.size >= 2);
  }
});

function reencodeInput(body: Uint8Array, input: SignedInput): Uint8Array {
  const f = decodeEnc(body);
  f[f.length - 1] = enc(input.kind, input.hash, input.data);
  return enc(...f);
}

test('named: zero-mask with non-zero constant (μ → exponent check; ν, η → final verify)', () => {
  for (const alg of ['ecdsa-secp256k1', 'ecdsa-p384'] as const) {
    const key = dealKey(alg);
    const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('masks') };
    // PS1 body = enc(req, κ, α, μ, ν, η): Aux (3) adds 5 to the μ/ν/η value it deals to EP only,
    // so its degree-2 polynomial gets constant 3·5 ≠ 0.
    const mu = runEcdsaSign(key, input, { intercept: shiftScalar(key.curve, 1, 3, 1, 3, 5n) });
    assert.equal(judge(alg, key, input, mu, 'μ'), 'aborted');
    assert.ok([...reasons(mu).values()].every((x) => x === 'exponent-check'), `μ: ${[...reasons(mu).values()]}`);
    assert.equal(reasons(mu).size, 3, 'every party runs the exponent check');
    for (const k of [4, 5]) {
      const run = runEcdsaSign(key, input, { intercept: shiftScalar(key.curve, 1, 3, 1, k, 5n) });
      assert.equal(judge(alg, key, input, run, k === 4 ? 'ν' : 'η'), 'aborted');
      assert.equal(run.aborts.get(1)?.reason, 'signature-invalid');
    }
  }
});

test('named: inconsistent k-share → R-line check at every party', () => {
  for (const alg of ['ecdsa-secp256k1', 'ecdsa-p256', 'ecdsa-p384'] as const) {
    const key = dealKey(alg);
    const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('k') };
    const run = runEcdsaSign(key, input, { intercept: shiftScalar(key.curve, 1, 2, 1, 1, 1n) });
    assert.equal(judge(alg, key, input, run, 'k-share'), 'aborted');
    assert.deepEqual([...reasons(run).values()], ['r-line', 'r-line', 'r-line']);
    // An inconsistent a-share is caught by the W-line / exponent check instead.
    const a = runEcdsaSign(key, input, { intercept: shiftScalar(key.curve, 1, 2, 1, 2, 1n) });
    assert.equal(judge(alg, key, input, a, 'a-share'), 'aborted');
    assert.ok([...reasons(a).values()].every((x) => x === 'w-line' || x === 'exponent-check'));
  }
});

test('named: wrong R_3 / W_3 / w_3 / s_2 each abort at the docs/protocols.md §3.5 check', () => {
  const alg = 'ecdsa-secp256k1';
  const key = dealKey(alg);
  const input: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('§3.3') };
  const pointShift = (round: number, from: PartyId, k: number) => (m: Envelope) => {
    if (m.round !== round || m.from !== from) return [m];
    const f = decodeEnc(m.body);
    const P = key.curve.Point.fromBytes(f[k]!).add(key.curve.G);
    f[k] = P.toBytes();
    return [{ ...m, body: enc(...f) }];
  };
  const r3 = runEcdsaSign(key, input, { intercept: pointShift(2, 3, 0) });
  assert.deepEqual(new Set(reasons(r3).values()), new Set(['r-line']));
  const w3 = runEcdsaSign(key, input, { intercept: pointShift(3, 3, 0) });
  assert.deepEqual(new Set(reasons(w3).values()), new Set(['w-line']));
  // A malicious Aux sends w_3 + 1 to both and echoes its (tampered) view consistently.
  const bodies2: Partial<Record<PartyId, Uint8Array>> = {};
  const ws = runEcdsaSign(key, input, {
    intercept: (m) => {
      let out = m;
      if (m.round === 2 && m.from === 3) out = shiftScalar(key.curve, 2, 3, m.to, 1, 1n)(m, 0)[0]!;
      if (m.round === 2 && (m.to === 1 || m.from === 1)) bodies2[m.from] = out.body;
      if (m.round === 3 && m.from === 3) {
        const f = decodeEnc(m.body);
        f[1] = ecdsaEcho(m.sid, 2, bodies2 as Record<PartyId, Uint8Array>);
        out = { ...m, body: enc(...f) };
      }
      return [out];
    },
  });
  assert.equal(ws.aborts.get(1)?.reason, 'exponent-check');
  assert.equal(ws.aborts.get(2)?.reason, 'exponent-check');
  const s2 = runEcdsaSign(key, input, { intercept: shiftScalar(key.curve, 4, 2, 1, 0, 1n) });
  assert.equal(s2.aborts.get(1)?.reason, 'signature-invalid');
  assert.equal(judge(alg, key, input, s2, 's2'), 'aborted');
});

test('named (pool): EP sends m to P and m′ to A → both abort before any s_j; no forgery on 3m − 2m′', () => {
  for (const alg of ['ecdsa-secp256k1', 'ecdsa-p256'] as const) {
    const key = dealKey(alg);
    const stores = presigStores(key, 1, `split-${alg}`);
    const ps = { 1: [...stores[1].shares.values()][0]!, 2: [...stores[2].shares.values()][0]!, 3: [...stores[3].shares.values()][0]! };
    const m: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('pay 1') };
    const mPrime: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('pay 1000') };
    const run = runEcdsaOnline(key, stores, ps[1].psid, m, {
      intercept: (e) => (e.round === 0 && e.to === 3 ? [{ ...e, body: reencodeInput(e.body, mPrime) }] : [e]),
    });
    assert.equal(run.outputs.get(1), undefined, 'no signature');
    assert.equal(run.aborts.get(2)?.reason, 'online-hash-mismatch');
    assert.equal(run.aborts.get(3)?.reason, 'online-hash-mismatch');
    assert.equal(run.transcript.filter((e) => e.round === 2).length, 0, 'no s_j left P or A');
    for (const j of [1, 2, 3] as const) assert.ok(stores[j].used.size === 1 && stores[j].shares.size === 0, 'burnt at all three');

    // R1: even if P and A had both answered (a bug in the hash check), the η term makes the
    // shares under m and m′ useless: the combination is not a signature on 3m − 2m′.
    const Fn = key.curve.Fn;
    const q = key.curve.order;
    const mm = bits2intModQ(hashMessage('sha256', m.data), q);
    const mp = bits2intModQ(hashMessage('sha256', mPrime.data), q);
    const R = key.curve.Point.fromBytes(ps[1].R);
    const r = Fn.create(R.toAffine().x);
    const sj = (p: PresigShare, msg: bigint) =>
      Fn.add(Fn.add(Fn.mul(p.c, Fn.add(msg, Fn.mul(r, key.shares[p.partyId].share))), p.v), Fn.mul(msg, p.eta));
    // EP's own share uses 2m − m′, so the opened message polynomial is the line through
    // (1, 2m − m′), (2, m), (3, m′), whose value at 0 is 3m − 2m′ (§11.1).
    const m1 = Fn.sub(Fn.mul(2n, mm), mp);
    const forged = Fn.add(Fn.sub(Fn.mul(3n, sj(ps[1], m1)), Fn.mul(3n, sj(ps[2], mm))), sj(ps[3], mp));
    const target = Fn.sub(Fn.mul(3n, mm), Fn.mul(2n, mp));
    // k⁻¹ = 3c_1 − 3c_2 + c_3 (degree-2 opening of c(X) at 0, as the test knows all three).
    const k = Fn.inv(Fn.add(Fn.sub(Fn.mul(3n, ps[1].c), Fn.mul(3n, ps[2].c)), ps[3].c));
    const genuine = Fn.mul(Fn.inv(k), Fn.add(target, Fn.mul(r, key.x)));
    assert.notEqual(forged, genuine, 'no signature on 3m − 2m′');
    // Without η (the pre-R1 protocol) the same combination *is* that forgery, as docs/protocols.md §3.4 says.
    const noEta = (p: PresigShare, msg: bigint) => Fn.add(Fn.mul(p.c, Fn.add(msg, Fn.mul(r, key.shares[p.partyId].share))), p.v);
    const old = Fn.add(Fn.sub(Fn.mul(3n, noEta(ps[1], m1)), Fn.mul(3n, noEta(ps[2], mm))), noEta(ps[3], mp));
    assert.equal(old, genuine, 'the attack works without η: the test is not vacuous');
  }
});

test('pool: replayed online request after use → psid-unknown; nothing used twice', () => {
  const key = dealKey('ecdsa-secp256k1');
  const stores = presigStores(key, 1, 'replay');
  const psid = [...stores[1].shares.values()][0]!.psid;
  const input: SignedInput = { kind: 'message', hash: 'sha256', data: utf8('once') };
  const first = runEcdsaOnline(key, stores, psid, input);
  assert.equal(first.outputs.get(1)?.kind, 'signature');
  const req = first.transcript.find((e) => e.round === 0 && e.to === 2)!;
  // A fresh Partner session fed the old request: its store no longer has the psid.
  const helper = createEcdsaOnlineHelper({ share: key.shares[2], tripletId: 'triplet-test', rng: seededRng('r'), lookupPresig: (p) => stores[2].take(p) });
  assert.throws(() => helper.receive(req), (e: unknown) => e instanceof ProtocolAbort && e.reason === 'psid-unknown' && e.suspect === 1);
  // EP cannot be made to use a USED presignature either: the store no longer yields it.
  assert.equal(stores[1].take(psid), undefined);
});

test('pool: stored presignatures whose R is not a point → the helpers abort, blame no peer, send no s_j', () => {
  for (const alg of ECDSA_ALGS) {
    const key = dealKey(alg);
    const stores = presigStores(key, 1, `bad-R-${alg}`);
    const psid = [...stores[1].shares.values()][0]!.psid;
    // x = 2^(8·len) − 1 is not below p on any of the curves: no point has it. Both helpers hold
    // the same bad R (one alone would already differ in the P↔A hash).
    for (const j of [2, 3] as const) {
      const [psKey, stored] = [...stores[j].shares.entries()][0]!;
      const R = new Uint8Array(stored.R.length).fill(0xff);
      R[0] = 0x02;
      stores[j].shares.set(psKey, { ...stored, R });
    }
    const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('bad R') };
    const run = runEcdsaOnline(key, stores, psid, input);
    for (const j of [2, 3] as const) {
      const abort = run.aborts.get(j);
      assert.ok(abort?.reason.startsWith('presig-invalid') && abort.suspect === null, `${alg} party ${j}: ${abort?.reason} suspect ${abort?.suspect}`);
      assert.ok(!run.transcript.some((e) => e.from === j && e.round === 2), `${alg}: party ${j} sent no online share`);
    }
    assert.equal(run.outputs.get(1), undefined, `${alg}: no signature`);
  }
});
