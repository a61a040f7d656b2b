/**
 * The FROST suites whose DKG makes each key (docs/protocols.md §2 table), with every k·G
 * they compute in native code: noble's FROST DKG multiplies its suite's BASE for each coefficient
 * commitment, proof of possession and share check, and noble's BigInt arithmetic made that most
 * of a DKG's own time. Each Weierstrass suite is built exactly as noble builds its own (same name,
 * hash and hash-to-scalar, so the same keys and transcripts; checked in dkg-suites.test.ts) over a
 * point class whose BASE multiplies through `mulBase` (OpenSSL, or libsecp256k1 on secp256k1;
 * src/crypto/native-base.ts).
 * Ed25519's suite does the same through libsodium (src/crypto/ed25519-subgroup.ts).
 */
import { createFROST } from '@noble/curves/abstract/frost.js';
import type { WeierstrassPointCons } from '@noble/curves/abstract/weierstrass.js';
import { p256, p256_hasher, p384, p384_hasher } from '@noble/curves/nist.js';
import { secp256k1, secp256k1_hasher } from '@noble/curves/secp256k1.js';
import { sha256, sha384 } from '@noble/hashes/sha2.js';
import { getCurve, type CurveName } from '../crypto/curves.js';
import { mulBase } from '../crypto/ec-mul.js';
import { withNativeBase } from '../crypto/native-base.js';
import { ed25519_FROST_CHECKED } from '../crypto/ed25519-subgroup.js';
import type { EcAlg } from './key-share.js';

export type FrostSuite = ReturnType<typeof createFROST>;

/** noble's point class of `name` with its BASE multiplying through `mulBase` (OpenSSL or libsecp256k1). */
function nativeBase(name: CurveName, Point: WeierstrassPointCons<bigint>): WeierstrassPointCons<bigint> {
  const curve = getCurve(name);
  return withNativeBase(Point, (k) => mulBase(curve, k));
}

/** noble's `secp256k1_FROST`: untweaked, so BIP340 keys are made by it too (never `schnorr_FROST.DKG`, whose round3 tweaks). */
const secp256k1_DKG: FrostSuite = createFROST({
  name: 'FROST-secp256k1-SHA256-v1',
  Point: nativeBase('secp256k1', secp256k1.Point),
  hashToScalar: secp256k1_hasher.hashToScalar,
  hash: sha256,
});

/** noble's `p256_FROST`. */
const p256_DKG: FrostSuite = createFROST({
  name: 'FROST-P256-SHA256-v1',
  Point: nativeBase('p256', p256.Point),
  hashToScalar: p256_hasher.hashToScalar,
  hash: sha256,
});

/**
 * P-384 has no noble FROST suite; only its DKG is used (P-384 keys sign with ECDSA, §3), so the
 * context string is ours. Tested like the others.
 */
const p384_DKG: FrostSuite = createFROST({
  name: 'CORE-P384-SHA384-DKG-v1',
  Point: nativeBase('p384', p384.Point),
  hash: sha384,
  hashToScalar: p384_hasher.hashToScalar,
});

/** The DKG suite of each alg (§2 table). */
export function dkgSuite(alg: EcAlg): FrostSuite {
  switch (alg) {
    case 'ecdsa-secp256k1':
    case 'schnorr-bip340':
      return secp256k1_DKG;
    case 'ecdsa-p256':
    case 'aes-256-dprf':
      return p256_DKG;
    case 'ecdsa-p384':
      return p384_DKG;
    case 'eddsa-ed25519':
      return ed25519_FROST_CHECKED as FrostSuite;
  }
}
