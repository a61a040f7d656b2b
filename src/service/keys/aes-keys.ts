/**
 * AES-256 keys as a threshold PRF (docs/protocols.md §13): the key is a P-256 DKG key
 * (threshold-shares.ts), and every object gets its own AES-256-GCM key derived jointly: by all
 * three servers with cross-checked partials when all are up, else (or when the check fails) by
 * EP + Partner (or Aux) with DLEQ-proved partials (dprf.ts). Concurrent requests for one key share
 * a session (KeyedBatcher); encryptions take keys derived ahead of time from a pool (ObjectKeyPool).
 */
import { EkmError } from '../../errors.js';
import {
  type DprfHelpers,
  type DprfKeyShare,
  type DprfObject,
  type DprfOutput,
  DPRF_ALG,
  DPRF_MAX_BATCH,
  PROTO_DPRF,
  PROTO_DPRF_CROSS,
  SealedObjectError,
  dprfProto,
  generateDataKey,
  newObjectNonce,
  openObject,
  parseDprfRequest,
  parseObjectHeader,
  sealObject,
} from '../../protocols/dprf.js';
import type { KeyPolicy } from '../../protocols/key-policy.js';
import type { EcAlg } from '../../protocols/key-share.js';
import type { KeyRow } from '../../store/key-records.js';
import { KeyedBatcher } from '../../util/keyed-batcher.js';
import { ObjectKeyPool, type PooledObjectKey } from '../object-key-pool.js';
import type { SessionSpec } from '../protocol-host.js';
import { withHelper } from './aux-shares.js';
import { type FamilyDeps, type KeyFamily, type KeyOperation, requireEp } from './family.js';
import { noWrites, sessionSpec } from './session-spec.js';
import type { ThresholdShares } from './threshold-shares.js';

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

export class AesKeys implements KeyFamily {
  readonly name = 'aes';
  readonly algs: readonly EcAlg[] = [DPRF_ALG];
  readonly takesPolicy = false;

  private readonly objectKeyBatches = new KeyedBatcher<DprfObject, ObjectKey>(
    (keyId, objects) => this.objectKeys(keyId, objects),
    DPRF_SESSION_OBJECTS,
    DPRF_SESSIONS_PER_KEY,
  );

  private readonly pool: ObjectKeyPool;

  constructor(
    private readonly deps: FamilyDeps,
    readonly shares: ThresholdShares,
  ) {
    this.pool = new ObjectKeyPool({
      ...POOL,
      derive: async (keyId, count) => {
        const format = deps.aesObjectFormat;
        const objects = Array.from({ length: count }, () => ({ nonce: newObjectNonce(), format }));
        const keys = await this.objectKeys(keyId, objects);
        return keys.map((k, i) => ({ ...k, objectNonce: objects[i]!.nonce, format }));
      },
      onRefillError: (keyId, err) => deps.log.warn({ keyId, err: (err as Error).message }, 'could not refill the pool of AES object keys'),
    });
  }

  owns(row: KeyRow): boolean {
    return row.alg === DPRF_ALG;
  }

  generate(alg: EcAlg, policy: Uint8Array): Promise<{ keyId: string; alg: EcAlg }> {
    return this.shares.generate(alg, policy);
  }

  policyOf(row: KeyRow): Promise<KeyPolicy> {
    return this.shares.policyOf(row);
  }

  refusal(keyId: string, op: KeyOperation): EkmError {
    const why = op === 'sign' ? 'it encrypts, it does not sign' : op === 'export a public key' ? 'it has no public key' : `it cannot ${op}`;
    return new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is an AES key: ${why}`);
  }

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

  registerHelpers(): void {
    const { host, tripletId } = this.deps;
    const dprfHelper = async (env: Parameters<typeof parseDprfRequest>[0]): Promise<SessionSpec> => {
      const info = parseDprfRequest(env);
      // No share at all is refused like a stale one: the Aux of a triplet that never used the key (AuxShares).
      const share = await this.shares
        .current(info.header.keyId)
        .then((k) => k.current)
        .catch(() => undefined);
      if (share?.alg !== DPRF_ALG || share.epoch !== info.header.epoch)
        throw new EkmError('EKM_KEY_EPOCH', `no AES key ${info.header.keyId} at epoch ${info.header.epoch}`);
      const recipe = { kind: 'dprf', share: share as DprfKeyShare, tripletId, proved: info.proved } as const;
      return sessionSpec(recipe, env.proto, noWrites, { objects: info.objectNonces.length });
    };
    host.register(PROTO_DPRF, dprfHelper);
    host.register(PROTO_DPRF_CROSS, dprfHelper);
  }

  /**
   * K_obj of a new object: from the pool when it holds one of the key's current epoch (the key
   * row, read here, also says the key is still an active AES key), else derived now.
   */
  private async newObjectKey(keyId: string): Promise<PooledObjectKey> {
    requireEp(this.deps.self);
    const row = await this.deps.store.getKey(keyId);
    const pooled = row?.state === 'active' && row.alg === DPRF_ALG ? this.pool.take(keyId, row.currentEpoch) : undefined;
    if (pooled) return pooled;
    const objectNonce = newObjectNonce();
    const format = this.deps.aesObjectFormat;
    return { objectNonce, format, ...(await this.objectKey(keyId, { nonce: objectNonce, format })) };
  }

  /** K_obj of one object, derived in a session shared with the concurrent requests for the same key. */
  private objectKey(keyId: string, object: DprfObject): Promise<ObjectKey> {
    requireEp(this.deps.self);
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
      const out = await this.deps.host.run<DprfOutput>(sessionSpec(recipe, dprfProto(helper), noWrites));
      if (out.kind !== 'keys') throw new EkmError('EKM_PROTOCOL_ABORTED', 'no object key was derived');
      return out.keys.map((objectKey) => ({ objectKey, epoch: share.epoch }));
    };
    if (this.deps.peers.link('partner') && this.deps.peers.link('aux')) {
      try {
        return await this.deps.auxShares.withAuxShares([keyId], () => run('both'));
      } catch (e) {
        if (!(e instanceof EkmError)) throw e;
        this.deps.log.warn({ keyId, err: e.message }, 'the cross-checked AES session failed; evaluating again with proofs');
      }
    }
    requireEp(this.deps.self);
    return withHelper(this.deps, keyId, run);
  }

  private async dprfShare(keyId: string): Promise<DprfKeyShare> {
    const { current: share } = await this.shares.current(keyId);
    if (share.alg !== DPRF_ALG) throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is a ${share.alg} key, not an AES key`);
    return share as DprfKeyShare;
  }
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
