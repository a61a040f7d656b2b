/** Runs async work one at a time per key, in call order; work for different keys runs concurrently. */
export class KeyedLock<K> {
  private readonly tails = new Map<K, Promise<void>>();

  /** Runs `fn` once every earlier call for `key` has settled (whether it resolved or rejected). */
  run(key: K, fn: () => Promise<void>): Promise<void> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    this.tails.set(key, next);
    // The caller gets `next`'s rejection; this bookkeeping chain must not raise it a second time.
    void next
      .finally(() => {
        if (this.tails.get(key) === next) this.tails.delete(key);
      })
      .catch(() => undefined);
    return next;
  }
}
