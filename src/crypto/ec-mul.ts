/**
 * Scalar multiplication in native or WebAssembly code, constant time in k as that code is:
 * - P-256: k·G and k·P through OpenSSL (node:crypto ECDH; 20× and 12× faster than noble's BigInt
 *   arithmetic);
 * - P-384: k·G through OpenSSL (1.3-1.8×); k·P stays on noble, as OpenSSL's generic code needs
 *   two ECDH calls (below), together slower than one noble multiplication;
 * - secp256k1: k·G and k·P through libsecp256k1 (libsecp256k1.ts: 10× and 30×), or as P-384 when
 *   its native binding does not load;
 * - Ed25519: k·B and k·P through libsodium (sodium.ts): 0.12 ms and 0.27 ms with the decode of
 *   the result, against noble's 0.3 and 1.0 ms.
 *
 * k·G is ECDH's public key. For k·P, ECDH gives only x1 = x(k·P); with x2 = x((k+1)·P) from a
 * second ECDH the point is determined without a square root: for Q = k·P = (x1, y) and
 * P = (xp, yp), the chord through Q and P gives λ² = x2 + x1 + xp with λ = (y − yp)/(x1 − xp),
 * and with y² = x1³ + a·x1 + b this is linear in y:
 *   y = (x1³ + a·x1 + b + yp² − (x2 + x1 + xp)·(x1 − xp)²) / (2·yp).
 * x1 = xp only when Q = ±P, i.e. k ≡ ±1, which is handled first. The result is checked on the
 * curve before it is returned.
 */
import { type ECDH, createECDH } from 'node:crypto';
import { p256 } from '@noble/curves/nist.js';
import type { WeierstrassPoint } from '@noble/curves/abstract/weierstrass.js';
import { type Curve, type CurveName, InvalidEncodingError, OPENSSL_CURVE, type Point, decodePoint } from './curves.js';
import { withWiped } from './encoding.js';
import { libsecp256k1 } from './libsecp256k1.js';
import { ed25519Mul, ed25519MulBase } from './sodium.js';

const P256 = p256.Point;
const { a: P256_A, b: P256_B } = P256.CURVE();

/** One ECDH object per curve, re-keyed per call (node:crypto calls are synchronous: no interleaving). */
const ecdhs = new Map<CurveName, ECDH>();
function ecdh(curve: Curve): ECDH {
  let e = ecdhs.get(curve.name);
  if (!e) {
    e = createECDH(OPENSSL_CURVE[curve.name]!);
    ecdhs.set(curve.name, e);
  }
  return e;
}

/** Keys the curve's ECDH object with k (1 ≤ k < n); the scalar's bytes are wiped once OpenSSL has them. */
function keyed(curve: Curve, k: bigint): ECDH {
  const e = ecdh(curve);
  withWiped(curve.Fn.toBytes(k), (kb) => e.setPrivateKey(kb));
  return e;
}

function toBig(b: Uint8Array): bigint {
  return BigInt(`0x${Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex')}`);
}

/** k·G (k reduced mod n; the identity for k ≡ 0). */
export function mulBase(curve: Curve, k: bigint): Point {
  const s = curve.Fn.create(k);
  if (s === 0n) return curve.Point.ZERO;
  if (curve.name === 'ed25519') return withWiped(curve.Fn.toBytes(s), (kb) => curve.Point.fromBytes(ed25519MulBase(kb)) as Point);
  if (curve.name === 'secp256k1' && libsecp256k1)
    return withWiped(curve.Fn.toBytes(s), (kb) => curve.Point.fromBytes(libsecp256k1!.mulBase(kb)) as Point);
  return curve.Point.fromBytes(keyed(curve, s).getPublicKey()) as Point;
}

/** k·P (k reduced mod n; the identity for k ≡ 0 or P the identity), constant time in k. */
export function mulPoint(curve: Curve, P: Point, k: bigint): Point {
  return mul(curve, P, k, false);
}

/** k·P for a public k (verification): noble's faster variable-time code where no native code is used. */
export function mulPublic(curve: Curve, P: Point, k: bigint): Point {
  return mul(curve, P, k, true);
}

