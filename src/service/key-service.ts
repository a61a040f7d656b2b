/**
 * Threshold EC keys as a service: generate, sign, verify, export and refresh on the
 * EP; the matching helper sessions on Partner and Aux. Every protocol runs through the
 * ProtocolHost; every stored share is sealed by the barrier; every signature is verified again
 * here, independently of the protocol's own check, before it is returned.
 */
import { type JsonWebKey, createHash, createPublicKey, randomBytes } from 'node:crypto';
import { decodePoint, getCurve } from '../crypto/curves.js';
import { decodeEnc, enc, encList, toHex, u32be } from '../crypto/encoding.js';
import { EkmError } from '../errors.js';
import { AUX_PROTO, type AuxPersist, type AuxKeyEpoch, type AuxOutput } from '../protocols/aux-rederive.js';
import { DKG_PROTO, type DkgPersist } from '../protocols/dkg.js';
import { OBJECT_FORMAT_VERSION, type ObjectFormat } from '../protocols/dprf.js';
import {
  type EcdsaOutput,
  type EcdsaPersist,
  type PresigShare,
  type SignedInput,
  PROTO_ONLINE,
  PROTO_PRESIGN,
  PROTO_SIGN,
  decodePresig,
  ecdsaPublicJwk,
  encodePresig,
  isEcdsaAlg,
  parseEcdsaRequest,
  verifyEcdsa,
} from '../protocols/ecdsa.js';
import { PROTO_FROST, type FrostOutput, isFrostAlg, parseFrostRequest, verifyFrostSignature } from '../protocols/frost.js';
import { type KeyPolicy, encodeKeyPolicy, signingRefusal } from '../protocols/key-policy.js';
import { ALG_CURVE, EC_ALGS, type EcAlg, type KeyShare } from '../protocols/key-share.js';
import { REFRESH_PROTO, type RefreshKeyEpoch, type RefreshKeyState, type RefreshOutput } from '../protocols/refresh.js';
import { type ConfirmCheckpoint, decodeRequest } from '../protocols/session-kit.js';
import type { Envelope } from '../protocols/types.js';
import { KEY_UID_RE, type KeyRow, type KeyWrite, type StoredShare } from '../store/key-records.js';
import { type CommonData, type Recipe, runsInline } from './party-recipes.js';
import { PeerRefusedError, ProtocolAbortedError, type SessionSpec } from './protocol-host.js';
import { fromJsonWithBytes, recordToShare, shareToRecord, toJsonWithBytes } from './share-codec.js';
import { PresignPool } from './presign-pool.js';
import type { ServiceDeps } from './service-deps.js';
import { refreshWritesFor, requireRefreshEpochs } from './refresh-writes.js';
import { sessionItemWrites } from './session-writes.js';
import { RsaAesKeys } from './rsa-aes-keys.js';
import { RSA_ALGS, RSA_REFRESH_PROTO, type RsaAlg, exportRsaPublicKey, isRsaAlg } from '../protocols/rsa.js';
import { HASH_LEN, rsassaPkcs1v15Verify, rsassaPssVerify } from '../crypto/rsa-padding.js';
import { os2ip } from '../crypto/modexp.js';
import { type PublicMaterial, importPublicKey, publicMaterial, publicOnly } from './public-keys.js';
import { BoundedCache } from '../util/bounded-cache.js';

/** Peer method by which the EP has Partner and Aux erase their shares of a destroyed key. */
export const KEY_PURGE_METHOD = 'key.purge';
/** EP → Aux: every key this store holds anything of, with its current epoch (KeyCatalog's Aux sweep). */
export const KEY_HOLDINGS_METHOD = 'key.holdings';
/** EP → Aux: erase a key whose share here is older than the key's settled epoch (`key-purge-stale`). */
export const KEY_PURGE_STALE_METHOD = 'key.purge-stale';

/** One entry of a `key.holdings` answer. */
export function encodeHolding(keyId: string, epoch: number): Uint8Array {
  return enc(keyId, u32be(epoch));
}

export function decodeHolding(item: Uint8Array): { keyId: string; epoch: number } {
  const f = decodeEnc(item);
  if (f.length !== 2 || f[1]!.length !== 4) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed key holding');
  return { keyId: new TextDecoder().decode(f[0]!), epoch: Buffer.from(f[1]!).readUInt32BE(0) };
}

export function decodeHoldings(body: Uint8Array): { keyId: string; epoch: number }[] {
  return decodeEnc(body).map(decodeHolding);
}

export type PublicKeyFormat = 'pem' | 'der' | 'raw' | 'jwk';
/** A public key as exported: PEM text, DER or raw bytes, or a JWK object. */
export type ExportedPublicKey = string | Uint8Array | object;
/** Public keys kept decoded and exported (per key, and per key and format). */
const PUBLIC_CACHE_ENTRIES = 10_000;
/** Every key algorithm the service generates. */
export type KeyAlg = EcAlg | RsaAlg;
export const KEY_ALGS: readonly KeyAlg[] = [...EC_ALGS, ...RSA_ALGS];
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

