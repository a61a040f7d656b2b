/**
 * Ed25519's prime-order-subgroup check, done by libsodium and once per point.
 *
 * A point received from a peer must have no small-order component (docs/protocols.md §1.2).
 * noble checks that with a full scalar multiplication by the group order in BigInt arithmetic
 * (about 0.8 ms); libsodium's `crypto_core_ed25519_is_valid_point` (WebAssembly build) does the
 * same multiplication in 0.08 ms, and is an implementation independent of noble's. Each FROST
 * signature needs it for the two fresh nonce commitments on each side, and each DKG, refresh and
 * re-derivation for every commitment it receives.
 *
 * noble's FROST DKG re-checks every commitment each time one of its rounds parses it, and
 * `ed25519_FROST` checks twice per parse (RFC 9591's DeserializeElement and its own
 * validatePoint): each distinct point is therefore checked once per process, and encodings that
 * passed are remembered (bounded, least recently used first out). A point that fails is never
 * remembered, so the memory only ever saves work; it cannot make a point pass that the check
 * refuses. The key is the point's canonical encoding, which identifies the point exactly.
 *
 * The same FROST rounds also decode each commitment several times, and an Ed25519 decode takes a
 * field square root (~0.1 ms): the suite's `fromBytes` keeps recent decodes too (points are
 * immutable; a failed decode is not kept and fails again).
 */
import { createFROST } from '@noble/curves/abstract/frost.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { BoundedCache } from '../util/bounded-cache.js';
import { bytesEqual, withWiped } from './encoding.js';
import { withNativeBase } from './native-base.js';
import { ed25519IsPrimeOrderPoint, ed25519MulBase } from './sodium.js';

type EdPoint = InstanceType<typeof ed25519.Point>;
const Fn = ed25519.Point.Fn;

/** Distinct points a DKG, refresh or re-derivation wave can bring: a few per key. */
const CHECKED_CAPACITY = 8192;
const checked = new BoundedCache<string, true>(CHECKED_CAPACITY);
const decoded = new BoundedCache<string, SubgroupCheckedPoint>(CHECKED_CAPACITY);

const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

const IDENTITY = ed25519.Point.ZERO.toBytes();

/**
 * [L]·P = O for the point P with canonical encoding `encoding`, as noble's `isTorsionFree()`
 * answers it (so also for the identity), computed by libsodium. libsodium refuses every point of
 * small order, the identity among them: the identity, which has no small-order component, is
 * answered here, and callers that must refuse it (peers' points, docs/protocols.md §1.2) do
 * so themselves.
 */
export function isInPrimeOrderSubgroup(encoding: Uint8Array): boolean {
  if (bytesEqual(encoding, IDENTITY)) return true;
  return ed25519IsPrimeOrderPoint(encoding);
}
/**
 * `P.isTorsionFree()`, computed at most once per point while it stays among the recent ones.
 * `encoding` is P's canonical encoding when the caller has it already (it costs an inversion).
 */
export function isTorsionFreeOnce(P: EdPoint, encoding: Uint8Array = P.toBytes()): boolean {
  const key = hex(encoding);
  if (checked.get(key)) return true;
  if (!isInPrimeOrderSubgroup(encoding)) return false;
  checked.set(key, true);
  return true;
}

/**
 * ed25519's point class for noble's FROST: points it parses answer `isTorsionFree()` through
 * `isTorsionFreeOnce`; the statics FROST reads (BASE, ZERO, Fp, Fn, fromHex, …) are inherited,
 * and arithmetic results are plain ed25519 points, as before. The suite below multiplies its BASE
 * through libsodium (native-base.ts).
 */
class SubgroupCheckedPoint extends (ed25519.Point as unknown as new (X: bigint, Y: bigint, Z: bigint, T: bigint) => EdPoint) {
  /**
   * FROST's multi-scalar multiplication checks `point instanceof Point` with this class, but the
   * points it combines come from arithmetic (plain ed25519 points): the subclass adds no state, so
   * every ed25519 point is one of these.
   */
  static override [Symbol.hasInstance](x: unknown): boolean {
    return x instanceof ed25519.Point;
  }

  static fromBytes(bytes: Uint8Array, zip215 = false): SubgroupCheckedPoint {
    const key = `${zip215 ? 'zip215' : 'strict'}:${hex(bytes)}`;
    const known = decoded.get(key);
    if (known) return known;
    const p = ed25519.Point.fromBytes(bytes, zip215);
    const point = new SubgroupCheckedPoint(p.X, p.Y, p.Z, p.T);
    decoded.set(key, point);
    return point;
  }

  override isTorsionFree(): boolean {
    return isTorsionFreeOnce(this);
  }
}

/**
 * FROST(Ed25519, SHA-512) exactly as noble's `ed25519_FROST` (same name, hash, H2 and point
 * validation, so the same keys and transcripts) with the subgroup check done once per point.
 */
export const ed25519_FROST_CHECKED = createFROST({
  name: 'FROST-ED25519-SHA512-v1',
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  Point: withNativeBase(SubgroupCheckedPoint as any, (k) => withWiped(Fn.toBytes(k), (kb) => ed25519.Point.fromBytes(ed25519MulBase(kb)))),
  validatePoint: (p) => {
    p.assertValidity();
    if (!p.isTorsionFree()) throw new Error('bad point: not torsion-free');
  },
  hash: sha512,
  H2: '',
});
