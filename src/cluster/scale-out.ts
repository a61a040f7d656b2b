/**
 * `ucl server create -e <ep> -p <partner> -a <aux>` on the main EP (the seed's "Add a Server
 * Triplet"): makes three servers waiting to join (src/server/join-listener.ts) the next triplet.
 *
 *  1. dial each, read its hello: it must wait to join and run this cluster's exact release;
 *  2. the operator approves each certificate fingerprint (ucl shows them; or `-f`);
 *  3. the role-group secrets: the EP's own, and the Partner's from this EP's Partner, which seals
 *     it to the new Partner's certificate itself (this EP relays it and cannot open it);
 *  4. `join.check` on all three (every check, nothing written), then `join.apply` on all three;
 *  5. the new servers are recorded in the cluster's server list (the shared EP store).
 *
 * Scale-out needs the EP and Partner stores on PostgreSQL (`-externaldb`): that is how every EP
 * serves every key. Nothing changes in the cluster until every check of steps 1–4 has passed.
 */
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { HomePaths } from '../config/home.js';
import { ROLES, ROLE_LABEL, type Role } from '../config/roles.js';
import { PeerEntry, type ServerConfig } from '../config/server-config.js';
import { EkmError, type EkmErrorOptions, type ErrorCode, isErrorCode } from '../errors.js';
import { failpoint } from '../failpoints.js';
import { decodeJson, encodeJson } from '../net/framing.js';
import { PeerLink } from '../net/link.js';
import { describeSocketError, type PeerManager } from '../net/peers.js';
import { type DialFailure, type Dialed, dialUnpinned } from '../net/unpinned-dialer.js';
import type { ServerRow, Store } from '../store/store.js';
import { PEER_PROTOCOL_VERSION, VERSION } from '../version.js';
import {
  AUX_REPIN_METHOD,
  AuxRepinAnswer,
  AuxRepinRequest,
  JOIN_APPLY,
  JOIN_CHECK,
  JOIN_HELLO,
  JoinAnswer,
  JoinHello,
  type JoinPackage,
  ROLE_SECRET_METHOD,
  RoleSecretAnswer,
  RoleSecretRequest,
  type RoleSecret,
  sealRoleSecret,
} from './join.js';
import { isJoinApproved } from './join-approvals.js';
import { type ServerAddress, DEFAULT_API_PORT, formatAddress, parseServerName } from './names.js';

export type NewTriplet = Record<Role, string>;

/** A server waiting to join, as the operator sees it before approving. */
export interface NewServerView {
  readonly role: Role;
  readonly name: string;
  readonly address: string;
  readonly fingerprint: string;
  readonly version: string;
}

export interface CreateRequest {
  readonly servers: NewTriplet;
  /** name → the fingerprint the operator approved; or `force` (ucl -f). */
  readonly approve: Readonly<Record<string, string>>;
  readonly force: boolean;
}

export interface ReplaceAuxRequest {
  readonly aux: string;
  readonly approve: Readonly<Record<string, string>>;
  readonly force: boolean;
}

export interface CreateResult {
  readonly tripletId: string;
  readonly servers: readonly NewServerView[];
}

export interface ScaleOutDeps {
  readonly config: ServerConfig;
  readonly paths: HomePaths;
  readonly identity: { readonly keyPem: string; readonly certPem: string; readonly fingerprint: string };
  readonly store: Store;
  readonly peers: PeerManager;
  readonly log: Logger;
  /** This EP pins the new Aux (server.json, the live link) and starts its recovery (re-derivation, then a refresh of every key). */
  readonly auxReplaced: (aux: PeerEntry) => Promise<void>;
  /** Whether the server is stopping (a background retry ends then). */
  readonly stopping: () => boolean;
}

interface Contacted extends NewServerView {
  readonly addr: ServerAddress;
  readonly certPem: string;
  readonly apiPort: number | undefined;
  readonly link: PeerLink;
}


/**
 * The hint joins the message: these errors reach the operator through the API, which carries one
 * message. Their statuses are the error table's: the cluster's state 409, a server not there 502,
 * a peer down 503.
 */
function scaleError(code: ErrorCode, message: string, hint?: string, options: EkmErrorOptions = {}): EkmError {
  return new EkmError(code, hint ? `${message}: ${hint}` : message, options);
}

/** A peer's refusal, passed on with its own code: the table's status, 400 for a code this release does not know. */
function peerRefusal(e: EkmError, hint?: string): EkmError {
  if (isErrorCode(e.code)) return scaleError(e.code, e.message, hint);
  return scaleError('EKM_PEER_ERROR', e.message, hint, { relayed: { code: e.code, httpStatus: 400 } });
}
const DIAL_TIMEOUT_MS = 5000;

