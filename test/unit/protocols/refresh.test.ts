/**
 * Proactive refresh (docs/protocols.md §5): same Y, new shares, epochs, invariants I1–I4,
 * the crash model (stop a party at each persist point, resume it), R5 (D = O), the
 * Feldman-invalid share, and the malicious-party matrix of docs/protocols.md §13.
 *
 * The matrix runs a deterministic sample of 120 (message, mutation) cases (~5 s on 2 cores);
 * `EKM_REFRESH_CASES=N` runs N (the full set is printed in the test name).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { decodeScalar, encodePoint, encodeScalar } from '../../../src/crypto/curves.js';
import { decodeEnc, enc, encList, H, u8 } from '../../../src/crypto/encoding.js';
import type { KeyShare } from '../../../src/protocols/key-share.js';
import { resumeRefreshParty, type RefreshKeyEpoch, type RefreshParty, type RefreshPersist } from '../../../src/protocols/refresh.js';
import type { ConfirmCheckpoint } from '../../../src/protocols/session-kit.js';
import type { Envelope, Party, PartyId, Step } from '../../../src/protocols/types.js';
import { runLocal } from '../../support/protocol-harness.js';
import { curveOf, isKeyOf, recombineKey, testRng } from '../../support/threshold-fixtures.js';
import { ALL, applyPersisted, IDS, type KeyStore, refreshParties, runDkg, storesFromDkg, TRIPLET } from '../../support/threshold-runs.js';
import { FATAL_BEFORE_CONFIRM, MUTATIONS, selectCases, tamper, type Mutation } from '../../support/tamper.js';

// Two keys on different curves, generated once by the DKG.
const DKG = [runDkg('ecdsa-secp256k1', 'ka', 'rf-ka').run.outputs, runDkg('eddsa-ed25519', 'kb', 'rf-kb').run.outputs];
const KEYS = ['ka', 'kb'];
const fresh = (): Record<PartyId, KeyStore> => storesFromDkg(DKG);

/** Every pair of parties shares an epoch it holds (CURRENT/PREVIOUS), and it recombines to Y. */
function assertPairsShareEpoch(stores: Record<PartyId, KeyStore>, pairs: readonly [PartyId, PartyId][] = [[1, 2], [1, 3], [2, 3]]): void {
  for (const keyId of KEYS) {
    for (const [a, b] of pairs) {
      const ha = stores[a].held(keyId);
      const hb = stores[b].held(keyId);
      const common = [...ha.keys()].filter((e) => hb.has(e));
      assert.ok(common.length > 0, `parties ${a},${b} share an epoch of ${keyId}`);
      for (const e of common) assert.ok(isKeyOf(ha.get(e)!, recombineKey(ha.get(e)!, hb.get(e)!)), `epoch ${e} recombines`);
    }
  }
}

function runRefresh(stores: Record<PartyId, KeyStore>, label: string, intercept?: (m: Envelope, i: number) => Envelope[]) {
  const parties = refreshParties(stores, KEYS, label);
  const run = runLocal(parties, intercept);
  return { parties, run };
}

describe('refresh, honest runs', () => {
  it('keeps Y, changes every share, moves to e+1; same-epoch pairs recombine, cross-epoch pairs do not', () => {
    const stores = fresh();
    const { run, parties } = runRefresh(stores, 'h1');
    assert.equal(run.aborts.size, 0);
    assert.equal(run.outputs.size, 3);
    assert.ok(parties.every((p) => p.events.length === 0));
    const old = ALL.map((id) => new Map(KEYS.map((k) => [k, stores[id].current.get(k)!])));
    applyPersisted(stores, run.persisted);
    for (const k of KEYS) {
      const nu = ALL.map((id) => stores[id].current.get(k)!);
      const was = old.map((m) => m.get(k)!);
      for (let i = 0; i < 3; i++) {
        assert.equal(nu[i]!.epoch, was[i]!.epoch + 1);
        assert.deepEqual(nu[i]!.Y, was[i]!.Y, 'same Y');
        assert.notEqual(nu[i]!.share, was[i]!.share, 'new share');
        assert.equal(stores[(i + 1) as PartyId].previous.size, 0, 'PREVIOUS erased (RF4)');
        assert.equal(stores[(i + 1) as PartyId].pending.size, 0);
      }
      for (const [a, b] of [[0, 1], [0, 2], [1, 2]] as const) {
        assert.ok(isKeyOf(nu[a]!, recombineKey(nu[a]!, nu[b]!)), 'same-epoch pair (new)');
        assert.ok(!isKeyOf(nu[a]!, recombineKey(nu[a]!, was[b]!)), 'cross-epoch pair must not recombine');
        assert.ok(!isKeyOf(nu[a]!, recombineKey(was[a]!, nu[b]!)), 'cross-epoch pair must not recombine');
      }
    }
    // Persist order per party: share-pending before PREPARED, activate before ACTIVATED, erase last.
    for (const id of ALL) {
      const kinds = run.persisted.get(id)!.map((p) => p.kind).filter((k) => k !== 'refresh-checkpoint');
      assert.deepEqual(kinds, ['session-open', 'share-pending', 'share-pending', 'epoch-activate', 'epoch-erase-previous']);
    }
  });

  it('property: repeated refreshes keep Y and every same-epoch pair recombines (fast-check)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1e9 }), (seed) => {
        const stores = fresh();
        for (let round = 0; round < 2; round++) {
          const { run } = runRefresh(stores, `prop-${seed}-${round}`);
          assert.equal(run.outputs.size, 3);
          applyPersisted(stores, run.persisted);
        }
        assertPairsShareEpoch(stores);
        return ALL.every((id) => stores[id].current.get('ka')!.epoch === 2);
      }),
      { numRuns: Number(process.env.EKM_PROP_RUNS ?? 3) },
    );
  });
});

