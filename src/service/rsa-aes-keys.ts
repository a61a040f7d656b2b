/**
 * RSA and AES keys as a service, beside the threshold EC keys of key-service.ts:
 *
 * - RSA: dealt at the EP (generated with node:crypto off the event loop, or imported from PKCS#8),
 *   split at once into 2-of-3 replicated additive shares, the pieces sent to Partner and Aux over
 *   the pinned peer links and the whole key dropped; signing (PKCS#1 v1.5, PSS) and decryption
 *   (OAEP, PKCS#1 v1.5) with EP + Partner (or Aux), each result checked with e before release;
 *   refresh with the two-phase, epoch-based commit.
 * - AES-256: a threshold PRF key (a P-256 DKG key); every object gets its own AES-256-GCM key
 *   derived jointly: by all three servers with cross-checked partials when all are up, else (or
 *   when the check fails) by EP + Partner (or Aux) with DLEQ-proved partials (dprf.ts). Concurrent
 *   requests for one key share a session (KeyedBatcher); encryptions take keys derived ahead of
 *   time from a pool (ObjectKeyPool).
 */
import { constants, createHash, createPublicKey, generateKeyPair, publicEncrypt, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { decodeEnc, enc, toHex, u32be, u8 } from '../crypto/encoding.js';
import { HASH_LEN, type OaepHash, type RsaSignHash, rsassaPkcs1v15Verify, rsassaPssVerify } from '../crypto/rsa-padding.js';
import { EkmError } from '../errors.js';
import {
  type DprfHelpers,
  type DprfKeyShare,
  type DprfOutput,
  DPRF_ALG,
  DPRF_MAX_BATCH,
  PROTO_DPRF,
  PROTO_DPRF_CROSS,
  dprfProto,
  type DprfObject,
  type ObjectFormat,
  SealedObjectError,
  generateDataKey,
  newObjectNonce,
  openObject,
  parseDprfRequest,
  parseObjectHeader,
  sealObject,
} from '../protocols/dprf.js';
import type { KeyShare } from '../protocols/key-share.js';
import type { RefreshKeyEpoch } from '../protocols/refresh.js';
import {
  PROTO_RSA,
  RSA_ALG_BITS,
  RSA_REFRESH_PROTO,
  type RsaAlg,
  type RsaKeyShare,
  type RsaOperation,
  type RsaOutput,
  type RsaRefreshKeyState,
  type RsaRefreshOutput,
  RSA_PIECES_OF,
  checkRsaShare,
  dealRsaKey,
  exportRsaPublicKey,
  isRsaAlg,
  parseRsaRequest,
  rsaPublicKeyObject,
} from '../protocols/rsa.js';
import { type ConfirmCheckpoint, decodeRequest } from '../protocols/session-kit.js';
import type { PartyId } from '../protocols/types.js';
import { KEY_UID_RE, type KeyWrite } from '../store/key-records.js';
import { KeyedBatcher } from '../util/keyed-batcher.js';
import { ObjectKeyPool, type PooledObjectKey } from './object-key-pool.js';
import type { SessionSpec } from './protocol-host.js';
import { runsInline } from './party-recipes.js';
import { publicOnly } from './public-keys.js';
import { refreshWritesFor, requireRefreshEpochs } from './refresh-writes.js';
import type { ServiceDeps } from './service-deps.js';
import { recordToRsaShare, rsaShareToRecord } from './share-codec.js';

const generateKeyPairAsync = promisify(generateKeyPair);
const rng = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
const INSTALL_METHOD = 'rsa.install';
/** EP → Aux: fetch your pieces of this RSA key (Aux re-derivation). */
const AUX_REDERIVE_METHOD = 'rsa.aux-rederive';
/** Aux → EP and Aux → Partner: the one piece of mine that the Aux also holds. */
const PIECE_FOR_AUX_METHOD = 'rsa.piece-for-aux';
const AUX = 3 as const satisfies PartyId;
/**
 * AES sessions of one key that run at once; the requests that arrive meanwhile wait and go
 * together in a next one, of up to DPRF_SESSION_OBJECTS objects (what a helper evaluates on its
 * event loop, party-recipes.ts). Three keep EP and both helpers busy at the same time; measured
 * at concurrency 16 and 64 against one and two.
 */
const DPRF_SESSIONS_PER_KEY = 3;
const DPRF_SESSION_OBJECTS = 16;
/**
 * Ready object keys for encryption (object-key-pool.ts): for a key that encrypts at least twice a
 * second, half a second of its rate, at least 64 and at most 256 (one session: DPRF_MAX_BATCH),
 * topped up once a quarter is missing, by up to three sessions at a time; each key usable for
 * 60 s, for the 64 keys used last. At 1,000 encryptions a second a refill takes longer than a
 * small reserve lasts, and the encryptions that find the pool empty derive on demand in small
 * sessions, with more overhead per object. Scratch runs at concurrency 64: a pool of 64 refilled
 * below 32, one refill at a time: 60 % misses, 850 to 1,020 encryptions/s; 256 refilled below
 * 128: 35 % misses, 1,060 to 1,210/s; as here: 16 % misses, 1,220 to 1,300/s.
 */
const POOL = {
  secondsPooled: 0.5,
  minTarget: 64,
  maxTarget: DPRF_MAX_BATCH,
  minRate: 2,
  secondsAhead: 8,
  maxRefills: 3,
  ttlMs: 60_000,
  maxKeys: 64,
  retryMs: 1000,
} as const;

/** One object's key, and the key's epoch it was derived at (the sealed object's key version). */
interface ObjectKey {
  readonly objectKey: Uint8Array;
  readonly epoch: number;
}

export type RsaSignScheme = 'pkcs1v15' | 'pss';
export type RsaDecryptScheme = 'oaep' | 'pkcs1v15';

export interface RsaAesDeps extends ServiceDeps {
  /** The current share of an EC-family key (here: the DPRF key), from the EC key service. */
  readonly currentEcShare: (keyId: string) => Promise<KeyShare>;
  /** Runs `op`, re-deriving this triplet's Aux shares of `keyIds` first if the Aux refuses for lack of them (KeyService). */
  readonly withAuxShares: <T>(keyIds: readonly string[], op: () => Promise<T>) => Promise<T>;
  /** The format new objects are sealed in (an env setting for rolling upgrades: config/aes-object-format.ts). */
  readonly objectFormat: ObjectFormat;
}

export class RsaAesKeys {
  private readonly objectKeyBatches = new KeyedBatcher<DprfObject, ObjectKey>(
    (keyId, objects) => this.objectKeys(keyId, objects),
    DPRF_SESSION_OBJECTS,
    DPRF_SESSIONS_PER_KEY,
  );

  private readonly pool: ObjectKeyPool;

  constructor(private readonly deps: RsaAesDeps) {
    this.pool = new ObjectKeyPool({
      ...POOL,
      derive: async (keyId, count) => {
        const format = deps.objectFormat;
        const objects = Array.from({ length: count }, () => ({ nonce: newObjectNonce(), format }));
        const keys = await this.objectKeys(keyId, objects);
        return keys.map((k, i) => ({ ...k, objectNonce: objects[i]!.nonce, format }));
      },
      onRefillError: (keyId, err) => deps.log.warn({ keyId, err: (err as Error).message }, 'could not refill the pool of AES object keys'),
    });
    deps.registerPeerMethod(INSTALL_METHOD, (body, from) => {
      if (from !== 'ep') throw new EkmError('EKM_PEER_PROTOCOL', `only the EP deals RSA shares, not the ${from ?? 'unknown peer'}`);
      return this.install(body);
    });
    deps.registerPeerMethod(AUX_REDERIVE_METHOD, (body, from) => {
      if (from !== 'ep' || deps.self !== AUX)
        throw new EkmError('EKM_PEER_PROTOCOL', `only the EP asks the Aux to re-derive RSA shares, not the ${from ?? 'unknown peer'}`);
      return this.rederiveHere(body);
    });
    deps.registerPeerMethod(PIECE_FOR_AUX_METHOD, (body, from) => {
      // Only to the Aux: each of EP and Partner holds one of the Aux's two pieces, and never the other's.
      if (from !== 'aux' || deps.self === AUX)
        throw new EkmError('EKM_PEER_PROTOCOL', `RSA pieces go to the Aux only, not to the ${from ?? 'unknown peer'}`);
      return this.pieceForAux(body);
    });
    deps.host.register(PROTO_RSA, async (env) => {
      const info = parseRsaRequest(env);
      const share = await this.rsaShareAt(info.header.keyId, info.header.epoch);
      return spec({ kind: 'rsa', share, tripletId: deps.tripletId }, PROTO_RSA, noWrites);
    });
    deps.host.register(RSA_REFRESH_PROTO, async (env) => {
      const { inputs } = decodeRequest(RSA_REFRESH_PROTO, env, deps.tripletId);
      const states = await this.rsaRefreshStates(inputs.keyIds);
      requireRefreshEpochs(inputs, states, 'RSA key');
      return spec({ kind: 'rsa-refresh', common: deps.identity, states: [...states] }, RSA_REFRESH_PROTO, rsaRefreshWrites);
    });
    const dprfHelper = async (env: Parameters<typeof parseDprfRequest>[0]): Promise<SessionSpec> => {
      const info = parseDprfRequest(env);
      // No share at all is refused like a stale one: the Aux of a triplet that never used the key (KeyService.withAuxShares).
      const share = await deps.currentEcShare(info.header.keyId).catch(() => undefined);
      if (share?.alg !== DPRF_ALG || share.epoch !== info.header.epoch)
        throw new EkmError('EKM_KEY_EPOCH', `no AES key ${info.header.keyId} at epoch ${info.header.epoch}`);
      const recipe = { kind: 'dprf', share: share as DprfKeyShare, tripletId: deps.tripletId, proved: info.proved } as const;
      return spec(recipe, env.proto, noWrites, info.objectNonces.length);
    };
    deps.host.register(PROTO_DPRF, dprfHelper);
    deps.host.register(PROTO_DPRF_CROSS, dprfHelper);
  }

  // --- RSA ------------------------------------------------------------------------------------

  /**
   * Generates (or imports) an RSA key and deals it: the one moment a key exists whole, at the EP,
   * for the few milliseconds of the split (docs/security-model.md). Acknowledged only once all
   * three servers stored their share.
   */
  async createRsa(source: { alg: RsaAlg } | { privateKeyPem: string }): Promise<{ keyId: string; alg: RsaAlg }> {
    this.requireEp();
    for (const role of ['partner', 'aux'] as const) {
      if (!this.deps.peers.link(role)) throw new EkmError('EKM_PEER_DOWN', `dealing an RSA key needs the ${role}, which is not connected`);
    }
    const keyId = toHex(randomBytes(8));
    let pem: string;
    if ('alg' in source) {
      const kp = await generateKeyPairAsync('rsa', { modulusLength: RSA_ALG_BITS[source.alg], publicExponent: 65537 });
      pem = kp.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
    } else {
      pem = source.privateKeyPem;
    }
    let dealt: ReturnType<typeof dealRsaKey>;
    try {
      dealt = dealRsaKey(keyId, { privateKey: pem }, rng);
    } catch (e) {
      throw new EkmError('EKM_BAD_KEY', `the RSA private key cannot be imported: ${(e as Error).message}`, {
        hint: 'give an RSA 2048, 3072 or 4096-bit key as PKCS#8 PEM',
      });
    }
    pem = '';
    await Promise.all(
      (
        [
          [2, 'partner'],
          [3, 'aux'],
        ] as const
      ).map(([party, role]) =>
        this.deps.peers.requireLink(role).request(INSTALL_METHOD, encodeRsaRecord(rsaShareToRecord(dealt.shares[party])), 30_000),
      ),
    );
    await this.deps.store.applyKeyWrites([
      { op: 'rsa-key-create', keyId, alg: dealt.shares[1].alg, share: rsaShareToRecord(dealt.shares[1]) },
    ]);
    this.deps.log.info(
      { event: 'rsa_dealt', keyId, alg: dealt.shares[1].alg, imported: !('alg' in source) },
      'RSA key dealt into shares; the whole key was dropped',
    );
    return { keyId, alg: dealt.shares[1].alg };
  }

  async rsaSign(keyId: string, scheme: RsaSignScheme, hash: RsaSignHash, digest: Uint8Array): Promise<Uint8Array> {
    if (digest.length !== HASH_LEN[hash])
      throw new EkmError('EKM_BAD_INPUT', `a ${hash} digest has ${HASH_LEN[hash]} bytes, not ${digest.length}`);
    const share = await this.currentRsa(keyId);
    const out = await this.rsaRun(
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
    const share = await this.currentRsa(keyId);
    const op: RsaOperation =
      scheme === 'oaep'
        ? { kind: 'decrypt', scheme: 'oaep', hash, ciphertext, ...(label ? { label } : {}) }
        : { kind: 'decrypt', scheme: 'pkcs1v15', ciphertext };
    const out = await this.rsaRun(share, op);
    if (out.kind === 'decryption-failed') throw new EkmError('EKM_DECRYPTION_FAILED', 'decryption failed');
    if (out.kind !== 'plaintext') throw new EkmError('EKM_PROTOCOL_ABORTED', 'no plaintext was produced');
    return out.plaintext;
  }

  /** RSA encryption is public: done here with node:crypto for convenience. */
  async rsaEncrypt(keyId: string, scheme: RsaDecryptScheme, plaintext: Uint8Array, hash: OaepHash = 'sha256'): Promise<Uint8Array> {
    // An imported RSA public key encrypts too: with its own PEM, there are no shares.
    const row = await this.deps.store.getKey(keyId);
    const key = row?.publicKey && isRsaAlg(row.alg) ? createPublicKey(row.publicKey) : rsaPublicKeyObject(await this.currentRsa(keyId));
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
    return exportRsaPublicKey(await this.currentRsa(keyId), format);
  }

  async rsaRefresh(keyIds: readonly string[]): Promise<readonly RefreshKeyEpoch[]> {
    this.requireEp();
    const states = await this.rsaRefreshStates(keyIds);
    for (const k of keyIds) if (!states.has(k)) throw new EkmError('EKM_KEY_NOT_FOUND', `no RSA key ${k}`);
    const out = await this.deps.host.run<RsaRefreshOutput>(
      spec({ kind: 'rsa-refresh', common: this.deps.identity, states: [...states], keyIds }, RSA_REFRESH_PROTO, rsaRefreshWrites),
    );
    return out.keys;
  }

  /** The RSA refresh of a stored checkpoint, resumed (after a restart, or a session dropped on a failed write). */
  async resumeRefreshSpec(keys: readonly RefreshKeyEpoch[], checkpoint: ConfirmCheckpoint): Promise<SessionSpec> {
    const states = await this.rsaRefreshStates(
      keys.map((k) => k.keyId),
      0,
    );
    return spec(
      { kind: 'rsa-refresh', common: this.deps.identity, states: [...states], resume: { keys, checkpoint } },
      RSA_REFRESH_PROTO,
      rsaRefreshWrites,
    );
  }

  // --- AES (threshold PRF) ---------------------------------------------------------------------

  async aesEncrypt(keyId: string, plaintext: Uint8Array, aad: Uint8Array): Promise<Uint8Array> {
    const { objectNonce, objectKey, epoch, format } = await this.newObjectKey(keyId);
    try {
      return sealObject(objectKey, plaintext, aad, { keyId, keyVersion: epoch, objectNonce, format });
    } finally {
      objectKey.fill(0);
    }
  }

  async aesDecrypt(keyId: string | undefined, sealed: Uint8Array, aad: Uint8Array): Promise<{ keyId: string; plaintext: Uint8Array }> {
    const header = sealedObjectHeader(sealed);
    if (keyId !== undefined && header.keyId !== keyId) {
      throw new EkmError('EKM_WRONG_KEY', `the ciphertext was made with key ${header.keyId}, not ${keyId}`);
    }
    const { objectKey } = await this.objectKey(header.keyId, { nonce: header.objectNonce, format: header.format });
    try {
      return { keyId: header.keyId, plaintext: openObject(objectKey, sealed, aad, header.keyId) };
    } catch (e) {
      throw asEkmError(e);
    } finally {
      objectKey.fill(0);
    }
  }

  async aesDataKey(keyId: string, bits: 128 | 256, aad: Uint8Array): Promise<{ plaintextKey: Uint8Array; sealed: Uint8Array }> {
    const { objectNonce, objectKey, epoch, format } = await this.newObjectKey(keyId);
    try {
      return generateDataKey(objectKey, { keyId, keyVersion: epoch, objectNonce, format }, bits, aad);
    } finally {
      objectKey.fill(0);
    }
  }

  // --- internals -------------------------------------------------------------------------------

  /**
   * K_obj of a new object: from the pool when it holds one of the key's current epoch (the key
   * row, read here, also says the key is still an active AES key), else derived now.
   */
  private async newObjectKey(keyId: string): Promise<PooledObjectKey> {
    this.requireEp();
    const row = await this.deps.store.getKey(keyId);
    const pooled = row?.state === 'active' && row.alg === DPRF_ALG ? this.pool.take(keyId, row.currentEpoch) : undefined;
    if (pooled) return pooled;
    const objectNonce = newObjectNonce();
    const format = this.deps.objectFormat;
    return { objectNonce, format, ...(await this.objectKey(keyId, { nonce: objectNonce, format })) };
  }

  /** K_obj of one object, derived in a session shared with the concurrent requests for the same key. */
  private objectKey(keyId: string, object: DprfObject): Promise<ObjectKey> {
    this.requireEp();
    return this.objectKeyBatches.submit(keyId, object);
  }

  /**
   * One session for a batch of objects: cross-checked by all three servers when both helpers are
   * connected; proved with the Partner (or the Aux) when one is not, or when the cross-checked
   * session failed (a wrong partial: a cheating Partner is named by its proved session, a
   * cheating Aux is left out while the Partner answers).
   */
  private async objectKeys(keyId: string, objects: readonly DprfObject[]): Promise<ObjectKey[]> {
    const share = await this.dprfShare(keyId);
    const run = async (helper: DprfHelpers): Promise<ObjectKey[]> => {
      const recipe = { kind: 'dprf', share, tripletId: this.deps.tripletId, coordinate: { helper, objects } } as const;
      const out = await this.deps.host.run<DprfOutput>(spec(recipe, dprfProto(helper), noWrites));
      if (out.kind !== 'keys') throw new EkmError('EKM_PROTOCOL_ABORTED', 'no object key was derived');
      return out.keys.map((objectKey) => ({ objectKey, epoch: share.epoch }));
    };
    if (this.deps.peers.link('partner') && this.deps.peers.link('aux')) {
      try {
        return await this.deps.withAuxShares([keyId], () => run('both'));
      } catch (e) {
        if (!(e instanceof EkmError)) throw e;
        this.deps.log.warn({ keyId, err: e.message }, 'the cross-checked AES session failed; evaluating again with proofs');
      }
    }
    return this.withHelper(keyId, run);
  }

  private rsaRun(share: RsaKeyShare, operation: RsaOperation): Promise<RsaOutput> {
    return this.withHelper(share.keyId, (helper) =>
      this.deps.host.run<RsaOutput>(
        spec({ kind: 'rsa', share, tripletId: this.deps.tripletId, coordinate: { helper, operation } }, PROTO_RSA, noWrites),
      ),
    );
  }

  /**
   * EP + Partner, or EP + Aux when the Partner is not connected or its session fails (the Aux
   * first gets the key's current share if it never had it: a key of another triplet).
   */
  private async withHelper<T>(keyId: string, run: (helper: 2 | 3) => Promise<T>): Promise<T> {
    this.requireEp();
    const withAux = (): Promise<T> => this.deps.withAuxShares([keyId], () => run(3));
    if (!this.deps.peers.link('partner')) return withAux();
    try {
      return await run(2);
    } catch (e) {
      if (!(e instanceof EkmError) || !this.deps.peers.link('aux')) throw e;
      this.deps.log.warn({ err: e.message }, 'the session with the Partner failed; retrying with the Aux');
      return withAux();
    }
  }

  private async dprfShare(keyId: string): Promise<DprfKeyShare> {
    const share = await this.deps.currentEcShare(keyId);
    if (share.alg !== DPRF_ALG) throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is a ${share.alg} key, not an AES key`);
    return share as DprfKeyShare;
  }

  private async currentRsa(keyId: string): Promise<RsaKeyShare> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`);
    if (row.publicKey) throw publicOnly(keyId, 'sign or decrypt');
    if (!isRsaAlg(row.alg)) throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is a ${row.alg} key, not an RSA key`);
    const cur = (await this.deps.store.getRsaShares(keyId)).find((s) => s.status === 'current' && s.epoch === row.currentEpoch);
    if (!cur) throw new EkmError('EKM_KEY_STATE', `key ${keyId} has no current share on this server`);
    return recordToRsaShare(cur);
  }

  private async rsaShareAt(keyId: string, epoch: number): Promise<RsaKeyShare> {
    const s = (await this.deps.store.getRsaShares(keyId)).find((x) => x.epoch === epoch && x.status !== 'pending');
    if (!s) throw new EkmError('EKM_KEY_EPOCH', `this server holds no share of RSA key ${keyId} at epoch ${epoch}`);
    return recordToRsaShare(s);
  }

  private async rsaRefreshStates(keyIds: readonly string[], waitMs = 3000): Promise<Map<string, RsaRefreshKeyState>> {
    const deadline = performance.now() + waitMs;
    for (;;) {
      const out = new Map<string, RsaRefreshKeyState>();
      for (const keyId of keyIds) {
        const row = await this.deps.store.getKey(keyId);
        if (!row || row.state !== 'active' || !isRsaAlg(row.alg)) continue;
        const shares = await this.deps.store.getRsaShares(keyId);
        const current = shares.find((s) => s.status === 'current');
        if (!current) continue;
        out.set(keyId, {
          current: recordToRsaShare(current),
          pendingEpoch: shares.find((s) => s.status === 'pending')?.epoch ?? null,
          previousEpoch: shares.find((s) => s.status === 'previous')?.epoch ?? null,
        });
      }
      // The last ACTIVATED of a refresh that just finished elsewhere may still be in flight (I3).
      const busy = [...out.values()].some((st) => st.previousEpoch != null || st.pendingEpoch != null);
      if (!busy || performance.now() >= deadline) return out;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /**
   * EP: gives a new (or wiped) Aux its pieces of each RSA key again. The Aux fetches them itself,
   * one from the EP and one from the Partner — never through the EP, which would then hold all
   * three pieces, i.e. d. Each new share is then checked the only way an RSA share can be: the EP
   * and the Aux sign a random digest together and the signature must verify. The caller refreshes
   * the keys afterwards, so that the lost Aux's copy of its pieces becomes worthless.
   */
  async rederiveRsaAux(keyIds: readonly string[]): Promise<{ keyId: string; epoch: number }[]> {
    this.requireEp();
    const out: { keyId: string; epoch: number }[] = [];
    for (const keyId of keyIds) {
      const share = await this.currentRsa(keyId);
      await this.deps.peers.requireLink('aux').request(AUX_REDERIVE_METHOD, enc(keyId, u32be(share.epoch)), 30_000);
      const digest = new Uint8Array(createHash('sha256').update(randomBytes(32)).digest());
      const signed = await this.deps.host.run<RsaOutput>(
        spec(
          {
            kind: 'rsa',
            share,
            tripletId: this.deps.tripletId,
            coordinate: { helper: AUX, operation: { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest } },
          },
          PROTO_RSA,
          noWrites,
        ),
      );
      if (signed.kind !== 'signature' || !rsassaPkcs1v15Verify({ n: share.n, e: share.e }, 'sha256', digest, signed.signature)) {
        throw new EkmError('EKM_PROTOCOL_ABORTED', `the Aux's re-derived share of RSA key ${keyId} does not sign`, {
          hint: 'run the re-derivation again; the event is logged',
        });
      }
      out.push({ keyId, epoch: share.epoch });
    }
    this.deps.log.info({ event: 'rsa_aux_rederived', keys: out.length }, 'the Aux holds its RSA pieces again');
    return out;
  }

  /** Aux: fetches its two pieces of one key from EP and Partner and keeps them as its current share. */
  private async rederiveHere(body: Uint8Array): Promise<Uint8Array> {
    const { keyId, epoch } = decodeKeyEpoch(body);
    const parts = await Promise.all(
      (['ep', 'partner'] as const).map(async (role) =>
        recordToRsaShare(decodeRsaRecord(await this.deps.peers.requireLink(role).request(PIECE_FOR_AUX_METHOD, body, 30_000))),
      ),
    );
    const [fromEp, fromPartner] = parts as [RsaKeyShare, RsaKeyShare];
    const same = (k: keyof RsaKeyShare): boolean => fromEp[k] === fromPartner[k];
    if (fromEp.keyId !== keyId || !same('keyId') || !same('alg') || !same('n') || !same('e') || fromEp.epoch !== epoch || !same('epoch')) {
      throw new EkmError('EKM_PEER_PROTOCOL', `EP and Partner disagree on RSA key ${keyId} at epoch ${epoch}`);
    }
    const share: RsaKeyShare = { ...fromEp, partyId: AUX, pieces: { ...fromEp.pieces, ...fromPartner.pieces } };
    try {
      checkRsaShare(share);
    } catch (e) {
      throw new EkmError('EKM_PEER_PROTOCOL', `re-derived RSA share of ${keyId} is malformed: ${(e as Error).message}`);
    }
    // Whatever this Aux held of the key (an older epoch, a half-done refresh) gives way to the new share.
    await this.deps.store.applyKeyWrites([
      { op: 'key-purge', keyId },
      { op: 'rsa-key-create', keyId, alg: share.alg, share: rsaShareToRecord(share) },
    ]);
    return new Uint8Array(0);
  }

  /** EP or Partner: the one current piece of an RSA key that this server and the Aux both hold. */
  private async pieceForAux(body: Uint8Array): Promise<Uint8Array> {
    const { keyId, epoch } = decodeKeyEpoch(body);
    const share = await this.currentRsa(keyId);
    if (share.epoch !== epoch) throw new EkmError('EKM_KEY_EPOCH', `RSA key ${keyId} is at epoch ${share.epoch} here, not ${epoch}`);
    const p = RSA_PIECES_OF[AUX].find((x) => RSA_PIECES_OF[this.deps.self].includes(x))!;
    return encodeRsaRecord(rsaShareToRecord({ ...share, partyId: AUX, pieces: { [p]: share.pieces[p]! } }));
  }

  /** Partner / Aux: stores the share the EP dealt to this server. */
  private async install(body: Uint8Array): Promise<Uint8Array> {
    const record = decodeRsaRecord(body);
    const share = recordToRsaShare(record);
    if (share.partyId !== this.deps.self)
      throw new EkmError('EKM_PEER_PROTOCOL', `a share for party ${share.partyId} was sent to party ${this.deps.self}`);
    try {
      checkRsaShare(share);
    } catch (e) {
      throw new EkmError('EKM_PEER_PROTOCOL', `malformed RSA share: ${(e as Error).message}`);
    }
    if (await this.deps.store.getKey(share.keyId)) throw new EkmError('EKM_KEY_EXISTS', `key ${share.keyId} exists`);
    await this.deps.store.applyKeyWrites([{ op: 'rsa-key-create', keyId: share.keyId, alg: share.alg, share: record }]);
    return new Uint8Array(0);
  }

  private requireEp(): void {
    if (this.deps.self !== 1) throw new EkmError('EKM_NOT_EP', 'only the EP coordinates key operations');
  }
}

