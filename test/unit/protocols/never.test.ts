/**
 * NEVER (src/protocols/session-kit.ts, docs/protocols.md §7.1): a party that died or failed before
 * persisting its PENDING leaves the other two PENDING; its signed NEVER, direct or relayed, lets
 * them drop PENDING so the key is refreshable again, while a party that already activated ignores
 * it (I2). Also the answer a finished party gives from its stored 'done' checkpoint.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AUX_PROTO, type AuxPersist } from '../../../src/protocols/aux-rederive.js';
import { DKG_PROTO, type DkgPersist } from '../../../src/protocols/dkg.js';
import { REFRESH_PROTO, type RefreshPersist } from '../../../src/protocols/refresh.js';
import {
  confirmRepliesFromCheckpoint,
  neverBody,
  type ConfirmCheckpoint,
  type IdentitySigner,
} from '../../../src/protocols/session-kit.js';
import type { Envelope, Party, PartyId, Step } from '../../../src/protocols/types.js';
import { runLocal } from '../../support/protocol-harness.js';
import {
  ALL,
  applyPersisted,
  auxParties,
  dkgParties,
  IDS,
  KeyStore,
  refreshParties,
  runDkg,
  storesFromDkg,
} from '../../support/threshold-runs.js';

type AnyPersist = RefreshPersist | AuxPersist | DkgPersist;
type AnyParty = Party<unknown, AnyPersist> & {
  readonly events: readonly { reason: string }[];
  readonly committing: boolean;
  readonly failure: unknown;
};

const DKG = [runDkg('ecdsa-p256', 'na', 'nv-a').run.outputs, runDkg('eddsa-ed25519', 'nb', 'nv-b').run.outputs];
const KEYS = ['na', 'nb'];

/** `victim` dies on the first step whose persist items include `kind`: nothing of it is stored or sent. */
function dieBefore(parties: AnyParty[], victim: PartyId, kind: string): Party<unknown, AnyPersist>[] {
  let dead = false;
  const real = parties[victim - 1]!;
  const cut = (step: Step<unknown, AnyPersist>): Step<unknown, AnyPersist> => {
    if (dead || step.persist.some((p) => p.kind === kind)) {
      dead = true;
      return { persist: [], send: [] };
    }
    return step;
  };
  const wrapped: Party<unknown, AnyPersist> = {
    id: victim,
    get finished() {
      return dead || real.finished;
    },
    start: () => cut(real.start()),
    receive: (m) => cut(real.receive(m)),
  };
  return parties.map((p) => (p.id === victim ? wrapped : p));
}

/** The signed NEVER of `signer` for the session, as its host would send it to `to`. */
function never(
  proto: string,
  sid: Uint8Array,
  signer: PartyId,
  to: PartyId,
  round: number,
  key: IdentitySigner = IDS.signers[signer],
): Envelope {
  return { sid, proto, round, from: signer, to, body: neverBody(key, proto, sid, signer) };
}

function sidOf(transcript: readonly Envelope[]): Uint8Array {
  return transcript[0]!.sid;
}

describe('NEVER: pending parties drop PENDING when the third never prepared', () => {
  it('refresh: the Aux dies before persisting PENDING; its NEVER to EP, relayed to the Partner, frees the keys', () => {
    const stores = storesFromDkg(DKG);
    const parties = refreshParties(stores, KEYS, 'nv-r1') as unknown as AnyParty[];
    const first = runLocal(dieBefore(parties, 3, 'share-pending'));
    applyPersisted(stores, first.persisted);
    assert.equal(first.outputs.size, 0);
    assert.ok(parties[0]!.committing && parties[1]!.committing, 'EP and Partner wait in their confirm phase');
    assert.ok(KEYS.every((k) => stores[1].pending.has(k) && stores[2].pending.has(k)));

    const sid = sidOf(first.transcript);
    const toEp = parties[0]!.receive(never(REFRESH_PROTO, sid, 3, 1, 3));
    assert.deepEqual(
      toEp.persist.map((p) => p.kind),
      ['session-abandon'],
    );
    assert.deepEqual(
      (toEp.persist[0] as { pending: unknown }).pending,
      KEYS.map((keyId) => ({ keyId, epoch: 1 })),
    );
    assert.ok(parties[0]!.finished && parties[0]!.failure, 'the EP session ended');
    assert.equal(toEp.send.length, 1, 'relayed to the Partner');
    assert.equal(toEp.send[0]!.to, 2);
    const toPartner = parties[1]!.receive(toEp.send[0]!);
    assert.deepEqual(
      toPartner.persist.map((p) => p.kind),
      ['session-abandon'],
    );
    assert.equal(toPartner.send[0]!.to, 1, 'the Partner relays it to its other peer too (the EP, whose session already ended)');
    applyPersisted(
      stores,
      new Map([
        [1, toEp.persist],
        [2, toPartner.persist],
      ]) as Map<PartyId, AnyPersist[]>,
    );
    for (const id of ALL)
      for (const k of KEYS) assert.equal(stores[id].pending.size + stores[id].previous.size, 0, `party ${id} holds epoch 0 only of ${k}`);

    // I3 no longer refuses: the next refresh of the same keys completes.
    const again = runLocal(refreshParties(stores, KEYS, 'nv-r1b'));
    assert.equal(again.aborts.size, 0);
    assert.equal(again.outputs.size, 3);
  });

  it('DKG: the EP dies before persisting its PENDING key; the helpers drop their PENDING key on its NEVER', () => {
    const parties = dkgParties('ecdsa-secp256k1', 'nd', 'nv-d') as unknown as AnyParty[];
    const first = runLocal(dieBefore(parties, 1, 'dkg-key-pending'));
    assert.ok(parties[1]!.committing && parties[2]!.committing);
    const sid = sidOf(first.transcript);
    const toAux = parties[2]!.receive(never(DKG_PROTO, sid, 1, 3, 4));
    assert.deepEqual((toAux.persist[0] as { kind: string; pending: unknown }).pending, [{ keyId: 'nd', epoch: 0 }]);
    const relay = toAux.send.find((m) => m.to === 2)!;
    const toPartner = parties[1]!.receive(relay);
    assert.deepEqual(
      toPartner.persist.map((p) => p.kind),
      ['session-abandon'],
    );
    assert.ok(!parties[1]!.committing && !parties[2]!.committing);
  });

  it('Aux re-derivation: the Aux dies before persisting its PENDING shares; EP and Partner end the session', () => {
    const stores = storesFromDkg(DKG);
    stores[3] = new KeyStore(3);
    const parties = auxParties(stores, KEYS, 'nv-x', false) as unknown as AnyParty[];
    const first = runLocal(dieBefore(parties, 3, 'aux-share-pending'));
    assert.ok(parties[0]!.committing && parties[1]!.committing);
    const step = parties[1]!.receive(never(AUX_PROTO, sidOf(first.transcript), 3, 2, 2));
    assert.deepEqual(
      step.persist,
      [{ kind: 'session-abandon', proto: AUX_PROTO, sid: sidOf(first.transcript), pending: [] }],
      'EP and Partner hold nothing PENDING here',
    );
    assert.ok(parties[1]!.finished);
  });
});

