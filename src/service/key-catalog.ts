/**
 * The EP's catalogue of keys: which partition a key belongs to, its name and
 * description, its KMIP-like state (active, deactivated, destroyed), and destruction on all three
 * servers. The key service does the cryptography; this module decides whether a key may be used
 * for a purpose and finds it by UID or by name within the caller's partition.
 *
 * Destruction erases the EP's share at once, then asks Partner and Aux to erase theirs. With the
 * EP's share gone plus one other, the key can never be used or rebuilt again (any two shares are
 * needed); a peer that was unreachable is recorded in `key_purges` and asked again until it
 * confirms, so no share outlives its key for long.
 *
 * In a cluster of several triplets the EP and Partner stores are shared, but each Aux keeps its
 * own: the Aux of another triplet may hold a share of the key (re-derived on first use there),
 * which the destroying EP cannot reach, and a refresh through one triplet leaves the other
 * triplets' Auxes at the old epoch. Either way that share plus one old EP or Partner backup would
 * still be the key. So every EP also sweeps its own Aux (at link-up and every AUX_SWEEP_MS): it
 * asks what the Aux holds, erases the keys the shared store lists as destroyed, and asks the Aux
 * to erase shares older than the key's settled epoch (re-derived at the new one when next needed).
 */
import type { Logger } from 'pino';
import { EkmError } from '../errors.js';
import { lookAlikeProblem, reorderingProblem, safeText } from '../util/text.js';
import type { PeerManager } from '../net/peers.js';
import { KEY_UID_RE, type KeyRow, type KeyUsage } from '../store/key-records.js';
import { type DestroyedKeyRow, type KeyPurge, type Store, keyNameTaken } from '../store/store.js';
import { KEY_HOLDINGS_METHOD, KEY_PURGE_METHOD, KEY_PURGE_STALE_METHOD, type KeyAlg, type KeyService, decodeHoldings, encodeHolding } from './key-service.js';

/** Names are printable, at most 64 characters, without `/`, and never look like a UID (so a reference is never ambiguous). */
export const KEY_NAME_RE = /^[^\s/\p{Cc}][^/\p{Cc}]{0,63}$/u;
export const MAX_DESCRIPTION = 1024;

/** What the caller wants to do with a key: KMIP lets a deactivated key process, never protect. */
export type KeyPurpose = 'read' | 'protect' | 'process' | 'manage';

export type KeyState = KeyUsage | 'destroyed';

export interface KeyListPage {
  readonly keys: readonly (KeyRow | DestroyedKeyRow)[];
  readonly next: string | null;
}

const PURGE_RETRY_MS = 5_000;
const PURGE_TIMEOUT_MS = 10_000;
/** How often an EP sweeps its Aux for shares of keys destroyed through another triplet. */
export const AUX_SWEEP_MS = 60_000;

/**
 * Whether `name` may be given to a key: besides the pattern, nothing that makes it render like
 * another name (util/text.ts lookAlikeProblem), so that an operator who reads a name reads the key.
 * Names stored before this rule stay usable; only new names and renames are checked.
 */
export function checkKeyName(name: string): void {
  if (!KEY_NAME_RE.test(name) || KEY_UID_RE.test(name)) {
    throw new EkmError(
      'EKM_BAD_KEY_NAME',
      `"${safeText(name, 40)}" is not a key name`,
      { hint: 'a name has 1 to 64 printable characters, no "/", and is not 16 hex characters (that is a UID)' },
    );
  }
  const problem = lookAlikeProblem(name);
  if (problem) throw new EkmError('EKM_BAD_KEY_NAME', `the key name "${safeText(name, 40)}" ${problem}`, { hint: 'names that render alike would let one key pass for another' });
}

/** A description is free text, but none that reorders how the listing around it is shown. */
export function checkKeyDescription(description: string): void {
  const problem = reorderingProblem(description);
  if (problem) throw new EkmError('EKM_BAD_REQUEST', `the key description ${problem}`);
}

function notFound(ref: string): EkmError {
  return new EkmError('EKM_KEY_NOT_FOUND', `no key ${ref} in this partition`, { hint: 'list the keys with `ucl list`' });
}

export class KeyCatalog {
  private timer: NodeJS.Timeout | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private purging = false;
  private sweeping = false;

  constructor(
    private readonly deps: {
      readonly store: Store;
      readonly peers: PeerManager;
      readonly keys: KeyService;
      readonly log: Logger;
      /** AUX_SWEEP_MS unless set (tests). */
      readonly auxSweepMs?: number;
    },
  ) {}

