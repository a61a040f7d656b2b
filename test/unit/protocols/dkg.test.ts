/**
 * DKG (docs/protocols.md §2): correctness for every alg, complaints with blame, and the
 * malicious-party matrix of docs/protocols.md §13 (every message a corrupt party sends × every mutation).
 *
 * The matrix runs a deterministic sample of 120 of the 256 (message, mutation) pairs of one P-256
 * session (~5 s on 2 cores); `EKM_DKG_CASES=256` runs all of them (any N picks a sample of N).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodePoint, decodeScalar, encodeScalar } from '../../../src/crypto/curves.js';
import { decodeEnc, enc } from '../../../src/crypto/encoding.js';
import { lineInExponent } from '../../../src/crypto/shamir.js';
import { createDkgParty, resumeDkgParty, type DkgConfig, type DkgPersist } from '../../../src/protocols/dkg.js';
import { EC_ALGS, type KeyShare } from '../../../src/protocols/key-share.js';
import type { ConfirmCheckpoint } from '../../../src/protocols/session-kit.js';
import type { Envelope, PartyId } from '../../../src/protocols/types.js';
import { runLocal, type RunResult } from '../../support/protocol-harness.js';
import { curveOf, isKeyOf, recombineKey, testRng } from '../../support/threshold-fixtures.js';
import { ALL, IDS, runDkg, TRIPLET } from '../../support/threshold-runs.js';
import { FATAL_BEFORE_CONFIRM, MUTATIONS, selectCases, tamper, type Mutation } from '../../support/tamper.js';

/** Every check a party can make on its own output: x_j·G = A_j = Y + j·C1. */
function assertSelfConsistent(s: KeyShare): void {
  const curve = curveOf(s);
  const Y = decodePoint(curve, s.Y);
  const C1 = decodePoint(curve, s.C1);
  for (const j of ALL) assert.ok(lineInExponent(Y, C1, j).equals(decodePoint(curve, s.A[j])), `A_${j} = Y + ${j}·C1`);
  assert.ok(curve.G.multiply(s.share).equals(decodePoint(curve, s.A[s.partyId])), 'x_j·G = A_j');
}

function publicOf(s: KeyShare): string {
  return JSON.stringify({ k: s.keyId, a: s.alg, e: s.epoch, Y: [...s.Y], C1: [...s.C1], A: ALL.map((j) => [...s.A[j]]) });
}

/** Safety for any run: honest outputs are self-consistent, equal, and two of them give Y. */
function assertSafe(run: RunResult<KeyShare, DkgPersist>, honest: readonly PartyId[]): void {
  const outs = honest.map((h) => run.outputs.get(h)).filter((o): o is KeyShare => o !== undefined);
  for (const o of outs) assertSelfConsistent(o);
  if (outs.length === 2) {
    assert.equal(publicOf(outs[0]!), publicOf(outs[1]!), 'honest parties agree on the public key');
    assert.ok(isKeyOf(outs[0]!, recombineKey(outs[0]!, outs[1]!)), 'honest shares recombine to Y');
  }
  // No honest party goes ACTIVE unless both honest parties hold the same PENDING key.
  const active = honest.filter((h) => run.persisted.get(h)!.some((p) => p.kind === 'dkg-key-active'));
  if (active.length > 0) {
    const pend = honest.map((h) => run.persisted.get(h)!.find((p) => p.kind === 'dkg-key-pending'));
    assert.ok(pend.every((p) => p !== undefined), 'ACTIVE only if every honest party is PENDING');
    const [a, b] = pend as { share: KeyShare }[];
    assert.equal(publicOf(a!.share), publicOf(b!.share));
  }
}

