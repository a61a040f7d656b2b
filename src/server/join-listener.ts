/**
 * The service of a server waiting to join a cluster (after `ekm_boot_additional_server.sh`): it
 * listens on its peer port and answers the main EP's `ucl server create`:
 *
 *   join.hello  who it is (name, release, certificate fingerprint) and that it waits;
 *   join.check  the package it would get (role, triplet, peers, sealed role secret): every check
 *               that `join.apply` makes, without writing anything;
 *   join.apply  the same checks, then its keys and `server.json` are written; the service stops,
 *               and `service ekm start` starts it as its role (the seed's next step).
 *
 * It has no cluster to trust yet, so the first EP whose package passes `join.check` is the only
 * one it accepts afterwards (trust on first use). That is safe for the cluster's secrets: the main
 * EP seals them to the certificate its operator approved, so only this server can open them.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import type { Logger } from 'pino';
import { type JoiningState, loadJoiningState } from '../cluster/additional-boot.js';
import { JOIN_APPLY, JOIN_CHECK, JOIN_HELLO, type JoinHello, JoinPackage, type RoleSecret, openRoleSecret } from '../cluster/join.js';
import { DEFAULT_API_PORT, listenHostFor } from '../cluster/names.js';
import { type HomePaths, writeFileAtomic } from '../config/home.js';
import { type ServerConfig, saveServerConfig } from '../config/server-config.js';
import { EkmError } from '../errors.js';
import { decodeJson, encodeJson } from '../net/framing.js';
import { type UnpinnedListener, listenUnpinned } from '../net/unpinned-listener.js';
import { Barrier } from '../store/barrier.js';
import { openServerStore } from '../store/server-store.js';
import { PEER_PROTOCOL_VERSION, VERSION } from '../version.js';

interface Checked {
  readonly pkg: JoinPackage;
  readonly config: ServerConfig;
  readonly systemKey: Buffer;
}

export class JoinListener {
  private server: UnpinnedListener | undefined;
  /** The EP certificate that passed join.check first (trust on first use). */
  private trustedEp: string | undefined;
  private applied = false;
  private onJoined: (() => void) | undefined;
  /** Resolves once a package was applied: `ekm run` then stops. */
  readonly joined = new Promise<void>((resolve) => (this.onJoined = resolve));

  private constructor(
    private readonly paths: HomePaths,
    private readonly state: JoiningState,
    private readonly identity: { keyPem: string; certPem: string },
    private readonly log: Logger,
  ) {}

  static async start(paths: HomePaths, log: Logger): Promise<JoinListener> {
    const state = loadJoiningState(paths);
    const identity = { keyPem: readFileSync(paths.tlsKey, 'utf8'), certPem: readFileSync(paths.tlsCert, 'utf8') };
    const listener = new JoinListener(paths, state, identity, log);
    await listener.listen();
    log.info(
      { event: 'join_waiting', name: state.name, fingerprint: state.fingerprint },
      'waiting to join a cluster: run `ucl server create` on the main EP',
    );
    return listener;
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }

  private async listen(): Promise<void> {
    this.server = await listenUnpinned({
      identity: this.identity,
      host: listenHostFor(this.state.listen.host),
      port: this.state.listen.port,
      onRequest: (method, body, clientFp) => this.answer(method, body, clientFp),
    });
  }

  private async answer(method: string, body: Uint8Array, clientFp: string | undefined): Promise<Uint8Array> {
    if (method === JOIN_HELLO) return encodeJson(this.hello());
    if (method !== JOIN_CHECK && method !== JOIN_APPLY)
      throw new EkmError('EKM_PEER_PROTOCOL', `this server waits to join a cluster; it does not answer ${method}`);
    if (!clientFp) throw new EkmError('EKM_JOIN_REFUSED', 'the joining EP presented no certificate');
    if (this.applied)
      throw new EkmError('EKM_JOIN_REFUSED', `${this.state.name} has joined a cluster already`, {
        hint: 'start it with `service ekm start`',
      });
    if (this.trustedEp && this.trustedEp !== clientFp) {
      throw new EkmError('EKM_JOIN_REFUSED', `${this.state.name} is joining the cluster of another EP (certificate ${this.trustedEp})`, {
        hint: 'run ucl server create from that EP, or bootstrap this server again',
      });
    }
    const checked = await this.check(decodeJson(body), clientFp);
    this.trustedEp = clientFp;
    if (method === JOIN_CHECK) return encodeJson({ ok: true, fingerprint: this.state.fingerprint });
    this.apply(checked);
    this.applied = true;
    this.log.warn(
      {
        event: 'joined',
        cluster: checked.config.clusterId,
        triplet: checked.config.tripletId,
        role: checked.config.role,
        by: checked.pkg.from,
      },
      `joined cluster ${checked.config.clusterId} as the ${checked.config.role} of triplet ${checked.config.tripletId}: start it with \`service ekm start\``,
    );
    // Answer first, then stop: the EP must learn that the package was applied.
    setTimeout(() => this.onJoined?.(), 200).unref();
    return encodeJson({ ok: true, fingerprint: this.state.fingerprint });
  }

  private hello(): JoinHello {
    return {
      purpose: 'join',
      protocol: PEER_PROTOCOL_VERSION,
      version: VERSION,
      name: this.state.name,
      fingerprint: this.state.fingerprint,
      fips: this.state.fips,
      apiPort: this.state.apiPort,
      state: this.applied ? 'joined' : 'waiting',
    };
  }

  /** Every check of the package; throws EKM_JOIN_REFUSED with the reason. */
  private async check(raw: unknown, clientFp: string): Promise<Checked> {
    const parsed = JoinPackage.safeParse(raw);
    if (!parsed.success) throw new EkmError('EKM_JOIN_REFUSED', `malformed join package (${parsed.error.issues[0]?.path.join('.') ?? ''})`);
    const pkg = parsed.data;
    const refuse = (why: string, hint?: string): EkmError => new EkmError('EKM_JOIN_REFUSED', `${this.state.name}: ${why}`, { hint });
    if (pkg.name !== this.state.name) throw refuse(`the package names ${pkg.name}, this server is ${this.state.name}`);
    if (pkg.from.fingerprint !== clientFp) throw refuse('the package does not come from the EP that sent it');
    if (pkg.peers.some((p) => p.role === pkg.role) || new Set(pkg.peers.map((p) => p.role)).size !== 2)
      throw refuse('the package does not name the two other servers of the triplet');
    let secret: RoleSecret | null = null;
    if (pkg.role === 'aux') {
      if (pkg.sealedSecret !== null) throw refuse('an Aux gets no role secret');
    } else {
      if (pkg.sealedSecret === null) throw refuse(`a ${pkg.role === 'ep' ? 'n EP' : ' Partner'} needs its role's secret`);
      secret = openRoleSecret(pkg.sealedSecret, {
        keyPem: this.identity.keyPem,
        fingerprint: this.state.fingerprint,
        clusterId: pkg.clusterId,
        role: pkg.role,
      });
      if (secret.store.kind !== 'postgres') throw refuse('the role secret names no shared PostgreSQL store');
    }
    const systemKey = secret ? Buffer.from(secret.systemKey, 'base64') : randomBytes(32);
    const config: ServerConfig = {
      format: 1,
      role: pkg.role,
      name: this.state.name,
      listen: { host: listenHostFor(this.state.listen.host), port: this.state.listen.port },
      ...(pkg.role === 'ep'
        ? { api: { host: listenHostFor(this.state.listen.host), port: pkg.apiPort ?? this.state.apiPort ?? DEFAULT_API_PORT } }
        : {}),
      fips: true,
      clusterId: pkg.clusterId,
      tripletId: pkg.tripletId,
      fingerprint: this.state.fingerprint,
      bootstrappedWith: VERSION,
      bootstrappedAt: new Date().toISOString(),
      restored: false,
      peers: pkg.peers,
      store: secret ? secret.store : { kind: 'sqlite' },
    };
    if (secret) await this.checkSharedStore(config, systemKey);
    return { pkg, config, systemKey };
  }

  /** The role's shared database must open with the secret and belong to the package's cluster. */
  private async checkSharedStore(config: ServerConfig, systemKey: Buffer): Promise<void> {
    let store;
    try {
      store = await openServerStore(config.store, this.paths, { create: false, role: config.role, barrier: new Barrier(systemKey) });
    } catch (e) {
      throw new EkmError(
        'EKM_JOIN_REFUSED',
        `${this.state.name} cannot open the ${config.role} role's database: ${e instanceof EkmError ? e.message : (e as Error).message}`,
        { hint: 'check that this server reaches the database server' },
      );
    }
    try {
      const cluster = await store.getMeta('cluster_id');
      if (cluster !== config.clusterId) {
        throw new EkmError(
          'EKM_JOIN_REFUSED',
          `${this.state.name}: the ${config.role} role's database holds cluster ${cluster ?? '(none)'}, not ${config.clusterId}`,
        );
      }
    } finally {
      await store.close();
    }
  }

  /** Writes the system key, then server.json (its presence = bootstrapped), then drops joining.json. */
  private apply(c: Checked): void {
    writeFileAtomic(this.paths.systemKey, c.systemKey, 0o600);
    saveServerConfig(this.paths, c.config);
    rmSync(this.paths.joining, { force: true });
  }
}