  /** Starts asking peers to erase shares of destroyed keys they have not confirmed yet, and sweeping the Aux. */
  start(): void {
    this.timer = setInterval(() => void this.purgePending(), PURGE_RETRY_MS);
    this.timer.unref();
    void this.purgePending();
    this.sweepTimer = setInterval(() => void this.sweepAux(), this.deps.auxSweepMs ?? AUX_SWEEP_MS);
    this.sweepTimer.unref();
    this.deps.peers.on('up', (role: string) => {
      if (role === 'aux') void this.sweepAux();
    });
    void this.sweepAux(); // the Aux link may be up already
  }

  stop(): void {
    clearInterval(this.timer);
    clearInterval(this.sweepTimer);
  }

  /**
   * The live key `ref` (UID or name) of the partition, usable for `purpose`. A key of another
   * partition answers exactly as a missing one; a destroyed key says so (410).
   */
  async resolve(partitionId: number, ref: string, purpose: KeyPurpose): Promise<KeyRow> {
    const row = KEY_UID_RE.test(ref) ? await this.deps.store.getKey(ref) : await this.deps.store.findKeyByName(partitionId, ref);
    if (!row || row.partitionId !== partitionId || row.state !== 'active') {
      const gone = KEY_UID_RE.test(ref) ? await this.deps.store.getDestroyedKey(ref) : undefined;
      if (gone && gone.partitionId === partitionId) throw new EkmError('EKM_KEY_DESTROYED', `key ${ref} was destroyed at ${gone.destroyedAt}`);
      throw notFound(ref);
    }
    if (purpose === 'protect' && row.usage === 'deactivated') {
      throw new EkmError('EKM_KEY_DEACTIVATED', `key ${row.keyId} is deactivated: it verifies and decrypts, it does not sign or encrypt`, { hint: 'reactivate it (ucl update --state active) or use another key' });
    }
    return row;
  }

  /** Generates (or imports, through `make`) a key in the partition with its name and description. */
  async create(
    partitionId: number,
    attrs: { readonly name?: string; readonly description?: string },
    make: () => Promise<{ keyId: string; alg: KeyAlg }>,
  ): Promise<KeyRow> {
    if (attrs.description !== undefined) checkKeyDescription(attrs.description);
    if (attrs.name !== undefined) {
      checkKeyName(attrs.name);
      if (await this.deps.store.findKeyByName(partitionId, attrs.name)) throw keyNameTaken(attrs.name);
    }
    const made = await make();
    try {
      await this.deps.store.setKeyAttributes(made.keyId, { partitionId, name: attrs.name ?? null, description: attrs.description ?? null });
    } catch (e) {
      // Another request took the name while the key was being made: the new key is not acknowledged, so it goes.
      await this.destroyNow(made.keyId);
      throw e;
    }
    return (await this.deps.store.getKey(made.keyId))!;
  }

  async update(partitionId: number, ref: string, change: { readonly name?: string | null; readonly description?: string | null; readonly state?: KeyUsage }): Promise<KeyRow> {
    const row = await this.resolve(partitionId, ref, 'manage');
    if (typeof change.name === 'string') checkKeyName(change.name);
    if (typeof change.description === 'string') checkKeyDescription(change.description);
    await this.deps.store.setKeyAttributes(row.keyId, {
      ...(change.name !== undefined ? { name: change.name } : {}),
      ...(change.description !== undefined ? { description: change.description } : {}),
      ...(change.state !== undefined && change.state !== row.usage ? { usage: change.state } : {}),
    });
    this.deps.log.info({ event: 'key_updated', keyId: row.keyId, ...(change.state ? { state: change.state } : {}) }, 'key attributes changed');
    return (await this.deps.store.getKey(row.keyId))!;
  }

  async list(partitionId: number, q: { after?: string; limit: number; alg?: string; name?: string; state?: KeyState }): Promise<KeyListPage> {
    const rows =
      q.state === 'destroyed'
        ? (await this.deps.store.listDestroyedKeys(partitionId, { after: q.after, limit: q.limit + 1 })).filter((k) => (!q.alg || k.alg === q.alg) && (!q.name || k.name === q.name))
        : (await this.deps.store.listPartitionKeys(partitionId, { after: q.after, limit: q.limit + 1, alg: q.alg, name: q.name, usage: q.state })).filter((k) => k.state === 'active');
    const page = rows.slice(0, q.limit);
    return { keys: page, next: rows.length > q.limit ? page[page.length - 1]!.keyId : null };
  }