interface Checkpointed {
  readonly proto: string;
  readonly keyId?: string;
  readonly keys?: readonly (RefreshKeyEpoch | AuxKeyEpoch)[];
  readonly checkpoint: ConfirmCheckpoint;
}

export interface KeyServiceDeps extends ServiceDeps {
  /** Presignatures kept ready per ECDSA key that has signed (EP); 0 disables the pool. */
  readonly poolTarget?: number;
  /** The format new AES objects are sealed in (EKM_AES_OBJECT_FORMAT; default 2). */
  readonly aesObjectFormat?: ObjectFormat;
}

export class KeyService {
  private readonly common: CommonData;
  readonly pool: PresignPool | undefined;

  /** RSA and AES keys; EC keys are this class's own. */
  readonly rsaAes: RsaAesKeys;

  /**
   * Public keys as exported, per key and format. A key's public key never changes (a refresh keeps
   * it, a UID is never reused), so entries need no invalidation; reading and unsealing a share and
   * re-encoding the point on every export or verify was most of a public-key read's cost.
   */
  private readonly publicMaterials = new BoundedCache<string, PublicMaterial>(PUBLIC_CACHE_ENTRIES);
  private readonly auxRederivations = new Map<string, Promise<void>>();
  private readonly publicExports = new BoundedCache<string, ExportedPublicKey>(PUBLIC_CACHE_ENTRIES);

  constructor(private readonly deps: KeyServiceDeps) {
    this.common = deps.identity;
    this.registerHelpers();
    this.rsaAes = new RsaAesKeys({
      ...deps,
      currentEcShare: async (keyId) => (await this.getKey(keyId)).current,
      withAuxShares: (keyIds, op) => this.withAuxShares(keyIds, op),
      objectFormat: deps.aesObjectFormat ?? OBJECT_FORMAT_VERSION,
    });
    if (deps.self === 1 && (deps.poolTarget ?? 16) > 0) {
      this.pool = new PresignPool({
        target: deps.poolTarget ?? 16,
        store: deps.store,
        peers: deps.peers,
        log: deps.log,
        presign: (keyId) => this.presign(keyId),
      });
    }
  }

  /** Loads the presignature index and resumes sessions that were committing when the server stopped. */
  async start(): Promise<void> {
    await this.pool?.load();
    this.deps.host.setResumer((proto, checkpoint) => this.resumeSpec(proto, fromJsonWithBytes<Checkpointed>(checkpoint)));
    await this.deps.host.resumeOpenSessions();
  }

  stop(): void {
    this.pool?.stop();
  }

  // --- EP operations -----------------------------------------------------------------------

  /**
   * A new key; `policy` (signing keys only) is fixed for the key's life and checked by all three
   * servers (key-policy.ts).
   */
  async generateKey(alg: KeyAlg, policy: KeyPolicy = {}): Promise<{ keyId: string; alg: KeyAlg }> {
    this.requireEp();
    let policyBytes: Uint8Array;
    try {
      policyBytes = encodeKeyPolicy(policy); // refuses a notAfter out of range
    } catch (e) {
      throw new EkmError('EKM_BAD_INPUT', (e as Error).message, { hint: 'give a notAfter before the year 10000' });
    }
    if (policy.notAfter !== undefined) {
      if (isRsaAlg(alg) || alg === 'aes-256-dprf') {
        throw new EkmError('EKM_BAD_INPUT', `notAfter applies to EC signing keys, not to ${alg} keys`);
      }
      if (signingRefusal(policy, Date.now())) throw new EkmError('EKM_BAD_INPUT', 'notAfter must be in the future');
    }
    if (isRsaAlg(alg)) return this.rsaAes.createRsa({ alg });
    if (!EC_ALGS.includes(alg))
      throw new EkmError('EKM_BAD_ALG', `unknown key algorithm ${String(alg)}`, { hint: `use one of ${EC_ALGS.join(', ')}` });
    const keyId = toHex(randomBytes(8));
    const request = { keyId, alg, policy: policyBytes };
    await this.deps.host.run(this.spec({ kind: 'dkg', common: this.common, request }, DKG_PROTO, dkgWrites));
    return { keyId, alg };
  }

  /** Keeps someone else's public key (SPKI PEM) as a key that verifies (RSA: also encrypts). */
  async importPublic(pem: string): Promise<{ keyId: string; alg: KeyAlg }> {
    this.requireEp();
    const { alg, spkiPem } = importPublicKey(pem);
    const keyId = toHex(randomBytes(8));
    await this.deps.store.createPublicKey({ keyId, alg, publicKeyPem: spkiPem });
    return { keyId, alg };
  }