describe('refresh invariants and crash model', () => {
  it('I3: a key with a PENDING or PREVIOUS epoch is refused at RF0', () => {
    for (const which of ['pending', 'previous'] as const) {
      for (const holder of ALL) {
        const stores = fresh();
        const cur = stores[holder].current.get('ka')!;
        stores[holder][which].set('ka', { ...cur, epoch: which === 'pending' ? cur.epoch + 1 : cur.epoch - 1 });
        const { run } = runRefresh(stores, `i3-${which}-${holder}`);
        assert.equal(run.outputs.size, 0);
        assert.match(run.aborts.get(holder)!.reason, /in flight \(I3\)/);
      }
    }
  });

  /**
   * Crash model: party `victim` persists the items of its k-th persisting step, then dies before
   * sending. The other two continue; then the victim restarts from its last checkpoint (I4).
   */
  for (const victim of ALL) {
    for (let k = 1; k <= 4; k++) {
      it(`I1/I2/I4: party ${victim} crashes after its persist step ${k}; pairs always share an epoch; restart converges`, () => {
        const stores = fresh();
        const parties = refreshParties(stores, KEYS, `crash-${victim}-${k}`);
        let count = 0;
        let dead = false;
        const real = parties[victim - 1]!;
        const wrapped: Party<unknown, RefreshPersist> = {
          id: victim,
          get finished() {
            return dead || real.finished;
          },
          start: () => cut(real.start()),
          receive: (m) => (dead ? { persist: [], send: [] } : cut(real.receive(m))),
        };
        function cut(step: Step<unknown, RefreshPersist>): Step<unknown, RefreshPersist> {
          if (step.persist.length > 0 && ++count === k) {
            dead = true;
            return { persist: step.persist, send: [] };
          }
          return step;
        }
        const first = runLocal([...parties.slice(0, victim - 1), wrapped, ...parties.slice(victim)] as Party<unknown, RefreshPersist>[]);
        applyPersisted(stores, first.persisted as Map<PartyId, RefreshPersist[]>);
        assertPairsShareEpoch(stores);
        // I1: an erase of epoch e only after ACTIVATED from both peers.
        for (const id of ALL) {
          if (!first.persisted.get(id)!.some((p) => p.kind === 'epoch-erase-previous')) continue;
          for (const peer of ALL.filter((p) => p !== id)) {
            assert.ok(first.transcript.some((m) => m.from === peer && m.to === id && m.round === 4), `I1: ACTIVATED ${peer}→${id}`);
          }
        }
        // I2 (and R4): nothing ever discards a PENDING share.
        for (const id of ALL) assert.ok(first.persisted.get(id)!.every((p) => !/discard/.test(p.kind)));

        const cp = stores[victim].checkpoint as { keys: RefreshKeyEpoch[]; checkpoint: ConfirmCheckpoint } | null;
        if (!cp) {
          // Died before PREPARED: nobody can finish; every key stays at its epoch.
          assert.equal(first.outputs.size, 0);
          for (const id of ALL) assert.ok(KEYS.every((key) => stores[id].current.get(key)!.epoch === 0));
          return;
        }
        const resumed = resumeRefreshParty(
          { id: victim, tripletId: TRIPLET, rng: testRng('resume'), signer: IDS.signers[victim], verifier: IDS.verifier, lookup: stores[victim].lookupRefresh },
          cp,
        );
        const others = parties.filter((p) => p.id !== victim);
        const second = runLocal([...others, resumed].sort((a, b) => a.id - b.id) as RefreshParty[]);
        applyPersisted(stores, second.persisted);
        assertPairsShareEpoch(stores);
        for (const id of ALL) {
          for (const key of KEYS) {
            assert.equal(stores[id].current.get(key)!.epoch, 1, `party ${id} converged to epoch 1`);
            assert.equal(stores[id].previous.size + stores[id].pending.size, 0, `party ${id} erased epoch 0`);
          }
        }
      });
    }
  }
});

