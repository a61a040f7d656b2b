/** Verifies a threshold key's signature outside ekm: node:crypto (ECDSA, Ed25519, RSA) or noble (BIP340). */
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { schnorr } from '@noble/curves/secp256k1.js';

export const EC_TEST_ALGS = ['ecdsa-p256', 'ecdsa-secp256k1', 'ecdsa-p384', 'eddsa-ed25519', 'schnorr-bip340'] as const;
export type TestAlg = (typeof EC_TEST_ALGS)[number];
/** The EC algorithms and RSA-2048 (signed with the API's default, PKCS#1 v1.5 SHA-256). */
export type SignTestAlg = TestAlg | 'rsa-2048';

/** `pem` is the key's SPKI public key as the API returns it; ECDSA signatures are raw r‖s. */
export function verifyIndependently(k: { alg: SignTestAlg; pem: string }, message: Buffer, sig: Buffer): boolean {
  if (k.alg === 'rsa-2048') return nodeVerify('sha256', message, k.pem, sig);
  if (k.alg === 'schnorr-bip340') {
    const jwk = createPublicKey(k.pem).export({ format: 'jwk' });
    return schnorr.verify(sig, message, Buffer.from(jwk.x!, 'base64url'));
  }
  if (k.alg === 'eddsa-ed25519') return nodeVerify(null, message, k.pem, sig);
  const hash = k.alg === 'ecdsa-p384' ? 'sha384' : 'sha256';
  return nodeVerify(hash, message, { key: k.pem, dsaEncoding: 'ieee-p1363' }, sig);
}