/** `objects`: a DPRF helper's batch size, which decides where its party runs (runsInline). */
function spec<P>(
  recipe: SessionSpec['recipe'],
  label: string,
  toWrites: (items: readonly P[], sid: string) => KeyWrite[],
  objects?: number,
): SessionSpec {
  return { recipe, label, toWrites: toWrites as SessionSpec['toWrites'], inline: runsInline(recipe, objects) };
}

function noWrites(): KeyWrite[] {
  return [];
}

const rsaRefreshWrites = refreshWritesFor<RsaKeyShare>(RSA_REFRESH_PROTO, (share) => ({
  op: 'rsa-share-put',
  share: rsaShareToRecord(share),
  status: 'pending',
}));

function encodeRsaRecord(r: ReturnType<typeof rsaShareToRecord>): Uint8Array {
  return enc(r.keyId, r.alg, u32be(r.epoch), u8(r.partyId), r.n, r.e, r.pieces);
}

function decodeRsaRecord(bytes: Uint8Array): ReturnType<typeof rsaShareToRecord> {
  const f = decodeEnc(bytes);
  const text = (b: Uint8Array): string => new TextDecoder('utf-8', { fatal: true }).decode(b);
  if (f.length !== 7 || f[2]!.length !== 4 || f[3]!.length !== 1) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed RSA share record');
  const party = f[3]![0]!;
  if (party !== 1 && party !== 2 && party !== 3) throw new EkmError('EKM_PEER_PROTOCOL', 'bad party id');
  return {
    keyId: text(f[0]!),
    alg: text(f[1]!),
    epoch: new DataView(f[2]!.buffer, f[2]!.byteOffset, 4).getUint32(0),
    partyId: party,
    n: f[4]!,
    e: f[5]!,
    pieces: f[6]!,
  };
}

function decodeKeyEpoch(body: Uint8Array): { keyId: string; epoch: number } {
  const f = decodeEnc(body);
  if (f.length !== 2 || f[1]!.length !== 4) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed RSA re-derivation request');
  const keyId = new TextDecoder().decode(f[0]!);
  if (!KEY_UID_RE.test(keyId)) throw new EkmError('EKM_PEER_PROTOCOL', 'an RSA re-derivation request names a key UID');
  return { keyId, epoch: new DataView(f[1]!.buffer, f[1]!.byteOffset, 4).getUint32(0) };
}

function sealedObjectHeader(sealed: Uint8Array): ReturnType<typeof parseObjectHeader> {
  try {
    return parseObjectHeader(sealed);
  } catch (e) {
    throw asEkmError(e);
  }
}

function asEkmError(e: unknown): Error {
  if (e instanceof SealedObjectError) return new EkmError(e.code, e.message);
  return e as Error;
}
