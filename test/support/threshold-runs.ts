/**
 * Runs whole DKG / refresh / Aux sessions through `runLocal` for the protocol tests, with a
 * per-party in-memory "store" that applies the persist items the way a host would.
 */
import { createAuxRederiveParty, type AuxPersist, type AuxRederiveParty } from '../../src/protocols/aux-rederive.js';
import { createDkgParty, type DkgParty, type DkgPersist } from '../../src/protocols/dkg.js';
import { encodeKeyPolicy } from '../../src/protocols/key-policy.js';
import type { EcAlg, KeyShare } from '../../src/protocols/key-share.js';
import { createRefreshParty, type RefreshParty, type RefreshPersist } from '../../src/protocols/refresh.js';
import type { PartyId } from '../../src/protocols/types.js';
import { runLocal, type Interceptor, type RunResult } from './protocol-harness.js';
import { makeIdentities, testRng } from './threshold-fixtures.js';

export const IDS = makeIdentities('threshold-tests');
export const TRIPLET = 'triplet-test';
export const ALL: readonly PartyId[] = [1, 2, 3];

export function dkgParties(alg: EcAlg, keyId: string, label: string, policy: Uint8Array = encodeKeyPolicy({})): DkgParty[] {
  return ALL.map((id) =>
    createDkgParty({
      id,
      tripletId: TRIPLET,
      rng: testRng(`${label}/${id}`),
      signer: IDS.signers[id],
      verifier: IDS.verifier,
      authorize: () => true,
      ...(id === 1 ? { request: { keyId, alg, policy } } : {}),
    }),
  );
}

export function runDkg(
  alg: EcAlg,
  keyId: string,
  label: string,
  intercept?: Interceptor,
  policy?: Uint8Array,
): {
  parties: DkgParty[];
  run: RunResult<KeyShare, DkgPersist>;
} {
  const parties = dkgParties(alg, keyId, label, policy);
  return { parties, run: runLocal(parties, intercept) };
}

/** A party's key store as a host would keep it: CURRENT, PENDING and PREVIOUS per key. */
export class KeyStore {
  readonly current = new Map<string, KeyShare>();
  readonly pending = new Map<string, KeyShare>();
  readonly previous = new Map<string, KeyShare>();
  readonly auxPresent = new Set<string>();
  checkpoint: unknown = null;

  constructor(readonly id: PartyId) {}

  lookupRefresh = (keyId: string) => {
    const current = this.current.get(keyId);
    if (!current) return undefined;
    return {
      current,
      pendingEpoch: this.pending.get(keyId)?.epoch ?? null,
      previousEpoch: this.previous.get(keyId)?.epoch ?? null,
    };
  };
  lookup = (keyId: string) => this.current.get(keyId);

  /** Applies persist items exactly as §5 says (throws if one would break an invariant). */
  apply(item: RefreshPersist | AuxPersist | DkgPersist): void {
    switch (item.kind) {
      case 'share-pending':
      case 'aux-share-pending':
        this.pending.set(item.share.keyId, item.share);
        break;
      case 'epoch-activate':
        for (const k of item.keys) {
          const p = this.pending.get(k.keyId);
          const c = this.current.get(k.keyId);
          if (!p || p.epoch !== k.to || !c || c.epoch !== k.from) throw new Error('activate without PENDING');
          this.previous.set(k.keyId, c);
          this.current.set(k.keyId, p);
          this.pending.delete(k.keyId);
        }
        break;
      case 'epoch-erase-previous':
        for (const k of item.keys) {
          if (this.previous.get(k.keyId)?.epoch !== k.from) throw new Error('erase of a missing PREVIOUS');
          this.previous.delete(k.keyId);
        }
        break;
      case 'aux-share-activate':
        for (const k of item.keys) {
          const p = this.pending.get(k.keyId);
          if (!p) throw new Error('activate without PENDING');
          this.current.set(k.keyId, p);
          this.pending.delete(k.keyId);
        }
        break;
      case 'aux-present':
        for (const k of item.keys) this.auxPresent.add(k.keyId);
        break;
      case 'session-abandon':
        for (const k of item.pending) {
          if (this.pending.get(k.keyId)?.epoch !== k.epoch) throw new Error('abandon of a missing PENDING');
          this.pending.delete(k.keyId);
        }
        this.checkpoint = null;
        break;
      case 'refresh-checkpoint':
      case 'aux-checkpoint':
      case 'dkg-checkpoint':
        this.checkpoint = item;
        break;
      default:
        break;
    }
  }

  /** Epochs this party *holds* (CURRENT or PREVIOUS, never PENDING: §11 R4). */
  held(keyId: string): Map<number, KeyShare> {
    const out = new Map<number, KeyShare>();
    for (const m of [this.current, this.previous]) {
      const s = m.get(keyId);
      if (s) out.set(s.epoch, s);
    }
    return out;
  }
}

export function storesFromDkg(outputs: Map<PartyId, KeyShare>[]): Record<PartyId, KeyStore> {
  const stores = { 1: new KeyStore(1), 2: new KeyStore(2), 3: new KeyStore(3) } as Record<PartyId, KeyStore>;
  for (const o of outputs) for (const id of ALL) stores[id].current.set(o.get(id)!.keyId, o.get(id)!);
  return stores;
}

export function refreshParties(stores: Record<PartyId, KeyStore>, keyIds: readonly string[], label: string): RefreshParty[] {
  return ALL.map((id) =>
    createRefreshParty({
      id,
      tripletId: TRIPLET,
      rng: testRng(`${label}/${id}`),
      signer: IDS.signers[id],
      verifier: IDS.verifier,
      lookup: stores[id].lookupRefresh,
      ...(id === 1 ? { keyIds } : {}),
    }),
  );
}

export function auxParties(stores: Record<PartyId, KeyStore>, keyIds: readonly string[], label: string, attribution: boolean): AuxRederiveParty[] {
  return ALL.map((id) =>
    createAuxRederiveParty({
      id,
      tripletId: TRIPLET,
      rng: testRng(`${label}/${id}`),
      signer: IDS.signers[id],
      verifier: IDS.verifier,
      ...(id !== 3 ? { lookup: stores[id].lookup } : {}),
      ...(id === 1 ? { keyIds, attribution } : {}),
    }),
  );
}

/** Applies every persisted item of a run to the stores, in order. */
export function applyPersisted<P extends RefreshPersist | AuxPersist | DkgPersist>(
  stores: Record<PartyId, KeyStore>,
  persisted: Map<PartyId, P[]>,
): void {
  for (const id of ALL) for (const item of persisted.get(id) ?? []) stores[id].apply(item);
}