describe('refresh, malicious parties', () => {
  it('Feldman-invalid refresh share: complaint, REVEAL, blame the dealer; no epoch change anywhere', () => {
    const dealer: PartyId = 2;
    const victim: PartyId = 3;
    const plusOne = (b: Uint8Array, n: number) => {
      const curve = curveOf(DKG[n]!.get(1)!);
      return encodeScalar(curve, decodeScalar(curve, b) + 1n);
    };
    const bump = (list: Uint8Array) => encList(decodeEnc(list).map((z, n) => (n === 0 ? plusOne(z, 0) : z)));
    const inter = (m: Envelope): Envelope[] => {
      if (m.from !== dealer) return [m];
      const f = decodeEnc(m.body);
      const kind = Buffer.from(f[0]!).toString();
      if (kind === 'deal' && m.to === victim) return [{ ...m, body: enc(f[0]!, f[1]!, bump(f[2]!)) }];
      if (kind === 'reveal') return [{ ...m, body: enc(f[0]!, f[1]!, bump(f[2]!)) }];
      return [m];
    };
    const stores = fresh();
    const { run, parties } = runRefresh(stores, 'feldman', inter);
    assert.equal(run.outputs.size, 0);
    for (const h of [1, victim] as const) assert.equal(parties[h - 1]!.failure?.suspect, dealer, parties[h - 1]!.failure?.reason);
    for (const id of ALL) assert.ok(!run.persisted.get(id)!.some((p) => p.kind === 'epoch-activate'));
  });

  it('R5: a last sender that cancels the update (D = O) is refused; the hash-commit is what stops it choosing', () => {
    // Cheat in the test: learn b_1, b_2 from an honest run with the same rngs, then make party 3
    // commit to B_3 = −(B_1 + B_2). Honest parties must abort with D = O.
    const probe = runRefresh(fresh(), 'r5').run.transcript;
    const zOf = (from: PartyId, to: PartyId, n: number) => {
      const m = probe.find((e) => e.round === 2 && e.from === from && e.to === to)!;
      const curve = curveOf(DKG[n]!.get(1)!);
      return decodeScalar(curve, decodeEnc(decodeEnc(m.body)[2]!)[n]!);
    };
    const sid = probe[0]!.sid;
    const curves = [0, 1].map((n) => curveOf(DKG[n]!.get(1)!));
    const b3 = curves.map((c, n) => c.Fn.neg(c.Fn.add(zOf(1, 3, n) /* = 3·b1 */, zOf(2, 3, n)) ));
    // z_i(3) = 3·b_i, so −(z_1(3) + z_2(3))/3 = −(b1 + b2).
    const b = b3.map((v, n) => curves[n]!.Fn.div(v, 3n));
    const Bs = encList(b.map((v, n) => encodePoint(curves[n]!, curves[n]!.G.multiply(v))));
    const inter = (m: Envelope): Envelope[] => {
      if (m.from !== 3) return [m];
      if (m.round === 1) return [{ ...m, body: enc('commit', H('refresh/commit', sid, u8(3), Bs)) }];
      if (m.round === 2) {
        const zs = encList(b.map((v, n) => encodeScalar(curves[n]!, curves[n]!.Fn.mul(v, BigInt(m.to)))));
        return [{ ...m, body: enc('deal', Bs, zs) }];
      }
      return [m];
    };
    const { run } = runRefresh(fresh(), 'r5', inter);
    assert.equal(run.outputs.size, 0);
    for (const h of [1, 2] as const) assert.match(run.aborts.get(h)?.reason ?? '', /D = O/);
  });

  const base = runRefresh(fresh(), 'matrix').run.transcript;
  const earlier = runRefresh(fresh(), 'matrix-earlier').run.transcript;
  const cases: { index: number; mutation: Mutation }[] = [];
  base.forEach((_, index) => MUTATIONS.forEach((mutation) => cases.push({ index, mutation })));
  const selected = selectCases(cases, Number(process.env.EKM_REFRESH_CASES ?? 120));
  it(`matrix: ${selected.length} of ${cases.length} (message, mutation) cases; honest parties never diverge or lose the key`, () => {
    for (const { index, mutation } of selected) {
      const m = base[index]!;
      const honest = ALL.filter((p) => p !== m.from) as [PartyId, PartyId];
      const stores = fresh();
      const { run } = runRefresh(stores, 'matrix', tamper(index, mutation, earlier));
      const label = `msg #${index} (round ${m.round} ${m.from}→${m.to}) ${mutation}`;
      for (const h of honest) if (stores[h]) run.persisted.get(h)!.forEach((p) => stores[h].apply(p));
      assertPairsShareEpoch(stores, [honest]);
      // An honest party that activated e+1: the other honest party has the same e+1 (CURRENT or PENDING).
      for (const h of honest) {
        const other = honest.find((x) => x !== h)!;
        for (const key of KEYS) {
          const cur = stores[h].current.get(key)!;
          if (cur.epoch === 0) continue;
          const peer = stores[other].current.get(key)!.epoch === 1 ? stores[other].current.get(key)! : stores[other].pending.get(key);
          assert.ok(peer, `${label}: party ${other} holds epoch 1 of ${key} too`);
          assert.deepEqual(peer.C1, cur.C1, label);
          assert.ok(isKeyOf(cur, recombineKey(cur, peer as KeyShare)), label);
        }
      }
      if (m.round < 3 && FATAL_BEFORE_CONFIRM.has(mutation)) {
        for (const h of honest) assert.ok(!run.persisted.get(h)!.some((p) => p.kind === 'epoch-activate'), `${label}: no activation`);
      }
    }
  });
});
