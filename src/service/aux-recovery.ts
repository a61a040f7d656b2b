/**
 * On the EP, after a restore (`ekm restore`) or once its triplet's Aux was replaced (`ucl server create
 * -a`): the new Aux holds no shares. Once the EP has links to both peers, it re-derives the Aux's
 * share of every key (docs/protocols.md §6, AX1-AX3), then refreshes every key (§6: "then run a refresh of
 * every key at once", so the old Aux's f(3) becomes worthless), in batches. Progress is kept in a
 * meta row of the store (`recovery_pending`, written by the `-restore` bootstrap; after a
 * replaced Aux `recovery_pending/<triplet>`, since EPs of several triplets may share the store),
 * so a crash resumes where it stopped. Until it is done, the EP reports itself `starting` in
 * `ucl server test`, which therefore passes only once every key signs.
 */
import type { Logger } from 'pino';
import type { TripletHealth } from '../cluster/health.js';
import type { PeerManager } from '../net/peers.js';
import type { Store } from '../store/store.js';
import type { KeyService } from './key-service.js';

export const RECOVERY_META = 'recovery_pending';
/** The meta row of a recovery after this triplet's Aux was replaced. */
export const auxReplacedMeta = (tripletId: string): string => `${RECOVERY_META}/${tripletId}`;

function chunks<T>(xs: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

interface Progress {
  phase: 'rederive' | 'refresh' | 'done';
  /** Why the Aux is new (a missing reason is a restore: the bootstrap writes none). */
  reason?: 'restore' | 'aux-replaced';
  keys: number;
  since: string;
  /** Keys up to this id (in key id order) are done in the current phase. */
  after?: string;
  rederived?: number;
  refreshed?: number;
}

export interface AuxRecoveryDeps {
  readonly tripletId: string;
  readonly store: Store;
  readonly keys: KeyService;
  readonly peers: PeerManager;
  readonly log: Logger;
  /** Keys per session (EKM_RECOVERY_BATCH). */
  readonly batch: number;
  /** Sessions run at once, each in its own protocol worker (EKM_RECOVERY_PARALLEL). */
  readonly parallel: number;
}

export class AuxRecovery {
  private progress: Progress | undefined;
  private meta = RECOVERY_META;
  private stopped = false;
  private running: Promise<void> | undefined;
  private batchFailures = 0;

  constructor(private readonly deps: AuxRecoveryDeps) {}

  get pending(): boolean {
    return this.progress !== undefined && this.progress.phase !== 'done';
  }

  /** Reads the meta rows; if a recovery is pending, runs it in the background. */
  async start(): Promise<void> {
    for (const meta of [auxReplacedMeta(this.deps.tripletId), RECOVERY_META]) {
      const raw = await this.deps.store.getMeta(meta);
      if (!raw) continue;
      this.meta = meta;
      try {
        this.progress = JSON.parse(raw) as Progress;
      } catch {
        this.progress = { phase: 'rederive', keys: 0, since: new Date().toISOString() };
      }
      if (this.pending) break;
    }
    if (!this.pending) return;
    this.run();
  }

  /**
   * This triplet's Aux was just replaced: the recovery starts over (recorded first, so that a
   * crash resumes it), and runs once the new Aux is linked.
   */
  async begin(keys: number): Promise<void> {
    this.meta = auxReplacedMeta(this.deps.tripletId);
    this.progress = { phase: 'rederive', reason: 'aux-replaced', keys, since: new Date().toISOString() };
    this.batchFailures = 0;
    await this.save();
    this.run();
  }

  private run(): void {
    if (this.running) return;
    this.deps.log.info(
      { event: 'restore_recovery', reason: this.progress?.reason ?? 'restore', phase: this.progress?.phase, keys: this.progress?.keys },
      'Aux recovery pending: waiting for Partner and Aux',
    );
    this.running = this.loop().finally(() => (this.running = undefined));
  }

  stop(): void {
    this.stopped = true;
  }

  /** What `ucl server test` shows for the EP while the recovery runs. */
  mark(h: TripletHealth): TripletHealth {
    const p = this.progress;
    if (!p || p.phase === 'done') return h;
    const why = p.reason === 'aux-replaced' ? 'new Aux' : 'restore';
    const detail =
      p.phase === 'rederive'
        ? `${why}: re-deriving the Aux's shares (${p.rederived ?? 0} of ${p.keys} keys done)`
        : `${why}: refreshing every key (${p.refreshed ?? 0} of ${p.keys} done)`;
    return { ...h, inService: false, servers: h.servers.map((s) => (s.role === 'ep' ? { ...s, state: 'starting', detail } : s)) };
  }

  /**
   * The step's result, unless `begin` started over meanwhile (the Aux was replaced again while
   * this step ran): then the step's progress belongs to the Aux before.
   */
  private async advance(from: Progress, to: Progress): Promise<void> {
    if (this.progress !== from) return;
    this.progress = to;
    await this.save();
  }

  private async save(): Promise<void> {
    await this.deps.store.setMeta(this.meta, JSON.stringify(this.progress));
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
      const raw = await this.deps.store.listKeys({ ...(p.after ? { after: p.after } : {}), limit: this.deps.batch * this.deps.parallel });
      if (raw.length === 0) {
        this.deps.log.info({ event: 'restore_recovery', keys: p.rederived ?? 0, since: p.since }, 'the Aux shares are re-derived');
        const { after: _done, ...rest } = p;
        await this.advance(p, { ...rest, phase: 'refresh', refreshed: 0 });
        return;
      }
      const ids = raw.filter((k) => k.state === 'active' && !k.publicKey).map((k) => k.keyId);
      const rs = await Promise.all(chunks(ids, this.deps.batch).map((c) => this.deps.keys.rederiveAux(c, { refresh: false })));
      const n = rs.reduce((sum, r) => sum + r.keys.length, 0);
      await this.advance(p, { ...p, after: raw[raw.length - 1]!.keyId, rederived: (p.rederived ?? 0) + n });
      return;
    }
    if (p.phase === 'refresh') {
      const raw = await this.deps.store.listKeys({ ...(p.after ? { after: p.after } : {}), limit: this.deps.batch * this.deps.parallel });
      if (raw.length === 0) {
        await this.advance(p, { ...p, phase: 'done' });
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
          await Promise.all(chunks(ids, this.deps.batch).map((c) => this.deps.keys.refresh(c)));
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
      await this.advance(p, { ...p, after: raw[raw.length - 1]!.keyId, refreshed: (p.refreshed ?? 0) + done });
    }
  }

  /** For tests: resolves when the background run ends. */
  async settled(): Promise<void> {
    await this.running;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
