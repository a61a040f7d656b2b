/**
 * EP's pool of ready object keys for AES encryption: an encryption picks its object nonce, so EP
 * can derive (object nonce, K_obj) pairs ahead of time, in batches, with the same checked
 * protocol (AesKeys.objectKeys, keys/aes-keys.ts), and an encryption then costs its AES and the API only. Like
 * the ECDSA presignature pool, it trades a little exposure for latency, bounded so:
 * - memory only, never stored: a restart drops every pooled key;
 * - each key is used once (taken out of the pool), then wiped by its user, or wiped unused once it
 *   is `ttlMs` old (a sweep every sixth of it finds keys no encryption asked for);
 * - keys derived at another epoch than the key's current one are dropped (the object header
 *   records the epoch), as are the pools of keys not used lately (at most `maxKeys` pools, and none
 *   idle for `ttlMs`); the caller takes from the pool only for a key its store says is an active
 *   AES key;
 * - a key gets a pool only once it encrypts at least `minRate` times a second; its pool aims at
 *   `secondsPooled` seconds of its recent rate, within [`minTarget`, `maxTarget`] (a busy key
 *   needs a deeper pool: a refill takes longer than its reserve lasts otherwise); once a quarter
 *   of that aim is missing (neither pooled nor being derived) a refill derives what is missing, up
 *   to `maxRefills` at a time (a busy key's refills overlap instead of the pool running dry while
 *   one runs), and all refills in flight together at most `secondsAhead` seconds of the rate: a
 *   key used now and then never has keys derived for nothing, and a burst wastes little.
 * EP sees every K_obj at encryption anyway; what the pool adds is that up to `maxTarget` keys of
 * objects not yet encrypted sit in EP's memory for at most `ttlMs` and a sweep interval
 * (docs/security-model.md §1.1). Decryption cannot use it: the nonce comes from the ciphertext.
 */
import type { ObjectFormat } from '../protocols/dprf.js';

/** A derived object key and what it was derived for. */
export interface PooledObjectKey {
  readonly objectNonce: Uint8Array;
  /** K_obj (32 bytes). Secret: the taker wipes it after use. */
  readonly objectKey: Uint8Array;
  /** The key's epoch at derivation (recorded in the sealed object's header). */
  readonly epoch: number;
  /** The sealed-object format K_obj was derived for (the object must be sealed in it). */
  readonly format: ObjectFormat;
}

export interface ObjectKeyPoolOptions {
  /** Derives `count` fresh object keys of `keyId` (new random nonces), in one session. */
  readonly derive: (keyId: string, count: number) => Promise<readonly PooledObjectKey[]>;
  /** A pool aims at this many seconds of its key's rate, within [minTarget, maxTarget] keys. */
  readonly secondsPooled: number;
  readonly minTarget: number;
  readonly maxTarget: number;
  /** Encryptions per second (over the last whole second, or the current one) before a key gets a pool. */
  readonly minRate: number;
  /** The refills in flight derive at most this many seconds of the key's rate together. */
  readonly secondsAhead: number;
  /** Refills of one key in flight at once. */
  readonly maxRefills: number;
  readonly ttlMs: number;
  readonly maxKeys: number;
  /** After a failed refill, the next is not tried for this long. */
  readonly retryMs: number;
  readonly onRefillError: (keyId: string, err: unknown) => void;
  readonly now?: () => number;
}

interface Entry extends PooledObjectKey {
  readonly at: number;
}

interface Lane {
  entries: Entry[];
  /** Refills in flight, and how many keys they derive. */
  refills: number;
  pending: number;
  retryAt: number;
  /** Takes in the current one-second window, the window's start, and the previous window's count. */
  count: number;
  windowAt: number;
  lastCount: number;
}

export class ObjectKeyPool {
  /** Insertion order is recency of use: the first lane is the least recently used. */
  private readonly lanes = new Map<string, Lane>();
  private readonly now: () => number;
  private readonly sweeper: NodeJS.Timeout;

  constructor(private readonly opts: ObjectKeyPoolOptions) {
    if (!(opts.minTarget >= 2 && opts.maxTarget >= opts.minTarget)) throw new RangeError('need 2 <= minTarget <= maxTarget');
    if (!(opts.secondsPooled > 0)) throw new RangeError('secondsPooled must be positive');
    if (!(opts.maxRefills >= 1)) throw new RangeError('maxRefills must be at least 1');
    if (!(opts.maxKeys >= 1) || !(opts.ttlMs > 0)) throw new RangeError('maxKeys and ttlMs must be positive');
    if (!(opts.minRate >= 1) || !(opts.secondsAhead > 0)) throw new RangeError('minRate and secondsAhead must be positive');
    this.now = opts.now ?? Date.now;
    // Does not keep the process alive; `close` stops it.
    this.sweeper = setInterval(() => this.sweep(), Math.max(1000, opts.ttlMs / 6)).unref();
  }