export class ScaleOut {
  /** Aux replacements run one at a time, resumed ones included: two that crossed could leave EP and Partner on different Auxes. */
  private auxWork: Promise<unknown> = Promise.resolve();
  private resuming = false;

  constructor(private readonly deps: ScaleOutDeps) {}

  private serially<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.auxWork.then(fn, fn);
    this.auxWork = run.catch(() => undefined);
    return run;
  }

  /** Step 1 alone: who the new servers are (for the operator's approval). Changes nothing. */
  async inspect(servers: NewTriplet): Promise<NewServerView[]> {
    const contacted = await this.contact(servers);
    try {
      return contacted.map(view);
    } finally {
      for (const c of contacted) c.link.close('inspected');
    }
  }

  /** Step 1 alone for `ucl server create -a`: who the new Aux is. Changes nothing. */
  async inspectAux(name: string): Promise<NewServerView> {
    const c = await this.contactOne('aux', name, newServerAddress('aux', name));
    c.link.close('inspected');
    return view(c);
  }

  async create(req: CreateRequest): Promise<CreateResult> {
    await this.requirePostgres();
    const known = await this.deps.store.listServers();
    for (const role of ROLES) requireNewServer(known, req.servers[role], newServerAddress(role, req.servers[role]));
    const contacted = await this.contact(req.servers);
    try {
      for (const c of contacted) requireApproved(c, req);
      const tripletId = randomBytes(8).toString('hex');
      const packages = await this.packages(contacted, tripletId);
      for (const c of contacted) await this.send(c, JOIN_CHECK, packages.get(c.role)!);
      const now = new Date().toISOString();
      const rec: TripletAddition = { phase: 'applying', servers: contacted.map((c) => serverRow(c, tripletId, now)), applied: [] };
      await this.record(tripletAdditionMeta(this.deps.config.tripletId), rec);
      for (const c of contacted) {
        try {
          await this.send(c, JOIN_APPLY, packages.get(c.role)!);
        } catch (e) {
          if (rec.applied.length === 0) throw e;
          throw scaleError(
            'EKM_JOIN_PARTIAL',
            `${rec.applied.map((r) => `${ROLE_LABEL[r]} ${req.servers[r]}`).join(' and ')} joined, but ${ROLE_LABEL[c.role]} ${c.name} did not: ${(e as Error).message}`,
            `the cluster itself is unchanged: ${rebootstrapHint(rec)}`,
          );
        }
        rec.applied.push(c.role);
        await this.record(tripletAdditionMeta(this.deps.config.tripletId), rec);
        failpoint(`scale:triplet-add:applied-${c.role}`);
      }
      await this.registerTriplet(rec.servers);
      return { tripletId, servers: contacted.map(view) };
    } finally {
      for (const c of contacted) c.link.close('done');
    }
  }

  /**
   * `ucl server delete <name>`: the server leaves the cluster's list (and `ucl server test`). Not
   * a server of this EP's own triplet (that would cut the ground from under the request; the
   * cluster's only triplet in particular), and not one whose triplet is in service unless forced:
   * stop the triplet first. Its stores' data stay: they are the cluster's shared role databases.
   */
  async delete(name: string, force: boolean): Promise<ServerRow> {
    const members = await this.deps.store.listServers();
    const row = members.find((m) => m.name === name);
    if (!row) throw scaleError('EKM_SERVER_UNKNOWN', `no server ${name} in this cluster`, 'ucl server list shows them');
    if (row.tripletId === this.deps.config.tripletId) {
      const only = new Set(members.map((m) => m.tripletId)).size === 1;
      throw scaleError(
        'EKM_SERVER_IN_USE',
        `${ROLE_LABEL[row.role]} ${name} belongs to ${only ? "the cluster's only triplet" : 'the triplet of this EP'}`,
        only ? 'a cluster keeps at least one triplet' : 'run ucl server delete through an EP of another triplet',
      );
    }
    if (!force) {
      // Stopped means: nothing listens on any of its peer ports (a slow or unreachable EP proves nothing).
      const triplet = members.filter((m) => m.tripletId === row.tripletId);
      const states = await Promise.all(triplet.map(async (m) => ({ m, state: await portState(m.host, m.port) })));
      const running = states.filter((s) => s.state !== 'closed');
      if (running.length > 0) {
        throw scaleError(
          'EKM_SERVER_IN_USE',
          `triplet ${row.tripletId} of ${ROLE_LABEL[row.role]} ${name} still runs (${running.map((s) => `${ROLE_LABEL[s.m.role]} ${s.m.name}: ${s.state === 'open' ? 'listening' : 'no answer, maybe running'}`).join(', ')})`,
          'stop its three servers first (service ekm stop), or give --force',
        );
      }
    }
    await this.deps.store.deleteServer(name);
    this.deps.log.warn({ event: 'server_deleted', server: row, force }, 'a server left the cluster list');
    return row;
  }

  /**
   * `ucl server create -a <aux>`: a server waiting to join becomes the Aux of this EP's triplet in
   * place of the one it has (lost, broken, or moving to another machine). Needs no PostgreSQL: an
   * Aux keeps its own store. The Partner re-pins only an Aux its own operator approved
   * (`ekm approve-join --as aux`): an EP that could pick the Aux alone could hand f(3) to a server it
   * controls and so hold two shares. Then the EP re-derives the new Aux's shares and refreshes
   * every key (AuxRecovery), so that whatever the old Aux kept is worthless.
   *
   *  1. dial the new Aux, check its hello; the operator's approval (or -f);
   *  2. the Partner checks its own approval (nothing written);
   *  3. join.check, join.apply on the new Aux (it becomes this triplet's Aux, then stops);
   *  4. the Partner re-pins, then this EP; the cluster's server list follows;
   *  5. the recovery runs once the new Aux is started and linked.
   * Steps 3 and 4 are recorded in the store (meta `aux_replacement/<triplet>`): once the new Aux
   * has joined, an EP that crashed before step 4 ended finishes it when it starts again
   * (`resumeAuxReplacement`), so that EP and Partner never stay pinned to different Auxes.
   */
  replaceAux(req: ReplaceAuxRequest): Promise<CreateResult> {
    return this.serially(() => this.replaceAuxNow(req));
  }

  private async replaceAuxNow(req: ReplaceAuxRequest): Promise<CreateResult> {
    const { config, identity } = this.deps;
    const pending = await this.auxReplacementRecord();
    if (pending?.phase === 'joined') {
      throw scaleError(
        'EKM_REPLACEMENT_PENDING',
        `the replacement of this triplet's Aux by ${pending.aux.name} is still being finished`,
        'the Partner must run (and pin it); this EP keeps trying, see its log (aux_replace_pending)',
      );
    }
    // This triplet's own Aux may be replaced by a server at its address (a lost Aux rebuilt in place).
    const known = (await this.deps.store.listServers()).filter((m) => !(m.tripletId === config.tripletId && m.role === 'aux'));
    const addr = newServerAddress('aux', req.aux);
    requireNewServer(known, req.aux, addr);
    const me = known.find((m) => m.name === config.name && m.role === 'ep');
    const partner = config.peers.find((p) => p.role === 'partner');
    if (!me || !partner) throw scaleError('EKM_SERVER_UNKNOWN', `this EP ${config.name} or its Partner is missing from the cluster's server list`);
    const c = await this.contactOne('aux', req.aux, addr);
    try {
      requireApproved(c, req);
      const entry = peerEntry(c);
      await this.partnerRepinsAux(entry, false);
      const pkg: JoinPackage = {
        clusterId: config.clusterId,
        tripletId: config.tripletId,
        role: 'aux',
        name: c.name,
        peers: [{ role: 'ep', name: config.name, address: { host: me.host, port: me.port }, fingerprint: identity.fingerprint, certPem: identity.certPem }, partner],
        sealedSecret: null,
        from: { name: config.name, fingerprint: identity.fingerprint },
      };
      await this.send(c, JOIN_CHECK, pkg);
      await this.recordAuxReplacement({ phase: 'joining', aux: entry });
      failpoint('scale:aux-replace:before-apply');
      await this.send(c, JOIN_APPLY, pkg);
      await this.recordAuxReplacement({ phase: 'joined', aux: entry });
      failpoint('scale:aux-replace:joined');
      try {
        await this.finishAuxReplacement(entry);
      } catch (e) {
        // Finished in the background, as after a crash: EP and Partner must not stay apart.
        this.resumeInBackground();
        throw scaleError(
          'EKM_JOIN_PARTIAL',
          `the new Aux ${c.name} joined, but it is not pinned yet: ${(e as Error).message}`,
          'fix that (the Partner must run); this EP keeps trying to finish the replacement (its log: aux_replace_pending)',
        );
      }
      return { tripletId: config.tripletId, servers: [view(c)] };
    } finally {
      c.link.close('done');
    }
  }

  /**
   * At start: a replacement this EP recorded but did not finish. Before the new Aux joined,
   * nothing was pinned and the record is dropped (the operator bootstraps the new Aux again and
   * reruns); after, step 4 is finished, retried until the Partner is linked and agrees.
   */
  async resumeAuxReplacement(): Promise<void> {
    if (this.resuming) return;
    this.resuming = true;
    try {
      await this.resumeAuxReplacementOnce();
    } finally {
      this.resuming = false;
    }
  }

  private resumeInBackground(): void {
    this.resumeAuxReplacement().catch((e: unknown) =>
      this.deps.log.error({ event: 'aux_replace_pending', err: (e as Error).message }, 'cannot finish the Aux replacement'),
    );
  }

  private async auxReplacementRecord(): Promise<AuxReplacement | undefined> {
    const raw = await this.deps.store.getMeta(auxReplacementMeta(this.deps.config.tripletId));
    const rec = raw ? AuxReplacement.safeParse(parseJsonOrNull(raw)) : undefined;
    return rec?.success ? rec.data : undefined;
  }

  private async resumeAuxReplacementOnce(): Promise<void> {
    const rec = await this.auxReplacementRecord();
    if (!rec || rec.phase === 'done') return;
    const { aux } = rec;
    if (rec.phase === 'joining') {
      await this.recordAuxReplacement({ phase: 'done', aux });
      this.deps.log.warn(
        { event: 'aux_replace_interrupted', aux: aux.name },
        `the replacement of the Aux by ${aux.name} was cut short before anything was pinned: bootstrap ${aux.name} again (ekm_boot_additional_server.sh) and run ucl server create -a again`,
      );
      return;
    }
    this.deps.log.warn({ event: 'aux_replace_resumed', aux: aux.name }, `finishing the replacement of this triplet's Aux by ${aux.name}`);
    for (let attempt = 0; !this.deps.stopping(); attempt++) {
      try {
        await this.serially(async () => {
          // Re-read: a replacement that ran meanwhile may have finished this one.
          const now = await this.auxReplacementRecord();
          if (now?.phase === 'joined' && now.aux.fingerprint === aux.fingerprint) await this.finishAuxReplacement(aux);
        });
        return;
      } catch (e) {
        if (attempt % 30 === 0)
          this.deps.log.error({ event: 'aux_replace_pending', aux: aux.name, err: (e as Error).message }, 'the new Aux is not pinned yet; retrying');
        await new Promise((r) => setTimeout(r, 2000).unref());
      }
    }
  }

  /**
   * At start: a triplet addition this EP recorded but did not finish. Once all three new servers
   * applied their packages, they are a triplet: it is registered. Before that the cluster is
   * unchanged; the record is dropped and the log names the servers to bootstrap again.
   */
  async resumeTripletAddition(): Promise<void> {
    const raw = await this.deps.store.getMeta(tripletAdditionMeta(this.deps.config.tripletId));
    const rec = raw ? TripletAddition.safeParse(parseJsonOrNull(raw)) : undefined;
    if (!rec?.success || rec.data.phase === 'done') return;
    if (rec.data.applied.length === ROLES.length) {
      this.deps.log.warn({ event: 'triplet_add_resumed', tripletId: rec.data.servers[0]?.tripletId }, 'registering the triplet whose addition a crash cut short');
      await this.registerTriplet(rec.data.servers);
      return;
    }
    await this.record(tripletAdditionMeta(this.deps.config.tripletId), { ...rec.data, phase: 'done' });
    this.deps.log.warn(
      { event: 'triplet_add_interrupted', applied: rec.data.applied },
      `the addition of a triplet was cut short; the cluster is unchanged: ${rebootstrapHint(rec.data)}`,
    );
  }

  /** The new triplet's servers join the cluster's list (and `ucl server test`); the addition is done. */
  private async registerTriplet(rows: readonly ServerRow[]): Promise<void> {
    for (const row of rows) await this.deps.store.upsertServer(row);
    await this.record(tripletAdditionMeta(this.deps.config.tripletId), { phase: 'done', servers: [...rows], applied: rows.map((r) => r.role) });
    this.deps.log.warn({ event: 'triplet_added', tripletId: rows[0]?.tripletId, servers: rows.map((r) => r.name) }, 'a triplet joined the cluster');
  }

  /** Step 4 and after; each part may run again (a resumed replacement). */
  private async finishAuxReplacement(aux: PeerEntry): Promise<void> {
    const { config, store } = this.deps;
    await this.partnerRepinsAux(aux, true);
    failpoint('scale:aux-replace:partner-pinned');
    await this.deps.auxReplaced(aux);
    const old = (await store.listServers()).filter((m) => m.tripletId === config.tripletId && m.role === 'aux' && m.name !== aux.name);
    for (const o of old) await store.deleteServer(o.name);
    await store.upsertServer({
      name: aux.name,
      role: 'aux',
      tripletId: config.tripletId,
      host: aux.address.host,
      port: aux.address.port,
      api: null,
      fingerprint: aux.fingerprint,
      addedAt: new Date().toISOString(),
    });
    await this.recordAuxReplacement({ phase: 'done', aux });
    this.deps.log.warn(
      { event: 'aux_replaced', tripletId: config.tripletId, old: old.map((o) => o.name), aux: aux.name, fingerprint: aux.fingerprint },
      "this triplet's Aux was replaced: its shares are re-derived, then every key is refreshed, once it runs",
    );
  }

  private recordAuxReplacement(rec: AuxReplacement): Promise<void> {
    return this.record(auxReplacementMeta(this.deps.config.tripletId), rec);
  }

  private record(meta: string, rec: AuxReplacement | TripletAddition): Promise<void> {
    return this.deps.store.setMeta(meta, JSON.stringify(rec));
  }

  /** Step 2 (`apply` false: the Partner only checks) and step 4 of replaceAux, on this EP's Partner. */
  private async partnerRepinsAux(aux: PeerEntry, apply: boolean): Promise<void> {
    const link = this.deps.peers.link('partner');
    if (!link)
      throw scaleError('EKM_PARTNER_DOWN', 'this EP has no link to its Partner, which must pin the new Aux too', 'start the Partner and run this again');
    const body = encodeJson({ clusterId: this.deps.config.clusterId, tripletId: this.deps.config.tripletId, aux, apply });
    try {
      AuxRepinAnswer.parse(decodeJson(await link.request(AUX_REPIN_METHOD, body, 10_000)));
    } catch (e) {
      if (e instanceof EkmError) throw peerRefusal(e);
      throw scaleError('EKM_PEER_PROTOCOL', 'the Partner answered the Aux re-pin request with something else');
    }
  }

  private async requirePostgres(): Promise<void> {
    if (this.deps.config.store.kind !== 'postgres') {
      throw scaleError(
        'EKM_SCALE_OUT_NEEDS_POSTGRES',
        'this cluster keeps its EP store in SQLite: triplets can only be added to a cluster whose EP and Partner stores are on PostgreSQL',
        'bootstrap the cluster with -externaldb (docs/operations.md, "Running with PostgreSQL")',
      );
    }
  }

  /** Dials the three, reads and checks their hellos. */
  private async contact(servers: NewTriplet): Promise<Contacted[]> {
    const addrs = ROLES.map((role) => ({
      role,
      name: servers[role],
      addr: newServerAddress(role, servers[role]),
    }));
    if (new Set(addrs.map((a) => formatAddress(a.addr))).size !== 3) {
      throw scaleError('EKM_BAD_INPUT', 'the new EP, Partner and Aux must be three different host:port addresses');
    }
    const out: Contacted[] = [];
    try {
      for (const a of addrs) out.push(await this.contactOne(a.role, a.name, a.addr));
    } catch (e) {
      for (const c of out) c.link.close('aborted');
      throw e;
    }
    return out;
  }

  private async contactOne(role: Role, name: string, addr: ServerAddress): Promise<Contacted> {
    const label = `${ROLE_LABEL[role]} ${name}`;
    const { link, certPem, fingerprint } = await this.dial(label, addr);
    let hello: JoinHello;
    try {
      const raw = await link.request(JOIN_HELLO, new Uint8Array(0), DIAL_TIMEOUT_MS).catch((e: unknown) => {
        throw scaleError(
          'EKM_NOT_WAITING',
          `${label} does not wait to join a cluster (${(e as Error).message})`,
          'bootstrap it with ekm_boot_additional_server.sh -s <name> -fips first',
        );
      });
      const parsed = JoinHello.safeParse(decodeJson(raw));
      if (!parsed.success)
        throw scaleError('EKM_NOT_WAITING', `${label} answered with something that is not an ekm server waiting to join`);
      hello = parsed.data;
    } catch (e) {
      link.close('refused');
      throw e;
    }
    const refuse = (code: ErrorCode, message: string, hint?: string): never => {
      link.close('refused');
      throw scaleError(code, message, hint);
    };
    if (hello.fingerprint !== fingerprint) refuse('EKM_JOIN_REFUSED', `${label} names another certificate than the one it presents`);
    if (hello.state !== 'waiting')
      refuse('EKM_NOT_WAITING', `${label} has joined a cluster already`, 'start it with `service ekm start`, or bootstrap it again');
    if (hello.protocol !== PEER_PROTOCOL_VERSION || hello.version !== VERSION) {
      refuse(
        'EKM_VERSION_MISMATCH',
        `${label} runs ekm ${hello.version}, the cluster runs ${VERSION}`,
        'install the release the cluster runs on the new servers (the seed: "matches the software release in the cluster")',
      );
    }
    if (!hello.fips) refuse('EKM_JOIN_REFUSED', `${label} was not bootstrapped with -fips`);
    return { role, name, address: formatAddress(addr), fingerprint, version: hello.version, addr, certPem, apiPort: hello.apiPort, link };
  }

  /** Not trusted yet: the operator approves the fingerprint the server presents (step 2). */
  private async dial(label: string, addr: ServerAddress): Promise<{ link: PeerLink; certPem: string; fingerprint: string }> {
    const unreachable = (why: string, hint: string): EkmError =>
      scaleError('EKM_SERVER_UNREACHABLE', `${label}${label.endsWith(formatAddress(addr)) ? '' : ` (${formatAddress(addr)})`}: ${why}`, hint);
    let dialed: Dialed;
    try {
      dialed = await dialUnpinned({ identity: this.deps.identity, host: addr.host, port: addr.port, timeoutMs: DIAL_TIMEOUT_MS });
    } catch (e) {
      const why = e as DialFailure;
      if (why.kind === 'timeout')
        throw unreachable('no answer (timeout)', 'is it bootstrapped and started (ekm_boot_additional_server.sh), and reachable from this EP?');
      const refused = why.err.code === 'ECONNREFUSED';
      throw unreachable(
        refused ? 'connection refused' : describeSocketError(why.err),
        refused
          ? 'bootstrap it with ekm_boot_additional_server.sh -s <name> -fips (which starts it), then run this again'
          : 'check the name and the network',
      );
    }
    const { socket, cert } = dialed;
    if (!cert) {
      socket.destroy();
      throw unreachable('presented no certificate', 'it is not an ekm server');
    }
    const link = new PeerLink(socket, label);
    link.attach({
      onRequest: () => {
        throw scaleError('EKM_PEER_PROTOCOL', 'no requests on this connection');
      },
    });
    return { link, certPem: cert.toString(), fingerprint: cert.fingerprint256 };
  }

  private async packages(contacted: readonly Contacted[], tripletId: string): Promise<Map<Role, JoinPackage>> {
    const { config } = this.deps;
    const out = new Map<Role, JoinPackage>();
    for (const c of contacted) {
      let sealedSecret: string | null = null;
      if (c.role === 'ep')
        sealedSecret = sealRoleSecret(this.ownRoleSecret(), { certPem: c.certPem, clusterId: config.clusterId, role: 'ep' });
      if (c.role === 'partner') sealedSecret = await this.partnerRoleSecret(c);
      out.set(c.role, {
        clusterId: config.clusterId,
        tripletId,
        role: c.role,
        name: c.name,
        ...(c.role === 'ep' && c.apiPort !== undefined ? { apiPort: c.apiPort } : {}),
        peers: contacted.filter((o) => o.role !== c.role).map(peerEntry),
        sealedSecret,
        from: { name: config.name, fingerprint: this.deps.identity.fingerprint },
      });
    }
    return out;
  }

  private ownRoleSecret(): RoleSecret {
    return { systemKey: readFileSync(this.deps.paths.systemKey).toString('base64'), store: this.deps.config.store };
  }

  /** The Partner seals its own role secret to the new Partner; this EP only relays it. */
  private async partnerRoleSecret(c: Contacted): Promise<string> {
    const link = this.deps.peers.link('partner');
    if (!link)
      throw scaleError(
        'EKM_PARTNER_DOWN',
        "this EP has no link to its Partner, which must hand on the Partner role's secret",
        'start the Partner and run this again',
      );
    const body = encodeJson({ clusterId: this.deps.config.clusterId, recipientCertPem: c.certPem, recipientFingerprint: c.fingerprint });
    const parsed = RoleSecretAnswer.safeParse(decodeJson(await link.request(ROLE_SECRET_METHOD, body, 10_000)));
    if (!parsed.success) throw scaleError('EKM_PEER_PROTOCOL', 'the Partner answered the role-secret request with something else');
    return parsed.data.sealed;
  }

  private async send(c: Contacted, method: string, pkg: JoinPackage): Promise<void> {
    let raw: Uint8Array;
    try {
      raw = await c.link.request(method, encodeJson(pkg), 30_000);
    } catch (e) {
      // The new server's refusal (e.g. it cannot open the role's database) keeps its code and reason.
      if (e instanceof EkmError)
        throw peerRefusal(e, method === JOIN_CHECK ? 'nothing was changed; fix it and run ucl server create again' : undefined);
      throw scaleError('EKM_JOIN_REFUSED', `${ROLE_LABEL[c.role]} ${c.name}: ${(e as Error).message}`);
    }
    if (!JoinAnswer.safeParse(decodeJson(raw)).success)
      throw scaleError('EKM_JOIN_REFUSED', `${ROLE_LABEL[c.role]} ${c.name} did not confirm ${method}`);
  }
}

