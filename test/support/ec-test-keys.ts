/**
 * Test-only key dealer: f(X) = x + c·X, shares f(1..3) and the public data of a KeyShare.
 * Test code may know x; production code never does (keys come from the DKG, §2).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { getCurve, encodePoint, type Curve } from '../../src/crypto/curves.js';
import { bytesToBigIntBE, enc, toHex, u32be } from '../../src/crypto/encoding.js';
import {
  createEcdsaOnlineCoordinator,
  createEcdsaOnlineHelper,
  createEcdsaPresignParty,
  createEcdsaSignCoordinator,
  createEcdsaSignHelper,
  type EcdsaOutput,
  type EcdsaParty,
  type EcdsaPersist,
  type PresigShare,
  type SignedInput,
} from '../../src/protocols/ecdsa.js';
import { createFrostCoordinator, createFrostHelper, type FrostOutput } from '../../src/protocols/frost.js';
import { runLocal, type Interceptor } from './protocol-harness.js';
import { ALG_CURVE, type EcAlg, type KeyPublic, type KeyShare } from '../../src/protocols/key-share.js';
import type { Party, PartyId, Rng, Step } from '../../src/protocols/types.js';

/** Deterministic RNG for tests: SHA-256(seed ‖ counter) stream. */
export function seededRng(seed: string | number): Rng {
  let counter = 0;
  let buf = new Uint8Array(0);
  const s = String(seed);
  return (n: number) => {
    const out = new Uint8Array(n);
    let at = 0;
    while (at < n) {
      if (buf.length === 0) buf = sha256(enc('test-rng', s, u32be(counter++)));
      const take = Math.min(buf.length, n - at);
      out.set(buf.subarray(0, take), at);
      buf = buf.subarray(take);
      at += take;
    }
    return out;
  };
}

export function testScalar(curve: Curve, rng: Rng): bigint {
  for (;;) {
    const v = bytesToBigIntBE(rng(curve.scalarBytes + 16)) % curve.order;
    if (v !== 0n) return v;
  }
}

export interface DealtKey {
  readonly alg: EcAlg;
  readonly curve: Curve;
  /** The whole secret key: test code only. */
  readonly x: bigint;
  readonly c: bigint;
  readonly pub: KeyPublic;
  readonly shares: Readonly<Record<PartyId, KeyShare>>;
}

export interface DealOptions {
  readonly rng?: Rng;
  readonly keyId?: string;
  readonly epoch?: number;
  readonly x?: bigint;
  readonly c?: bigint;
}

let dealt = 0;

export function dealKey(alg: EcAlg, opts: DealOptions = {}): DealtKey {
  const curve = getCurve(ALG_CURVE[alg]);
  const rng = opts.rng ?? seededRng(`deal-${alg}-${dealt++}`);
  const x = opts.x ?? testScalar(curve, rng);
  const c = opts.c ?? testScalar(curve, rng);
  const q = curve.order;
  const f = (j: number): bigint => (x + c * BigInt(j)) % q;
  const pt = (s: bigint): Uint8Array => encodePoint(curve, curve.G.multiply(s));
  const pub: KeyPublic = {
    keyId: opts.keyId ?? `key-${alg}-${dealt}`,
    alg,
    epoch: opts.epoch ?? 0,
    Y: pt(x),
    C1: pt(c),
    A: { 1: pt(f(1)), 2: pt(f(2)), 3: pt(f(3)) },
  };
  const share = (partyId: PartyId): KeyShare => ({ ...pub, partyId, share: f(partyId) });
  return { alg, curve, x, c, pub, shares: { 1: share(1), 2: share(2), 3: share(3) } };
}

// ---------------------------------------------------------------------------------------------
// Running ECDSA sessions in one process (test/support/protocol-harness.ts underneath)

export interface EcdsaRunOptions {
  readonly tripletId?: string;
  readonly seed?: string;
  readonly intercept?: Interceptor;
  readonly nonce?: Uint8Array;
}

function partyRngs(seed: string): Record<PartyId, Rng> {
  return { 1: seededRng(`${seed}/1`), 2: seededRng(`${seed}/2`), 3: seededRng(`${seed}/3`) };
}

/** One on-demand `ecdsa-sign` session among the three parties. */
export function runEcdsaSign(key: DealtKey, input: SignedInput, o: EcdsaRunOptions = {}) {
  const tripletId = o.tripletId ?? 'triplet-test';
  const rng = partyRngs(o.seed ?? `sign-${key.pub.keyId}-${dealt++}`);
  const parties = [
    createEcdsaSignCoordinator({ share: key.shares[1], tripletId, rng: rng[1], input, ...(o.nonce ? { nonce: o.nonce } : {}) }),
    createEcdsaSignHelper({ share: key.shares[2], tripletId, rng: rng[2] }),
    createEcdsaSignHelper({ share: key.shares[3], tripletId, rng: rng[3] }),
  ];
  return runLocal<EcdsaOutput, EcdsaPersist>(parties, o.intercept);
}

