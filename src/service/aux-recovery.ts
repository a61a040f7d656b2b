/**
 * After a restore (issue 7), on the EP: the new Aux holds no shares. Once the EP has links to both
 * peers, it re-derives the Aux's share of every key (design §6, AX1-AX3), then refreshes every key
 * (§6: "then run a refresh of every key at once", so the lost Aux's f(3) becomes worthless), in
 * batches. Progress is kept in the store's meta row `recovery_pending` (written by the `-restore`
 * bootstrap), so a crash resumes where it stopped. Until it is done, the EP reports itself
 * `starting` in `ucl server test`, which therefore passes only once every key signs.
 */
import type { Logger } from 'pino';
import type { TripletHealth } from '../cluster/health.js';
import type { PeerManager } from '../net/peers.js';
import type { Store } from '../store/store.js';
import type { KeyService } from './key-service.js';

export const RECOVERY_META = 'recovery_pending';
const BATCH = Number(process.env.EKM_RECOVERY_BATCH ?? 500);
/** Sessions run at once (each runs in its own protocol worker): one per core of a small server. */
const PARALLEL = Number(process.env.EKM_RECOVERY_PARALLEL ?? 2);

function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

interface Progress {
  phase: 'rederive' | 'refresh' | 'done';
  keys: number;
  since: string;
  /** Keys up to this id (in key id order) are done in the current phase. */
  after?: string;
  rederived?: number;
  refreshed?: number;
}

export interface AuxRecoveryDeps {
  readonly store: Store;
  readonly keys: KeyService;
  readonly peers: PeerManager;
  readonly log: Logger;
}

export class AuxRecovery {
  private progress: Progress | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private batchFailures = 0;

  constructor(private readonly deps: AuxRecoveryDeps) {}

  get pending(): boolean {
    return this.progress !== undefined && this.progress.phase !== 'done';
  }

  /** Reads the meta row; if a recovery is pending, runs it in the background. */
  async start(): Promise<void> {
    const raw = await this.deps.store.getMeta(RECOVERY_META);
    if (!raw) return;
    try {
      this.progress = JSON.parse(raw) as Progress;
    } catch {
      this.progress = { phase: 'rederive', keys: 0, since: new Date().toISOString() };
    }
    if (!this.pending) return;
    this.deps.log.info(
      { event: 'restore_recovery', phase: this.progress.phase, keys: this.progress.keys },
      'restore recovery pending: waiting for Partner and Aux',
    );
    this.running = this.loop();
  }

  stop(): void {
    this.stopped = true;
  }

  /** What `ucl server test` shows for the EP while the recovery runs. */
  mark(h: TripletHealth): TripletHealth {
    const p = this.progress;
    if (!p || p.phase === 'done') return h;
    const detail =
      p.phase === 'rederive'
        ? `restore: re-deriving the Aux's shares (${p.rederived ?? 0} of ${p.keys} keys done)`
        : `restore: refreshing every key (${p.refreshed ?? 0} of ${p.keys} done)`;
    return { ...h, inService: false, servers: h.servers.map((s) => (s.role === 'ep' ? { ...s, state: 'starting', detail } : s)) };
  }

  private async save(): Promise<void> {
    await this.deps.store.setMeta(RECOVERY_META, JSON.stringify(this.progress));
  }

  private async loop(): Promise<void> {
    let delay = 500;
    while (!this.stopped && this.pending) {
      try {
        await this.waitForPeers();
        if (this.stopped) return;
        await this.step();
        delay = 500;
      } catch (e) {
        if (this.stopped) return;
        this.deps.log.warn(
          { event: 'restore_recovery', phase: this.progress?.phase, err: (e as Error).message },
          'restore recovery step failed; retrying',
        );
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
      }
    }
  }

  private async waitForPeers(): Promise<void> {
    while (!this.stopped && !(this.deps.peers.link('partner') && this.deps.peers.link('aux'))) await sleep(250);
  }

  private async step(): Promise<void> {
    const p = this.progress!;
    if (p.phase === 'rederive') {
      // In batches: one session over thousands of keys holds the peers' event loops too long.
      const raw = await this.deps.store.listKeys({ ...(p.after ? { after: p.after } : {}), limit: BATCH * PARALLEL });
      if (raw.length === 0) {
        this.deps.log.info({ event: 'restore_recovery', keys: p.rederived ?? 0, since: p.since }, 'the Aux shares are re-derived');
        const { after: _done, ...rest } = p;
        this.progress = { ...rest, phase: 'refresh', refreshed: 0 };
        await this.save();
        return;
      }
      const ids = raw.filter((k) => k.state === 'active' && !k.publicKey).map((k) => k.keyId);
      const rs = await Promise.all(chunks(ids, BATCH).map((c) => this.deps.keys.rederiveAux(c, { refresh: false })));
      const n = rs.reduce((sum, r) => sum + r.keys.length, 0);
      this.progress = { ...p, after: raw[raw.length - 1]!.keyId, rederived: (p.rederived ?? 0) + n };
      await this.save();
      return;
    }
    if (p.phase === 'refresh') {
      const raw = await this.deps.store.listKeys({ ...(p.after ? { after: p.after } : {}), limit: BATCH * PARALLEL });
      if (raw.length === 0) {
        this.progress = { ...p, phase: 'done' };
        await this.save();
        this.deps.log.info(
          { event: 'restore_recovery', keys: p.refreshed ?? 0, since: p.since },
          'restore recovery complete: every key is re-derived and refreshed',
        );
        return;
      }
      const ids = raw.filter((k) => k.state === 'active' && !k.publicKey).map((k) => k.keyId);
      let done = ids.length;
      if (ids.length > 0) {
        try {
          await Promise.all(chunks(ids, BATCH).map((c) => this.deps.keys.refresh(c)));
          this.batchFailures = 0;
        } catch (e) {
          if (++this.batchFailures < 5) throw e;
          // One key may be stuck (e.g. a refresh that was committing at a crash): refresh one by
          // one, log and skip what still fails, so the others do not wait forever.
          done = 0;
          for (const id of ids) {
            try {
              await this.deps.keys.refresh([id]);
              done++;
            } catch (err) {
              this.deps.log.error(
                { event: 'restore_recovery', keyId: id, err: (err as Error).message },
                'key not refreshed after the restore: refresh it by hand',
              );
            }
          }
          this.batchFailures = 0;
        }
      }
      this.progress = { ...p, after: raw[raw.length - 1]!.keyId, refreshed: (p.refreshed ?? 0) + done };
      await this.save();
    }
  }

  /** For tests: resolves when the background run ends. */
  async settled(): Promise<void> {
    await this.running;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