/**
 * x(k·P) for a public k in [1, n) and a strictly encoded point P (what ECDSA's r needs, and no
 * more). On P-256 that is one OpenSSL ECDH on the encoding itself, which refuses what decodePoint
 * refuses (a wrong length or prefix, x ≥ p, no point for x): a third of a decode and a full k·P.
 */
export function mulPublicX(curve: Curve, Pbytes: Uint8Array, k: bigint): bigint {
  if (k <= 0n || k >= curve.order) throw new RangeError('mulPublicX: k must be in [1, n)');
  if (curve.name !== 'p256') return mulPublic(curve, decodePoint(curve, Pbytes), k).toAffine().x;
  if (Pbytes.length !== curve.pointBytes) throw new InvalidEncodingError(`${curve.name}: point must be ${curve.pointBytes} bytes`);
  try {
    return toBig(keyed(curve, k).computeSecret(Pbytes));
  } catch {
    throw new InvalidEncodingError(`${curve.name}: not a valid point encoding`);
  }
}

/**
 * x(k·P) for a secret k, constant time in k as OpenSSL's ECDH is: on P-256 one ECDH, where the
 * whole point takes two (above); elsewhere the affine x of `mulPoint`. Throws for k ≡ 0 or P the
 * identity (the product has no x).
 */
export function mulPointX(curve: Curve, P: Point, k: bigint): bigint {
  return mulPointsX(curve, [P], k)[0]!;
}

/** `mulPointX` of each point, for one secret k: on P-256 the ECDH object is keyed once for the batch. */
export function mulPointsX(curve: Curve, points: readonly Point[], k: bigint): bigint[] {
  const s = curve.Fn.create(k);
  if (s === 0n || points.some((P) => P.is0())) throw new RangeError('mulPointX: the product is the identity');
  if (curve.name !== 'p256') return points.map((P) => mulPoint(curve, P, s).toAffine().x);
  const e = keyed(curve, s);
  return points.map((P) => toBig(e.computeSecret((P as InstanceType<typeof P256>).toBytes(false))));
}

function mul(curve: Curve, P: Point, k: bigint, publicScalar: boolean): Point {
  const s = curve.Fn.create(k);
  if (s === 0n || P.is0()) return curve.Point.ZERO;
  if (curve.name === 'ed25519') return withWiped(curve.Fn.toBytes(s), (kb) => curve.Point.fromBytes(ed25519Mul(kb, P.toBytes())) as Point);
  if (curve.name === 'secp256k1' && libsecp256k1)
    return withWiped(
      curve.Fn.toBytes(s),
      (kb) => curve.Point.fromBytes(libsecp256k1!.mul(kb, (P as WeierstrassPoint<bigint>).toBytes(false))) as Point,
    );
  if (curve.name !== 'p256') return publicScalar ? P.multiplyUnsafe(s) : P.multiply(s);
  if (s === 1n) return P;
  const next = curve.Fn.add(s, 1n);
  if (next === 0n) return P.negate();
  const Pa = P as InstanceType<typeof P256>; // curve is P-256: its points are noble's p256 points
  const Pbytes = Pa.toBytes(false);
  const x1 = toBig(keyed(curve, s).computeSecret(Pbytes));
  const x2 = toBig(keyed(curve, next).computeSecret(Pbytes));
  const Fp = P256.Fp;
  const { x: xp, y: yp } = Pa.toAffine();
  const rhs = Fp.add(Fp.add(Fp.mul(Fp.sqr(x1), x1), Fp.mul(P256_A, x1)), P256_B);
  const dx = Fp.sub(x1, xp);
  const num = Fp.sub(Fp.add(rhs, Fp.sqr(yp)), Fp.mul(Fp.add(Fp.add(x2, x1), xp), Fp.sqr(dx)));
  const y = Fp.mul(num, Fp.inv(Fp.add(yp, yp)));
  if (!Fp.eql(Fp.sqr(y), rhs)) throw new Error('P-256 multiplication: the rebuilt point is not on the curve');
  return P256.fromAffine({ x: x1, y }) as Point;
}
