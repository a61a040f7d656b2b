/**
 * Token buckets per key (a client address, an account): `ratePerSecond` refilled continuously up
 * to `burst`; a caller asks how long until a token is there, and takes one when the event it
 * limits happened (so what is limited can be a failure, known only afterwards). At most
 * `capacity` keys are remembered (least recently used dropped), so a flood of addresses bounds
 * memory; a dropped key starts again with a full bucket, which only ever errs towards admitting.
 */
import { BoundedCache } from './bounded-cache.js';

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter<K> {
  private readonly buckets: BoundedCache<K, Bucket>;

  constructor(
    private readonly ratePerSecond: number,
    private readonly burst: number,
    capacity = 10_000,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(ratePerSecond > 0) || !(burst >= 1)) throw new RangeError(`a rate limit needs a positive rate and a burst of at least 1 (${ratePerSecond}/s, ${burst})`);
    this.buckets = new BoundedCache(capacity);
  }

  /** Seconds until `key` has a token (0: it has one now). Takes nothing. */
  wait(key: K): number {
    const b = this.refilled(key);
    return b.tokens >= 1 ? 0 : (1 - b.tokens) / this.ratePerSecond;
  }

  /** Takes one token from `key`'s bucket (none left: it stays empty). */
  take(key: K): void {
    const b = this.refilled(key);
    b.tokens = Math.max(0, b.tokens - 1);
  }

  /** Gives back a token taken for an event that, as it turned out, does not count. */
  give(key: K): void {
    const b = this.refilled(key);
    b.tokens = Math.min(this.burst, b.tokens + 1);
  }

  private refilled(key: K): Bucket {
    const t = this.now();
    const b = this.buckets.get(key) ?? { tokens: this.burst, at: t };
    b.tokens = Math.min(this.burst, b.tokens + ((t - b.at) / 1000) * this.ratePerSecond);
    b.at = t;
    this.buckets.set(key, b);
    return b;
  }
}

/**
 * At most `concurrent` tasks at once and `queued` waiting; a task beyond both is refused at once
 * (`run` returns undefined without calling it), so the waiting line, and the time a caller waits
 * in it, stay bounded whatever the load.
 */
export class BoundedConcurrency {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly concurrent: number,
    private readonly queued: number,
  ) {
    if (!Number.isInteger(concurrent) || concurrent < 1 || !Number.isInteger(queued) || queued < 0)
      throw new RangeError(`bounded concurrency needs at least 1 task at once and a queue of 0 or more (${concurrent}, ${queued})`);
  }

  /** Runs `task` when a slot is free; undefined (not run) when the line is full. */
  async run<T>(task: () => Promise<T>): Promise<{ value: T } | undefined> {
    if (this.running >= this.concurrent) {
      if (this.waiting.length >= this.queued) return undefined;
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return { value: await task() };
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next in line, so `running` counts it without a gap.
      if (next) next();
      else this.running--;
    }
  }
}
