/**
 * RSA and DPRF test fixtures: node:crypto RSA keys generated once per process and per size (4096
 * takes seconds), dealt into threshold shares; session runners for the RSA operation, the RSA
 * refresh and the DPRF evaluation; a test-only P-256 dealer for DPRF shares.
 */
import crypto from 'node:crypto';
import { getCurve } from '../../src/crypto/curves.js';
import { encodePoint } from '../../src/crypto/curves.js';
import { shareLine } from '../../src/crypto/shamir.js';
import {
  createDprfCoordinator,
  createDprfHelper,
  DPRF_ALG,
  type DprfHelpers,
  type DprfKeyShare,
  type DprfOutput,
  OBJECT_FORMAT_VERSION,
  type ObjectFormat,
} from '../../src/protocols/dprf.js';
import {
  createRsaCoordinator,
  createRsaHelper,
  createRsaRefreshParty,
  dealRsaKey,
  type DealtRsaKey,
  type RsaBits,
  type RsaKeyShare,
  type RsaOperation,
  type RsaOutput,
  type RsaRefreshParty,
  type RsaRefreshPersist,
} from '../../src/protocols/rsa.js';
import type { PartyId } from '../../src/protocols/types.js';
import { seededRng, testScalar } from './ec-test-keys.js';
import { runLocal, type Interceptor, type RunResult } from './protocol-harness.js';
import { makeIdentities } from './threshold-fixtures.js';

export const TRIPLET = 'rsa-test-triplet';

export interface TestRsaKey {
  readonly privateKey: crypto.KeyObject;
  readonly publicKey: crypto.KeyObject;
  readonly pkcs8Pem: string;
}

const generated = new Map<number, TestRsaKey>();

