/**
 * Envelopes that arrived before their session's round-0 request (another link was faster): kept
 * per session for a while, bounded in number, and handed to the session once it opens.
 */
import type { Envelope } from '../protocols/types.js';

const ORPHAN_TTL_MS = 10_000;
const ORPHAN_LIMIT = 4096;

export class OrphanEnvelopes {
  private readonly bySid = new Map<string, { env: Envelope; at: number }[]>();
  private count = 0;

  /** The envelopes kept for `sid`, in arrival order; forgotten here. */
  take(sid: string): Envelope[] {
    const early = this.bySid.get(sid) ?? [];
    this.bySid.delete(sid);
    this.count -= early.length;
    return early.map((o) => o.env);
  }

  /** Keeps `env` for its session, unless the buffer is full of envelopes not yet expired. */
  keep(sid: string, env: Envelope): void {
    const now = performance.now();
    if (this.count >= ORPHAN_LIMIT) this.prune(now);
    if (this.count >= ORPHAN_LIMIT) return;
    const list = this.bySid.get(sid) ?? [];
    list.push({ env, at: now });
    this.bySid.set(sid, list);
    this.count++;
    if (this.count % 256 === 0) this.prune(now);
  }

  private prune(now: number): void {
    for (const [sid, list] of this.bySid) {
      if (now - list[0]!.at > ORPHAN_TTL_MS) {
        this.bySid.delete(sid);
        this.count -= list.length;
      }
    }
  }
}