/** One presign-only session; returns the three shares (or the run on failure). */
export function runEcdsaPresign(key: DealtKey, o: EcdsaRunOptions = {}) {
  const tripletId = o.tripletId ?? 'triplet-test';
  const rng = partyRngs(o.seed ?? `presign-${key.pub.keyId}-${dealt++}`);
  const parties = ([1, 2, 3] as const).map((j) =>
    createEcdsaPresignParty({ share: key.shares[j], tripletId, rng: rng[j], ...(j === 1 && o.nonce ? { nonce: o.nonce } : {}) }),
  );
  return runLocal<EcdsaOutput, EcdsaPersist>(parties, o.intercept);
}

/**
 * A presignature store per party as a host keeps it: `presig-used` deletes the share (the test
 * applies persist items before delivering the step's messages, as the host must).
 */
export class PresigStore {
  readonly shares = new Map<string, PresigShare>();
  readonly used = new Set<string>();
  add(p: PresigShare): void {
    this.shares.set(toHex(p.psid), p);
  }
  take(psid: Uint8Array): PresigShare | undefined {
    const k = toHex(psid);
    return this.used.has(k) ? undefined : this.shares.get(k);
  }
  markUsed(psid: Uint8Array): void {
    const k = toHex(psid);
    if (this.used.has(k)) throw new Error(`presignature ${k} marked USED twice`);
    this.used.add(k);
    this.shares.delete(k);
  }
}

export function presigStores(key: DealtKey, count: number, seed = 'pool'): Record<PartyId, PresigStore> {
  const stores = { 1: new PresigStore(), 2: new PresigStore(), 3: new PresigStore() };
  for (let i = 0; i < count; i++) {
    const run = runEcdsaPresign(key, { seed: `${seed}-${i}` });
    for (const j of [1, 2, 3] as const) {
      const out = run.outputs.get(j);
      if (out?.kind !== 'presignature') throw new Error('presign failed');
      stores[j].add(out.presig);
    }
  }
  return stores;
}

/** One `ecdsa-online` session using EP's presignature `psid`; persist items update the stores. */
export function runEcdsaOnline(
  key: DealtKey,
  stores: Record<PartyId, PresigStore>,
  psid: Uint8Array,
  input: SignedInput,
  o: EcdsaRunOptions = {},
) {
  const tripletId = o.tripletId ?? 'triplet-test';
  const rng = partyRngs(o.seed ?? `online-${key.pub.keyId}-${dealt++}`);
  const presig = stores[1].take(psid);
  if (!presig) throw new Error('EP has no such presignature');
  const wrap = (p: EcdsaParty): EcdsaParty => {
    const apply = (s: Step<EcdsaOutput, EcdsaPersist>): Step<EcdsaOutput, EcdsaPersist> => {
      for (const item of s.persist) stores[p.id].markUsed(item.psid);
      return s;
    };
    return {
      id: p.id,
      get finished() {
        return p.finished;
      },
      start: () => apply(p.start()),
      receive: (m) => apply(p.receive(m)),
    };
  };
  const parties = [
    wrap(createEcdsaOnlineCoordinator({ share: key.shares[1], tripletId, rng: rng[1], presig, input, ...(o.nonce ? { nonce: o.nonce } : {}) })),
    wrap(createEcdsaOnlineHelper({ share: key.shares[2], tripletId, rng: rng[2], lookupPresig: (p) => stores[2].take(p) })),
    wrap(createEcdsaOnlineHelper({ share: key.shares[3], tripletId, rng: rng[3], lookupPresig: (p) => stores[3].take(p) })),
  ];
  return runLocal<EcdsaOutput, EcdsaPersist>(parties, o.intercept);
}

/** One FROST session between EP and `helper` (the third party is not involved). */
export function runFrost(key: DealtKey, helper: 2 | 3, message: Uint8Array, o: EcdsaRunOptions = {}) {
  const tripletId = o.tripletId ?? 'triplet-test';
  const rng = partyRngs(o.seed ?? `frost-${key.pub.keyId}-${dealt++}`);
  const parties = [
    createFrostCoordinator({ share: key.shares[1], tripletId, helper, message, rng: rng[1], ...(o.nonce ? { nonce: o.nonce } : {}) }),
    createFrostHelper({ share: key.shares[helper], tripletId, rng: rng[helper] }),
  ];
  return runLocal<FrostOutput, never>(parties, o.intercept);
}

/** Wraps a party so that the time spent in its `start`/`receive` is added to `ms[id]`. */
export function timed<Out, Persist>(p: Party<Out, Persist>, ms: Record<number, number>): Party<Out, Persist> {
  const run = <T>(fn: () => T): T => {
    const t = performance.now();
    try {
      return fn();
    } finally {
      ms[p.id] = (ms[p.id] ?? 0) + performance.now() - t;
    }
  };
  return {
    id: p.id,
    get finished() {
      return p.finished;
    },
    start: () => run(() => p.start()),
    receive: (m) => run(() => p.receive(m)),
  };
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}