/** One node:crypto key per size and process. */
export function rsaTestKey(bits: RsaBits): TestRsaKey {
  let k = generated.get(bits);
  if (!k) {
    const { privateKey, publicKey } = crypto.generateKeyPairSync('rsa', { modulusLength: bits });
    k = { privateKey, publicKey, pkcs8Pem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
    generated.set(bits, k);
  }
  return k;
}

const dealt = new Map<string, DealtRsaKey>();

/** The test key of `bits`, imported (PKCS#8 PEM) and dealt once per process. */
export function dealtRsaKey(bits: RsaBits, keyId = `rsa-${bits}`): DealtRsaKey {
  const id = `${bits}/${keyId}`;
  let d = dealt.get(id);
  if (!d) {
    d = dealRsaKey(keyId, { privateKey: rsaTestKey(bits).pkcs8Pem }, seededRng(`deal-${id}`));
    dealt.set(id, d);
  }
  return d;
}

export interface RsaRunOptions {
  readonly seed?: string;
  readonly nonce?: Uint8Array;
  readonly intercept?: Interceptor;
  readonly tripletId?: string;
}

/** EP + one helper on the given shares (EP's share is shares[1]). */
export function runRsa(
  shares: Readonly<Record<PartyId, RsaKeyShare>>,
  helper: 2 | 3,
  operation: RsaOperation,
  o: RsaRunOptions = {},
): RunResult<RsaOutput, never> {
  const rng = seededRng(o.seed ?? 'rsa-run');
  const ep = createRsaCoordinator({
    share: shares[1],
    tripletId: TRIPLET,
    helper,
    operation,
    rng,
    ...(o.nonce ? { nonce: o.nonce } : {}),
  });
  const h = createRsaHelper({ share: shares[helper], tripletId: o.tripletId ?? TRIPLET });
  return runLocal([ep, h], o.intercept);
}

/** The released bytes of a run, or the reason there are none. */
export function rsaResult(run: RunResult<RsaOutput, never>): Uint8Array | 'aborted' | 'decryption-failed' | 'stalled' {
  const out = run.outputs.get(1);
  if (out?.kind === 'signature') return out.signature;
  if (out?.kind === 'plaintext') return out.plaintext;
  if (out?.kind === 'decryption-failed') return 'decryption-failed';
  return run.aborts.size > 0 ? 'aborted' : 'stalled';
}

// ---------------------------------------------------------------------------------------------
// Refresh

/** Per party: the shares it holds by epoch, for keys under test (a minimal key store). */
export class RsaStore {
  readonly byEpoch = new Map<string, Map<number, RsaKeyShare>>();
  current = new Map<string, number>();
  previous = new Map<string, number>();
  pending = new Map<string, number>();

  constructor(shares: readonly RsaKeyShare[]) {
    for (const s of shares) {
      this.byEpoch.set(s.keyId, new Map([[s.epoch, s]]));
      this.current.set(s.keyId, s.epoch);
    }
  }

  share(keyId: string, epoch = this.current.get(keyId)!): RsaKeyShare {
    return this.byEpoch.get(keyId)!.get(epoch)!;
  }

  lookup = (keyId: string) => {
    const e = this.current.get(keyId);
    if (e === undefined) return undefined;
    return {
      current: this.share(keyId, e),
      pendingEpoch: this.pending.get(keyId) ?? null,
      previousEpoch: this.previous.get(keyId) ?? null,
    };
  };

  apply(items: readonly RsaRefreshPersist[]): void {
    for (const it of items) {
      if (it.kind === 'share-pending') {
        this.byEpoch.get(it.share.keyId)!.set(it.share.epoch, it.share);
        this.pending.set(it.share.keyId, it.share.epoch);
      } else if (it.kind === 'epoch-activate') {
        for (const k of it.keys) {
          this.current.set(k.keyId, k.to);
          this.previous.set(k.keyId, k.from);
          this.pending.delete(k.keyId);
        }
      } else if (it.kind === 'epoch-erase-previous') {
        for (const k of it.keys) {
          this.byEpoch.get(k.keyId)!.delete(k.from);
          this.previous.delete(k.keyId);
        }
      }
    }
  }
}

export function rsaStores(keys: readonly DealtRsaKey[]): Record<PartyId, RsaStore> {
  return {
    1: new RsaStore(keys.map((k) => k.shares[1])),
    2: new RsaStore(keys.map((k) => k.shares[2])),
    3: new RsaStore(keys.map((k) => k.shares[3])),
  };
}

const IDS = makeIdentities('rsa-refresh-ids');

export function rsaRefreshConfig(stores: Record<PartyId, RsaStore>, id: PartyId, seed: string) {
  return {
    id,
    tripletId: TRIPLET,
    rng: seededRng(`${seed}-${id}`),
    signer: IDS.signers[id],
    verifier: IDS.verifier,
    lookup: stores[id].lookup,
  };
}

export function rsaRefreshParties(stores: Record<PartyId, RsaStore>, keyIds: readonly string[], seed: string): RsaRefreshParty[] {
  return ([1, 2, 3] as const).map((id) =>
    createRsaRefreshParty({ ...rsaRefreshConfig(stores, id, seed), ...(id === 1 ? { keyIds } : {}) }),
  );
}

// ---------------------------------------------------------------------------------------------
// DPRF

export interface DealtDprfKey {
  /** TEST ONLY: the PRF key. */
  readonly k: bigint;
  readonly shares: Readonly<Record<PartyId, DprfKeyShare>>;
}

/** Test-only P-256 dealer (production keys come from the DKG, §2). */
export function dealDprfKey(keyId: string, seed = keyId, epoch = 0): DealtDprfKey {
  const curve = getCurve('p256');
  const rng = seededRng(`dprf-${seed}`);
  const k = testScalar(curve, rng);
  const c = testScalar(curve, rng);
  const ys = shareLine(curve, { a0: k, a1: c });
  const P = (s: bigint) => encodePoint(curve, curve.G.multiply(s));
  const pub = { keyId, alg: DPRF_ALG, epoch, Y: P(k), C1: P(c), A: { 1: P(ys[1]), 2: P(ys[2]), 3: P(ys[3]) } } as const;
  return {
    k,
    shares: {
      1: { ...pub, partyId: 1, share: ys[1] },
      2: { ...pub, partyId: 2, share: ys[2] },
      3: { ...pub, partyId: 3, share: ys[3] },
    },
  };
}

/** A refreshed copy of the key (new line through the same k), as §5 would produce. */
export function refreshDprfKey(key: DealtDprfKey, seed: string): DealtDprfKey {
  const curve = getCurve('p256');
  const delta = testScalar(curve, seededRng(`dprf-refresh-${seed}`));
  const s1 = key.shares[1];
  const c1 = curve.Point.fromBytes(s1.C1).add(curve.G.multiply(delta));
  const mk = (id: PartyId): DprfKeyShare => {
    const share = curve.Fn.add(key.shares[id].share, curve.Fn.mul(delta, BigInt(id)));
    return { ...key.shares[id], epoch: s1.epoch + 1, C1: encodePoint(curve, c1), share };
  };
  const shares = { 1: mk(1), 2: mk(2), 3: mk(3) };
  const A = {
    1: encodePoint(curve, curve.G.multiply(shares[1].share)),
    2: encodePoint(curve, curve.G.multiply(shares[2].share)),
    3: encodePoint(curve, curve.G.multiply(shares[3].share)),
  };
  return { k: key.k, shares: { 1: { ...shares[1], A }, 2: { ...shares[2], A }, 3: { ...shares[3], A } } };
}

/**
 * EP and one proved helper (2, 3), or EP and both helpers cross-checked ('both'), in one process;
 * K_obj for objects of `format` (default: the one new objects are sealed in).
 */
export function runDprf(
  key: DealtDprfKey,
  helper: DprfHelpers,
  objectNonces: readonly Uint8Array[],
  o: RsaRunOptions & { readonly format?: ObjectFormat } = {},
): RunResult<DprfOutput, never> {
  const rng = seededRng(o.seed ?? 'dprf-run');
  const ep = createDprfCoordinator({
    share: key.shares[1],
    tripletId: TRIPLET,
    helper,
    objects: objectNonces.map((nonce) => ({ nonce, format: o.format ?? OBJECT_FORMAT_VERSION })),
    rng,
    ...(o.nonce ? { nonce: o.nonce } : {}),
  });
  const helpers = helper === 'both' ? ([2, 3] as const) : [helper];
  const hs = helpers.map((h) =>
    createDprfHelper({
      share: key.shares[h],
      tripletId: TRIPLET,
      proved: helper !== 'both',
      rng: seededRng(`${o.seed ?? 'dprf-run'}-h${h}`),
    }),
  );
  return runLocal([ep, ...hs], o.intercept);
}

/** The keys a DPRF run released, or why not. */
export function dprfKeys(run: RunResult<DprfOutput, never>): readonly Uint8Array[] | 'aborted' | 'stalled' {
  const out = run.outputs.get(1);
  if (out?.kind === 'keys') return out.keys;
  return run.aborts.size > 0 ? 'aborted' : 'stalled';
}
