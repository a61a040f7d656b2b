/**
 * Chaum–Pedersen proof of equal discrete logarithms (docs/protocols.md §12.2, DPRF partials):
 * knowledge of k with A = k·G and V = k·U, non-interactive by Fiat–Shamir with HS (§1.3).
 *
 *   prover:   r (hedged: HS over fresh randomness, k and the statement), R1 = r·G, R2 = r·U,
 *             c = HS("dleq/challenge", label, context…, G, A, U, V, R1, R2), z = r + c·k
 *   proof:    (c, z), two scalars (2 × scalarBytes)
 *   verifier: R1 = z·G − c·A, R2 = z·U − c·V, accept iff c equals the recomputed challenge
 *
 * `label` and `context` bind the proof to its use (e.g. "dprf", the sid, the prover id, the item
 * index), so a proof cannot be replayed in another session or position.
 */
import { decodeScalar, encodePoint, encodeScalar, type Curve, type Point } from './curves.js';
import { HS, type Field } from './encoding.js';
import { mulBase, mulPoint, mulPublic } from './ec-mul.js';
import type { Rng } from './parties.js';

export interface DleqStatement {
  /** Second base (the first is the curve generator G). */
  readonly U: Point;
  /** A = k·G. */
  readonly A: Point;
  /** V = k·U. */
  readonly V: Point;
}

export interface DleqProof {
  readonly c: bigint;
  readonly z: bigint;
}

function challenge(curve: Curve, label: string, context: readonly Field[], st: DleqStatement, R1: Point, R2: Point): bigint {
  const pts = [curve.G, st.A, st.U, st.V, R1, R2].map((P) => encodePoint(curve, P));
  return HS(curve.order, 'dleq/challenge', label, ...context, ...pts);
}

export function proveDleq(curve: Curve, label: string, context: readonly Field[], k: bigint, st: DleqStatement, rng: Rng): DleqProof {
  const { Fn } = curve;
  const seed = rng(32);
  const kb = encodeScalar(curve, k);
  // Hedged nonce: uniform if the RNG is good, still unpredictable if it is not (k is secret).
  const r = HS(curve.order, 'dleq/nonce', label, ...context, seed, kb, encodePoint(curve, st.U), encodePoint(curve, st.V));
  seed.fill(0);
  kb.fill(0);
  const c = challenge(curve, label, context, st, mulBase(curve, r), mulPoint(curve, st.U, r));
  return { c, z: Fn.add(r, Fn.mul(c, k)) };
}

export function verifyDleq(curve: Curve, label: string, context: readonly Field[], st: DleqStatement, proof: DleqProof): boolean {
  const { Fn } = curve;
  if (proof.c === 0n) return false;
  const negC = Fn.neg(proof.c);
  const R1 = mulBase(curve, proof.z).add(mulPublic(curve, st.A, negC));
  const R2 = mulPublic(curve, st.U, proof.z).add(mulPublic(curve, st.V, negC));
  if (R1.is0() || R2.is0()) return false;
  return challenge(curve, label, context, st, R1, R2) === proof.c;
}

export function encodeDleqProof(curve: Curve, p: DleqProof): Uint8Array {
  const out = new Uint8Array(2 * curve.scalarBytes);
  out.set(encodeScalar(curve, p.c), 0);
  out.set(encodeScalar(curve, p.z), curve.scalarBytes);
  return out;
}

/** Strict decode: exactly two canonical scalars, c non-zero. */
export function decodeDleqProof(curve: Curve, bytes: Uint8Array): DleqProof {
  if (bytes.length !== 2 * curve.scalarBytes) throw new RangeError('DLEQ proof has the wrong length');
  return {
    c: decodeScalar(curve, bytes.subarray(0, curve.scalarBytes), true),
    z: decodeScalar(curve, bytes.subarray(curve.scalarBytes)),
  };
}
