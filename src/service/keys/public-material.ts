/**
 * A key's public key as the verification code takes it (the encoded point Y for EC keys, (n, e)
 * for RSA), whether it comes from a share or from an imported PEM, and its export formats.
 */
import { type JsonWebKey, createPublicKey } from 'node:crypto';
import { decodePoint, getCurve } from '../../crypto/curves.js';
import { EkmError } from '../../errors.js';
import { ecdsaPublicJwk } from '../../protocols/ecdsa.js';
import { ALG_CURVE, type EcAlg } from '../../protocols/key-share.js';
import { exportRsaPublicKey } from '../../protocols/rsa.js';
import type { ExportedPublicKey, PublicKeyFormat } from './algorithms.js';

export type PublicMaterial =
  { readonly kind: 'ec'; readonly Y: Uint8Array } | { readonly kind: 'rsa'; readonly n: bigint; readonly e: bigint };

/** The public key of a key of `alg` in `format`. */
export function exportMaterial(alg: string, m: PublicMaterial, format: PublicKeyFormat): ExportedPublicKey {
  if (m.kind === 'ec') return exportPublicKey(alg as EcAlg, m.Y, format);
  if (format === 'raw') throw new EkmError('EKM_BAD_INPUT', 'RSA public keys export as pem, der or jwk');
  return exportRsaPublicKey(m, format);
}

export function exportPublicKey(alg: EcAlg, Y: Uint8Array, format: PublicKeyFormat): ExportedPublicKey {
  let jwk: object;
  if (alg === 'eddsa-ed25519') {
    if (format === 'raw') return Y;
    jwk = { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(Y).toString('base64url') };
  } else {
    const ecdsaAlg = alg === 'schnorr-bip340' ? 'ecdsa-secp256k1' : alg;
    if (format === 'raw')
      return alg === 'schnorr-bip340'
        ? Y.subarray(1)
        : (decodePoint(getCurve(ALG_CURVE[alg]), Y) as unknown as { toBytes(compressed: boolean): Uint8Array }).toBytes(false);
    jwk = ecdsaPublicJwk(ecdsaAlg as Parameters<typeof ecdsaPublicJwk>[0], Y);
  }
  if (format === 'jwk') return jwk;
  const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  return format === 'pem'
    ? (key.export({ type: 'spki', format: 'pem' }) as string)
    : new Uint8Array(key.export({ type: 'spki', format: 'der' }));
}
