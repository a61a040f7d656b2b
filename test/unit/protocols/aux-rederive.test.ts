/**
 * Aux re-derivation (docs/protocols.md §6): x_3 = f(3), wrong c_1 → AX3 abort with suspect,
 * AuxInfo mismatch, and the malicious-party matrix of docs/protocols.md §13 (all cases: the session is short).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeScalar, encodeScalar } from '../../../src/crypto/curves.js';
import { decodeEnc, enc, encList } from '../../../src/crypto/encoding.js';
import { interpolateAt3From12 } from '../../../src/crypto/shamir.js';
import type { Envelope, PartyId } from '../../../src/protocols/types.js';
import { runLocal } from '../../support/protocol-harness.js';
import { curveOf, isKeyOf, recombineKey } from '../../support/threshold-fixtures.js';
import { ALL, applyPersisted, auxParties, KeyStore, runDkg, storesFromDkg } from '../../support/threshold-runs.js';
import { FATAL_BEFORE_CONFIRM, MUTATIONS, selectCases, tamper, type Mutation } from '../../support/tamper.js';

const DKG = [runDkg('ecdsa-p256', 'xa', 'ax-a').run.outputs, runDkg('ecdsa-p384', 'xb', 'ax-b').run.outputs];
const KEYS = ['xa', 'xb'];

/** EP and P restored; a brand-new Aux with an empty store. */
function restored(): Record<PartyId, KeyStore> {
  const s = storesFromDkg(DKG);
  s[3] = new KeyStore(3);
  return s;
}

function runAux(stores: Record<PartyId, KeyStore>, label: string, attribution: boolean, intercept?: (m: Envelope, i: number) => Envelope[]) {
  const parties = auxParties(stores, KEYS, label, attribution);
  return { parties, run: runLocal(parties, intercept) };
}

/** Replace c_1 (EP's contribution) for the first key by c_1 + 1. */
const wrongC1 = (m: Envelope): Envelope[] => {
  if (m.from !== 1 || m.to !== 3 || m.round !== 1) return [m];
  const f = decodeEnc(m.body);
  const cs = decodeEnc(f[2]!);
  const curve = curveOf(DKG[0]!.get(1)!);
  cs[0] = encodeScalar(curve, decodeScalar(curve, cs[0]!) + 1n);
  return [{ ...m, body: enc(f[0]!, f[1]!, encList(cs), f[3]!) }];
};

describe('Aux re-derivation', () => {
  for (const attribution of [false, true]) {
    it(`x_3 equals f(3) = −x_1 + 2x_2 and the original Aux share (attribution ${attribution})`, () => {
      const stores = restored();
      const { run, parties } = runAux(stores, `h-${attribution}`, attribution);
      assert.equal(run.aborts.size, 0);
      assert.equal(run.outputs.size, 3);
      assert.ok(parties.every((p) => p.events.length === 0));
      applyPersisted(stores, run.persisted);
      for (const [n, key] of KEYS.entries()) {
        const x3 = stores[3].current.get(key)!;
        const x1 = stores[1].current.get(key)!;
        const x2 = stores[2].current.get(key)!;
        assert.equal(x3.share, interpolateAt3From12(curveOf(x1), x1.share, x2.share));
        assert.equal(x3.share, DKG[n]!.get(3)!.share, 'same f(3) as the lost Aux');
        assert.ok(isKeyOf(x3, recombineKey(x3, x1)));
        assert.ok(stores[1].auxPresent.has(key) && stores[2].auxPresent.has(key));
      }
      // Aux persisted PENDING before its PREPARED, and ACTIVE before ACTIVATED.
      const kinds = run.persisted.get(3)!.map((p) => p.kind).filter((k) => k !== 'aux-checkpoint');
      assert.deepEqual(kinds, ['session-open', 'aux-share-pending', 'aux-share-pending', 'aux-share-activate', 'aux-complete']);
    });
  }

  it('Aux receives a wrong c_1: AX3 aborts with suspect EP (attribution) / unknown (plain); nothing stored', () => {
    for (const attribution of [true, false]) {
      const stores = restored();
      const { run } = runAux(stores, `c1-${attribution}`, attribution, wrongC1);
      const abort = run.aborts.get(3)!;
      assert.ok(abort, 'Aux aborts');
      assert.equal(abort.round, 1);
      assert.equal(abort.suspect, attribution ? 1 : null, abort.reason);
      assert.equal(run.outputs.size, 0);
      assert.ok(!run.persisted.get(3)!.some((p) => p.kind === 'aux-share-pending'));
      for (const id of [1, 2] as const) assert.ok(!run.persisted.get(id)!.some((p) => p.kind === 'aux-present'));
    }
  });

  it('AuxInfo mismatch: P altered in transit → Aux aborts; P at another epoch → P aborts', () => {
    const alter = (m: Envelope): Envelope[] => {
      if (m.from !== 2 || m.round !== 1) return [m];
      const f = decodeEnc(m.body);
      const info = decodeEnc(f[1]!).reverse(); // same entries, other order
      return [{ ...m, body: enc(f[0]!, encList(info), f[2]!, f[3]!) }];
    };
    const { run } = runAux(restored(), 'mismatch', false, alter);
    assert.match(run.aborts.get(3)!.reason, /AuxInfo mismatch/);
    assert.equal(run.outputs.size, 0);

    const stores = restored();
    const s = stores[2].current.get('xa')!;
    stores[2].current.set('xa', { ...s, epoch: s.epoch + 1 });
    const second = runAux(stores, 'epoch', false);
    assert.match(second.run.aborts.get(2)!.reason, /another epoch/);
    assert.equal(second.run.outputs.size, 0);
  });

  const base = runAux(restored(), 'matrix', true).run.transcript;
  const earlier = runAux(restored(), 'matrix-earlier', true).run.transcript;
  const cases: { index: number; mutation: Mutation }[] = [];
  base.forEach((_, index) => MUTATIONS.forEach((mutation) => cases.push({ index, mutation })));
  const selected = selectCases(cases, Number(process.env.EKM_AUX_CASES ?? cases.length));
  it(`matrix: ${selected.length} of ${cases.length} (message, mutation) cases; Aux never stores a wrong share`, () => {
    for (const { index, mutation } of selected) {
      const m = base[index]!;
      const honest = ALL.filter((p) => p !== m.from);
      const stores = restored();
      const { run } = runAux(stores, 'matrix', true, tamper(index, mutation, earlier));
      const label = `msg #${index} (round ${m.round} ${m.from}→${m.to}) ${mutation}`;
      for (const h of honest) run.persisted.get(h)!.forEach((p) => stores[h].apply(p));
      if (honest.includes(3)) {
        // Whatever Aux stored (PENDING or CURRENT) is the true f(3).
        for (const [n, key] of KEYS.entries()) {
          const got = stores[3].current.get(key) ?? stores[3].pending.get(key);
          if (got) assert.equal(got.share, DKG[n]!.get(3)!.share, label);
        }
      }
      // EP / P mark "Aux present" only if the (honest) Aux activated, i.e. all PREPARED matched.
      if (honest.includes(3)) {
        for (const h of honest.filter((x) => x !== 3)) {
          if (stores[h].auxPresent.size > 0) assert.ok(stores[3].current.size === KEYS.length || stores[3].pending.size === KEYS.length, label);
        }
      }
      if (m.round < 2 && FATAL_BEFORE_CONFIRM.has(mutation)) {
        for (const h of honest) assert.equal(run.outputs.has(h), false, `${label}: party ${h} must not output`);
      }
    }
  });
});
