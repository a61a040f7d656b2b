/**
 * RSA refresh (src/protocols/rsa.ts, §5 with additive re-randomisation): the sum a + b − c is
 * unchanged, every piece changes, epochs move through PENDING / CURRENT / PREVIOUS, old and new
 * pieces never mix, a restarted party resumes, and tampering never costs the key: after any case,
 * every pair of parties still shares an epoch whose pieces sign correctly.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeEnc, enc, encList } from '../../../src/crypto/encoding.js';
import { addBytesCt, os2ip, subBytesCt } from '../../../src/crypto/modexp.js';
import { hash } from '../../../src/crypto/rsa-padding.js';
import {
  resumeRsaRefreshParty,
  RSA_PIECES_OF,
  type RsaKeyShare,
  type RsaOperation,
  type RsaRefreshPersist,
} from '../../../src/protocols/rsa.js';
import type { Envelope, PartyId } from '../../../src/protocols/types.js';
import { runLocal } from '../../support/protocol-harness.js';
import {
  dealtRsaKey,
  rsaRefreshConfig,
  rsaRefreshParties,
  rsaResult,
  rsaStores,
  rsaTestKey,
  runRsa,
  type RsaStore,
} from '../../support/rsa-test-keys.js';
import { MUTATIONS, selectCases, tamper, type Mutation } from '../../support/tamper.js';

const KEYS = [dealtRsaKey(2048, 'ra'), dealtRsaKey(2048, 'rb')];
const KEY_IDS = KEYS.map((k) => k.public.keyId);
const { publicKey } = rsaTestKey(2048);
const msg = new TextEncoder().encode('after refresh');
const OP: RsaOperation = { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest: hash('sha256', msg) };

/** TEST ONLY. */
function dOfShares(ep: RsaKeyShare, other: RsaKeyShare): bigint {
  const c = other.pieces.c!;
  const sum = addBytesCt(ep.pieces.a!, ep.pieces.b!, ep.pieces.a!.length);
  return os2ip(subBytesCt(sum, c, sum.length).value);
}

function signsWith(ep: RsaKeyShare, helper: RsaKeyShare): boolean {
  const h = helper.partyId as 2 | 3;
  const r = rsaResult(runRsa({ 1: ep, 2: h === 2 ? helper : ep, 3: h === 3 ? helper : ep } as Record<PartyId, RsaKeyShare>, h, OP));
  return r instanceof Uint8Array && crypto.verify('sha256', msg, publicKey, r);
}

function refresh(stores: Record<PartyId, RsaStore>, seed: string, intercept?: (m: Envelope, i: number) => Envelope[]) {
  const parties = rsaRefreshParties(stores, KEY_IDS, seed);
  const run = runLocal(parties, intercept);
  return { parties, run };
}

function apply(stores: Record<PartyId, RsaStore>, persisted: Map<PartyId, RsaRefreshPersist[]>): void {
  for (const id of [1, 2, 3] as const) stores[id].apply(persisted.get(id) ?? []);
}

/** Epochs a party may use: CURRENT and PREVIOUS (a PENDING share is never used, §5). */
function usable(store: RsaStore, keyId: string): number[] {
  return [store.current.get(keyId), store.previous.get(keyId)].filter((e): e is number => e !== undefined);
}

/** Every pair (EP with a helper) shares a usable epoch, and every such epoch signs correctly. */
function assertKeyAlive(stores: Record<PartyId, RsaStore>, name: string): void {
  for (const keyId of KEY_IDS) {
    for (const h of [2, 3] as const) {
      const common = usable(stores[1], keyId).filter((e) => usable(stores[h], keyId).includes(e));
      assert.ok(common.length > 0, `${name}: EP and ${h} share an epoch of ${keyId}`);
      for (const e of common)
        assert.ok(signsWith(stores[1].share(keyId, e), stores[h].share(keyId, e)), `${name}: epoch ${e} of ${keyId} signs with ${h}`);
    }
  }
}

