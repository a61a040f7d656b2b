/**
 * One ekm server process, whatever its role: loads its bootstrap configuration from EKM_HOME,
 * opens its store behind the barrier, keeps its peer links, and (on the EP) serves the HTTPS API.
 * `stop()` is graceful: no new work is accepted, in-flight requests finish, then links and
 * store close.
 */
import { existsSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pino, { type Logger } from 'pino';
import type { FastifyInstance } from 'fastify';
import type { HomePaths } from '../config/home.js';
import type { Settings } from '../config/settings.js';
import { type PeerEntry, type ServerConfig, loadServerConfig, saveServerConfig } from '../config/server-config.js';
import { EkmError } from '../errors.js';
import { type PeerStatusReply, REDIAL_WAIT_MS, type TripletHealth, encodeStatus, probeRemoteTriplet, probeTriplet } from '../cluster/health.js';
import { PeerManager, type PeerRole } from '../net/peers.js';
import { Barrier } from '../store/barrier.js';
import { openServerStore } from '../store/server-store.js';
import type { Store } from '../store/store.js';
import { VERSION } from '../version.js';
import { buildApi, listenApi } from '../api/app.js';
import type { ApiDeps } from '../api/deps.js';
import { ROLE_PARTY } from '../config/roles.js';
import { identitySignerFromPem, tripletCerts } from '../service/identity-keys.js';
import { InProcessRunner, type PartyRunner, WorkerRunner } from '../service/party-runner.js';
import { KeyService } from '../service/key-service.js';
import { ABORT_TOPIC, PROTO_TOPIC, ProtocolHost } from '../service/protocol-host.js';
import { AuxRecovery } from '../service/aux-recovery.js';
import { KeyCatalog } from '../service/key-catalog.js';
import { AUX_REPIN_METHOD, ROLE_SECRET_METHOD } from '../cluster/join.js';
import { ScaleOut, auxRepinHandler, roleSecretHandler } from '../cluster/scale-out.js';
import { formatAddress } from '../cluster/names.js';
import type { PartyId } from '../protocols/types.js';

export interface ServerContext {
  readonly config: ServerConfig;
  readonly paths: HomePaths;
  readonly store: Store;
  readonly barrier: Barrier;
  readonly peers: PeerManager;
  readonly log: Logger;
  readonly settings: Settings;
  readonly startedAt: number;
  readonly keys: KeyService;
  /** EP only: names, states and destruction of keys. */
  readonly catalog: KeyCatalog | undefined;
  /** EP only: adding triplets (ucl server create). */
  readonly scaleOut: ScaleOut | undefined;
  probe(): Promise<TripletHealth>;
}

/**
 * A peer request handler, registered by method name by the services (keys, protocols); `from` is
 * the calling peer's role as its pinned certificate proves it.
 */
export type PeerMethod = (body: Uint8Array, from: PeerRole | undefined) => Promise<Uint8Array> | Uint8Array;

export class EkmServer implements ServerContext {
  readonly startedAt = performance.now();
  private readonly methods = new Map<string, PeerMethod>();
  private inFlight = 0;
  private drained: (() => void) | undefined;
  private stopping = false;
  private api: FastifyInstance | undefined;
  readonly peers: PeerManager;
  readonly host: ProtocolHost;
  readonly keys: KeyService;
  private readonly runner: PartyRunner;
  private storeOk = true;
  /** EP after a restore: re-derives the Aux and refreshes every key, then is done. */
  private recovery: AuxRecovery | undefined;
  catalog: KeyCatalog | undefined;
  readonly scaleOut: ScaleOut | undefined;

  /** server.json as loaded, and as `repinAux` rewrote it. */
  private currentConfig: ServerConfig;
  /** The certificates of the triplet by party; the identity statements verify against this one table, which `repinAux` updates. */
  private readonly certs: [PartyId, string][];

  private constructor(
    config: ServerConfig,
    readonly paths: HomePaths,
    readonly store: Store,
    readonly barrier: Barrier,
    readonly log: Logger,
    private readonly identity: { keyPem: string; certPem: string },
    readonly settings: Settings,
  ) {
    this.currentConfig = config;
    this.certs = tripletCerts(config, identity.certPem);
    this.peers = new PeerManager({
      self: {
        role: config.role,
        name: config.name,
        listenHost: config.listen.host,
        listenPort: config.listen.port,
        clusterId: config.clusterId,
        tripletId: config.tripletId,
        version: VERSION,
        keyPem: identity.keyPem,
        certPem: identity.certPem,
      },
      peers: config.peers.map((p) => ({
        role: p.role,
        name: p.name,
        host: p.address.host,
        port: p.address.port,
        fingerprint: p.fingerprint,
      })),
      handlers: {
        onRequest: (method, body, link) => this.onPeerRequest(method, body, link.peerRole),
        onMessage: (topic, body, link) => {
          if (!link.peerRole || this.stopping) return;
          if (topic === PROTO_TOPIC) this.host.deliver(link.peerRole, body);
          else if (topic === ABORT_TOPIC) this.host.peerAborted(link.peerRole, body);
        },
      },
      log,
    });
    this.runner = settings.protocolWorkers > 0 ? new WorkerRunner(settings.protocolWorkers) : new InProcessRunner();
    const signer = identitySignerFromPem(identity.keyPem);
    this.host = new ProtocolHost({ self: ROLE_PARTY[config.role], peers: this.peers, store, log, runner: this.runner, signer });
    this.keys = new KeyService({
      self: ROLE_PARTY[config.role],
      tripletId: config.tripletId,
      store,
      peers: this.peers,
      host: this.host,
      log,
      identity: { id: ROLE_PARTY[config.role], tripletId: config.tripletId, identityKeyPem: identity.keyPem, certs: this.certs },
      poolTarget: settings.poolTarget,
      aesObjectFormat: settings.aesObjectFormat,
      registerPeerMethod: (name, handler) => this.registerPeerMethod(name, handler),
    });
    const auxReplaced = async (aux: PeerEntry): Promise<void> => {
      this.repinAux(aux);
      await this.recovery?.begin((await this.keys.allKeyIds()).length);
    };
    this.scaleOut =
      config.role === 'ep'
        ? new ScaleOut({
            config,
            paths,
            identity: { ...identity, fingerprint: config.fingerprint },
            store,
            peers: this.peers,
            log,
            auxReplaced,
            stopping: () => this.stopping,
          })
        : undefined;
    if (config.role === 'partner') {
      this.methods.set(ROLE_SECRET_METHOD, roleSecretHandler({ config, paths, log }));
      this.methods.set(
        AUX_REPIN_METHOD,
        auxRepinHandler({
          config,
          paths,
          log,
          pinsAux: (aux) => this.pinsAux(aux),
          repin: async (aux) => this.repinAux(aux),
        }),
      );
    }
    this.methods.set('status', () => this.statusReply());
    this.methods.set('echo', (body) => body);
  }

  /**
   * Starts the server of EKM_HOME `paths`. An EP serves its API unless `serveApi` is false (the
   * API tests build their own on `apiDeps()` and answer with `inject()`).
   */
  static async start(
    paths: HomePaths,
    settings: Settings,
    log: Logger = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime }),
    { serveApi = true }: { serveApi?: boolean } = {},
  ): Promise<EkmServer> {
    const config = loadServerConfig(paths);
    const identity = { keyPem: readSecretFile(paths.tlsKey, 'identity key'), certPem: readSecretFile(paths.tlsCert, 'certificate') };
    const systemKey = readFileSyncOr(paths.systemKey, 'system key');
    const barrier = new Barrier(systemKey);
    // The Aux's store is a cache that EP and Partner can always fill again (re-derivation), so a
    // new or wiped Aux starts empty; an EP or Partner without its store must not (that is data loss).
    const auxStarts = config.role === 'aux' && !existsSync(paths.sqlite);
    // An EP or Partner on PostgreSQL opens its role's database; the Aux's store is always local.
    const store = await openServerStore(config.store, paths, {
      create: config.role === 'aux',
      role: config.role,
      barrier,
      writerThread: true,
    });
    if (auxStarts) log.warn({ event: 'aux_store_empty' }, 'the Aux store is empty: run the Aux re-derivation from the EP');
    const server = new EkmServer(config, paths, store, barrier, log.child({ role: config.role, server: config.name }), identity, settings);
    try {
      await store.bindTriplet(config.tripletId);
      await server.keys.start();
      await server.peers.start();
      if (config.role === 'ep') {
        server.catalog = new KeyCatalog({
          store,
          peers: server.peers,
          keys: server.keys,
          log: server.log,
          auxSweepMs: settings.test.auxSweepMs,
        });
        server.catalog.start();
      }
      if (config.role === 'ep') {
        // Before the API: ucl server create -a begins a recovery through it.
        server.recovery = new AuxRecovery({
          tripletId: config.tripletId,
          store,
          keys: server.keys,
          peers: server.peers,
          log: server.log,
          batch: settings.recoveryBatch,
          parallel: settings.recoveryParallel,
        });
        if (serveApi) server.api = await server.serveApi(identity);
        await server.recovery.start();
        // Scale-out operations a crash cut short (src/cluster/scale-out.ts).
        server.scaleOut
          ?.resumeAuxReplacement()
          .catch((e: unknown) =>
            server.log.error({ event: 'aux_replace_pending', err: (e as Error).message }, 'cannot finish the Aux replacement'),
          );
        server.scaleOut
          ?.resumeTripletAddition()
          .catch((e: unknown) =>
            server.log.error({ event: 'triplet_add_pending', err: (e as Error).message }, 'cannot finish the triplet addition'),
          );
      }
    } catch (e) {
      await server.peers.stop();
      await server.api?.close();
      await store.close();
      throw e;
    }
    server.log.info({ version: VERSION, listen: config.listen, api: config.api ?? null }, 'ekm server started');
    return server;
  }

  /** What the EP's API needs of this server (the EP's catalogue exists once it started). */
  apiDeps(): ApiDeps {
    const { catalog, config } = this;
    if (!catalog) throw new EkmError('EKM_INTERNAL', 'only a started EP serves the API');
    return {
      server: { role: config.role, name: config.name, clusterId: config.clusterId, tripletId: config.tripletId, fips: config.fips },
      store: this.store,
      log: this.log,
      keys: this.keys,
      catalog,
      tokenTtlSeconds: this.settings.tokenTtlSeconds,
      loginLimits: { failuresPerSecond: this.settings.loginFailures, concurrentChecks: this.settings.passwordChecks },
      ...(this.scaleOut ? { scaleOut: this.scaleOut } : {}),
      probe: () => this.probe(),
      probeOtherTriplet: (members) => probeRemoteTriplet(members, this.identity),
    };
  }

  private async serveApi(identity: { keyPem: string; certPem: string }): Promise<FastifyInstance> {
    const api = this.config.api;
    if (!api) throw new EkmError('EKM_CONFIG_CORRUPT', 'the EP configuration has no API address');
    const { app } = await buildApi(this.apiDeps());
    try {
      await listenApi(app, { host: api.host, port: api.port, identity });
    } catch (e) {
      await app.close();
      throw e;
    }
    return app;
  }

  get config(): ServerConfig {
    return this.currentConfig;
  }

  /**
   * Pins another Aux (ucl server create -a): server.json first, so that a restart keeps it; then
   * the identity table the commit statements verify against, then the live links.
   */
  private repinAux(aux: PeerEntry): void {
    // A resumed replacement pins again what is pinned already: the link stays as it is.
    if (this.pinsAux(aux)) return;
    const next = { ...this.currentConfig, peers: this.currentConfig.peers.map((p) => (p.role === 'aux' ? aux : p)) };
    saveServerConfig(this.paths, next);
    this.currentConfig = next;
    const i = this.certs.findIndex(([party]) => party === ROLE_PARTY.aux);
    this.certs[i] = [ROLE_PARTY.aux, aux.certPem];
    this.peers.replacePeer({ role: 'aux', name: aux.name, host: aux.address.host, port: aux.address.port, fingerprint: aux.fingerprint });
  }

  /** Whether this server pins exactly this Aux (its certificate, at its address) already. */
  private pinsAux(aux: PeerEntry): boolean {
    const pinned = this.currentConfig.peers.find((p) => p.role === 'aux');
    return pinned !== undefined && pinned.fingerprint === aux.fingerprint && formatAddress(pinned.address) === formatAddress(aux.address);
  }

  registerPeerMethod(name: string, handler: PeerMethod): void {
    if (this.methods.has(name)) throw new Error(`peer method ${name} registered twice`);
    this.methods.set(name, handler);
  }

  probe(): Promise<TripletHealth> {
    return this.checkStore()
      .then(() =>
        probeTriplet(
          {
            role: this.config.role,
            name: this.config.name,
            version: VERSION,
            tripletId: this.config.tripletId,
            uptimeMs: performance.now() - this.startedAt,
            storeOk: this.storeOk,
          },
          this.peers,
        ),
      )
      .then((h) => this.recovery?.mark(h) ?? h);
  }

  apiPort(): number | undefined {
    const addr = this.api?.server.address();
    return addr && typeof addr === 'object' ? addr.port : undefined;
  }

  /** Graceful stop: refuse new work, let in-flight requests finish (bounded), then close everything. */
  async stop(graceMs = 20_000): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.log.info('ekm server stopping');
    const apiClosed = this.api?.close();
    if (this.inFlight > 0) {
      await Promise.race([new Promise<void>((r) => (this.drained = r)), new Promise((r) => setTimeout(r, graceMs).unref())]);
    }
    await apiClosed;
    this.recovery?.stop();
    this.catalog?.stop();
    this.keys.stop();
    await this.peers.stop();
    await this.runner.close();
    await this.store.close();
    this.log.info('ekm server stopped');
  }

  private async checkStore(): Promise<void> {
    try {
      await this.store.check();
      this.storeOk = true;
    } catch {
      this.storeOk = false;
    }
  }

  private async statusReply(): Promise<Uint8Array> {
    await Promise.all([this.checkStore(), this.peers.redialNow(REDIAL_WAIT_MS)]);
    const missing = this.peers
      .status()
      .filter((p) => !p.up)
      .map((p) => p.role);
    const reply: PeerStatusReply = {
      role: this.config.role,
      version: VERSION,
      ready: missing.length === 0 && !this.stopping,
      uptimeMs: performance.now() - this.startedAt,
      missing,
      storeOk: this.storeOk,
    };
    return encodeStatus(reply);
  }

  private async onPeerRequest(method: string, body: Uint8Array, from: PeerRole | undefined): Promise<Uint8Array> {
    const handler = this.methods.get(method);
    if (!handler) throw new EkmError('EKM_UNKNOWN_METHOD', `unknown peer method ${method}`);
    if (this.stopping && method !== 'status') throw new EkmError('EKM_STOPPING', 'server is stopping');
    this.inFlight++;
    try {
      return await handler(body, from);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.drained?.();
    }
  }
}

function readFileSyncOr(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new EkmError('EKM_HOME_UNUSABLE', `cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'check EKM_HOME and its permissions',
    });
  }
}

function readSecretFile(path: string, what: string): string {
  return readFileSyncOr(path, what).toString('utf8');
}