function parseJsonOrNull(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const auxReplacementMeta = (tripletId: string): string => `aux_replacement/${tripletId}`;
/** An addition started by the EP of `tripletId` (the new triplet's servers, and which applied their package). */
const tripletAdditionMeta = (tripletId: string): string => `triplet_addition/${tripletId}`;
const TripletAddition = z.object({
  phase: z.enum(['applying', 'done']),
  servers: z.array(
    z.object({
      name: z.string(),
      role: z.enum(ROLES),
      tripletId: z.string(),
      host: z.string(),
      port: z.number(),
      api: z.string().nullable(),
      fingerprint: z.string(),
      addedAt: z.string(),
    }),
  ),
  applied: z.array(z.enum(ROLES)),
});
type TripletAddition = z.infer<typeof TripletAddition>;

function serverRow(c: Contacted, tripletId: string, addedAt: string): ServerRow {
  return {
    name: c.name,
    role: c.role,
    tripletId,
    host: c.addr.host,
    port: c.addr.port,
    api: c.role === 'ep' ? formatAddress({ host: c.addr.host, port: c.apiPort ?? DEFAULT_API_PORT }) : null,
    fingerprint: c.fingerprint,
    addedAt,
  };
}

/** What the operator does after a cut-short addition: the servers that joined must be bootstrapped again. */
function rebootstrapHint(rec: TripletAddition): string {
  const joined = rec.servers.filter((s) => rec.applied.includes(s.role)).map((s) => `${ROLE_LABEL[s.role]} ${s.name}`);
  // The record is written after each package applied: the next server may have applied its own just before a crash.
  const also = 'any other of the three that says it has joined a cluster already';
  return `bootstrap ${joined.length > 0 ? `${joined.join(' and ')} and ${also}` : also} again (remove its EKM_HOME, ekm_boot_additional_server.sh; the others still wait) and run ucl server create again`;
}
const AuxReplacement = z.object({ phase: z.enum(['joining', 'joined', 'done']), aux: PeerEntry });
type AuxReplacement = z.infer<typeof AuxReplacement>;

/** A new server must not be one the cluster knows, by name or by address. */
function requireNewServer(known: readonly ServerRow[], name: string, addr: ServerAddress): void {
  const clash = known.find((s) => s.name === name || (s.host === addr.host && s.port === addr.port));
  if (clash) {
    throw scaleError('EKM_SERVER_EXISTS', `${name} is already the ${ROLE_LABEL[clash.role]} ${clash.name} of triplet ${clash.tripletId}`, 'name a new server');
  }
}

/** Step 2: the operator approved exactly the certificate the server presents (or forced). */
function requireApproved(c: Contacted, req: { readonly approve: Readonly<Record<string, string>>; readonly force: boolean }): void {
  if (req.force) return;
  const approved = req.approve[c.name];
  if (approved === undefined)
    throw scaleError('EKM_NOT_APPROVED', `the certificate of ${ROLE_LABEL[c.role]} ${c.name} was not approved`, 'approve each fingerprint (ucl asks), or use -f');
  if (approved.toUpperCase() !== c.fingerprint) {
    throw scaleError(
      'EKM_NOT_APPROVED',
      `${ROLE_LABEL[c.role]} ${c.name} presents certificate ${c.fingerprint}, not the approved ${approved}`,
      'check the fingerprint its bootstrap printed',
    );
  }
}

function peerEntry(c: Contacted): PeerEntry {
  return { role: c.role, name: c.name, address: c.addr, fingerprint: c.fingerprint, certPem: c.certPem };
}

/** A new server's host[:port], parsed; errors name its ucl server create flag (-e, -p or -a). */
function newServerAddress(role: Role, name: string): ServerAddress {
  return parseServerName(name, role === 'ep' ? '-e' : role === 'partner' ? '-p' : '-a');
}

/** Whether something listens on host:port: 'open', 'closed' (refused), or 'unknown' (no answer). */
function portState(host: string, port: number, timeoutMs = 2000): Promise<'open' | 'closed' | 'unknown'> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (state: 'open' | 'closed' | 'unknown'): void => {
      socket.destroy();
      resolve(state);
    };
    socket.setTimeout(timeoutMs, () => done('unknown'));
    socket.once('connect', () => done('open'));
    socket.once('error', (e: NodeJS.ErrnoException) => done(e.code === 'ECONNREFUSED' ? 'closed' : 'unknown'));
  });
}