  async getKey(keyId: string): Promise<{ row: KeyRow; current: KeyShare }> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`);
    if (isRsaAlg(row.alg)) throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is an RSA key`);
    const shares = await this.deps.store.getShares(keyId);
    const current = shares.find((s) => s.status === 'current' && s.epoch === row.currentEpoch);
    if (!current)
      throw new EkmError('EKM_KEY_STATE', `key ${keyId} has no current share on this server`, {
        hint: 'run `ucl server test`; an Aux may need re-derivation',
      });
    return { row, current: recordToShare(current) };
  }

  /** The key's policy as this server holds it with its share (RSA, AES and imported keys have none). */
  async policyOf(row: KeyRow): Promise<KeyPolicy> {
    if (row.publicKey || isRsaAlg(row.alg) || !EC_ALGS.includes(row.alg as EcAlg)) return {};
    const { notAfter } = (await this.getKey(row.keyId)).current;
    return notAfter !== undefined ? { notAfter } : {};
  }

  /** The key's record, whatever its type (for listing and showing). */
  async describe(keyId: string): Promise<KeyRow> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`);
    return row;
  }

  async sign(keyId: string, req: SignRequest): Promise<SignResult> {
    this.requireEp();
    const row = await this.describe(keyId);
    if (row.publicKey) throw publicOnly(keyId, 'sign');
    if (isRsaAlg(row.alg)) {
      const hash = req.hash ?? 'sha256';
      const digest = signedDigest(hash, req);
      const signature = await this.rsaAes.rsaSign(keyId, req.scheme ?? 'pkcs1v15', hash, digest);
      return { keyId, alg: row.alg, epoch: row.currentEpoch, signature, format: 'raw', mode: 'rsa' };
    }
    if (row.alg === 'aes-256-dprf') throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is an AES key: it encrypts, it does not sign`);
    const { current } = await this.getKey(keyId);
    const alg = current.alg;
    requireSigningAllowed(current);
    if (isFrostAlg(alg)) {
      if (!req.message)
        throw new EkmError(
          'EKM_BAD_INPUT',
          `${alg} signs the whole message (pure ${alg === 'eddsa-ed25519' ? 'Ed25519' : 'BIP340'}): give a message, not a digest`,
        );
      if (req.format === 'der') throw new EkmError('EKM_BAD_INPUT', `${alg} signatures have no DER form`);
      const message = req.message;
      const frost = (helper: 2 | 3): Promise<FrostOutput> =>
        helperPolicy(
          keyId,
          this.deps.host.run<FrostOutput>(
            this.spec(
              { kind: 'frost', share: current, tripletId: this.deps.tripletId, coordinate: { helper, message } },
              PROTO_FROST,
              noWrites,
            ),
          ),
        );
      const withAux = (): Promise<FrostOutput> => this.withAuxShares([keyId], () => frost(3));
      let out: FrostOutput;
      if (!this.deps.peers.link('partner')) out = await withAux();
      else {
        try {
          out = await frost(2);
        } catch (e) {
          // Partner did not answer or aborted: EP + Aux hold enough shares too (fresh nonces, new session).
          if (!(e instanceof EkmError) || e.code === 'EKM_KEY_EXPIRED' || !this.deps.peers.link('aux')) throw e;
          this.deps.log.warn({ keyId, err: e.message }, 'FROST with the Partner failed; signing with the Aux');
          out = await withAux();
        }
      }
      if (out.kind !== 'signature' || !verifyFrostSignature(alg, current.Y, req.message, out.signature)) {
        throw this.invalidOutput(keyId, PROTO_FROST);
      }
      return { keyId, alg, epoch: current.epoch, signature: out.signature, format: 'raw', mode: 'frost' };
    }
    if (!isEcdsaAlg(alg)) throw new EkmError('EKM_BAD_ALG', `key ${keyId} cannot sign`);
    const input = signedInput(alg, req);
    const tripletId = this.deps.tripletId;
    const run = (presig: PresigShare | undefined): Promise<EcdsaOutput> =>
      helperPolicy(
        keyId,
        this.deps.host.run<EcdsaOutput>(
          presig
            ? {
                ...this.spec({ kind: 'ecdsa-online', share: current, tripletId, presig, input }, PROTO_ONLINE, ecdsaWrites),
                writesTrailSend: true,
              }
            : this.spec({ kind: 'ecdsa-sign', share: current, tripletId, input }, PROTO_SIGN, ecdsaWrites),
        ),
      );
    let presig = await this.pool?.take(keyId, current.epoch);
    const onDemand = (): Promise<EcdsaOutput> => this.withAuxShares([keyId], () => run(undefined));
    let out: EcdsaOutput;
    try {
      out = presig ? await run(presig) : await onDemand();
    } catch (e) {
      if (!presig || !(e instanceof ProtocolAbortedError)) throw e;
      // The presignature is burnt either way; one on-demand attempt serves this request.
      this.deps.log.warn({ keyId, err: e.message }, 'pooled presignature failed; signing on demand');
      presig = undefined;
      out = await onDemand();
    }
    if (out.kind !== 'signature' || !verifyEcdsa(alg, current.Y, input, out.p1363)) throw this.invalidOutput(keyId, PROTO_SIGN);
    this.pool?.markHot(keyId);
    const der = req.format === 'der';
    return {
      keyId,
      alg,
      epoch: current.epoch,
      signature: der ? out.der : out.p1363,
      format: der ? 'der' : 'raw',
      mode: presig ? 'pool' : 'on-demand',
    };
  }

  async verify(keyId: string, req: SignRequest, signature: Uint8Array): Promise<boolean> {
    const row = await this.describe(keyId);
    const m = await this.publicMaterialOf(row);
    if (m.kind === 'rsa') {
      const hash = req.hash ?? 'sha256';
      const digest = signedDigest(hash, req);
      return req.scheme === 'pss' ? rsassaPssVerify(m, hash, digest, signature) : rsassaPkcs1v15Verify(m, hash, digest, signature);
    }
    const alg = row.alg as EcAlg;
    if (isFrostAlg(alg)) {
      if (!req.message) throw new EkmError('EKM_BAD_INPUT', `${alg} verifies the whole message: give a message`);
      return verifyFrostSignature(alg, m.Y, req.message, signature);
    }
    if (!isEcdsaAlg(alg)) return false;
    const input = signedInput(alg, req);
    const curve = getCurve(ALG_CURVE[alg]);
    const raw = req.format === 'der' ? derToP1363(signature, curve.scalarBytes) : signature;
    // Any valid ECDSA signature verifies here, high-s included (imported keys' signers need not normalise).
    return raw !== undefined && verifyEcdsa(alg, m.Y, input, raw, { lowS: false });
  }

  async publicKey(keyId: string, format: PublicKeyFormat): Promise<{ alg: KeyAlg; format: PublicKeyFormat; value: ExportedPublicKey }> {
    const row = await this.describe(keyId);
    if (row.alg === 'aes-256-dprf') throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is an AES key: it has no public key`);
    const cacheKey = `${keyId} ${format}`;
    let value = this.publicExports.get(cacheKey);
    if (value === undefined) {
      const m = await this.publicMaterialOf(row);
      if (m.kind === 'rsa' && format === 'raw') throw new EkmError('EKM_BAD_INPUT', 'RSA public keys export as pem, der or jwk');
      value =
        m.kind === 'rsa'
          ? exportRsaPublicKey(m, format as Exclude<PublicKeyFormat, 'raw'>)
          : exportPublicKey(row.alg as EcAlg, m.Y, format);
      if (typeof value === 'object' && !(value instanceof Uint8Array)) Object.freeze(value);
      this.publicExports.set(cacheKey, value);
    }
    // The cached bytes stay ours: a caller gets a copy it may change.
    return { alg: row.alg as KeyAlg, format, value: value instanceof Uint8Array ? value.slice() : value };
  }

  /** The public key of a key: from an imported public key, or from this server's current share. */
  private async publicMaterialOf(row: KeyRow): Promise<PublicMaterial> {
    let m = this.publicMaterials.get(row.keyId);
    if (!m) this.publicMaterials.set(row.keyId, (m = await this.loadPublicMaterial(row)));
    return m;
  }

  private async loadPublicMaterial(row: KeyRow): Promise<PublicMaterial> {
    if (row.publicKey) return publicMaterial(row.alg, row.publicKey);
    if (isRsaAlg(row.alg)) {
      const share = (await this.deps.store.getRsaShares(row.keyId)).find((x) => x.status === 'current');
      if (!share) throw new EkmError('EKM_KEY_STATE', `key ${row.keyId} has no current share on this server`);
      return { kind: 'rsa', n: os2ip(share.n), e: os2ip(share.e) };
    }
    return { kind: 'ec', Y: (await this.getKey(row.keyId)).current.Y };
  }

  /** Proactive refresh of a batch of keys: new shares, same public keys (§5). */
  async refresh(keyIds: readonly string[]): Promise<{ keys: readonly RefreshKeyEpoch[] }> {
    this.requireEp();
    const rows = await Promise.all(keyIds.map((k) => this.describe(k)));
    for (const r of rows) if (r.publicKey) throw publicOnly(r.keyId, 'be refreshed');
    const rsa = rows.filter((r) => isRsaAlg(r.alg)).map((r) => r.keyId);
    if (rsa.length > 0) {
      // RSA keys refresh in their own protocol: one batch per key family.
      const ec = rows.filter((r) => !isRsaAlg(r.alg)).map((r) => r.keyId);
      const [rsaKeys, ecKeys] = await Promise.all([
        this.withAuxShares(rsa, () => this.rsaAes.rsaRefresh(rsa)),
        ec.length > 0 ? this.refresh(ec) : Promise.resolve({ keys: [] }),
      ]);
      return { keys: [...rsaKeys, ...ecKeys.keys] };
    }
    const states = await this.settledRefreshStates(keyIds);
    for (const k of keyIds) if (!states.has(k)) throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${k}`);
    const out = await this.withAuxShares(keyIds, () =>
      this.deps.host.run<RefreshOutput>(
        this.spec({ kind: 'refresh', common: this.common, states: [...states], keyIds }, REFRESH_PROTO, refreshWrites),
      ),
    );
    for (const k of out.keys) this.pool?.burn(k.keyId, k.to);
    return { keys: out.keys };
  }

  /**
   * Runs `op`, and once more after re-deriving this triplet's Aux shares of `keyIds` if the Aux
   * refused for lack of a share at the key's current epoch. In a cluster of several triplets each
   * Aux keeps its own store: a key generated or refreshed through another triplet reaches this
   * Aux the first time this triplet needs it there (§6 re-derivation, without the refresh: this
   * Aux is not a lost one, it never held the share).
   */
  private async withAuxShares<T>(keyIds: readonly string[], op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      if (!(e instanceof PeerRefusedError) || e.peer !== 'aux' || e.refusal !== 'EKM_KEY_EPOCH') throw e;
      // In a single triplet an Aux without a share lost its store: that is POST /servers/aux/rederive,
      // which also refreshes the keys (§6), so that the lost copy of f(3) becomes worthless.
      if (!(await this.clusterHasSeveralTriplets())) throw e;
      this.deps.log.info({ event: 'aux_share_missing', keyIds }, "this triplet's Aux lacks a current share: re-deriving it");
      await this.rederiveForAux(keyIds);
      return op();
    }
  }

  private async clusterHasSeveralTriplets(): Promise<boolean> {
    return new Set((await this.deps.store.listServers()).map((s) => s.tripletId)).size > 1;
  }

  /** One re-derivation per set of keys at a time: concurrent requests for the same keys wait for it. */
  private rederiveForAux(keyIds: readonly string[]): Promise<void> {
    const id = [...keyIds].sort().join(',');
    let p = this.auxRederivations.get(id);
    if (!p) {
      p = this.rederiveAux(keyIds, { refresh: false }).then(() => undefined);
      void p.finally(() => this.auxRederivations.delete(id)).catch(() => undefined);
      this.auxRederivations.set(id, p);
    }
    return p;
  }

  /** Gives the Aux its shares of every active key again (after a restore or an Aux loss), then refreshes them all (§6). */
  async rederiveAux(keyIds?: readonly string[], opts: { refresh: boolean } = { refresh: true }): Promise<{ keys: readonly AuxKeyEpoch[] }> {
    this.requireEp();
    const all = keyIds ?? (await this.allKeyIds());
    const algs = await Promise.all(all.map(async (k) => (await this.deps.store.getKey(k))?.alg ?? ''));
    const ids = all.filter((_, i) => !isRsaAlg(algs[i]!));
    const rsaIds = all.filter((_, i) => isRsaAlg(algs[i]!));
    const keys: AuxKeyEpoch[] = [];
    if (ids.length > 0) {
      const shares = await this.loadCurrentShares(ids);
      const out = await this.deps.host.run<AuxOutput>(
        this.spec({ kind: 'aux', common: this.common, shares: [...shares], keyIds: ids, attribution: true }, AUX_PROTO, auxWrites),
      );
      // The old Aux's presignature shares are gone: presignatures made with it can never complete.
      for (const k of out.keys) this.pool?.burn(k.keyId, null);
      keys.push(...out.keys);
    }
    // RSA keys: the Aux fetches its pieces from EP and Partner (rsa-aes-keys.ts).
    if (rsaIds.length > 0) keys.push(...(await this.rsaAes.rederiveRsaAux(rsaIds)));
    // The lost Aux held the same f(3) (RSA: the same pieces): only a new epoch makes its copy
    // worthless (§6). A caller that refreshes every key itself afterwards (restore recovery)
    // passes refresh: false.
    if (opts.refresh && keys.length > 0) await this.refresh(keys.map((k) => k.keyId));
    return { keys };
  }

  // --- helpers (Partner, Aux) --------------------------------------------------------------

  private registerHelpers(): void {
    const { host, tripletId } = this.deps;
    const common = this.common;
    this.deps.registerPeerMethod(KEY_PURGE_METHOD, async (body, from) => {
      // Only the EP destroys keys: a Partner or Aux asking would be a compromised peer erasing shares.
      if (from !== 'ep') throw new EkmError('EKM_PEER_PROTOCOL', `only the EP destroys keys, not the ${from ?? 'unknown peer'}`);
      const keyId = new TextDecoder().decode(body);
      if (!KEY_UID_RE.test(keyId)) throw new EkmError('EKM_PEER_PROTOCOL', 'a key purge names a key UID');
      await this.deps.store.applyKeyWrites([{ op: 'key-purge', keyId }]);
      this.deps.log.warn({ event: 'key_purged', keyId }, 'share of a destroyed key erased');
      return new Uint8Array(0);
    });
    this.deps.registerPeerMethod(KEY_HOLDINGS_METHOD, async (_body, from) => {
      if (from !== 'ep') throw new EkmError('EKM_PEER_PROTOCOL', `only the EP lists this server's keys, not the ${from ?? 'unknown peer'}`);
      const held: Uint8Array[] = [];
      for await (const page of this.keyPages()) held.push(...page.map((k) => encodeHolding(k.keyId, k.currentEpoch)));
      return encList(held);
    });
    this.deps.registerPeerMethod(KEY_PURGE_STALE_METHOD, async (body, from) => {
      if (from !== 'ep' || this.deps.self !== 3)
        throw new EkmError('EKM_PEER_PROTOCOL', `only the EP erases an Aux's stale shares, not the ${from ?? 'unknown peer'}`);
      const { keyId, epoch } = decodeHolding(body);
      if (!KEY_UID_RE.test(keyId)) throw new EkmError('EKM_PEER_PROTOCOL', 'a stale-share purge names a key UID');
      const before = await this.deps.store.getKey(keyId);
      await this.deps.store.applyKeyWrites([{ op: 'key-purge-stale', keyId, below: epoch }]);
      if (before && !(await this.deps.store.getKey(keyId))) {
        this.deps.log.warn(
          { event: 'stale_share_purged', keyId, epoch: before.currentEpoch, newer: epoch },
          'share of an older epoch erased (the key was refreshed through another triplet)',
        );
      }
      return new Uint8Array(0);
    });
    host.register(DKG_PROTO, async (env) => {
      const { inputs } = decodeRequest(DKG_PROTO, env, tripletId);
      if (await this.deps.store.getKey(inputs.keyIds[0]!)) throw new EkmError('EKM_KEY_EXISTS', `key ${inputs.keyIds[0]} exists`);
      return this.spec({ kind: 'dkg', common }, DKG_PROTO, dkgWrites);
    });
    host.register(REFRESH_PROTO, async (env) => {
      const { inputs } = decodeRequest(REFRESH_PROTO, env, tripletId);
      const states = await this.settledRefreshStates(inputs.keyIds);
      requireRefreshEpochs(inputs, states, 'key');
      return this.spec({ kind: 'refresh', common, states: [...states] }, REFRESH_PROTO, refreshWrites);
    });
    host.register(AUX_PROTO, async (env) => {
      const { inputs } = decodeRequest(AUX_PROTO, env, tripletId);
      const shares = this.deps.self === 3 ? new Map<string, KeyShare>() : await this.loadCurrentShares(inputs.keyIds);
      return this.spec({ kind: 'aux', common, shares: [...shares] }, AUX_PROTO, auxWrites);
    });
    const ecdsaHelper = async (env: Envelope): Promise<SessionSpec> => {
      const info = parseEcdsaRequest(env);
      const share = await this.shareAt(info.header.keyId, info.header.epoch);
      requireSigningAllowed(share); // whatever the EP asks: the policy is this server's to keep
      if (info.proto === PROTO_SIGN) return this.spec({ kind: 'ecdsa-sign', share, tripletId }, PROTO_SIGN, noWrites);
      if (info.proto === PROTO_PRESIGN)
        return this.spec({ kind: 'ecdsa-presign', share, tripletId }, PROTO_PRESIGN, noWrites, presigOutputWrites);
      const stored = info.psid ? await this.deps.store.getPresig(toHex(info.psid)) : undefined;
      const recipe: Recipe = { kind: 'ecdsa-online', share, tripletId, ...(stored ? { presig: decodePresig(stored) } : {}) };
      return this.spec(recipe, PROTO_ONLINE, ecdsaWrites);
    };
    for (const proto of [PROTO_SIGN, PROTO_PRESIGN, PROTO_ONLINE]) host.register(proto, ecdsaHelper);
    host.register(PROTO_FROST, async (env) => {
      const info = parseFrostRequest(env);
      const share = await this.shareAt(info.header.keyId, info.header.epoch);
      requireSigningAllowed(share);
      return this.spec({ kind: 'frost', share, tripletId }, PROTO_FROST, noWrites);
    });
  }

  /** EP: one presignature for the pool (all three parties store their share of it). */
  private async presign(keyId: string): Promise<{ psid: string; epoch: number } | undefined> {
    const { current } = await this.getKey(keyId);
    if (!isEcdsaAlg(current.alg) || signingRefusal(current, Date.now())) return undefined;
    const out = await this.deps.host.run<EcdsaOutput>(
      this.spec({ kind: 'ecdsa-presign', share: current, tripletId: this.deps.tripletId }, PROTO_PRESIGN, noWrites, presigOutputWrites),
    );
    if (out.kind !== 'presignature') return undefined;
    return { psid: toHex(out.presig.psid), epoch: out.presig.epoch };
  }

  private spec<P>(
    recipe: Recipe,
    label: string,
    toWrites: (items: readonly P[], sid: string) => KeyWrite[],
    outputWrites?: (out: unknown) => KeyWrite[],
  ): SessionSpec {
    return {
      recipe,
      label,
      toWrites: toWrites as SessionSpec['toWrites'],
      ...(outputWrites ? { outputWrites } : {}),
      inline: runsInline(recipe),
    };
  }

  private async resumeSpec(proto: string, cp: Checkpointed): Promise<SessionSpec> {
    const common = this.common;
    if (proto === DKG_PROTO && cp.keyId) {
      const share = (await this.deps.store.getShares(cp.keyId)).find((s) => s.status === 'current');
      if (!share) throw new Error(`no share of ${cp.keyId} to resume with`);
      return this.spec({ kind: 'dkg', common, resume: { checkpoint: cp.checkpoint, share: recordToShare(share) } }, DKG_PROTO, dkgWrites);
    }
    if (proto === REFRESH_PROTO && cp.keys) {
      const states = await this.loadRefreshStates(cp.keys.map((k) => k.keyId));
      const resume = { keys: cp.keys as RefreshKeyEpoch[], checkpoint: cp.checkpoint };
      return this.spec({ kind: 'refresh', common, states: [...states], resume }, REFRESH_PROTO, refreshWrites);
    }
    if (proto === RSA_REFRESH_PROTO && cp.keys) return this.rsaAes.resumeRefreshSpec(cp.keys as RefreshKeyEpoch[], cp.checkpoint);
    if (proto === AUX_PROTO && cp.keys) {
      const shares = this.deps.self === 3 ? new Map<string, KeyShare>() : await this.loadCurrentShares(cp.keys.map((k) => k.keyId));
      const resume = { keys: cp.keys as AuxKeyEpoch[], checkpoint: cp.checkpoint };
      return this.spec({ kind: 'aux', common, shares: [...shares], resume }, AUX_PROTO, auxWrites);
    }
    throw new Error(`cannot resume ${proto}`);
  }

  /** The share of `keyId` at `epoch`, if this server holds that epoch (CURRENT or PREVIOUS). */
  private async shareAt(keyId: string, epoch: number): Promise<KeyShare> {
    const s = (await this.deps.store.getShares(keyId)).find((x) => x.epoch === epoch && x.status !== 'pending');
    if (!s) throw new EkmError('EKM_KEY_EPOCH', `this server holds no share of key ${keyId} at epoch ${epoch}`);
    return recordToShare(s);
  }

  private async loadRefreshStates(keyIds: readonly string[]): Promise<Map<string, RefreshKeyState>> {
    const out = new Map<string, RefreshKeyState>();
    for (const keyId of keyIds) {
      const row = await this.deps.store.getKey(keyId);
      if (!row || row.state !== 'active') continue;
      const shares = await this.deps.store.getShares(keyId);
      const current = shares.find((s) => s.status === 'current');
      if (!current) continue;
      out.set(keyId, {
        current: recordToShare(current),
        pendingEpoch: shares.find((s) => s.status === 'pending')?.epoch ?? null,
        previousEpoch: shares.find((s) => s.status === 'previous')?.epoch ?? null,
      });
    }
    return out;
  }

  /**
   * The keys' states once a refresh that just finished elsewhere has finished here too: the last
   * ACTIVATED of the previous refresh can still be in flight when the next request arrives, and
   * I3 refuses a key that still holds PREVIOUS. Waits briefly; I3 decides after that.
   */
  private async settledRefreshStates(keyIds: readonly string[], waitMs = 3000): Promise<Map<string, RefreshKeyState>> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const states = await this.loadRefreshStates(keyIds);
      const busy = [...states.values()].some((st) => st.previousEpoch != null || st.pendingEpoch != null);
      if (!busy || performance.now() >= deadline) return states;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private async loadCurrentShares(keyIds: readonly string[]): Promise<Map<string, KeyShare>> {
    const out = new Map<string, KeyShare>();
    for (const keyId of keyIds) {
      const current = (await this.deps.store.getShares(keyId)).find((s: StoredShare) => s.status === 'current');
      if (current) out.set(keyId, recordToShare(current));
    }
    return out;
  }

  /** Every active key that has shares (not an imported public key): what an Aux re-derivation covers. */
  async allKeyIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const page of this.keyPages()) ids.push(...page.filter((k) => k.state === 'active' && !k.publicKey).map((k) => k.keyId));
    return ids;
  }

  /** Every key record of this store, a page at a time. */
  private async *keyPages(): AsyncGenerator<KeyRow[]> {
    let after: string | undefined;
    for (;;) {
      const page = await this.deps.store.listKeys({ ...(after ? { after } : {}), limit: 1000 });
      yield page;
      if (page.length < 1000) return;
      after = page[page.length - 1]!.keyId;
    }
  }

  private requireEp(): void {
    if (this.deps.self !== 1) throw new EkmError('EKM_NOT_EP', 'only the EP coordinates key operations');
  }

  private invalidOutput(keyId: string, proto: string): EkmError {
    this.deps.log.error(
      { event: 'security', kind: 'invalid_output', keyId, proto },
      'a protocol produced a signature that does not verify: not released',
    );
    return new EkmError('EKM_PROTOCOL_ABORTED', 'the signature did not verify and was not released', {
      hint: 'it is safe to retry; the event is logged',
    });
  }
}

