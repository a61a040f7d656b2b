/**
 * Keys over the triplet: the EP's key operations, dispatched by the key's algorithm to its family
 * (keys/registry.ts), and by the family to the share scheme its keys live in. Every protocol runs
 * through the ProtocolHost; every stored share is sealed by the barrier. On Partner and Aux the
 * families answer the EP's protocol requests (registered at construction).
 */
import { EkmError } from '../errors.js';
import type { AuxKeyEpoch } from '../protocols/aux-rederive.js';
import { OBJECT_FORMAT_VERSION, type ObjectFormat } from '../protocols/dprf.js';
import { type KeyPolicy, encodeKeyPolicy, signingRefusal } from '../protocols/key-policy.js';
import { EC_ALGS, type KeyShare } from '../protocols/key-share.js';
import type { RefreshKeyEpoch } from '../protocols/refresh.js';
import type { KeyRow } from '../store/key-records.js';
import { BoundedCache } from '../util/bounded-cache.js';
import { PresignPool } from './presign-pool.js';
import type { SessionSpec } from './protocol-host.js';
import type { ServiceDeps } from './service-deps.js';
import { fromJsonWithBytes } from './share-codec.js';
import type { ExportedPublicKey, KeyAlg, PublicKeyFormat, SignRequest, SignResult } from './keys/algorithms.js';
import { AuxShares } from './keys/aux-shares.js';
import { type Checkpointed, type ShareScheme, requireEp } from './keys/family.js';
import { keyPages, registerHoldingMethods } from './keys/holdings.js';
import { type PublicMaterial, exportMaterial } from './keys/public-material.js';
import { KeyFamilies } from './keys/registry.js';
import { verifyWithMaterial } from './keys/signatures.js';

export {
  KEY_ALGS,
  type ExportedPublicKey,
  type KeyAlg,
  type PublicKeyFormat,
  type SignatureFormat,
  type SignRequest,
  type SignResult,
} from './keys/algorithms.js';
export {
  KEY_HOLDINGS_METHOD,
  KEY_PURGE_METHOD,
  KEY_PURGE_STALE_METHOD,
  decodeHolding,
  decodeHoldings,
  encodeHolding,
} from './keys/holdings.js';
export { exportPublicKey } from './keys/public-material.js';

/** Public keys kept decoded and exported (per key, and per key and format). */
const PUBLIC_CACHE_ENTRIES = 10_000;

export interface KeyServiceDeps extends ServiceDeps {
  /** Presignatures kept ready per ECDSA key that has signed (EP); 0 disables the pool. */
  readonly poolTarget?: number;
  /** The format new AES objects are sealed in (EKM_AES_OBJECT_FORMAT; default 2). */
  readonly aesObjectFormat?: ObjectFormat | undefined;
}

/** The RSA and AES operations beyond the family contract (encryption), as the API calls them. */
export interface RsaAesOperations {
  readonly createRsa: KeyFamilies['rsa']['create'];
  readonly rsaSign: KeyFamilies['rsa']['rsaSign'];
  readonly rsaDecrypt: KeyFamilies['rsa']['rsaDecrypt'];
  readonly rsaEncrypt: KeyFamilies['rsa']['rsaEncrypt'];
  readonly rsaPublicKey: KeyFamilies['rsa']['rsaPublicKey'];
  readonly aesEncrypt: KeyFamilies['aes']['aesEncrypt'];
  readonly aesDecrypt: KeyFamilies['aes']['aesDecrypt'];
  readonly aesDataKey: KeyFamilies['aes']['aesDataKey'];
}

export class KeyService {
  readonly pool: PresignPool | undefined;
  /** RSA and AES encryption, signing and dealing, by name. */
  readonly rsaAes: RsaAesOperations;
  private readonly families: KeyFamilies;

  /**
   * Public keys as exported, per key and format. A key's public key never changes (a refresh keeps
   * it, a UID is never reused), so entries need no invalidation; reading and unsealing a share and
   * re-encoding the point on every export or verify was most of a public-key read's cost.
   */
  private readonly publicMaterials = new BoundedCache<string, PublicMaterial>(PUBLIC_CACHE_ENTRIES);
  private readonly publicExports = new BoundedCache<string, ExportedPublicKey>(PUBLIC_CACHE_ENTRIES);