describe('DKG, honest runs', () => {
  for (const alg of EC_ALGS) {
    it(`${alg}: all three output one key; x_j·G = A_j = Y + j·C1 everywhere; pairs recombine to Y`, () => {
      const { run, parties } = runDkg(alg, `key-${alg}`, `honest-${alg}`);
      assert.equal(run.aborts.size, 0);
      assert.equal(run.outputs.size, 3);
      const outs = ALL.map((id) => run.outputs.get(id)!);
      for (const o of outs) {
        assertSelfConsistent(o);
        assert.equal(o.epoch, 0);
        assert.equal(o.alg, alg);
      }
      assert.equal(new Set(outs.map(publicOf)).size, 1, 'identical KeyPublic');
      // TEST ONLY: recombine each pair.
      for (const [a, b] of [[0, 1], [0, 2], [1, 2]] as const) assert.ok(isKeyOf(outs[a]!, recombineKey(outs[a]!, outs[b]!)));
      assert.ok(parties.every((p) => p.events.length === 0));
      // Persist order: session-open, then PENDING before any PREPARED, ACTIVE before ACTIVATED.
      for (const id of ALL) {
        const kinds = run.persisted.get(id)!.map((p) => p.kind);
        assert.deepEqual(kinds.filter((k) => k !== 'dkg-checkpoint'), ['session-open', 'dkg-key-pending', 'dkg-key-active', 'dkg-complete']);
      }
    });
  }

  it('BIP340 keys are untweaked: Y is the sum of the dealers\u2019 keys (x-only export = Y[1..])', () => {
    const { run } = runDkg('schnorr-bip340', 'bip', 'bip');
    const s = run.outputs.get(1)!;
    assert.equal(s.Y.length, 33);
    assert.ok(isKeyOf(s, recombineKey(s, run.outputs.get(2)!)));
  });

  it('uses only the injected rng: same rng → same key; different rng → different key', () => {
    const a = runDkg('ecdsa-p256', 'k', 'det').run.outputs.get(1)!;
    const b = runDkg('ecdsa-p256', 'k', 'det').run.outputs.get(1)!;
    const c = runDkg('ecdsa-p256', 'k', 'det2').run.outputs.get(1)!;
    assert.equal(publicOf(a), publicOf(b));
    assert.notEqual(publicOf(a), publicOf(c));
  });
});

/** Replace the share field of a round-3 message with a valid-but-wrong scalar (f + 1). */
function badShare(alg: (typeof EC_ALGS)[number], from: PartyId, to: PartyId, alsoInReveal = true) {
  const curve = curveOf({ alg } as KeyShare);
  const plusOne = (b: Uint8Array) => encodeScalar(curve, decodeScalar(curve, b) + 1n);
  return (m: Envelope): Envelope[] => {
    const f = decodeEnc(m.body);
    if (m.round === 3 && m.from === from && m.to === to) return [{ ...m, body: enc(f[0]!, plusOne(f[1]!), f[2]!) }];
    // A consistent cheater reveals the same bad value it sent.
    if (alsoInReveal && m.round === 5 && m.from === from && Buffer.from(f[0]!).toString() === 'reveal') {
      return [{ ...m, body: enc(f[0]!, f[1]!, plusOne(f[2]!)) }];
    }
    return [m];
  };
}

describe('DKG complaints', () => {
  it('a dealer sends a bad share: complaint → REVEAL → every honest party blames that dealer; no key', () => {
    for (const dealer of ALL) {
      const victim = (dealer % 3) + 1 as PartyId;
      const { run, parties } = runDkg('ecdsa-p256', 'kc', `complaint-${dealer}`, badShare('ecdsa-p256', dealer, victim));
      assert.equal(run.outputs.size, 0);
      for (const h of ALL.filter((p) => p !== dealer)) {
        const f = parties[h - 1]!.failure;
        assert.ok(f, `party ${h} stopped`);
        assert.equal(f.suspect, dealer, `party ${h} blames dealer ${dealer}: ${f.reason}`);
      }
      // The accused sent a REVEAL (the honest dealer's view: complaint against it).
      assert.ok(run.transcript.some((m) => m.from === dealer && Buffer.from(decodeEnc(m.body)[0]!).toString() === 'reveal'));
    }
  });

  it('a dealer that sends a bad share but reveals the good one: the complainer blames it; the third party cannot tell (spec: blames the complainer); no key', () => {
    const { run, parties } = runDkg('ecdsa-p256', 'kc2', 'complaint-good-reveal', badShare('ecdsa-p256', 1, 2, false));
    assert.equal(run.outputs.size, 0);
    assert.equal(parties[1]!.failure?.suspect, 1);
    assert.equal(parties[2]!.failure?.suspect, 2);
  });

  it('a false complaint (honest dealer, valid REVEAL) blames the complainer', () => {
    const liar: PartyId = 2;
    const accused: PartyId = 3;
    const inter = (m: Envelope): Envelope[] => {
      if (m.from === liar && m.round === 4) return [{ ...m, body: enc('complaint', Uint8Array.of(accused)) }];
      return [m];
    };
    const { run, parties } = runDkg('ecdsa-secp256k1', 'kf', 'false-complaint', inter);
    assert.equal(run.outputs.size, 0);
    assert.equal(parties[0]!.failure?.suspect, liar, parties[0]!.failure?.reason);
    assert.equal(parties[accused - 1]!.failure?.suspect, liar);
  });

  it('an accused dealer that never reveals is blamed at timeout', () => {
    const dealer: PartyId = 3;
    const inter = (m: Envelope): Envelope[] => {
      const bad = badShare('ecdsa-p256', dealer, 1)(m);
      return m.from === dealer && m.round === 5 ? [] : bad;
    };
    const { run, parties } = runDkg('ecdsa-p256', 'kt', 'no-reveal', inter);
    assert.equal(run.outputs.size, 0);
    for (const h of [1, 2] as const) {
      const abort = parties[h - 1]!.expire();
      assert.equal(abort?.suspect, dealer);
    }
  });
});

