/**
 * Bootstrap of one server of a FIPS triplet (the seed's `ekm_boot_ep.sh`, `ekm_boot_partner.sh`,
 * `ekm_boot_auxiliary.sh`). The three boots may run in any order or at once. Each one:
 *
 *  1. makes its identity (key + self-signed certificate) and system key, in memory only;
 *  2. listens on its peer port and repeatedly dials the other two until they answer;
 *  3. fetches each peer's bootstrap hello (role, the triplet as that peer sees it, cluster id)
 *     and checks it agrees with its own flags;
 *  4. has the operator approve each peer's certificate fingerprint (or `-f`) and tells the peer;
 *  5. finishes once it approved both peers and both peers approved it, then writes everything,
 *     `server.json` last: a bootstrap that fails at any point leaves no `server.json` and can be
 *     run again.
 */
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { z } from 'zod';
import { type HomePaths, ensureWritableHome, isBootstrapped, writeFileAtomic } from '../config/home.js';
import { ROLE_LABEL, type Role } from '../config/roles.js';
import { type ServerConfig, type StoreConfig, saveServerConfig } from '../config/server-config.js';
import { hashPassword, verifyPassword } from '../crypto/password.js';
import { EkmError } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { encodeJson, decodeJson } from '../net/framing.js';
import { PeerLink } from '../net/link.js';
import { describeSocketError } from '../net/peers.js';
import { type DialFailure, type Dialed, dialUnpinned } from '../net/unpinned-dialer.js';
import { type UnpinnedListener, listenUnpinned } from '../net/unpinned-listener.js';
import { Barrier } from '../store/barrier.js';
import { checkDatabaseFree, clearRestoreToken, loadSqliteIntoPostgres } from '../store/pg-copy.js';
import type { PgConnection } from '../store/postgres.js';
import { externalStoreConfig, openServerStore, pgConnection } from '../store/server-store.js';
import { SqliteStore } from '../store/sqlite.js';
import type { Store } from '../store/store.js';
import { PEER_PROTOCOL_VERSION, VERSION } from '../version.js';
import type { Approver } from './approval.js';
import type { BootArgs } from './boot-args.js';
import { type Identity, createIdentity } from './identity.js';
import { type ServerAddress, DEFAULT_API_PORT, formatAddress, listenHostFor } from './names.js';
import { daemonRunning } from '../config/pidfile.js';
import {
  type RestoredStore,
  RestoreHello,
  applyRestorePlan,
  checkRestorePair,
  copyBackRestoredStore,
  ensureRestoreToken,
  inspectRestoredStore,
  parseKeyEpochs,
} from '../backup/restore-boot.js';
import type { RestorePlan } from '../backup/key-epochs.js';

const BootHello = z.object({
  purpose: z.literal('bootstrap'),
  protocol: z.number().int(),
  version: z.string(),
  role: z.enum(['ep', 'partner', 'aux']),
  triplet: z.object({ ep: z.string(), partner: z.string(), aux: z.string() }),
  clusterId: z.string().regex(/^[0-9a-f]{16}$/).nullable(),
  tripletId: z.string().regex(/^[0-9a-f]{16}$/).nullable(),
  /** EP and Partner with -restore: the restored store's cluster and keys (src/backup/restore-boot.ts). */
  restore: RestoreHello.nullable().optional(),
});
type BootHello = z.infer<typeof BootHello>;

interface PeerProgress {
  readonly role: Role;
  readonly address: ServerAddress;
  readonly label: string;
  hello?: BootHello;
  fingerprint?: string;
  certPem?: string;
  approvedByUs: boolean;
  /** The peer acknowledged our approval: only then may this bootstrap finish (and close its links). */
  approvalDelivered: boolean;
  lastProblem: string;
}

export interface BootResult {
  readonly config: ServerConfig;
}

export const ROOT_PARTITION = 'root';
export const ROOT_SO = 'so';

/**
 * A peer name that does not resolve (a typo, a host missing from DNS or /etc/hosts) would not
 * resolve by waiting for it: it fails the bootstrap at once, with the reason the wait would have
 * given after its whole timeout. Other lookup failures are left to the dial loop, which retries.
 */