  constructor(private readonly deps: KeyServiceDeps) {
    const poolTarget = deps.poolTarget ?? 16;
    if (deps.self === 1 && poolTarget > 0) {
      this.pool = new PresignPool({
        target: poolTarget,
        store: deps.store,
        peers: deps.peers,
        log: deps.log,
        presign: (keyId) => this.families.ec.presign(keyId),
      });
    }
    const auxShares = new AuxShares({ store: deps.store, log: deps.log, rederive: (ids) => this.rederiveAux(ids, { refresh: false }) });
    this.families = new KeyFamilies({
      ...deps,
      auxShares,
      presigs: this.pool,
      aesObjectFormat: deps.aesObjectFormat ?? OBJECT_FORMAT_VERSION,
    });
    registerHoldingMethods(deps);
    this.families.registerHelpers();
    const { rsa, aes } = this.families;
    this.rsaAes = {
      createRsa: (source) => rsa.create(source),
      rsaSign: (...a) => rsa.rsaSign(...a),
      rsaDecrypt: (...a) => rsa.rsaDecrypt(...a),
      rsaEncrypt: (...a) => rsa.rsaEncrypt(...a),
      rsaPublicKey: (...a) => rsa.rsaPublicKey(...a),
      aesEncrypt: (...a) => aes.aesEncrypt(...a),
      aesDecrypt: (...a) => aes.aesDecrypt(...a),
      aesDataKey: (...a) => aes.aesDataKey(...a),
    };
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

  /**
   * A new key; `policy` (signing keys only) is fixed for the key's life and checked by all three
   * servers (key-policy.ts).
   */
  async generateKey(alg: KeyAlg, policy: KeyPolicy = {}): Promise<{ keyId: string; alg: KeyAlg }> {
    requireEp(this.deps.self);
    let policyBytes: Uint8Array;
    try {
      policyBytes = encodeKeyPolicy(policy); // refuses a notAfter out of range
    } catch (e) {
      throw new EkmError('EKM_BAD_INPUT', (e as Error).message, { hint: 'give a notAfter before the year 10000' });
    }
    const family = this.families.generating(alg);
    if (policy.notAfter !== undefined) {
      if (family && !family.takesPolicy) {
        throw new EkmError('EKM_BAD_INPUT', `notAfter applies to EC signing keys, not to ${alg} keys`);
      }
      if (signingRefusal(policy, Date.now())) throw new EkmError('EKM_BAD_INPUT', 'notAfter must be in the future');
    }
    if (!family?.generate)
      throw new EkmError('EKM_BAD_ALG', `unknown key algorithm ${String(alg)}`, { hint: `use one of ${EC_ALGS.join(', ')}` });
    return family.generate(alg, policyBytes);
  }

  /** Keeps someone else's public key (SPKI PEM) as a key that verifies (RSA: also encrypts). */
  importPublic(pem: string): Promise<{ keyId: string; alg: KeyAlg }> {
    return this.families.imported.import(pem);
  }

  /** The record and this server's current share of a key with Shamir shares (EC or AES). */
  getKey(keyId: string): Promise<{ row: KeyRow; current: KeyShare }> {
    return this.families.threshold.current(keyId);
  }

  /** The key's policy as this server holds it with its share (RSA, AES and imported keys have none). */
  async policyOf(row: KeyRow): Promise<KeyPolicy> {
    const family = this.families.all.find((f) => f.owns(row));
    return family?.policyOf ? family.policyOf(row) : {};
  }

  /** The key's record, whatever its type (for listing and showing). */
  async describe(keyId: string): Promise<KeyRow> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`);
    return row;
  }

  async sign(keyId: string, req: SignRequest): Promise<SignResult> {
    requireEp(this.deps.self);
    const row = await this.describe(keyId);
    const family = this.families.of(row);
    if (!family.sign) throw family.refusal(keyId, 'sign');
    return family.sign(row, req);
  }

  /** Whether `signature` is valid; a key without a public key (AES) verifies nothing. */
  async verify(keyId: string, req: SignRequest, signature: Uint8Array): Promise<boolean> {
    const row = await this.describe(keyId);
    const m = await this.publicMaterialOf(row);
    return m !== undefined && verifyWithMaterial(row.alg, m, req, signature);
  }

  async publicKey(keyId: string, format: PublicKeyFormat): Promise<{ alg: KeyAlg; format: PublicKeyFormat; value: ExportedPublicKey }> {
    const row = await this.describe(keyId);
    const family = this.families.of(row);
    if (!family.publicMaterial) throw family.refusal(keyId, 'export a public key');
    const cacheKey = `${keyId} ${format}`;
    let value = this.publicExports.get(cacheKey);
    if (value === undefined) {
      value = exportMaterial(row.alg, (await this.publicMaterialOf(row))!, format);
      if (typeof value === 'object' && !(value instanceof Uint8Array)) Object.freeze(value);
      this.publicExports.set(cacheKey, value);
    }
    // The cached bytes stay ours: a caller gets a copy it may change.
    return { alg: row.alg as KeyAlg, format, value: value instanceof Uint8Array ? value.slice() : value };
  }

  /** The public key of a key (cached: it never changes), or undefined for a family without one. */
  private async publicMaterialOf(row: KeyRow): Promise<PublicMaterial | undefined> {
    const family = this.families.of(row);
    if (!family.publicMaterial) return undefined;
    let m = this.publicMaterials.get(row.keyId);
    if (!m) this.publicMaterials.set(row.keyId, (m = await family.publicMaterial(row)));
    return m;
  }

  /** Proactive refresh of a batch of keys: new shares, same public keys (§5); one batch per share scheme. */
  async refresh(keyIds: readonly string[]): Promise<{ keys: readonly RefreshKeyEpoch[] }> {
    requireEp(this.deps.self);
    const rows = await Promise.all(keyIds.map((k) => this.describe(k)));
    const batches = new Map<ShareScheme, string[]>();
    for (const row of rows) {
      const scheme = this.families.of(row).shares;
      if (!scheme) throw this.families.of(row).refusal(row.keyId, 'be refreshed');
      batches.set(scheme, [...(batches.get(scheme) ?? []), row.keyId]);
    }
    const refreshed = await Promise.all([...batches].map(([scheme, ids]) => scheme.refresh(ids)));
    return { keys: refreshed.flat() };
  }

  /** Gives the Aux its shares of every active key again (after a restore or an Aux loss), then refreshes them all (§6). */
  async rederiveAux(keyIds?: readonly string[], opts: { refresh: boolean } = { refresh: true }): Promise<{ keys: readonly AuxKeyEpoch[] }> {
    requireEp(this.deps.self);
    const all = keyIds ?? (await this.allKeyIds());
    const algs = await Promise.all(all.map(async (k) => (await this.deps.store.getKey(k))?.alg ?? ''));
    const batches = new Map<ShareScheme, string[]>(this.families.schemes.map((s) => [s, []]));
    all.forEach((k, i) => batches.get(this.families.schemeOf(algs[i]!))!.push(k));
    const keys: AuxKeyEpoch[] = [];
    for (const [scheme, ids] of batches) if (ids.length > 0) keys.push(...(await scheme.rederiveAux(ids)));
    // The lost Aux held the same f(3) (RSA: the same pieces): only a new epoch makes its copy
    // worthless (§6). A caller that refreshes every key itself afterwards (restore recovery)
    // passes refresh: false.
    if (opts.refresh && keys.length > 0) await this.refresh(keys.map((k) => k.keyId));
    return { keys };
  }

  /** Every active key that has shares (not an imported public key): what an Aux re-derivation covers. */
  async allKeyIds(): Promise<string[]> {
    const ids: string[] = [];
    for await (const page of keyPages(this.deps.store)) {
      ids.push(...page.filter((k) => k.state === 'active' && !k.publicKey).map((k) => k.keyId));
    }
    return ids;
  }

  private async resumeSpec(proto: string, cp: Checkpointed): Promise<SessionSpec> {
    for (const scheme of this.families.schemes) {
      const spec = scheme.resume(proto, cp);
      if (spec) return spec;
    }
    throw new Error(`cannot resume ${proto}`);
  }
}
