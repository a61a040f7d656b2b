/**
 * The EP's pool of ECDSA presignatures (docs/protocols.md §3.4): made ahead of time per
 * (key, epoch) for keys that sign, so that online signing is one short round. Presignatures are
 * single use (taken out of the index before use and deleted from every store before any online
 * share leaves), and burnt when their epoch ends.
 */
import type { Logger } from 'pino';
import type { PeerManager } from '../net/peers.js';
import { decodePresig, type PresigShare } from '../protocols/ecdsa.js';
import type { KeyStore } from '../store/key-records.js';

export interface PoolOptions {
  readonly target: number;
  readonly store: KeyStore;
  readonly peers: PeerManager;
  readonly log: Logger;
  /** Runs one presign session for the key; resolves with the new psid (stored at all three). */
  readonly presign: (keyId: string) => Promise<{ psid: string; epoch: number } | undefined>;
}

/**
 * Refills wait until signing has paused this long, while the key still has a quarter of its
 * target: a presignature made during a burst competes for the same CPU with the online
 * signatures it is meant to speed up (on two cores, a refill per signature made pooled signing
 * slower than signing on demand). Below a quarter, refills run at once, alongside the signing.
 */
const REFILL_IDLE_MS = 50;

export class PresignPool {
  private readonly ready = new Map<string, { epoch: number; psid: string }[]>();
  private readonly hot = new Set<string>();
  private filling = false;
  private stopped = false;
  /** When a presignature was last taken (monotonic ms: a wall-clock jump must not stall the refill). */
  private lastTake = -Infinity;
  made = 0;

  constructor(private readonly opts: PoolOptions) {
    opts.peers.on('up', () => this.kick());
  }

  async load(): Promise<void> {
    for (const p of await this.opts.store.listPresigs()) this.push(p.keyId, p.epoch, p.psid);
  }

  stop(): void {
    this.stopped = true;
  }

  size(keyId: string): number {
    return this.ready.get(keyId)?.length ?? 0;
  }

  /** Takes a presignature of `keyId` at `epoch` out of the pool (never handed out twice). */
  async take(keyId: string, epoch: number): Promise<PresigShare | undefined> {
    const list = this.ready.get(keyId);
    while (list && list.length > 0) {
      const next = list.shift()!;
      if (next.epoch !== epoch) continue; // an older epoch's presignature: burnt, never used
      const stored = await this.opts.store.getPresig(next.psid);
      if (stored) {
        this.lastTake = performance.now();
        return decodePresig(stored);
      }
    }
    this.markHot(keyId);
    return undefined;
  }

  /** The key signs: keep presignatures ready for it. */
  markHot(keyId: string): void {
    this.hot.add(keyId);
    this.kick();
  }

  /**
   * Forgets presignatures that can never be used (the stores erase them): those of other epochs
   * than `keepEpoch` after a refresh, or all of them (`null`) after an Aux re-derivation.
   */
  burn(keyId: string, keepEpoch: number | null): void {
    const list = this.ready.get(keyId);
    if (list) this.ready.set(keyId, list.filter((p) => p.epoch === keepEpoch));
    this.kick();
  }

  private push(keyId: string, epoch: number, psid: string): void {
    const list = this.ready.get(keyId) ?? [];
    list.push({ epoch, psid });
    this.ready.set(keyId, list);
  }

  private lowWater(): number {
    return Math.max(1, Math.floor(this.opts.target / 4));
  }

  private kick(): void {
    if (this.filling || this.stopped) return;
    this.filling = true;
    void this.fill().finally(() => {
      this.filling = false;
    });
  }

  /** Tops up hot keys one presignature at a time while the whole triplet is connected (see REFILL_IDLE_MS). */
  private async fill(): Promise<void> {
    let failures = 0;
    while (!this.stopped && this.opts.peers.allUp()) {
      const keyId = [...this.hot].find((k) => this.size(k) < this.opts.target);
      if (!keyId) return;
      const busy = REFILL_IDLE_MS - (performance.now() - this.lastTake);
      if (busy > 0 && this.size(keyId) >= this.lowWater()) {
        await new Promise((r) => setTimeout(r, busy).unref());
        continue;
      }
      try {
        const made = await this.opts.presign(keyId);
        if (!made) {
          this.hot.delete(keyId);
          continue;
        }
        this.push(keyId, made.epoch, made.psid);
        this.made++;
        failures = 0;
      } catch (e) {
        failures++;
        this.opts.log.warn({ keyId, err: (e as Error).message }, 'presignature not made');
        if (failures >= 3) return;
        await new Promise((r) => setTimeout(r, 200 * failures));
      }
    }
  }
}
