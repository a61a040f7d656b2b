/**
 * Fixtures for the DKG / refresh / Aux tests: deterministic RNGs, ephemeral P-256 identity keys
 * standing in for the servers' TLS keys (§11 R4), and test-only key recombination.
 */
import { p256 } from '@noble/curves/nist.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { decodePoint, getCurve, type Curve } from '../../src/crypto/curves.js';
import { enc, u32be } from '../../src/crypto/encoding.js';
import { recombineAt0 } from '../../src/crypto/shamir.js';
import { ALG_CURVE, type KeyShare } from '../../src/protocols/key-share.js';
import type { IdentitySigner, IdentityVerifier } from '../../src/protocols/session-kit.js';
import type { PartyId, Rng } from '../../src/protocols/types.js';

/** Deterministic RNG (SHA-256 in counter mode over a label): reproducible test runs. */
export function testRng(label: string): Rng {
  let counter = 0;
  return (n: number) => {
    const out = new Uint8Array(n);
    for (let at = 0; at < n; at += 32) {
      const block = sha256(enc('test-rng', label, u32be(counter++)));
      out.set(block.subarray(0, Math.min(32, n - at)), at);
    }
    return out;
  };
}

export interface Identities {
  signers: Record<PartyId, IdentitySigner>;
  verifier: IdentityVerifier;
}

/** Three ephemeral P-256 identity keys (ECDSA over the statement bytes). */
export function makeIdentities(label = 'ids'): Identities {
  const rng = testRng(label);
  const sks = {} as Record<PartyId, Uint8Array>;
  const pks = {} as Record<PartyId, Uint8Array>;
  for (const p of [1, 2, 3] as const) {
    sks[p] = p256.utils.randomSecretKey(rng(48));
    pks[p] = p256.getPublicKey(sks[p]);
  }
  const signers = {} as Record<PartyId, IdentitySigner>;
  for (const p of [1, 2, 3] as const) signers[p] = { sign: (m) => p256.sign(m, sks[p]) };
  const verifier: IdentityVerifier = {
    verify: (party, m, sig) => {
      try {
        return p256.verify(sig, m, pks[party]);
      } catch {
        return false;
      }
    },
  };
  return { signers, verifier };
}

/** TEST ONLY: recombine the key from two shares (production code never does this). */
export function recombineKey(a: KeyShare, b: KeyShare): bigint {
  const curve = getCurve(ALG_CURVE[a.alg]);
  return recombineAt0(curve, a.partyId, a.share, b.partyId, b.share);
}

export function curveOf(s: KeyShare): Curve {
  return getCurve(ALG_CURVE[s.alg]);
}

/** TEST ONLY: does x·G equal the public key Y of the share? */
export function isKeyOf(s: KeyShare, x: bigint): boolean {
  const curve = curveOf(s);
  const fx = curve.Fn.create(x);
  if (fx === 0n) return false;
  return curve.G.multiply(fx).equals(decodePoint(curve, s.Y));
}

/** Sum of the RNG's output bytes seen by noble, to confirm it is used (not Math.random). */
export const ENV_SAMPLES = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? '');
  return Number.isInteger(v) && v > 0 ? v : dflt;
};