  /**
   * Wipes every pooled key older than `ttlMs` and drops the pools of keys idle that long (no
   * encryption and no refill in flight): what `take` would find stale, for keys no one takes.
   */
  sweep(): void {
    const now = this.now();
    for (const [keyId, lane] of this.lanes) {
      this.prune(lane, (e) => now - e.at < this.opts.ttlMs);
      if (lane.entries.length === 0 && lane.refills === 0 && now - lane.windowAt >= this.opts.ttlMs) this.lanes.delete(keyId);
    }
  }

  /** Stops the sweep and wipes every pooled key. */
  close(): void {
    clearInterval(this.sweeper);
    for (const lane of this.lanes.values()) wipe(lane.entries);
    this.lanes.clear();
  }

  /**
   * A pooled key of `keyId` derived at `epoch`, or undefined (the caller derives one on demand).
   * Either way the pool is refilled in the background when it runs low.
   */
  take(keyId: string, epoch: number): PooledObjectKey | undefined {
    let lane = this.lanes.get(keyId);
    if (lane) this.lanes.delete(keyId);
    else lane = { entries: [], refills: 0, pending: 0, retryAt: 0, count: 0, windowAt: this.now(), lastCount: 0 };
    this.lanes.set(keyId, lane);
    this.evictBeyond(this.opts.maxKeys);
    const now = this.now();
    if (now - lane.windowAt >= 1000) {
      lane.lastCount = now - lane.windowAt < 2000 ? lane.count : 0;
      lane.count = 0;
      lane.windowAt = now;
    }
    lane.count++;
    this.prune(lane, (e) => e.epoch === epoch && now - e.at < this.opts.ttlMs);
    const entry = lane.entries.shift();
    const rate = Math.max(lane.count, lane.lastCount);
    if (rate >= this.opts.minRate) this.maybeRefill(keyId, lane, rate);
    if (!entry) return undefined;
    const { at: _at, ...key } = entry; // the entry without its pool bookkeeping
    return key;
  }

  /** Keeps the lane's entries that `fresh` accepts; wipes the others. */
  private prune(lane: Lane, fresh: (e: Entry) => boolean): void {
    const kept: Entry[] = [];
    const stale: Entry[] = [];
    for (const e of lane.entries) (fresh(e) ? kept : stale).push(e);
    lane.entries = kept;
    wipe(stale);
  }

  /** Pooled keys of `keyId`. */
  size(keyId: string): number {
    return this.lanes.get(keyId)?.entries.length ?? 0;
  }

  /** How many pooled keys a key encrypting `rate` times a second aims at. */
  private targetFor(rate: number): number {
    return Math.min(this.opts.maxTarget, Math.max(this.opts.minTarget, Math.ceil(rate * this.opts.secondsPooled)));
  }

  private maybeRefill(keyId: string, lane: Lane, rate: number): void {
    if (lane.refills >= this.opts.maxRefills || this.now() < lane.retryAt) return;
    const target = this.targetFor(rate);
    const missing = target - lane.entries.length - lane.pending;
    if (missing < target / 4) return;
    const count = Math.min(missing, Math.ceil(rate * this.opts.secondsAhead) - lane.pending);
    if (count >= 1) this.refill(keyId, lane, count);
  }

  private refill(keyId: string, lane: Lane, count: number): void {
    lane.refills++;
    lane.pending += count;
    const settled = (): void => {
      lane.refills--;
      lane.pending -= count;
    };
    let derived: Promise<readonly PooledObjectKey[]>;
    try {
      derived = this.opts.derive(keyId, count);
    } catch (e) {
      derived = Promise.reject(e); // a derive that throws at once fails like one that rejects
    }
    derived
      .then(
        (keys) => {
          settled();
          const at = this.now();
          // A pool dropped or evicted meanwhile keeps nothing.
          if (this.lanes.get(keyId) === lane) lane.entries.push(...keys.map((k) => ({ ...k, at })));
          else wipe(keys);
        },
        (err: unknown) => {
          settled();
          lane.retryAt = this.now() + this.opts.retryMs;
          this.opts.onRefillError(keyId, err);
        },
      )
      .catch(() => undefined); // onRefillError (a log line) failing must not become an unhandled rejection
  }

  private evictBeyond(max: number): void {
    for (const [keyId, lane] of this.lanes) {
      if (this.lanes.size <= max) return;
      this.lanes.delete(keyId);
      wipe(lane.entries);
    }
  }
}

function wipe(keys: readonly PooledObjectKey[]): void {
  for (const k of keys) k.objectKey.fill(0);
}
