/**
 * Uniform non-zero scalars from an injected Rng (docs/protocols.md §1.2, §1.6).
 *
 * Wide reduction: draw scalarBytes + 16 bytes (≥ 128 bits more than q), reduce mod (q − 1) and
 * add 1. The bias is below 2⁻¹²⁸, there is no loop (so no timing leak on rejections), and 0 can
 * never come out — zero is rejected wherever a scalar is a nonce, coefficient or mask seed.
 */
import { bytesToBigIntBE } from './encoding.js';
import type { Curve } from './curves.js';
import type { Rng } from './parties.js';

/** Extra random bytes beyond the scalar width: keeps the modular bias below 2^-128. */
const WIDE_EXTRA_BYTES = 16;

export function randomNonZeroScalar(curve: Curve, rng: Rng): bigint {
  const len = curve.scalarBytes + WIDE_EXTRA_BYTES;
  const wide = rng(len);
  if (!(wide instanceof Uint8Array) || wide.length !== len) {
    throw new RangeError(`rng returned ${wide?.length} bytes, expected ${len}`);
  }
  const s = (bytesToBigIntBE(wide) % (curve.order - 1n)) + 1n;
  wide.fill(0); // the bytes determine the scalar: do not leave them behind
  return s;
}

/** Adapter from our `Rng` to noble's `randomBytes(bytesLength = 32)` signature. */
export function nobleRng(rng: Rng): (bytesLength?: number) => Uint8Array {
  return (bytesLength = 32) => rng(bytesLength);
}
