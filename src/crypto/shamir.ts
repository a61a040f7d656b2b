/**
 * Degree-1 Shamir sharing over a curve's scalar field, for the triplet x-coordinates 1, 2, 3
 * (docs/protocols.md §1.1). Every Lagrange row of the §1.1 table is a named function here
 * and unit-tested against the generic interpolation.
 *
 * Production code never recombines a key: `recombineAt0` exists for the test harness and for
 * reconstructing public values (points) "in the exponent".
 */
import type { Curve, Point } from './curves.js';
import type { PartyId } from './parties.js';

/** A degree-1 polynomial f(X) = a0 + a1·X over Fn. */
export interface Line {
  readonly a0: bigint;
  readonly a1: bigint;
}

/** f(j) = a0 + a1·j mod q. */
export function evalLine(curve: Curve, f: Line, j: number): bigint {
  const { Fn } = curve;
  return Fn.add(Fn.create(f.a0), Fn.mul(Fn.create(f.a1), BigInt(j)));
}

/** Shares f(1), f(2), f(3) of a degree-1 polynomial. */
export function shareLine(curve: Curve, f: Line): Record<PartyId, bigint> {
  return { 1: evalLine(curve, f, 1), 2: evalLine(curve, f, 2), 3: evalLine(curve, f, 3) };
}

/**
 * Generic Lagrange weights λ_i(at) = Π_{m≠i} (at − x_m)/(x_i − x_m) for distinct non-zero xs.
 * Used to cross-check the fixed rows below and for tests; the rows are what protocols call.
 */
export function lagrangeWeights(curve: Curve, xs: readonly number[], at: number): bigint[] {
  const { Fn } = curve;
  if (new Set(xs).size !== xs.length) throw new RangeError('interpolation points must be distinct');
  return xs.map((xi, i) => {
    let num = Fn.ONE;
    let den = Fn.ONE;
    xs.forEach((xm, m) => {
      if (m === i) return;
      num = Fn.mul(num, Fn.create(BigInt(at - xm)));
      den = Fn.mul(den, Fn.create(BigInt(xi - xm)));
    });
    return Fn.div(num, den);
  });
}

/** §1.1 rows "f(0) from a pair": 2f(1) − f(2), (3f(1) − f(3))·2⁻¹, 3f(2) − 2f(3). */
export function recombineAt0(curve: Curve, a: PartyId, ya: bigint, b: PartyId, yb: bigint): bigint {
  const { Fn } = curve;
  if (a === b) throw new RangeError('need two distinct parties');
  const [i, yi, j, yj] = a < b ? [a, ya, b, yb] : [b, yb, a, ya];
  if (i === 1 && j === 2) return Fn.sub(Fn.mul(2n, yi), yj);
  if (i === 1 && j === 3) return Fn.div(Fn.sub(Fn.mul(3n, yi), yj), 2n);
  // {2, 3}
  return Fn.sub(Fn.mul(3n, yi), Fn.mul(2n, yj));
}

/** §1.1 row "f(3) from {1,2}" (Aux re-derivation): −f(1) + 2f(2). */
export function interpolateAt3From12(curve: Curve, y1: bigint, y2: bigint): bigint {
  const { Fn } = curve;
  return Fn.sub(Fn.mul(2n, y2), y1);
}

/** §1.1 row "g(0) of a degree-2 polynomial from all three": 3g(1) − 3g(2) + g(3). */
export function degree2At0(curve: Curve, g1: bigint, g2: bigint, g3: bigint): bigint {
  const { Fn } = curve;
  return Fn.add(Fn.sub(Fn.mul(3n, g1), Fn.mul(3n, g2)), Fn.create(g3));
}

/** §1.1 degree-1 consistency of three scalars: f(1) − 2f(2) + f(3) = 0. */
export function isDegree1(curve: Curve, y1: bigint, y2: bigint, y3: bigint): boolean {
  const { Fn } = curve;
  return Fn.is0(Fn.add(Fn.sub(Fn.create(y1), Fn.mul(2n, y2)), Fn.create(y3)));
}

/**
 * §1.1 consistency "in the exponent": V1 − 2V2 + V3 = O. Two honest points fix the line, so a
 * wrong or equivocated third point always fails this (degree-1 openings are self-checking).
 */
export function isDegree1InExponent(V1: Point, V2: Point, V3: Point): boolean {
  return V1.add(V3).equals(V2.double());
}

/** Value at 0 of a degree-1 opening in the exponent: V = 2V1 − V2 (only after the check above). */
export function openInExponentAt0(V1: Point, V2: Point): Point {
  return V1.double().subtract(V2);
}

/** Point at j of the line through (0, C0) with slope C1: C0 + j·C1 (public data only). */
export function lineInExponent(C0: Point, C1: Point, j: number): Point {
  return C0.add(C1.multiplyUnsafe(BigInt(j)));
}
