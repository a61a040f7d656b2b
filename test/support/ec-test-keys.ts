/**
 * Test-only key dealer: f(X) = x + c·X, shares f(1..3) and the public data of a KeyShare.
 * Test code may know x; production code never does (keys come from the DKG, §2).
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { decodePoint, decodeScalar, encodePoint, encodeScalar, getCurve, type Curve } from '../../src/crypto/curves.js';
import { bytesToBigIntBE, decodeEnc, enc, toHex, u32be } from '../../src/crypto/encoding.js';
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
import type { FrostSuite } from '../../src/protocols/dkg-suites.js';
import { createFrostCoordinator, createFrostHelper, type FrostOutput } from '../../src/protocols/frost.js';
import { runLocal, type Interceptor } from './protocol-harness.js';
import { ALG_CURVE, type EcAlg, type KeyPublic, type KeyShare } from '../../src/protocols/key-share.js';
import type { Envelope, Party, PartyId, Rng, Step } from '../../src/protocols/types.js';

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

/** `seededRng` in the shape noble's functions take (an optional length, 32 by default). */
export function nobleSeededRng(seed: string): (n?: number) => Uint8Array<ArrayBuffer> {
  const r = seededRng(seed);
  return (n?: number) => r(n ?? 32) as Uint8Array<ArrayBuffer>;
}

/**
 * noble's own FROST DKG with `suite` among identifiers 1, 2, 3 (2-of-3), party k drawing its
 * randomness from `nobleSeededRng(`${seed}-${k}`)`; returns each party's key package.
 */
