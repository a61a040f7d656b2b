/**
 * Feldman commitments for degree-1 sharings (docs/protocols.md §1.1, §2 K4, §5 RF2).
 *
 * A dealer of f(X) = a0 + a1·X publishes C0 = a0·G and C1 = a1·G; share x_j = f(j) is valid iff
 * x_j·G == C0 + j·C1. For a zero polynomial (refresh, C0 = O) the check is x_j·G == j·C1.
 */
import type { Curve, Point } from './curves.js';
import { mulBase } from './ec-mul.js';
import type { Line } from './shamir.js';

export interface FeldmanCommitment {
  /** a0·G; the identity for a zero-constant polynomial (never put on the wire). */
  readonly C0: Point;
  readonly C1: Point;
}

/** Commit to a line. `multiply` is constant time: the coefficients are secret. */
export function feldmanCommit(curve: Curve, f: Line): FeldmanCommitment {
  const mul = (s: bigint): Point => mulBase(curve, s);
  return { C0: mul(curve.Fn.create(f.a0)), C1: mul(curve.Fn.create(f.a1)) };
}

/** Expected A_j = C0 + j·C1 (public data: variable-time multiplication is fine). */
export function expectedShareCommitment(C: FeldmanCommitment, j: number): Point {
  return C.C0.add(C.C1.multiplyUnsafe(BigInt(j)));
}

/** x_j·G == C0 + j·C1; a zero share compares against the identity (G·0 throws in noble). */
export function verifyFeldmanShare(curve: Curve, C: FeldmanCommitment, j: number, xj: bigint): boolean {
  const s = curve.Fn.create(xj);
  const lhs = mulBase(curve, s);
  return lhs.equals(expectedShareCommitment(C, j));
}