function view(c: Contacted): NewServerView {
  return { role: c.role, name: c.name, address: c.address, fingerprint: c.fingerprint, version: c.version };
}

/**
 * The Partner's side of step 3: its role-group secret, sealed to the new Partner's certificate.
 * Only its own EP may ask, only for a certificate this Partner's operator approved too
 * (src/cluster/join-approvals.ts), and every release is logged.
 */
export function roleSecretHandler(deps: { readonly config: ServerConfig; readonly paths: HomePaths; readonly log: Logger }) {
  return (body: Uint8Array, from: Role | undefined): Uint8Array => {
    if (from !== 'ep')
      throw scaleError('EKM_PEER_PROTOCOL', `only this Partner's EP may ask for the role secret, not ${from ?? 'an unknown peer'}`);
    if (deps.config.role !== 'partner') throw scaleError('EKM_PEER_PROTOCOL', 'only a Partner hands on the Partner role secret');
    if (deps.config.store.kind !== 'postgres') {
      throw scaleError(
        'EKM_SCALE_OUT_NEEDS_POSTGRES',
        'the Partner keeps its store in SQLite: triplets can only be added when the Partner store is on PostgreSQL',
        'bootstrap the cluster with -externaldb',
      );
    }
    const req = RoleSecretRequest.safeParse(decodeJson(body));
    if (!req.success || req.data.clusterId !== deps.config.clusterId)
      throw scaleError('EKM_PEER_PROTOCOL', 'malformed role-secret request');
    if (new X509Certificate(req.data.recipientCertPem).fingerprint256 !== req.data.recipientFingerprint) {
      throw scaleError('EKM_PEER_PROTOCOL', 'the role-secret request names another certificate than it carries');
    }
    if (!isJoinApproved(deps.paths, req.data.recipientFingerprint, 'partner')) {
      deps.log.warn({ event: 'role_secret_refused', to: req.data.recipientFingerprint }, 'the EP asked for the Partner role secret for a Partner this operator has not approved');
      throw scaleError(
        'EKM_NOT_APPROVED',
        `the Partner ${deps.config.name} has not approved the new Partner ${req.data.recipientFingerprint}`,
        `on ${deps.config.name} run \`ekm approve-join ${req.data.recipientFingerprint}\` (valid 1 h), then ucl server create again`,
      );
    }
    const secret: RoleSecret = { systemKey: readFileSync(deps.paths.systemKey).toString('base64'), store: deps.config.store };
    const sealed = sealRoleSecret(secret, { certPem: req.data.recipientCertPem, clusterId: deps.config.clusterId, role: 'partner' });
    deps.log.warn(
      { event: 'role_secret_released', to: req.data.recipientFingerprint },
      'the Partner role secret was sealed to a new Partner (ucl server create on the EP)',
    );
    return encodeJson({ sealed });
  };
}

