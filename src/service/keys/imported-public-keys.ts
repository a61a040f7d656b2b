/**
 * Imported public keys: someone else's ECDSA, Ed25519 or RSA public key kept in a partition so that applications can verify its
 * signatures (and RSA-encrypt to it) through ekm. Such a key has no shares and takes part in no
 * protocol; its material is what the same verification code of the MPC keys needs: the encoded
 * point Y for EC keys, (n, e) for RSA.
 */
import { type KeyObject, createPublicKey, randomBytes } from 'node:crypto';
import { encodePoint, getCurve } from '../../crypto/curves.js';
import { toHex } from '../../crypto/encoding.js';
import { EkmError } from '../../errors.js';
import { ALG_CURVE } from '../../protocols/key-share.js';
import type { KeyRow } from '../../store/key-records.js';
import type { KeyAlg } from './algorithms.js';
import { type FamilyDeps, type KeyFamily, type KeyOperation, requireEp } from './family.js';
import type { PublicMaterial } from './public-material.js';

export class ImportedPublicKeys implements KeyFamily {
  readonly name = 'imported-public';
  /** Imported, never generated. */
  readonly algs: readonly KeyAlg[] = [];
  readonly shares = undefined;
  readonly takesPolicy = false;

  constructor(private readonly deps: FamilyDeps) {}

  /** First in the registry: an imported key's algorithm also names a family with shares. */
  owns(row: KeyRow): boolean {
    return Boolean(row.publicKey);
  }

  /** Keeps someone else's public key (SPKI PEM) as a key that verifies (RSA: also encrypts). */
  async import(pem: string): Promise<{ keyId: string; alg: KeyAlg }> {
    requireEp(this.deps.self);
    const { alg, spkiPem } = importPublicKey(pem);
    const keyId = toHex(randomBytes(8));
    await this.deps.store.createPublicKey({ keyId, alg, publicKeyPem: spkiPem });
    return { keyId, alg };
  }

  async publicMaterial(row: KeyRow): Promise<PublicMaterial> {
    return publicMaterial(row.alg, row.publicKey!);
  }

  refusal(keyId: string, op: KeyOperation): EkmError {
    return publicOnly(keyId, op);
  }

  /** Nothing to answer: the helpers hold nothing of an imported key. */
  registerHelpers(): void {}
}

const EC_ALG_OF_CURVE: Readonly<Record<string, KeyAlg>> = {
  prime256v1: 'ecdsa-p256',
  secp384r1: 'ecdsa-p384',
  secp256k1: 'ecdsa-secp256k1',
};
const RSA_ALG_OF_BITS: Readonly<Record<number, KeyAlg>> = { 2048: 'rsa-2048', 3072: 'rsa-3072', 4096: 'rsa-4096' };

function badKey(why: string): EkmError {
  return new EkmError('EKM_BAD_PUBLIC_KEY', `not an importable public key: ${why}`, {
    hint: 'give an SPKI PEM (-----BEGIN PUBLIC KEY-----) of ECDSA P-256/P-384/secp256k1, Ed25519 or RSA 2048/3072/4096',
  });
}

function parse(pem: string): KeyObject {
  try {
    return createPublicKey({ key: pem, format: 'pem' });
  } catch {
    throw badKey('it does not parse as a PEM public key');
  }
}

/** The algorithm of a public key and its canonical SPKI PEM (what is stored). */
export function importPublicKey(pem: string): { alg: KeyAlg; spkiPem: string } {
  const key = parse(pem);
  const d = key.asymmetricKeyDetails ?? {};
  let alg: KeyAlg | undefined;
  if (key.asymmetricKeyType === 'ec') alg = EC_ALG_OF_CURVE[d.namedCurve ?? ''];
  else if (key.asymmetricKeyType === 'ed25519') alg = 'eddsa-ed25519';
  else if (key.asymmetricKeyType === 'rsa') alg = RSA_ALG_OF_BITS[d.modulusLength ?? 0];
  if (!alg)
    throw badKey(
      `${key.asymmetricKeyType ?? 'unknown'} ${d.namedCurve ?? d.modulusLength ?? ''} is not a supported type and size`.replace(/\s+$/, ''),
    );
  if (key.asymmetricKeyType === 'rsa' && d.publicExponent !== undefined && (d.publicExponent < 3n || (d.publicExponent & 1n) === 0n))
    throw badKey('its RSA exponent is not odd and ≥ 3');
  return { alg, spkiPem: key.export({ type: 'spki', format: 'pem' }) as string };
}

/** The material the verification code takes, from a stored public key. */
export function publicMaterial(alg: string, spkiPem: string): PublicMaterial {
  const jwk = parse(spkiPem).export({ format: 'jwk' });
  const b = (s: string | undefined): Buffer => Buffer.from(s ?? '', 'base64url');
  if (alg.startsWith('rsa-'))
    return { kind: 'rsa', n: BigInt(`0x${b(jwk.n).toString('hex')}`), e: BigInt(`0x${b(jwk.e).toString('hex')}`) };
  if (alg === 'eddsa-ed25519') return { kind: 'ec', Y: new Uint8Array(b(jwk.x)) };
  const curve = getCurve(ALG_CURVE[alg as keyof typeof ALG_CURVE]);
  const point = curve.Point.fromBytes(new Uint8Array(Buffer.concat([Buffer.of(4), b(jwk.x), b(jwk.y)])));
  return { kind: 'ec', Y: encodePoint(curve, point) };
}

/** An imported public key has no shares: it verifies (and RSA encrypts), nothing else. */
export function publicOnly(keyId: string, what: string): EkmError {
  return new EkmError('EKM_PUBLIC_KEY_ONLY', `key ${keyId} is an imported public key: it cannot ${what}`, {
    hint: 'it verifies signatures (and RSA keys encrypt); use a key generated in ekm',
  });
}