describe('RSA refresh', () => {
  it('keeps d, changes every piece, moves to e+1 through PENDING → CURRENT → erase PREVIOUS', () => {
    const stores = rsaStores(KEYS);
    const d0 = dOfShares(stores[1].share('ra'), stores[2].share('ra'));
    const { run, parties } = refresh(stores, 'honest');
    assert.equal(run.aborts.size, 0);
    assert.equal(run.outputs.size, 3);
    assert.ok(parties.every((p) => p.events.length === 0));
    const kinds = run.persisted.get(2)!.map((p) => p.kind);
    assert.deepEqual(kinds, [
      'session-open',
      'share-pending',
      'share-pending',
      'refresh-checkpoint',
      'epoch-activate',
      'refresh-checkpoint',
      'epoch-erase-previous',
      'refresh-checkpoint',
    ]);
    const old = ([1, 2, 3] as const).map((id) => stores[id].share('ra'));
    apply(stores, run.persisted);
    for (const id of [1, 2, 3] as const) {
      const nu = stores[id].share('ra');
      assert.equal(nu.epoch, 1);
      assert.equal(stores[id].byEpoch.get('ra')!.size, 1, 'PREVIOUS erased');
      for (const p of RSA_PIECES_OF[id]) assert.notDeepEqual(nu.pieces[p], old[id - 1]!.pieces[p], `piece ${p} of ${id} changed`);
    }
    for (const h of [2, 3] as const) assert.equal(dOfShares(stores[1].share('ra'), stores[h].share('ra')), d0);
    assert.deepEqual(stores[2].share('ra').pieces.c, stores[3].share('ra').pieces.c, 'both holders of c agree');
    assertKeyAlive(stores, 'after refresh');
    // A second refresh works from the new epoch.
    const second = refresh(stores, 'second');
    assert.equal(second.run.outputs.size, 3);
    apply(stores, second.run.persisted);
    assert.equal(stores[3].share('rb').epoch, 2);
    assertKeyAlive(stores, 'after two refreshes');
  });

  it('old and new pieces never mix: the helper refuses the other epoch; forced together they abort, never sign', () => {
    const stores = rsaStores(KEYS);
    const old = { 1: stores[1].share('ra'), 2: stores[2].share('ra'), 3: stores[3].share('ra') };
    apply(stores, refresh(stores, 'mix').run.persisted);
    const nu = { 1: stores[1].share('ra'), 2: stores[2].share('ra'), 3: stores[3].share('ra') };
    for (const h of [2, 3] as const) {
      const refused = runRsa({ ...nu, [h]: old[h] }, h, OP);
      assert.equal(rsaResult(refused), 'aborted');
      assert.match(refused.aborts.get(h)!.reason, /epoch mismatch/);
      for (const [name, shares] of [
        ['new EP, old helper relabelled', { ...nu, [h]: { ...old[h], epoch: 1 } }],
        ['old EP relabelled, new helper', { ...nu, 1: { ...old[1], epoch: 1 } }],
      ] as const) {
        const run = runRsa(shares, h, OP);
        assert.equal(rsaResult(run), 'aborted', name);
        assert.equal(run.aborts.get(1)!.reason, 'result-invalid', name);
      }
    }
  });

  it('refuses a key with a refresh in flight (I3) and a stale piece (tags differ)', () => {
    const stores = rsaStores(KEYS);
    stores[2].pending.set('ra', 1);
    assert.equal(refresh(stores, 'i3').run.outputs.size, 0);
    const stale = rsaStores(KEYS);
    const s3 = stale[3].share('ra');
    const c = addBytesCt(s3.pieces.c!, Uint8Array.of(1), s3.pieces.c!.length);
    stale[3].byEpoch.get('ra')!.set(0, { ...s3, pieces: { ...s3.pieces, c } });
    const { run } = refresh(stale, 'stale');
    assert.equal(run.outputs.size, 0);
    assert.match(run.aborts.get(2)!.reason, /piece c differs/);
  });

  it('a restarted party resumes from its checkpoint (I4) and the refresh completes', () => {
    const stores = rsaStores(KEYS);
    const parties = rsaRefreshParties(stores, KEY_IDS, 'crash');
    // Party 3 "crashes" right after sending PREPARED: drop everything addressed to it afterwards.
    let crashed = false;
    const run = runLocal(parties, (m) => {
      if (m.from === 3 && decodeEnc(m.body).length > 0 && new TextDecoder().decode(decodeEnc(m.body)[0]) === 'prepared') crashed = true;
      return crashed && m.to === 3 ? [] : [m];
    });
    assert.equal(run.outputs.size, 0);
    const cp = run.persisted
      .get(3)!
      .filter((p) => p.kind === 'refresh-checkpoint')
      .at(-1)!;
    assert.ok(cp.kind === 'refresh-checkpoint');
    apply(stores, new Map([[3, run.persisted.get(3)!]]));
    const resumed = resumeRsaRefreshParty(rsaRefreshConfig(stores, 3, 'crash'), { keys: cp.keys, checkpoint: cp.checkpoint });
    const rest = runLocal([parties[0]!, parties[1]!, resumed]);
    assert.equal(rest.outputs.size, 3);
    apply(
      stores,
      new Map([
        [1, [...run.persisted.get(1)!, ...rest.persisted.get(1)!]],
        [2, [...run.persisted.get(2)!, ...rest.persisted.get(2)!]],
        [3, rest.persisted.get(3)!],
      ]),
    );
    for (const id of [1, 2, 3] as const) assert.equal(stores[id].current.get('ra'), 1);
    assertKeyAlive(stores, 'after resume');
  });

  it('an equivocating contributor stops the refresh before any party activates; the old epoch still signs', () => {
    const stores = rsaStores(KEYS);
    const run = runLocal(rsaRefreshParties(stores, KEY_IDS, 'equiv'), (m) => {
      if (m.round !== 1 || m.from !== 2 || m.to !== 3) return [m];
      const f = decodeEnc(m.body);
      const list = decodeEnc(f[1]!).map((item) => {
        const [r, t] = decodeEnc(item);
        const r2 = r!.slice();
        r2[r2.length - 1]! ^= 1;
        return enc(r2, t!);
      });
      f[1] = encList(list);
      return [{ ...m, body: enc(...f) }];
    });
    assert.equal(run.outputs.size, 0);
    for (const id of [1, 2, 3] as const)
      assert.ok(!run.persisted.get(id)!.some((p) => p.kind === 'epoch-activate'), `${id} did not activate`);
    apply(stores, run.persisted);
    assertKeyAlive(stores, 'equivocation');
  });

  it('tamper matrix: after every case each pair still shares an epoch that signs correctly', (t) => {
    const clean = refresh(rsaStores(KEYS), 'matrix').run;
    const earlier = refresh(rsaStores(KEYS), 'matrix-earlier').run.transcript;
    const all: { i: number; mutation: Mutation }[] = [];
    clean.transcript.forEach((_, i) => MUTATIONS.forEach((mutation) => all.push({ i, mutation })));
    const chosen = selectCases(all, Number(process.env.EKM_RSA_REFRESH_CASES ?? 24));
    let activated = 0;
    for (const c of chosen) {
      const stores = rsaStores(KEYS);
      const { run } = refresh(stores, 'matrix', tamper(c.i, c.mutation, earlier));
      apply(stores, run.persisted);
      if ([1, 2, 3].every((id) => stores[id as PartyId].current.get('ra') === 1)) activated++;
      assertKeyAlive(stores, `#${c.i} ${c.mutation}`);
    }
    t.diagnostic(
      `${chosen.length} of ${all.length} cases; ${activated} moved all three parties to epoch 1, the others stopped earlier (the key stayed usable in every case)`,
    );
  });
});