describe('NEVER: what is refused', () => {
  it('a NEVER with a signature by another key is a security event; PENDING is kept', () => {
    const stores = storesFromDkg(DKG);
    const parties = refreshParties(stores, KEYS, 'nv-bad') as unknown as AnyParty[];
    const first = runLocal(dieBefore(parties, 3, 'share-pending'));
    const forged = never(REFRESH_PROTO, sidOf(first.transcript), 3, 1, 3, IDS.signers[2]);
    const step = parties[0]!.receive(forged);
    assert.deepEqual(step.persist, []);
    assert.ok(parties[0]!.committing);
    assert.ok(parties[0]!.events.some((e) => /bad never signature/.test(e.reason)));
  });

  it('a party that already activated ignores NEVER (I2) and records that a party cheats', () => {
    const stores = storesFromDkg(DKG);
    const parties = refreshParties(stores, KEYS, 'nv-act') as unknown as AnyParty[];
    // The Aux dies on its activation step: EP and Partner hold every PREPARED and activated.
    const first = runLocal(dieBefore(parties, 3, 'epoch-activate'));
    applyPersisted(stores, first.persisted);
    assert.ok(KEYS.every((k) => stores[1].current.get(k)!.epoch === 1 && stores[1].previous.has(k)));
    const step = parties[0]!.receive(never(REFRESH_PROTO, sidOf(first.transcript), 3, 1, 4));
    assert.deepEqual(step.persist, []);
    assert.ok(parties[0]!.committing, 'still waiting for the Aux');
    assert.ok(parties[0]!.events.some((e) => /NEVER after every party prepared/.test(e.reason)));
  });
});

describe("a finished party answers a late re-send from its 'done' checkpoint", () => {
  it("the EP missed the Aux's ACTIVATED; the Aux's stored replies complete the EP's session", () => {
    const stores = storesFromDkg(DKG);
    const parties = refreshParties(stores, KEYS, 'nv-done') as unknown as AnyParty[];
    const lost = (m: Envelope): Envelope[] => (m.from === 3 && m.to === 1 && m.round === 4 ? [] : [m]);
    const first = runLocal(parties, lost);
    applyPersisted(stores, first.persisted);
    assert.ok(parties[2]!.finished && !parties[2]!.committing, 'the Aux is done');
    assert.ok(parties[0]!.committing, 'the EP waits for the Aux');
    const cp = (stores[3].checkpoint as { checkpoint: ConfirmCheckpoint }).checkpoint;
    assert.equal(cp.phase, 'done');
    const replies = confirmRepliesFromCheckpoint(cp, 1).map((r): Envelope => ({
      sid: cp.sid,
      proto: REFRESH_PROTO,
      round: r.round,
      from: 3,
      to: 1,
      body: r.body,
    }));
    const persisted: AnyPersist[] = [];
    for (const m of replies) persisted.push(...parties[0]!.receive(m).persist);
    assert.ok(parties[0]!.finished && !parties[0]!.committing);
    applyPersisted(stores, new Map([[1, persisted]]) as Map<PartyId, AnyPersist[]>);
    assert.ok(
      KEYS.every((k) => stores[1].current.get(k)!.epoch === 1 && !stores[1].previous.has(k)),
      'the EP erased epoch 0',
    );
  });
});