export function nobleDkg(suite: FrostSuite, seed: string): ReturnType<FrostSuite['DKG']['round3']>[] {
  const ids = ([1, 2, 3] as const).map((j) => suite.Identifier.fromNumber(j));
  const r1 = ids.map((id, k) => suite.DKG.round1(id, { min: 2, max: 3 }, undefined, nobleSeededRng(`${seed}-${k}`)));
  const r2 = r1.map((me, k) => suite.DKG.round2(me.secret, r1.filter((_, o) => o !== k).map((x) => x.public)));
  return r1.map((me, k) =>
    suite.DKG.round3(
      me.secret,
      r1.filter((_, o) => o !== k).map((x) => x.public),
      r2.filter((_, o) => o !== k).map((x) => x[ids[k]!]!),
    ),
  );
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
  /** Wraps each party (e.g. `timed`) before the run. */
  readonly wrap?: (p: EcdsaParty) => EcdsaParty;
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
  const outer = o.wrap ?? ((p: EcdsaParty) => p);
  const parties = [
    wrap(createEcdsaOnlineCoordinator({ share: key.shares[1], tripletId, rng: rng[1], presig, input, ...(o.nonce ? { nonce: o.nonce } : {}) })),
    wrap(createEcdsaOnlineHelper({ share: key.shares[2], tripletId, rng: rng[2], lookupPresig: (p) => stores[2].take(p) })),
    wrap(createEcdsaOnlineHelper({ share: key.shares[3], tripletId, rng: rng[3], lookupPresig: (p) => stores[3].take(p) })),
  ].map(outer);
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

// ---------------------------------------------------------------------------------------------
// Malicious-party mutations (docs/protocols.md §13): one case per message × kind × field

export interface MutationCase {
  readonly name: string;
  readonly intercept: Interceptor;
}

function setField(body: Uint8Array, k: number, value: Uint8Array): Uint8Array {
  const f = decodeEnc(body);
  f[k] = value;
  return enc(...f);
}

/** Valid-but-wrong replacements of one field: the next scalar, or the point plus G·step. */
function wrongValues(curve: Curve, field: Uint8Array, step: bigint): { name: string; value: Uint8Array }[] {
  const out: { name: string; value: Uint8Array }[] = [];
  if (field.length === curve.scalarBytes) {
    try {
      const s = decodeScalar(curve, field);
      out.push({ name: `scalar+${step}`, value: encodeScalar(curve, s + step) });
    } catch {
      /* not a scalar */
    }
  }
  if (field.length === curve.pointBytes) {
    try {
      const P = decodePoint(curve, field).add(curve.G.multiply(step));
      if (!P.is0()) out.push({ name: `point+${step}G`, value: encodePoint(curve, P) });
    } catch {
      /* not a point */
    }
  }
  return out;
}

function fieldsOf(body: Uint8Array): Uint8Array[] | null {
  try {
    return decodeEnc(body);
  } catch {
    return null;
  }
}

/**
 * Every tamper case for a clean transcript (deterministic seeds make the i-th message of a
 * mutated run the same as in the clean run up to the tampering): drop, duplicate, reorder,
 * wrong `from`, wrong sid, replay from `earlier`, and per field flip-a-bit / valid-but-wrong;
 * plus, per (round, sender) with two recipients, equivocation (different valid values to each).
 */
export function mutationCases(curve: Curve, transcript: readonly Envelope[], earlier: readonly Envelope[]): MutationCase[] {
  const cases: MutationCase[] = [];
  const at = (i: number, name: string, f: (m: Envelope) => Envelope[]): void => {
    const m = transcript[i]!;
    cases.push({ name: `#${i} r${m.round} ${m.from}→${m.to} ${name}`, intercept: (msg, idx) => (idx === i ? f(msg) : [msg]) });
  };
  transcript.forEach((m, i) => {
    at(i, 'drop', () => []);
    at(i, 'duplicate', (x) => [x, x]);
    let held: Envelope | undefined;
    cases.push({
      name: `#${i} r${m.round} ${m.from}→${m.to} reorder`,
      intercept: (msg, idx) => {
        if (idx === i) {
          held = msg;
          return [];
        }
        if (held && idx > i) {
          const out = [msg, held];
          held = undefined;
          return out;
        }
        return [msg];
      },
    });
    const third = ([1, 2, 3] as const).find((p) => p !== m.from && p !== m.to)!;
    at(i, 'wrong-from', (x) => [{ ...x, from: third }]);
    at(i, 'wrong-sid', (x) => {
      const sid = new Uint8Array(x.sid);
      sid[0]! ^= 1;
      return [{ ...x, sid }];
    });
    const old = earlier.find((e) => e.round === m.round && e.from === m.from && e.to === m.to);
    if (old) at(i, 'replay', () => [old]);
    const fields = fieldsOf(m.body) ?? [];
    // Field cases are chosen from the clean transcript and applied to the live message.
    const live = (x: Envelope, k: number): Uint8Array => fieldsOf(x.body)?.[k] ?? new Uint8Array(0);
    fields.forEach((f, k) => {
      if (f.length > 0) {
        at(i, `flip field ${k}`, (x) => {
          const v = new Uint8Array(live(x, k));
          if (v.length === 0) return [x];
          v[v.length - 1]! ^= 1;
          return [{ ...x, body: setField(x.body, k, v) }];
        });
      }
      if (wrongValues(curve, f, 1n).length > 0) {
        at(i, `valid-but-wrong field ${k}`, (x) => {
          const w = wrongValues(curve, live(x, k), 1n)[0];
          return [w ? { ...x, body: setField(x.body, k, w.value) } : x];
        });
      }
    });
  });
  // Equivocation: the same (round, sender) sends different valid values to its two recipients.
  const groups = new Map<string, Envelope[]>();
  for (const m of transcript) groups.set(`${m.round}/${m.from}`, [...(groups.get(`${m.round}/${m.from}`) ?? []), m]);
  for (const [key, ms] of groups) {
    if (ms.length !== 2) continue;
    const fields = fieldsOf(ms[0]!.body) ?? [];
    fields.forEach((f, k) => {
      if (wrongValues(curve, f, 1n).length === 0) return;
      cases.push({
        name: `r${key} equivocate field ${k}`,
        intercept: (msg) => {
          if (`${msg.round}/${msg.from}` !== key) return [msg];
          const cur = fieldsOf(msg.body)![k]!;
          const w = wrongValues(curve, cur, msg.to === ms[0]!.to ? 1n : 2n)[0];
          return w ? [{ ...msg, body: setField(msg.body, k, w.value) }] : [msg];
        },
      });
    });
  }
  return cases;
}

/** Adds `delta` to scalar field `k` of the (round, from → to) message: a dealer's deviation. */
export function shiftScalar(curve: Curve, round: number, from: PartyId, to: PartyId, k: number, delta: bigint): Interceptor {
  return (m) => {
    if (m.round !== round || m.from !== from || m.to !== to) return [m];
    const f = decodeEnc(m.body);
    return [{ ...m, body: setField(m.body, k, encodeScalar(curve, decodeScalar(curve, f[k]!) + delta)) }];
  };
}
