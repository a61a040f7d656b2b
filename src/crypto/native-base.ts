/**
 * noble's FROST DKG multiplies its suite's BASE for every coefficient commitment, proof of
 * possession and share check, and noble's BigInt arithmetic made that most of a DKG's own time.
 * `withNativeBase` gives a suite a point class whose BASE computes k·G in native or WebAssembly
 * code (the caller's `mulBase`), and leaves everything else to noble: other points, scalars out of
 * (0, n) (noble refuses them), and public k·G on noble's precomputed tables, which belong to
 * noble's own BASE.
 */
import type { CurvePoint, CurvePointCons } from '@noble/curves/abstract/curve.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyPoint = CurvePoint<any, any>;
type Coordinates = { readonly X: bigint; readonly Y: bigint; readonly Z: bigint; readonly T?: bigint };

/** Any of noble's point classes (Weierstrass or Edwards): what this reads of one. */
type PointClass = Pick<CurvePointCons<AnyPoint>, 'BASE' | 'Fn'>;

export function withNativeBase<C extends PointClass>(Point: C, mulBase: (k: bigint) => AnyPoint): C {
  const G = Point.BASE as AnyPoint;
  const { X, Y, Z, T } = G as unknown as Coordinates;
  const order = Point.Fn.ORDER;
  class NativeBasePoint extends (Point as unknown as new (...coordinates: (bigint | undefined)[]) => AnyPoint) {
    /** FROST checks `instanceof Point`, and arithmetic gives plain points: every point of the curve is one. */
    static override [Symbol.hasInstance](x: unknown): boolean {
      return x instanceof (Point as unknown as abstract new (...args: never[]) => unknown);
    }

    /** Weierstrass points take (X, Y, Z), Edwards points (X, Y, Z, T). */
    static readonly BASE: NativeBasePoint = new NativeBasePoint(X, Y, Z, T);

    override multiply(k: bigint): AnyPoint {
      if (this !== NativeBasePoint.BASE) return super.multiply(k);
      if (k <= 0n || k >= order) return G.multiply(k);
      return mulBase(k);
    }

    override multiplyUnsafe(k: bigint): AnyPoint {
      return this === NativeBasePoint.BASE ? G.multiplyUnsafe(k) : super.multiplyUnsafe(k);
    }
  }
  return NativeBasePoint as unknown as C;
}