// --- persist items → store writes ----------------------------------------------------------

function noWrites(): KeyWrite[] {
  return [];
}

function dkgWrites(items: readonly DkgPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
      case 'session-abandon':
        return sessionItemWrites(it, sid);
      case 'dkg-key-pending':
        return [{ op: 'key-create', keyId: it.share.keyId, alg: it.share.alg, share: shareToRecord(it.share) }];
      case 'dkg-checkpoint':
        return [
          { op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: DKG_PROTO, keyId: it.keyId, checkpoint: it.checkpoint }) },
        ];
      case 'dkg-key-active':
        return [{ op: 'key-activate', keyId: it.keyId }];
      case 'dkg-complete':
        return [{ op: 'session-done', sid }];
    }
  });
}

const refreshWrites = refreshWritesFor<KeyShare>(REFRESH_PROTO, (share) => ({
  op: 'share-put',
  share: shareToRecord(share),
  status: 'pending',
}));

function auxWrites(items: readonly AuxPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
      case 'session-abandon':
        return sessionItemWrites(it, sid);
      case 'aux-share-pending':
        return [{ op: 'aux-share-pending', share: shareToRecord(it.share) }];
      case 'aux-checkpoint':
        return [
          { op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: AUX_PROTO, keys: it.keys, checkpoint: it.checkpoint }) },
        ];
      case 'aux-share-activate':
        return it.keys.map((k) => ({ op: 'aux-share-activate', keyId: k.keyId, epoch: k.epoch }));
      case 'aux-present':
        return it.keys.map((k) => ({ op: 'aux-present', keyId: k.keyId }));
      case 'aux-complete':
        return [{ op: 'session-done', sid }];
    }
  });
}

