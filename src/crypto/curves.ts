/**
 * The curves ekm shares keys on, with strict point and scalar codecs (docs/protocols.md §1.2).
 *
 * Everything received from a peer is decoded through `decodePoint` / `decodeScalar`: a value
 * that is off-curve, the identity, of small order (Ed25519), non-canonical or out of range is
 * rejected here, before any protocol arithmetic sees it.
 */
import { ECDH } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { p256, p384 } from '@noble/curves/nist.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import type { CurvePoint, CurvePointCons } from '@noble/curves/abstract/curve.js';
import type { IField } from '@noble/curves/abstract/modular.js';
import { isTorsionFreeOnce } from './ed25519-subgroup.js';
import { bytesEqual } from './encoding.js';

export type CurveName = 'secp256k1' | 'p256' | 'p384' | 'ed25519';
export const CURVE_NAMES: readonly CurveName[] = ['secp256k1', 'p256', 'p384', 'ed25519'];

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Point = CurvePoint<any, any>;

export interface Curve {
  readonly name: CurveName;
  /** Point constructor (noble). */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  readonly Point: CurvePointCons<any>;
  /** Scalar field, order q. */
  readonly Fn: IField<bigint>;
  readonly order: bigint;
  /** Encoded point length (SEC1 compressed, or 32 for Ed25519). */
  readonly pointBytes: number;
  readonly scalarBytes: number;
  readonly G: Point;
}

export class InvalidEncodingError extends Error {
  readonly code = 'EKM_INVALID_ENCODING';
}

function make(name: CurveName, PointCons: Curve['Point']): Curve {
  const Fn = PointCons.Fn;
  const G = PointCons.BASE as Point;
  return {
    name,
    Point: PointCons,
    Fn,
    order: Fn.ORDER,
    pointBytes: G.toBytes().length,
    scalarBytes: Fn.BYTES,
    G,
  };
}

const CURVES: Record<CurveName, Curve> = {
  secp256k1: make('secp256k1', secp256k1.Point as Curve['Point']),
  p256: make('p256', p256.Point as Curve['Point']),
  p384: make('p384', p384.Point as Curve['Point']),
  ed25519: make('ed25519', ed25519.Point as Curve['Point']),
};

export function getCurve(name: CurveName): Curve {
  const c = CURVES[name];
  if (!c) throw new RangeError(`unknown curve ${String(name)}`);
  return c;
}

/** Canonical encoding of a non-identity point (compressed SEC1 / RFC 8032). */
export function encodePoint(curve: Curve, P: Point): Uint8Array {
  if (P.is0()) throw new InvalidEncodingError(`${curve.name}: refusing to encode the identity`);
  return P.toBytes();
}

/** OpenSSL's name of each Weierstrass curve (node:crypto ECDH): decompression here, k·G in ec-mul.ts. */
export const OPENSSL_CURVE: Partial<Record<CurveName, string>> = { p256: 'prime256v1', p384: 'secp384r1', secp256k1: 'secp256k1' };

/**
 * A compressed SEC1 point in uncompressed form, through OpenSSL: its square root is 2-3× faster
 * than noble's BigInt one, and decompression is most of a decode (shares' commitments, peers'
 * points). OpenSSL refuses an x with no point; the uncompressed result is checked by noble again.
 */
function decompressed(curve: Curve, bytes: Uint8Array): Uint8Array {
  const name = OPENSSL_CURVE[curve.name];
  if (!name || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) return bytes;
  return ECDH.convertKey(bytes, name, undefined, undefined, 'uncompressed') as Buffer;
}

/** Strict decode: on-curve, not the identity, torsion-free (Ed25519), canonical bytes. */
export function decodePoint(curve: Curve, bytes: Uint8Array): Point {
  if (!(bytes instanceof Uint8Array) || bytes.length !== curve.pointBytes) {
    throw new InvalidEncodingError(`${curve.name}: point must be ${curve.pointBytes} bytes`);
  }
  let P: Point;
  try {
    P = curve.Point.fromBytes(decompressed(curve, bytes)) as Point;
    P.assertValidity();
  } catch {
    throw new InvalidEncodingError(`${curve.name}: not a valid point encoding`);
  }
  if (P.is0()) throw new InvalidEncodingError(`${curve.name}: identity point`);
  const canonical = P.toBytes();
  if (curve.name === 'ed25519' && !isTorsionFreeOnce(P as InstanceType<typeof ed25519.Point>, canonical)) {
    throw new InvalidEncodingError(`${curve.name}: point has a small-order component`);
  }
  if (!bytesEqual(canonical, bytes)) {
    throw new InvalidEncodingError(`${curve.name}: non-canonical point encoding`);
  }
  return P;
}

export function encodeScalar(curve: Curve, s: bigint): Uint8Array {
  return curve.Fn.toBytes(curve.Fn.create(s));
}

/** Strict decode of a scalar in [0, q); `nonZero` rejects 0 (nonces, coefficients, masks). */
export function decodeScalar(curve: Curve, bytes: Uint8Array, nonZero = false): bigint {
  if (!(bytes instanceof Uint8Array) || bytes.length !== curve.scalarBytes) {
    throw new InvalidEncodingError(`${curve.name}: scalar must be ${curve.scalarBytes} bytes`);
  }
  let s: bigint;
  try {
    s = curve.Fn.fromBytes(bytes);
  } catch {
    throw new InvalidEncodingError(`${curve.name}: scalar out of range`);
  }
  if (nonZero && s === 0n) throw new InvalidEncodingError(`${curve.name}: zero scalar`);
  return s;
}
