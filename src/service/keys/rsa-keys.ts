/**
 * RSA keys (2048, 3072, 4096 bits) on replicated additive shares (rsa-shares.ts): signing
 * (PKCS#1 v1.5, PSS) and decryption (OAEP, PKCS#1 v1.5) by the EP with the Partner (or the Aux),
 * each result checked with e before release; encryption is public and done here.
 */
import { constants, createPublicKey, publicEncrypt } from 'node:crypto';
import { HASH_LEN, type OaepHash, type RsaSignHash, rsassaPkcs1v15Verify, rsassaPssVerify } from '../../crypto/rsa-padding.js';
import { os2ip } from '../../crypto/modexp.js';
import { EkmError } from '../../errors.js';
import {
  PROTO_RSA,
  RSA_ALGS,
  type RsaAlg,
  type RsaKeyShare,
  type RsaOperation,
  type RsaOutput,
  exportRsaPublicKey,
  isRsaAlg,
  parseRsaRequest,
  rsaPublicKeyObject,
} from '../../protocols/rsa.js';
import type { KeyRow } from '../../store/key-records.js';
import type { SignRequest, SignResult } from './algorithms.js';
import { withHelper } from './aux-shares.js';
import { type FamilyDeps, type KeyFamily, type KeyOperation, requireEp } from './family.js';
import type { PublicMaterial } from './public-material.js';
import type { RsaShares } from './rsa-shares.js';
import { noWrites, sessionSpec } from './session-spec.js';
import { signedDigest } from './signatures.js';

export type RsaSignScheme = 'pkcs1v15' | 'pss';
export type RsaDecryptScheme = 'oaep' | 'pkcs1v15';

export class RsaKeys implements KeyFamily {
  readonly name = 'rsa';
  readonly algs: readonly RsaAlg[] = RSA_ALGS;
  readonly takesPolicy = false;

  constructor(
    private readonly deps: FamilyDeps,
    readonly shares: RsaShares,
  ) {}

  owns(row: KeyRow): boolean {
    return isRsaAlg(row.alg);
  }

  generate(alg: RsaAlg): Promise<{ keyId: string; alg: RsaAlg }> {
    return this.shares.deal({ alg });
  }

  /** Generates an RSA key of `alg`, or imports a PKCS#8 private key, and deals it into shares. */
  create(source: { alg: RsaAlg } | { privateKeyPem: string }): Promise<{ keyId: string; alg: RsaAlg }> {
    return this.shares.deal(source);
  }

  refusal(keyId: string, op: KeyOperation): EkmError {
    return new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is an RSA key: it cannot ${op}`);
  }

  async sign(row: KeyRow, req: SignRequest): Promise<SignResult> {
    const hash = req.hash ?? 'sha256';
    const digest = signedDigest(hash, req);
    const signature = await this.rsaSign(row.keyId, req.scheme ?? 'pkcs1v15', hash, digest);
    return { keyId: row.keyId, alg: row.alg as RsaAlg, epoch: row.currentEpoch, signature, format: 'raw', mode: 'rsa' };
  }

  async publicMaterial(row: KeyRow): Promise<PublicMaterial> {
    const share = (await this.deps.store.getRsaShares(row.keyId)).find((x) => x.status === 'current');
    if (!share) throw new EkmError('EKM_KEY_STATE', `key ${row.keyId} has no current share on this server`);
    return { kind: 'rsa', n: os2ip(share.n), e: os2ip(share.e) };
  }

  async rsaSign(keyId: string, scheme: RsaSignScheme, hash: RsaSignHash, digest: Uint8Array): Promise<Uint8Array> {
    if (digest.length !== HASH_LEN[hash])
      throw new EkmError('EKM_BAD_INPUT', `a ${hash} digest has ${HASH_LEN[hash]} bytes, not ${digest.length}`);
    const share = await this.shares.current(keyId);
    const out = await this.run(
      share,
      scheme === 'pss' ? { kind: 'sign', scheme: 'pss', hash, digest } : { kind: 'sign', scheme: 'pkcs1v15', hash, digest },
    );
    if (out.kind !== 'signature') throw new EkmError('EKM_PROTOCOL_ABORTED', 'no signature was produced');
    // Checked again here, by the standard verification of the scheme, before release.
    const pub = { n: share.n, e: share.e };
    const valid =
      scheme === 'pss' ? rsassaPssVerify(pub, hash, digest, out.signature) : rsassaPkcs1v15Verify(pub, hash, digest, out.signature);
    if (!valid) {
      this.deps.log.error(
        { event: 'security', kind: 'invalid_output', keyId, proto: PROTO_RSA },
        'an RSA signature did not verify: not released',
      );
      throw new EkmError('EKM_PROTOCOL_ABORTED', 'the signature did not verify and was not released', {
        hint: 'it is safe to retry; the event is logged',
      });
    }
    return out.signature;
  }

  async rsaDecrypt(
    keyId: string,
    scheme: RsaDecryptScheme,
    ciphertext: Uint8Array,
    hash: OaepHash = 'sha256',
    label?: Uint8Array,
  ): Promise<Uint8Array> {
    const share = await this.shares.current(keyId);
    const op: RsaOperation =
      scheme === 'oaep'
        ? { kind: 'decrypt', scheme: 'oaep', hash, ciphertext, ...(label ? { label } : {}) }
        : { kind: 'decrypt', scheme: 'pkcs1v15', ciphertext };
    const out = await this.run(share, op);
    if (out.kind === 'decryption-failed') throw new EkmError('EKM_DECRYPTION_FAILED', 'decryption failed');
    if (out.kind !== 'plaintext') throw new EkmError('EKM_PROTOCOL_ABORTED', 'no plaintext was produced');
    return out.plaintext;
  }

  /** RSA encryption is public: done here with node:crypto for convenience. */
  async rsaEncrypt(keyId: string, scheme: RsaDecryptScheme, plaintext: Uint8Array, hash: OaepHash = 'sha256'): Promise<Uint8Array> {
    // An imported RSA public key encrypts too: with its own PEM, there are no shares.
    const row = await this.deps.store.getKey(keyId);
    const key = row?.publicKey && isRsaAlg(row.alg) ? createPublicKey(row.publicKey) : rsaPublicKeyObject(await this.shares.current(keyId));
    try {
      return new Uint8Array(
        publicEncrypt(
          scheme === 'oaep'
            ? { key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }
            : { key, padding: constants.RSA_PKCS1_PADDING },
          plaintext,
        ),
      );
    } catch (e) {
      throw new EkmError('EKM_BAD_INPUT', `cannot encrypt: ${(e as Error).message}`);
    }
  }

  async rsaPublicKey(keyId: string, format: 'pem' | 'der' | 'jwk'): Promise<string | Uint8Array | object> {
    return exportRsaPublicKey(await this.shares.current(keyId), format);
  }

  registerHelpers(): void {
    this.deps.host.register(PROTO_RSA, async (env) => {
      const info = parseRsaRequest(env);
      const share = await this.shares.shareAt(info.header.keyId, info.header.epoch);
      return sessionSpec({ kind: 'rsa', share, tripletId: this.deps.tripletId }, PROTO_RSA, noWrites);
    });
  }

  private run(share: RsaKeyShare, operation: RsaOperation): Promise<RsaOutput> {
    requireEp(this.deps.self);
    return withHelper(this.deps, share.keyId, (helper) =>
      this.deps.host.run<RsaOutput>(
        sessionSpec({ kind: 'rsa', share, tripletId: this.deps.tripletId, coordinate: { helper, operation } }, PROTO_RSA, noWrites),
      ),
    );
  }
}