/** A presignature is deleted (burnt) before this party's online message leaves (docs/protocols.md §3.6). */
function ecdsaWrites(items: readonly EcdsaPersist[]): KeyWrite[] {
  return items.map((it) => ({ op: 'presig-delete', psid: toHex(it.psid) }));
}

function presigOutputWrites(out: unknown): KeyWrite[] {
  const o = out as EcdsaOutput;
  if (o.kind !== 'presignature') return [];
  return [{ op: 'presig-put', psid: toHex(o.presig.psid), keyId: o.presig.keyId, epoch: o.presig.epoch, secret: encodePresig(o.presig) }];
}

/**
 * A helper refused because the key's policy forbids signing by its clock (ahead of this one's):
 * the caller gets the same 409 as from the EP's own check, and no other helper is tried.
 */
async function helperPolicy<T>(keyId: string, session: Promise<T>): Promise<T> {
  try {
    return await session;
  } catch (e) {
    if (e instanceof PeerRefusedError && e.refusal === 'EKM_KEY_EXPIRED') {
      throw new EkmError('EKM_KEY_EXPIRED', `key ${keyId} no longer signs: the ${e.peer} refuses, it expired by that server's clock`, {
        hint: 'use another key; signatures made before still verify',
      });
    }
    throw e;
  }
}

/** Refuses a signature the key's policy forbids now: at the EP for the caller, at the helpers whatever the EP asks. */
function requireSigningAllowed(share: KeyShare): void {
  const why = signingRefusal(share, Date.now());
  if (why)
    throw new EkmError('EKM_KEY_EXPIRED', `key ${share.keyId} no longer signs: ${why}`, {
      hint: 'use another key; signatures made before still verify',
    });
}

// --- formats -------------------------------------------------------------------------------

function signedInput(alg: string, req: SignRequest): SignedInput {
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
function signedDigest(hash: 'sha256' | 'sha384' | 'sha512', req: SignRequest): Uint8Array {
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
