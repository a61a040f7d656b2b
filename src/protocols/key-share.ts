/**
 * What one server holds of one threshold EC key at one epoch: its Shamir share x_i = f(i) and
 * the public data every party can check it against (docs/protocols.md §2 "Public key").
 */
import type { CurveName } from '../crypto/curves.js';
import type { PartyId } from './types.js';

/** A key is bound to one algorithm for life (it is part of every sid). */
/**
 * `aes-256-dprf` is an AES-256 key held as a threshold PRF key: a P-256 scalar generated, refreshed
 * and re-derived exactly like the signing keys, used only by the DPRF (src/protocols/dprf.ts).
 */
export type EcAlg = 'ecdsa-secp256k1' | 'ecdsa-p256' | 'ecdsa-p384' | 'eddsa-ed25519' | 'schnorr-bip340' | 'aes-256-dprf';
export const EC_ALGS: readonly EcAlg[] = [
  'ecdsa-secp256k1',
  'ecdsa-p256',
  'ecdsa-p384',
  'eddsa-ed25519',
  'schnorr-bip340',
  'aes-256-dprf',
];

/** The curve each algorithm's DKG runs on. */
export const ALG_CURVE: Record<EcAlg, CurveName> = {
  'ecdsa-secp256k1': 'secp256k1',
  'ecdsa-p256': 'p256',
  'ecdsa-p384': 'p384',
  'eddsa-ed25519': 'ed25519',
  'schnorr-bip340': 'secp256k1',
  'aes-256-dprf': 'p256',
};

/** Public data of a key at an epoch; identical at all three parties (compared in PREPARED). */
export interface KeyPublic {
  readonly keyId: string;
  readonly alg: EcAlg;
  readonly epoch: number;
  /** Y = x·G = C0, encoded point. */
  readonly Y: Uint8Array;
  /** C1 = c·G, encoded point (f(X) = x + c·X). */
  readonly C1: Uint8Array;
  /** A_j = x_j·G = Y + j·C1 for j = 1, 2, 3, encoded points. */
  readonly A: Readonly<Record<PartyId, Uint8Array>>;
  /** The key's policy (key-policy.ts), fixed at generation: ms after which it no longer signs. */
  readonly notAfter?: number;
}

/** One party's secret share with its public data. Never logged, encrypted at rest. */
export interface KeyShare extends KeyPublic {
  readonly partyId: PartyId;
  /** x_i = f(i), a scalar in [1, q). */
  readonly share: bigint;
}
