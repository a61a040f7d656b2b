/**
 * What a signature covers and how one is checked against a public key: the same code for keys
 * whose shares sign here and for imported public keys.
 */
import { createHash } from 'node:crypto';
import { getCurve } from '../../crypto/curves.js';
import { HASH_LEN, rsassaPkcs1v15Verify, rsassaPssVerify } from '../../crypto/rsa-padding.js';
import { EkmError } from '../../errors.js';
import { type SignedInput, isEcdsaAlg, verifyEcdsa } from '../../protocols/ecdsa.js';
import { isFrostAlg, verifyFrostSignature } from '../../protocols/frost.js';
import { ALG_CURVE, type EcAlg } from '../../protocols/key-share.js';
import type { SignRequest } from './algorithms.js';
import type { PublicMaterial } from './public-material.js';

/** Whether `signature` is a valid signature of the request by the public key `m` of algorithm `alg`. */
export function verifyWithMaterial(alg: string, m: PublicMaterial, req: SignRequest, signature: Uint8Array): boolean {
  if (m.kind === 'rsa') {
    const hash = req.hash ?? 'sha256';
    const digest = signedDigest(hash, req);
    return req.scheme === 'pss' ? rsassaPssVerify(m, hash, digest, signature) : rsassaPkcs1v15Verify(m, hash, digest, signature);
  }
  const ecAlg = alg as EcAlg;
  if (isFrostAlg(ecAlg)) {
    if (!req.message) throw new EkmError('EKM_BAD_INPUT', `${ecAlg} verifies the whole message: give a message`);
    return verifyFrostSignature(ecAlg, m.Y, req.message, signature);
  }
  if (!isEcdsaAlg(ecAlg)) return false;
  const input = signedInput(ecAlg, req);
  const curve = getCurve(ALG_CURVE[ecAlg]);
  const raw = req.format === 'der' ? derToP1363(signature, curve.scalarBytes) : signature;
  // Any valid ECDSA signature verifies here, high-s included (imported keys' signers need not normalise).
  return raw !== undefined && verifyEcdsa(ecAlg, m.Y, input, raw, { lowS: false });
}

/** What an ECDSA signature covers: the message with its hash, or the caller's digest. */
export function signedInput(alg: string, req: SignRequest): SignedInput {
  const hash = req.hash ?? (alg === 'ecdsa-p384' ? 'sha384' : 'sha256');
  if ((req.message === undefined) === (req.digest === undefined)) {
    throw new EkmError('EKM_BAD_INPUT', 'give exactly one of a message or a digest');
  }
  if (req.digest) {
    const len = { sha256: 32, sha384: 48, sha512: 64 }[hash];
    if (req.digest.length !== len) throw new EkmError('EKM_BAD_INPUT', `a ${hash} digest has ${len} bytes, not ${req.digest.length}`);
    return { kind: 'digest', hash, data: req.digest };
  }
  return { kind: 'message', hash, data: req.message! };
}

/** The digest an RSA signature covers: of the message, or the caller's digest of the hash's length. */
export function signedDigest(hash: 'sha256' | 'sha384' | 'sha512', req: SignRequest): Uint8Array {
  if ((req.message === undefined) === (req.digest === undefined))
    throw new EkmError('EKM_BAD_INPUT', 'give exactly one of a message or a digest');
  if (req.digest) {
    if (req.digest.length !== HASH_LEN[hash])
      throw new EkmError('EKM_BAD_INPUT', `a ${hash} digest has ${HASH_LEN[hash]} bytes, not ${req.digest.length}`);
    return req.digest;
  }
  return new Uint8Array(createHash(hash).update(req.message!).digest());
}

function derToP1363(der: Uint8Array, n: number): Uint8Array | undefined {
  try {
    const buf = Buffer.from(der);
    if (buf[0] !== 0x30 || buf[1] !== buf.length - 2) return undefined;
    let at = 2;
    const ints: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      if (buf[at] !== 0x02) return undefined;
      const len = buf[at + 1]!;
      let v = buf.subarray(at + 2, at + 2 + len);
      at += 2 + len;
      while (v.length > n && v[0] === 0) v = v.subarray(1);
      if (v.length > n) return undefined;
      ints.push(Buffer.concat([Buffer.alloc(n - v.length), v]));
    }
    return at === buf.length ? new Uint8Array(Buffer.concat(ints)) : undefined;
  } catch {
    return undefined;
  }
}
