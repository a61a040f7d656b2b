/**
 * The key algorithms the service knows and the shapes of its signing requests and answers: what
 * the front doors (API, CLI) and every key family speak.
 */
import { EC_ALGS, type EcAlg } from '../../protocols/key-share.js';
import { RSA_ALGS, type RsaAlg } from '../../protocols/rsa.js';

/** Every key algorithm the service generates. */
export type KeyAlg = EcAlg | RsaAlg;
export const KEY_ALGS: readonly KeyAlg[] = [...EC_ALGS, ...RSA_ALGS];

export type PublicKeyFormat = 'pem' | 'der' | 'raw' | 'jwk';
/** A public key as exported: PEM text, DER or raw bytes, or a JWK object. */
export type ExportedPublicKey = string | Uint8Array | object;
export type SignatureFormat = 'raw' | 'der';

export interface SignRequest {
  /** The whole message, or a digest of `hash`'s length computed by the caller. */
  readonly message?: Uint8Array;
  readonly digest?: Uint8Array;
  /** ECDSA only; default SHA-256 (SHA-384 for P-384). */
  readonly hash?: 'sha256' | 'sha384' | 'sha512';
  /** ECDSA only: raw r‖s (P1363, default) or DER. */
  readonly format?: SignatureFormat;
  /** RSA only: PKCS#1 v1.5 (default) or PSS (salt length = hash length). */
  readonly scheme?: 'pkcs1v15' | 'pss';
}

export interface SignResult {
  readonly keyId: string;
  readonly alg: KeyAlg;
  readonly epoch: number;
  readonly signature: Uint8Array;
  readonly format: SignatureFormat;
  /** ECDSA: from a pooled presignature (one round online) or on demand. */
  readonly mode: 'pool' | 'on-demand' | 'frost' | 'rsa';
}