async function checkPeerNamesResolve(args: BootArgs): Promise<void> {
  for (const role of ['ep', 'partner', 'aux'] as const) {
    if (role === args.role) continue;
    const address = args[role];
    const failure = await lookup(address.host).then(
      () => undefined,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    if (failure?.code === 'ENOTFOUND' || failure?.code === 'EAI_AGAIN') {
      throw new EkmError('EKM_BOOT_FAILED', `${ROLE_LABEL[role]} ${formatAddress(address)}: ${describeSocketError(failure)}`, {
        hint: "check the name's spelling and that this machine resolves it (DNS or /etc/hosts), then run the bootstrap again",
      });
    }
  }
}

/** `dbUrl` is the EKM_DB_URL setting, read only with `-externaldb`. */
export async function bootstrap(
  args: BootArgs,
  paths: HomePaths,
  approver: Approver,
  print: (line: string) => void,
  dbUrl: string | undefined,
): Promise<BootResult> {
  await checkPeerNamesResolve(args);
  ensureWritableHome(paths);
  if (daemonRunning(paths)) {
    throw new EkmError('EKM_RUNNING', `ekm is running in ${paths.home}`, { hint: 'stop it first: ekm stop' });
  }
  if (isBootstrapped(paths) && !args.restore) {
    throw new EkmError(
      'EKM_ALREADY_BOOTSTRAPPED',
      `this server is already bootstrapped (${paths.config} exists)`,
      { hint: args.role === 'aux'
        ? 'an Aux is never restored: to bootstrap it again, stop it and remove its EKM_HOME first'
        : 'use -restore to bootstrap again over the existing store, or remove EKM_HOME to start over' },
    );
  }
  if (args.restore && args.externalDb && !existsSync(paths.sqlite) && isBootstrapped(paths) && (await copyBackRestoredStore(paths, dbUrl))) {
    print(`The restored store is copied back from this server's PostgreSQL database into ${paths.sqlite} for this rerun of the restore.`);
  }
  if (args.restore && !existsSync(paths.sqlite)) {
    throw new EkmError('EKM_NOTHING_TO_RESTORE', `-restore needs a restored store at ${paths.sqlite}`, { hint: 'put the restored store there first, or bootstrap without -restore' });
  }
  if (args.restore && !existsSync(paths.systemKey)) {
    throw new EkmError('EKM_NOTHING_TO_RESTORE', `-restore needs the system key at ${paths.systemKey}`, { hint: 'restore it together with the store' });
  }

  // The system key comes first: it seals the database password that server.json keeps.
  const newSystemKey = args.restore ? undefined : randomBytes(32);
  const systemKey = new Barrier(newSystemKey ?? readFileSync(paths.systemKey));
  const storeConfig: StoreConfig = args.externalDb ? externalStoreConfig(dbUrl, systemKey) : { kind: 'sqlite' };
  // -restore -externaldb: the restored store moves into the role's database once the pair agrees;
  // the token lets a rerun of this same restore (after a kill) load the database again.
  const restoreToken = args.restore && storeConfig.kind === 'postgres' ? ensureRestoreToken(paths.sqlite) : undefined;
  if (storeConfig.kind === 'postgres') {
    await checkExternalStore(storeConfig, paths, args.role, systemKey, restoreToken);
    print(`Store: the PostgreSQL database ${storeConfig.url} (the ${ROLE_LABEL[args.role]} role's; every ${ROLE_LABEL[args.role]} of the cluster shares it)`);
  }

  // A restored store keeps its cluster id; its role, schema and keys are checked before anything else.
  const restored = args.restore ? { ...(await inspectRestoredStore(paths.sqlite, args.role)), partial: args.partial } : undefined;
  if (args.restore && args.role === 'ep') await checkRestoredRootSo(paths, args.rootSoPassword!);

  const identity = await createIdentity({ role: args.role, host: args.self.host, extraNames: args.extraNames, years: args.certYears });
  const triplet = { ep: formatAddress(args.ep), partner: formatAddress(args.partner), aux: formatAddress(args.aux) };
  const ownCluster = args.role === 'ep' ? { clusterId: restored?.clusterId ?? randomBytes(8).toString('hex'), tripletId: randomBytes(8).toString('hex') } : null;
  const myHello: BootHello = {
    purpose: 'bootstrap',
    protocol: PEER_PROTOCOL_VERSION,
    version: VERSION,
    role: args.role,
    triplet,
    clusterId: ownCluster?.clusterId ?? null,
    tripletId: ownCluster?.tripletId ?? null,
    restore: restored ? { clusterId: restored.clusterId, keysDigest: restored.keysDigest, keyCount: restored.keys.length, partial: restored.partial } : null,
  };
  print(`Bootstrapping ${ROLE_LABEL[args.role]} ${formatAddress(args.self)} (ekm ${VERSION}); this server's certificate SHA256 fingerprint:`);
  print(`  ${identity.fingerprint}`);

  const exchange = new TrustExchange(args, identity, myHello, approver, print, restored);
  try {
    await exchange.run();
  } finally {
    await exchange.close();
  }

  const epHello = args.role === 'ep' ? myHello : exchange.peer('ep').hello!;
  const clusterId = epHello.clusterId!;
  const tripletId = epHello.tripletId!;
  const config: ServerConfig = {
    format: 1,
    role: args.role,
    name: args.selfName,
    listen: { host: listenHostFor(args.self.host), port: args.self.port },
    ...(args.role === 'ep' ? { api: { host: listenHostFor(args.self.host), port: args.apiPort ?? DEFAULT_API_PORT } } : {}),
    fips: true,
    clusterId,
    tripletId,
    fingerprint: identity.fingerprint,
    bootstrappedWith: VERSION,
    bootstrappedAt: new Date().toISOString(),
    restored: args.restore,
    peers: exchange.peers().map((p) => ({
      role: p.role,
      name: args.names[p.role],
      address: { host: p.address.host, port: p.address.port },
      fingerprint: p.fingerprint!,
      certPem: p.certPem!,
    })),
    store: storeConfig,
  };
  await persistBootstrap(args, paths, identity, config, { plan: exchange.restorePlan, token: restoreToken }, { newSystemKey, systemKey }, print);
  print(`${ROLE_LABEL[args.role]} ${formatAddress(args.self)} bootstrapped: cluster ${clusterId}, triplet ${tripletId}.`);
  print(
    args.role === 'ep'
      ? 'Start the service with `ekm start` (or `service ekm start`) after Partner and Aux, then check with `ucl server test`.'
      : 'Start the service with `ekm start` (or `service ekm start`); start the EP last.',
  );
  return { config };
}

/** Writes identity, system key and store, then `server.json`; undoes the new files if anything fails. */
async function persistBootstrap(
  args: BootArgs,
  paths: HomePaths,
  identity: Identity,
  config: ServerConfig,
  restore: { plan: RestorePlan | null; token: string | undefined },
  keys: { newSystemKey: Buffer | undefined; systemKey: Barrier },
  print: (line: string) => void,
): Promise<void> {
  const created: string[] = [];
  try {
    writeFileAtomic(paths.tlsKey, identity.keyPem, 0o600);
    created.push(paths.tlsKey);
    writeFileAtomic(paths.tlsCert, identity.certPem, 0o644);
    created.push(paths.tlsCert);
    if (keys.newSystemKey) {
      for (const leftover of [paths.sqlite, `${paths.sqlite}-wal`, `${paths.sqlite}-shm`]) rmSync(leftover, { force: true });
      writeFileAtomic(paths.systemKey, keys.newSystemKey, 0o600);
      created.push(paths.systemKey);
      created.push(paths.sqlite, `${paths.sqlite}-wal`, `${paths.sqlite}-shm`);
    }
    // -restore: keep each key at the epoch EP and Partner agreed on, drop the old triplet's rows.
    if (args.restore && restore.plan) applyRestorePlan(paths.sqlite, args.role, restore.plan);
    if (args.restore && config.store.kind === 'postgres') {
      const counts = await loadSqliteIntoPostgres(pgConnection(config.store, keys.systemKey), paths.sqlite, args.role, restore.token);
      print(`The restored store is in the PostgreSQL database ${config.store.url}: ${counts.keys ?? 0} keys, ${counts.audit ?? 0} audit records.`);
      failpoint('restore:externaldb:loaded');
    }
    const store = await openServerStore(config.store, paths, { create: !args.restore, role: args.role, barrier: keys.systemKey });
    try {
      if (args.role === 'ep') await prepareRootPartition(store, args);
      await store.setMeta('cluster_id', config.clusterId);
      await store.setMeta('role', args.role);
      const now = new Date().toISOString();
      await store.upsertServer({
        name: config.name,
        role: config.role,
        tripletId: config.tripletId,
        host: args.self.host,
        port: args.self.port,
        api: config.api ? formatAddress({ host: args.self.host, port: config.api.port }) : null,
        fingerprint: config.fingerprint,
        addedAt: now,
      });
      for (const p of config.peers) {
        await store.upsertServer({
          name: p.name,
          role: p.role,
          tripletId: config.tripletId,
          host: p.address.host,
          port: p.address.port,
          api: null,
          fingerprint: p.fingerprint,
          addedAt: now,
        });
      }
    } finally {
      await store.close();
    }
    saveServerConfig(paths, config);
    if (args.restore && config.store.kind === 'postgres') {
      failpoint('restore:externaldb:configured');
      await retireRestoredFile(paths, pgConnection(config.store, keys.systemKey));
    }
  } catch (e) {
    for (const f of created) rmSync(f, { force: true });
    throw e;
  }
}

/** With -restore, `-w` must be the root SO password of the restored store: checked before anything else. */
async function checkRestoredRootSo(paths: HomePaths, password: string): Promise<void> {
  const store = SqliteStore.open(paths.sqlite, { create: false });
  try {
    const root = await store.getPartition(ROOT_PARTITION);
    const so = root ? await store.getUser(root.id, ROOT_SO) : undefined;
    if (!so || !(await verifyPassword(password, so.passwordHash))) {
      throw new EkmError('EKM_WRONG_PASSWORD', 'the -w password does not match the root SO password of the restored store', { hint: 'give the root SO password the cluster had when it was backed up' });
    }
  } finally {
    await store.close();
  }
}

/**
 * -externaldb: the role's database must be reachable, not another role's, and hold no cluster
 * yet (with -restore: or only this same restore's unfinished load); checked (and claimed for the
 * role) before the trust exchange, so a wrong EKM_DB_URL fails at once.
 */
async function checkExternalStore(
  cfg: Extract<StoreConfig, { kind: 'postgres' }>,
  paths: HomePaths,
  role: Role,
  systemKey: Barrier,
  restoreToken: string | undefined,
): Promise<void> {
  await (await openServerStore(cfg, paths, { create: true, role, barrier: systemKey })).close();
  await checkDatabaseFree(pgConnection(cfg, systemKey), role, restoreToken);
}

/**
 * Once server.json names the database, the restored SQLite file goes: it holds every share of
 * the role (sealed by the system key beside it) outside the database's access control and
 * backups, it no longer changes, and a later -restore would otherwise load this stale copy over
 * the keys made since. Removed only now, so a kill before server.json leaves everything a rerun
 * needs. Its token then names no file any more and is forgotten.
 */
async function retireRestoredFile(paths: HomePaths, conn: PgConnection): Promise<void> {
  for (const f of [paths.sqlite, `${paths.sqlite}-wal`, `${paths.sqlite}-shm`]) rmSync(f, { force: true });
  // Best effort: the bootstrap is done, and a token that names no file lets no other restore in.
  await clearRestoreToken(conn).catch(() => undefined);
}

async function prepareRootPartition(store: Store, args: BootArgs): Promise<void> {
  if (args.restore) return;
  const root = await store.createPartition({ name: ROOT_PARTITION, fipsRequired: false });
  await store.createUser({ partitionId: root.id, name: ROOT_SO, role: 'so', passwordHash: await hashPassword(args.rootSoPassword!) });
}

/** The trust handshake (docs/architecture.md §4): hellos, approvals both ways, completion. */
class TrustExchange {
  private server: UnpinnedListener | undefined;
  private readonly progress = new Map<Role, PeerProgress>();
  /** Fingerprints (of TLS client certificates) that told us they approved our certificate. */
  private readonly approvedUs = new Map<string, Role>();
  private readonly links = new Set<PeerLink>();
  private failure: EkmError | undefined;
  private wake: (() => void) | undefined;
  private closed = false;
  /** EP and Partner with -restore: what both agreed to restore (set before approving each other). */
  restorePlan: RestorePlan | null = null;
  /** EP and Partner approve the Aux only once they have checked each other (a refused restore must not bootstrap the Aux). */
  private pairChecked!: () => void;
  private readonly pairCheck = new Promise<void>((r) => (this.pairChecked = r));
  private pairRefused = false;

  constructor(
    private readonly args: BootArgs,
    private readonly identity: Identity,
    private readonly hello: BootHello,
    private readonly approver: Approver,
    private readonly print: (line: string) => void,
    private readonly restored?: RestoredStore & { partial: boolean },
  ) {
    for (const role of ['ep', 'partner', 'aux'] as Role[]) {
      if (role === args.role) continue;
      const address = args[role];
      this.progress.set(role, {
        role,
        address,
        label: `${ROLE_LABEL[role]} ${formatAddress(address)}`,
        approvedByUs: false,
        approvalDelivered: false,
        lastProblem: 'not contacted yet',
      });
    }
  }

  peer(role: Role): PeerProgress {
    return this.progress.get(role)!;
  }

  peers(): PeerProgress[] {
    return [...this.progress.values()];
  }

  async run(): Promise<void> {
    await this.listen();
    const deadline = Date.now() + this.args.timeoutSeconds * 1000;
    for (const p of this.progress.values()) void this.approvePeer(p, deadline).catch((e: unknown) => this.fail(e));
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        const missing = this.missing();
        reject(
          new EkmError(
            'EKM_BOOT_TIMEOUT',
            `bootstrap timed out after ${this.args.timeoutSeconds} s: ${missing.join('; ')}`,
            { hint: 'start the bootstrap on the other servers too (their flags must name this server), then run this one again' },
          ),
        );
      }, Math.max(0, deadline - Date.now()));
      timer.unref();
      this.wake = () => {
        if (this.failure) {
          clearTimeout(timer);
          reject(this.failure);
        } else if (this.missing().length === 0) {
          clearTimeout(timer);
          resolve();
        }
      };
      this.wake();
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const l of this.links) l.close('bootstrap finished');
    this.approver.close();
    await this.server?.close();
  }

  private missing(): string[] {
    const out: string[] = [];
    for (const p of this.progress.values()) {
      if (!p.approvedByUs) out.push(`${p.label}: ${p.lastProblem}`);
      // Finishing before the peer has our approval would strand it: it waits for it until its timeout.
      else if (!p.approvalDelivered) out.push(`this server's approval was not delivered to ${p.label} yet (${p.lastProblem})`);
      else if (![...this.approvedUs].some(([fp, role]) => role === p.role && fp === p.fingerprint)) {
        out.push(`${p.label} has not approved this server's certificate yet`);
      }
    }
    return out;
  }

  private fail(e: unknown): void {
    if (this.failure) return;
    this.failure = e instanceof EkmError ? e : new EkmError('EKM_BOOT_FAILED', (e as Error).message);
    this.wake?.();
  }

  private async listen(): Promise<void> {
    this.server = await listenUnpinned({
      identity: this.identity,
      host: listenHostFor(this.args.self.host),
      port: this.args.self.port,
      onRequest: (method, body, clientFp) => this.answer(method, body, clientFp),
    });
  }

  private answer(method: string, body: Uint8Array, clientFp: string | undefined): Uint8Array {
    if (method === 'boot.hello') return encodeJson(this.hello);
    if (method === 'boot.restore-keys') {
      if (!this.restored) throw new EkmError('EKM_PEER_PROTOCOL', 'this server is not restoring');
      return encodeJson(this.restored.keys);
    }
    if (method === 'boot.approve') {
      const msg = z.object({ role: z.enum(['ep', 'partner', 'aux']), fingerprint: z.string() }).safeParse(decodeJson(body));
      if (!msg.success || !clientFp) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed approval');
      if (msg.data.fingerprint !== this.identity.fingerprint) {
        throw new EkmError('EKM_PEER_PROTOCOL', 'the approved fingerprint is not this server\'s certificate');
      }
      const p = this.progress.get(msg.data.role);
      if (!p) throw new EkmError('EKM_PEER_PROTOCOL', `a ${msg.data.role} is not a peer of this server`);
      if (p.fingerprint && p.fingerprint !== clientFp) {
        this.fail(
          new EkmError(
            'EKM_PEER_CHANGED',
            `${p.label} now presents another certificate than the one approved (was its bootstrap restarted?)`,
            { hint: 'run this bootstrap again' },
          ),
        );
      }
      this.approvedUs.set(clientFp, msg.data.role);
      this.wake?.();
      return encodeJson({ ok: true });
    }
    if (method === 'boot.abort') {
      // A peer refused the restore: stop too, rather than wait for it until the timeout.
      const msg = z.object({ role: z.enum(['ep', 'partner', 'aux']), message: z.string(), hint: z.string().optional() }).safeParse(decodeJson(body));
      const p = msg.success ? this.progress.get(msg.data.role) : undefined;
      // From the approved certificate when this server has seen it; a peer not reached yet may abort us too.
      if (msg.success && p && (!p.fingerprint || p.fingerprint === clientFp)) {
        this.pairRefused = true;
        this.pairChecked();
        this.fail(new EkmError('EKM_RESTORE_MISMATCH', `${p.label} refused the restore: ${msg.data.message}`, { hint: msg.data.hint }));
      }
      return encodeJson({ ok: true });
    }
    throw new EkmError('EKM_PEER_PROTOCOL', `unknown bootstrap request ${method}`);
  }

  /**
   * Tells every peer this bootstrap stops because the restore was refused, so none waits for it
   * until its timeout (best effort: a peer whose bootstrap has not started within 10 s is not told).
   */
  private async abortPeers(e: EkmError): Promise<void> {
    const body = encodeJson({ role: this.args.role, message: e.message, hint: e.hint });
    const until = Date.now() + 10_000;
    await Promise.all(
      this.peers().map(async (p) => {
        while (Date.now() < until) {
          try {
            const link = await this.connect(p);
            try {
              await link.request('boot.abort', body, 3000);
              return;
            } finally {
              link.close('aborted');
            }
          } catch {
            await new Promise((r) => setTimeout(r, 500));
          }
        }
      }),
    );
  }

  /** Dials the peer until it answers, checks its hello, gets the approval, delivers it. */
  private async approvePeer(p: PeerProgress, deadline: number): Promise<void> {
    let delay = 100;
    for (;;) {
      if (this.closed || this.failure) return;
      try {
        const link = await this.connect(p);
        try {
          const hello = this.checkHello(p, decodeJson(await link.request('boot.hello', new Uint8Array(0), 5000)));
          p.hello = hello;
          if (!p.approvedByUs) {
            await this.approver.approve(p.label, p.fingerprint!);
            p.approvedByUs = true;
            p.lastProblem = 'approved here, not yet told';
          }
          // EP ↔ Partner: the two restored archives must match before either approves the other.
          if (p.role !== 'aux' && this.args.role !== 'aux' && !this.restorePlan) {
            try {
              this.restorePlan = await checkRestorePair(
                this.args.role as 'ep' | 'partner',
                this.restored,
                hello.restore,
                async () => parseKeyEpochs(decodeJson(await link.request('boot.restore-keys', new Uint8Array(0), 60_000))),
                this.print,
              );
            } catch (e) {
              if (e instanceof EkmError && e.code === 'EKM_RESTORE_MISMATCH') {
                this.pairRefused = true;
                this.pairChecked();
                await this.abortPeers(e);
              }
              throw e;
            }
            this.pairChecked();
          }
          if (p.role === 'aux' && this.args.role !== 'aux') {
            await this.pairCheck;
            if (this.failure || this.pairRefused) return;
          }
          await link.request('boot.approve', encodeJson({ role: this.args.role, fingerprint: p.fingerprint }), 5000);
          p.approvalDelivered = true;
          p.lastProblem = 'approved';
          this.wake?.();
          return;
        } finally {
          link.close('done');
        }
      } catch (e) {
        if (e instanceof EkmError && ['EKM_NOT_APPROVED', 'EKM_TRIPLET_MISMATCH', 'EKM_PEER_CHANGED', 'EKM_RESTORE_MISMATCH'].includes(e.code)) throw e;
        p.lastProblem = e instanceof Error ? e.message : String(e);
      }
      if (Date.now() + delay > deadline) return;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 1000);
    }
  }

  private async connect(p: PeerProgress): Promise<PeerLink> {
    let dialed: Dialed;
    try {
      dialed = await dialUnpinned({ identity: this.identity, host: p.address.host, port: p.address.port, timeoutMs: 5000 });
    } catch (e) {
      const why = e as DialFailure;
      if (why.kind === 'timeout') throw new Error('no answer (timeout)');
      throw new Error(why.err.code === 'ECONNREFUSED' ? 'connection refused (is its bootstrap running?)' : describeSocketError(why.err));
    }
    const { socket, cert } = dialed;
    if (!cert) {
      socket.destroy();
      throw new Error('presented no certificate');
    }
    if (p.fingerprint && p.fingerprint !== cert.fingerprint256) {
      socket.destroy();
      throw new EkmError(
        'EKM_PEER_CHANGED',
        `${p.label} now presents certificate ${cert.fingerprint256}, not the approved ${p.fingerprint}`,
        { hint: 'if its bootstrap was restarted, run this bootstrap again' },
      );
    }
    p.fingerprint = cert.fingerprint256;
    p.certPem = cert.toString();
    const link = new PeerLink(socket, p.label);
    this.links.add(link);
    link.once('close', () => this.links.delete(link));
    link.attach({
      onRequest: () => {
        throw new EkmError('EKM_PEER_PROTOCOL', 'no requests on this connection');
      },
    });
    return link;
  }

  private checkHello(p: PeerProgress, raw: unknown): BootHello {
    const parsed = BootHello.safeParse(raw);
    if (!parsed.success) throw new Error('answered with something that is not an ekm bootstrap');
    const h = parsed.data;
    const mismatch = (why: string): EkmError =>
      new EkmError('EKM_TRIPLET_MISMATCH', `${p.label}: ${why}`, { hint: 'bootstrap all three servers with the same EP, Partner and Aux names' });
    if (h.role !== p.role) throw mismatch(`that server is bootstrapping as ${ROLE_LABEL[h.role]}, not ${ROLE_LABEL[p.role]}`);
    for (const r of ['ep', 'partner', 'aux'] as Role[]) {
      if (h.triplet[r] !== this.hello.triplet[r]) {
        throw mismatch(`it names the ${ROLE_LABEL[r]} ${h.triplet[r]}, this server names it ${this.hello.triplet[r]}`);
      }
    }
    if (h.protocol !== PEER_PROTOCOL_VERSION) throw mismatch(`it speaks peer protocol ${h.protocol}, this server ${PEER_PROTOCOL_VERSION}`);
    if (h.version !== VERSION) throw mismatch(`it runs ekm ${h.version}, this server ${VERSION}: install the same release on all three`);
    if (h.role === 'ep' && (!h.clusterId || !h.tripletId)) throw mismatch('the EP sent no cluster id');
    return h;
  }
}