  /** Destroys the key on all three servers; `pending` lists peers that will be asked again. */
  async destroy(partitionId: number, ref: string): Promise<{ row: DestroyedKeyRow; pending: KeyPurge['role'][] }> {
    const live = await this.resolve(partitionId, ref, 'manage');
    const row = await this.destroyNow(live.keyId);
    const pending = (await this.deps.store.listKeyPurges()).filter((p) => p.keyId === live.keyId).map((p) => p.role);
    this.deps.log.warn({ event: 'key_destroyed', keyId: live.keyId, alg: live.alg, pending }, 'key destroyed: shares erased');
    return { row, pending };
  }

  /** Destroys every live key of the partition (a forced partition delete). */
  async destroyPartitionKeys(partitionId: number): Promise<void> {
    for (;;) {
      const batch = await this.deps.store.listPartitionKeys(partitionId, { limit: 100 });
      if (batch.length === 0) return;
      for (const k of batch) await this.destroyNow(k.keyId);
      this.deps.log.warn({ event: 'partition_keys_destroyed', partitionId, keys: batch.length }, 'keys of a deleted partition destroyed');
    }
  }

  private async destroyNow(keyId: string): Promise<DestroyedKeyRow> {
    // An imported public key has no shares on Partner and Aux: nothing to purge there.
    const peers = (await this.deps.store.getKey(keyId))?.publicKey ? [] : (['partner', 'aux'] as const);
    const row = await this.deps.store.destroyKey(keyId, peers);
    if (!row) throw notFound(keyId);
    this.deps.keys.pool?.burn(keyId, null);
    await Promise.all(peers.map((role) => this.purge({ keyId, role })));
    return row;
  }

  private async purge(p: KeyPurge): Promise<boolean> {
    const link = this.deps.peers.link(p.role);
    if (!link) return false;
    try {
      await link.request(KEY_PURGE_METHOD, new TextEncoder().encode(p.keyId), PURGE_TIMEOUT_MS);
      await this.deps.store.clearKeyPurge(p);
      return true;
    } catch (e) {
      this.deps.log.warn({ event: 'key_purge_deferred', keyId: p.keyId, peer: p.role, err: (e as Error).message }, 'a peer has not erased its share of a destroyed key yet; asking again later');
      return false;
    }
  }

  /**
   * Erases from this triplet's Aux what it should no longer hold (see the top of this file): every
   * share of a key destroyed through any EP, and shares of an epoch older than the key's settled one.
   */
  private async sweepAux(): Promise<void> {
    const link = this.deps.peers.link('aux');
    if (this.sweeping || !link) return;
    this.sweeping = true;
    try {
      const held = decodeHoldings(await link.request(KEY_HOLDINGS_METHOD, new Uint8Array(0), PURGE_TIMEOUT_MS)).filter((h) => KEY_UID_RE.test(h.keyId));
      const ids = held.map((h) => h.keyId);
      // Straight to the Aux, not through purge(): a key_purges row in a shared store may be another EP's, for its own Aux.
      for (const keyId of await this.deps.store.destroyedAmong(ids)) {
        await link.request(KEY_PURGE_METHOD, new TextEncoder().encode(keyId), PURGE_TIMEOUT_MS);
        this.deps.log.warn({ event: 'aux_leftover_purged', keyId }, 'the Aux still held a share of a destroyed key: erased');
      }
      const settled = await this.deps.store.settledEpochsAmong(ids);
      for (const h of held) {
        const epoch = settled.get(h.keyId);
        // The Aux erases it only if it still holds nothing newer and commits nothing for it (key-purge-stale).
        if (epoch !== undefined && h.epoch < epoch) await link.request(KEY_PURGE_STALE_METHOD, encodeHolding(h.keyId, epoch), PURGE_TIMEOUT_MS);
      }
    } catch (e) {
      this.deps.log.warn({ event: 'aux_sweep_failed', err: (e as Error).message }, 'could not sweep the Aux for shares it should no longer hold; trying again later');
    } finally {
      this.sweeping = false;
    }
  }

  private async purgePending(): Promise<void> {
    if (this.purging) return;
    this.purging = true;
    try {
      for (const p of await this.deps.store.listKeyPurges()) await this.purge(p);
    } catch (e) {
      this.deps.log.error({ event: 'key_purge_failed', err: (e as Error).message }, 'could not read the pending share purges');
    } finally {
      this.purging = false;
    }
  }
}