/**
 * The Partner's side of `ucl server create -a`: it pins the new Aux of its triplet only if its own
 * operator approved that certificate as the new Aux too (`ekm approve-join --as aux`), and only when its EP asks.
 */
export function auxRepinHandler(deps: {
  readonly config: ServerConfig;
  readonly paths: HomePaths;
  readonly log: Logger;
  /** Whether this Partner pins exactly this Aux already. */
  readonly pinsAux: (aux: PeerEntry) => boolean;
  readonly repin: (aux: PeerEntry) => Promise<void>;
}) {
  return async (body: Uint8Array, from: Role | undefined): Promise<Uint8Array> => {
    if (from !== 'ep') throw scaleError('EKM_PEER_PROTOCOL', `only this Partner's EP may replace its Aux, not ${from ?? 'an unknown peer'}`);
    const req = AuxRepinRequest.safeParse(decodeJson(body));
    if (!req.success || req.data.clusterId !== deps.config.clusterId || req.data.tripletId !== deps.config.tripletId || req.data.aux.role !== 'aux')
      throw scaleError('EKM_PEER_PROTOCOL', 'malformed Aux re-pin request');
    const { aux, apply } = req.data;
    if (new X509Certificate(aux.certPem).fingerprint256 !== aux.fingerprint)
      throw scaleError('EKM_PEER_PROTOCOL', 'the Aux re-pin request names another certificate than it carries');
    // Pinned already (a replacement the EP finishes after a crash, maybe after the approval ran out): nothing to decide.
    if (deps.pinsAux(aux)) return encodeJson({ ok: true });
    if (!isJoinApproved(deps.paths, aux.fingerprint, 'aux')) {
      deps.log.warn({ event: 'aux_repin_refused', aux: aux.name, fingerprint: aux.fingerprint }, 'the EP asked to pin a new Aux this operator has not approved');
      throw scaleError(
        'EKM_NOT_APPROVED',
        `the Partner ${deps.config.name} has not approved the new Aux ${aux.name} (${aux.fingerprint})`,
        `on ${deps.config.name} run \`ekm approve-join --as aux ${aux.fingerprint}\` (valid 1 h), then ucl server create -a again`,
      );
    }
    if (apply) {
      await deps.repin(aux);
      deps.log.warn({ event: 'aux_replaced', aux: aux.name, fingerprint: aux.fingerprint }, 'this Partner pins a new Aux (ucl server create -a on the EP)');
    }
    return encodeJson({ ok: true });
  };
}