describe('DKG framing', () => {
  it('rejects a request whose sid does not bind its inputs, a replayed sid, a foreign triplet, an unauthorized key', () => {
    const { run } = runDkg('ecdsa-p256', 'kr', 'framing');
    const req = run.transcript.find((m) => m.round === 0 && m.to === 2)!;
    const mk = (cfg: Partial<DkgConfig> = {}) =>
      createDkgParty({ id: 2, tripletId: TRIPLET, rng: testRng('f'), signer: IDS.signers[2], verifier: IDS.verifier, authorize: () => true, ...cfg });
    const sidFlip = req.sid.slice();
    sidFlip[3]! ^= 1;
    assert.throws(() => mk().receive({ ...req, sid: sidFlip }), /sid does not match/);
    assert.throws(() => mk({ sidSeen: () => true }).receive(req), /replayed sid/);
    assert.throws(() => mk({ tripletId: 'other' }).receive(req), /another triplet/);
    assert.throws(() => mk({ authorize: () => false }).receive(req), /not authorized/);
    assert.throws(() => mk().receive({ ...req, from: 3 }), /unknown sid/);
    assert.throws(() => mk().receive({ ...req, proto: 'refresh' }), /wrong protocol/);
    assert.throws(() => mk().receive({ ...req, to: 3 }), /not addressed/);
    // A party that already started refuses a second request for the same (sid, round, from).
    const p = mk();
    p.receive(req);
    assert.throws(() => p.receive(req), /duplicate|unexpected/);
  });

  it('a restarted party (resume from its checkpoint) re-sends PREPARED and completes', () => {
    // Party 2 crashes right after persisting PENDING (its PREPARED never leaves).
    const { run, parties } = runDkg('ecdsa-p256', 'kres', 'resume', (m) => (m.from === 2 && m.round >= 4 ? [] : [m]));
    assert.equal(run.outputs.size, 0);
    const items = run.persisted.get(2)!;
    const cp = items.filter((p) => p.kind === 'dkg-checkpoint').at(-1) as { checkpoint: ConfirmCheckpoint };
    const share = (items.find((p) => p.kind === 'dkg-key-pending') as { share: KeyShare }).share;
    const restarted = resumeDkgParty(
      { id: 2, tripletId: TRIPLET, rng: testRng('r'), signer: IDS.signers[2], verifier: IDS.verifier, authorize: () => true },
      cp.checkpoint,
      share,
    );
    const second = runLocal([parties[0]!, restarted, parties[2]!]);
    // runLocal calls start() on all: live parties 1 and 3 emit nothing new; 2 re-sends.
    assert.equal(second.outputs.size, 3);
    const outs = ALL.map((id) => second.outputs.get(id)!);
    assert.equal(new Set(outs.map(publicOf)).size, 1);
  });
});

describe('DKG malicious-party matrix (docs/protocols.md §13)', () => {
  // One honest run gives the message layout; an earlier session gives replay material.
  const alg = 'ecdsa-p256';
  const base = runDkg(alg, 'km', 'matrix-base').run.transcript;
  const earlier = runDkg(alg, 'km', 'matrix-earlier').run.transcript;
  const cases: { index: number; mutation: Mutation }[] = [];
  base.forEach((m, index) => {
    for (const mutation of MUTATIONS) cases.push({ index, mutation });
  });
  const selected = selectCases(cases, Number(process.env.EKM_DKG_CASES ?? 120));
  it(`${selected.length} of ${cases.length} (message, mutation) cases: honest parties never output a wrong key`, () => {
    for (const { index, mutation } of selected) {
      const m = base[index]!;
      const corrupt = m.from;
      const honest = ALL.filter((p) => p !== corrupt);
      const { run } = runDkg(alg, 'km', 'matrix-base', tamper(index, mutation, earlier));
      const label = `msg #${index} (round ${m.round} ${m.from}→${m.to}) ${mutation}`;
      assertSafe(run, honest);
      if (m.round < 4 && FATAL_BEFORE_CONFIRM.has(mutation)) {
        for (const h of honest) assert.equal(run.outputs.has(h), false, `${label}: party ${h} must not output`);
      }
    }
  });
});
