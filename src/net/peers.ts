/**
 * The peer links of one server: a TLS 1.3 listener that admits only pinned peers, and one
 * long-lived outgoing connection to each peer with a higher party number (EP dials Partner and
 * Aux, Partner dials Aux), redialled with capped exponential backoff. Because exactly one side
 * dials each pair, there is never a duplicate-connection race; a restarted dialer's new
 * connection replaces the old one at the acceptor. Together this makes every start order converge.
 */
import { EventEmitter } from 'node:events';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { EkmError } from '../errors.js';
import { PEER_PROTOCOL_VERSION, releasesInteroperate } from '../version.js';
import { DEFAULT_LINK_OPTIONS, type LinkHandlers, type LinkOptions, PeerLink } from './link.js';
import { type DialFailure, dialUnpinned } from './unpinned-dialer.js';
import { z } from 'zod';

export type PeerRole = 'ep' | 'partner' | 'aux';
const PARTY: Record<PeerRole, number> = { ep: 1, partner: 2, aux: 3 };

export interface PeerSpec {
  readonly role: PeerRole;
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly fingerprint: string;
}

export interface SelfSpec {
  readonly role: PeerRole;
  readonly name: string;
  readonly listenHost: string;
  readonly listenPort: number;
  readonly clusterId: string;
  readonly tripletId: string;
  readonly version: string;
  readonly keyPem: string;
  readonly certPem: string;
}

export const Hello = z.object({
  protocol: z.number().int(),
  version: z.string(),
  role: z.enum(['ep', 'partner', 'aux']),
  name: z.string(),
  clusterId: z.string(),
  tripletId: z.string(),
  purpose: z.literal('link'),
});
export type Hello = z.infer<typeof Hello>;

/** Why the last attempt to reach a peer failed; `untrusted` covers pin mismatches and refusals. */
export type LinkProblem = { kind: 'unreachable' | 'untrusted' | 'incompatible'; message: string; at: number };

export interface PeerStatus {
  readonly role: PeerRole;
  readonly name: string;
  readonly up: boolean;
  readonly since: number;
  readonly remoteVersion?: string;
  readonly problem?: LinkProblem;
}

interface PeerState {
  spec: PeerSpec;
  link?: PeerLink;
  /** The release the peer reported in its last hello, also when it was refused for it. */
  remoteVersion?: string;
  since: number;
  problem?: LinkProblem;
  attempt: number;
  timer?: NodeJS.Timeout;
  dialing: boolean;
}

export interface PeerManagerOptions {
  readonly self: SelfSpec;
  readonly peers: readonly PeerSpec[];
  readonly handlers: LinkHandlers;
  readonly log: Logger;
  readonly link?: LinkOptions;
  /** Backoff between dial attempts: starts at `min`, doubles, capped at `max` (ms). */
  readonly backoff?: { min: number; max: number };
  readonly helloTimeoutMs?: number;
}

export class PeerManager extends EventEmitter {
  private server: tls.Server | undefined;
  private readonly states = new Map<PeerRole, PeerState>();
  private stopped = false;
  private readonly backoff: { min: number; max: number };
  private readonly linkOpts: LinkOptions;
  private readonly helloTimeoutMs: number;

  constructor(private readonly opts: PeerManagerOptions) {
    super();
    this.backoff = opts.backoff ?? { min: 50, max: 500 };
    this.linkOpts = opts.link ?? DEFAULT_LINK_OPTIONS;
    this.helloTimeoutMs = opts.helloTimeoutMs ?? 3000;
    for (const spec of opts.peers) this.states.set(spec.role, { spec, since: Date.now(), attempt: 0, dialing: false });
  }

  get self(): SelfSpec {
    return this.opts.self;
  }

  /** Listens on the peer port and starts dialling; rejects (with an operator message) if the port is taken. */
  async start(): Promise<void> {
    const { self } = this.opts;
    const server = tls.createServer({
      key: self.keyPem,
      cert: self.certPem,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      requestCert: true,
      // Peers use self-signed certificates; trust comes from the pinned fingerprint checked below.
      rejectUnauthorized: false,
    });
    server.on('secureConnection', (socket) => this.accept(socket));
    server.on('tlsClientError', (err, socket) => {
      this.opts.log.warn({ event: 'peer_tls_error', remote: socket.remoteAddress, err: err.message }, 'peer TLS handshake failed');
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, self.listenHost, self.listenPort, 'peer')));
      server.listen(self.listenPort, self.listenHost, () => resolve());
    });
    server.on('error', (err) => this.opts.log.error({ err: err.message }, 'peer listener error'));
    this.server = server;
    for (const st of this.states.values()) if (this.dialsTo(st.spec.role)) this.dial(st);
  }

  listenPort(): number {
    return (this.server?.address() as AddressInfo | null)?.port ?? this.opts.self.listenPort;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const st of this.states.values()) {
      if (st.timer) clearTimeout(st.timer);
      st.link?.close('server stopping');
    }
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  link(role: PeerRole): PeerLink | undefined {
    const l = this.states.get(role)?.link;
    return l && !l.closed ? l : undefined;
  }

  requireLink(role: PeerRole): PeerLink {
    const l = this.link(role);
    if (!l) {
      const st = this.states.get(role);
      throw new EkmError(
        'EKM_PEER_DOWN',
        `${role} ${st?.spec.name ?? ''} is not connected${st?.problem ? ` (${st.problem.message})` : ''}`,
        { hint: 'check that the server runs and that `ucl server test` shows it ok' },
      );
    }
    return l;
  }

  allUp(): boolean {
    for (const st of this.states.values()) if (!this.link(st.spec.role)) return false;
    return true;
  }

  status(): PeerStatus[] {
    return [...this.states.values()].map((st) => ({
      role: st.spec.role,
      name: st.spec.name,
      up: this.link(st.spec.role) !== undefined,
      since: st.since,
      ...(st.remoteVersion ? { remoteVersion: st.remoteVersion } : {}),
      ...(st.problem ? { problem: st.problem } : {}),
    }));
  }

  /** Resolves when every peer link is up (or rejects after `timeoutMs`). */
  waitAllUp(timeoutMs: number): Promise<void> {
    if (this.allUp()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('up', check);
        reject(new EkmError('EKM_PEER_DOWN', `peers not all connected after ${timeoutMs} ms`));
      }, timeoutMs);
      const check = (): void => {
        if (!this.allUp()) return;
        clearTimeout(timer);
        this.off('up', check);
        resolve();
      };
      this.on('up', check);
    });
  }

  /**
   * Dials now every peer that this side dials and has no link to, instead of waiting out the
   * backoff (up to 0.5 s), and resolves once each attempt has ended (link up or failed) or after
   * `waitMs`. A status probe calls it, so that `ucl server test` run just after a peer started
   * finds it linked rather than "unreachable" until the next scheduled dial.
   */
  async redialNow(waitMs: number): Promise<void> {
    const pending = [...this.states.values()].filter((st) => this.dialsTo(st.spec.role) && !st.link);
    if (this.stopped || pending.length === 0) return;
    for (const st of pending) {
      if (st.dialing) continue;
      clearTimeout(st.timer);
      st.timer = undefined;
      st.attempt = 0;
      this.dial(st);
    }
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.off('dial-ended', check);
        resolve();
      };
      const check = (): void => {
        if (pending.every((st) => !st.dialing)) done();
      };
      const timer = setTimeout(done, waitMs);
      this.on('dial-ended', check);
      check();
    });
  }

  /**
   * Pins another server in `spec.role`'s place (an Aux replaced by `ucl server create -a`): the
   * link to the old one closes, a dial still in flight to it is discarded, and the new one is
   * dialled (or awaited) at once. The caller persists the pin first (server.json).
   */
  replacePeer(spec: PeerSpec): void {
    const st = this.states.get(spec.role);
    if (!st) throw new Error(`no ${spec.role} peer to replace`);
    const old = st.spec;
    st.spec = spec;
    st.problem = undefined;
    st.attempt = 0;
    st.since = Date.now();
    clearTimeout(st.timer);
    st.timer = undefined;
    const oldLink = st.link;
    st.link = undefined;
    oldLink?.close(`${old.role} ${old.name} replaced by ${spec.name}`);
    this.opts.log.warn({ event: 'peer_replaced', peer: spec.role, old: old.name, new: spec.name, fingerprint: spec.fingerprint }, 'peer pin replaced');
    if (this.dialsTo(spec.role) && !this.stopped) {
      st.dialing = false;
      this.dial(st);
    }
  }

  private dialsTo(role: PeerRole): boolean {
    return PARTY[this.opts.self.role] < PARTY[role];
  }

  private hello(): Hello {
    const s = this.opts.self;
    return {
      protocol: PEER_PROTOCOL_VERSION,
      version: s.version,
      role: s.role,
      name: s.name,
      clusterId: s.clusterId,
      tripletId: s.tripletId,
      purpose: 'link',
    };
  }

  private scheduleDial(st: PeerState): void {
    if (this.stopped || st.timer) return;
    const base = Math.min(this.backoff.max, this.backoff.min * 2 ** st.attempt);
    const delay = base * (0.75 + Math.random() * 0.5);
    st.attempt = Math.min(st.attempt + 1, 20);
    st.timer = setTimeout(() => {
      st.timer = undefined;
      this.dial(st);
    }, delay);
    st.timer.unref();
  }

  private dial(st: PeerState): void {
    if (this.stopped || st.dialing || this.link(st.spec.role)) return;
    st.dialing = true;
    const { self } = this.opts;
    // The pin this attempt checks against: replacePeer may pin another server meanwhile.
    const spec = st.spec;
    let socket: tls.TLSSocket | undefined;
    const fail = (problem: LinkProblem['kind'], message: string): void => {
      socket?.destroy();
      if (st.spec !== spec) return;
      st.dialing = false;
      this.setProblem(st, problem, message);
      this.scheduleDial(st);
      this.emit('dial-ended', st.spec.role);
    };
    const unreachable = (why: DialFailure): void =>
      fail('unreachable', why.kind === 'timeout' ? 'TLS handshake timed out' : describeSocketError(why.err));
    void dialUnpinned({ identity: self, host: spec.host, port: spec.port, timeoutMs: this.helloTimeoutMs }).then(({ socket: dialed, cert }) => {
      socket = dialed;
      const fp = cert?.fingerprint256;
      if (fp !== spec.fingerprint) {
        this.opts.log.error(
          { event: 'security', kind: 'peer_pin_mismatch', peer: spec.role, name: spec.name, presented: fp, approved: spec.fingerprint },
          'peer presented a certificate that was not approved; refusing it',
        );
        fail('untrusted', `presented certificate ${fp ?? 'none'}, approved ${spec.fingerprint}`);
        return;
      }
      const link = new PeerLink(dialed, `${spec.role} ${spec.name}`, this.linkOpts);
      link.sendHello(this.hello());
      link
        .awaitHello(this.helloTimeoutMs)
        .then((h) => {
          const hello = this.checkHello(h, spec);
          if (st.spec !== spec) {
            link.close('the peer was replaced');
            return;
          }
          st.dialing = false;
          this.install(st, link, hello);
          this.emit('dial-ended', st.spec.role);
        })
        .catch((err: Error) => {
          if (err instanceof IncompatibleRelease) st.remoteVersion = err.remoteVersion;
          const kind = err instanceof EkmError && err.code === 'EKM_PEER_REFUSED' ? 'untrusted' : err instanceof IncompatiblePeer ? 'incompatible' : 'unreachable';
          link.close(err.message);
          fail(kind, err.message);
        });
    }, unreachable);
  }

  private accept(socket: tls.TLSSocket): void {
    const fp = socket.getPeerX509Certificate()?.fingerprint256;
    // Only from the peers that dial this side (one side dials each pair): a server this side dials
    // itself has no business connecting here.
    const st = [...this.states.values()].find((s) => s.spec.fingerprint === fp && !this.dialsTo(s.spec.role));
    const label = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    const link = new PeerLink(socket, st ? `${st.spec.role} ${st.spec.name}` : label, this.linkOpts);
    if (!st) {
      this.opts.log.warn(
        { event: 'security', kind: 'peer_unapproved', remote: label, fingerprint: fp ?? null },
        'refused a connection from a peer whose certificate is not approved',
      );
      link.refuse('certificate not approved by this server');
      return;
    }
    // The pin this connection was admitted under: replacePeer may pin another server meanwhile.
    const spec = st.spec;
    link
      .awaitHello(this.helloTimeoutMs)
      .then((h) => {
        const hello = this.checkHello(h, spec);
        if (st.spec !== spec) throw new Error(`${spec.role} ${spec.name} was replaced while it connected`);
        link.sendHello(this.hello());
        this.install(st, link, hello);
      })
      .catch((err: Error) => {
        this.opts.log.warn({ peer: st.spec.role, code: (err as Partial<EkmError>).code, err: err.message }, 'peer handshake failed');
        // On a release mismatch the dialer is an approved peer of this cluster: answer its hello
        // before refusing, so it checks the releases itself and reports both versions.
        if (err instanceof IncompatibleRelease) link.sendHello(this.hello());
        if (err instanceof IncompatiblePeer) link.refuse(err.message);
        else link.close(err.message);
      });
  }

  private checkHello(raw: unknown, spec: PeerSpec): Hello {
    const parsed = Hello.safeParse(raw);
    if (!parsed.success) throw new IncompatiblePeer(`${spec.role} ${spec.name} sent a malformed hello`);
    const h = parsed.data;
    const self = this.opts.self;
    if (h.role !== spec.role) throw new IncompatiblePeer(`${spec.name} says it is ${h.role}, approved as ${spec.role}`);
    if (h.clusterId !== self.clusterId) throw new IncompatiblePeer(`${spec.role} ${spec.name} belongs to cluster ${h.clusterId}, not ${self.clusterId}`);
    if (h.protocol !== PEER_PROTOCOL_VERSION) {
      throw new IncompatiblePeer(`${spec.role} ${spec.name} speaks peer protocol ${h.protocol}, this server ${PEER_PROTOCOL_VERSION}`);
    }
    if (!releasesInteroperate(h.version, self.version)) throw new IncompatibleRelease(spec, h.version, self.version);
    return h;
  }

  private install(st: PeerState, link: PeerLink, hello: Hello): void {
    const old = st.link;
    st.link = link;
    link.peerRole = st.spec.role;
    st.remoteVersion = hello.version;
    st.since = Date.now();
    st.attempt = 0;
    st.problem = undefined;
    if (old && old !== link) old.close('replaced by a new connection');
    link.on('handler-error', (what: string, err: unknown) =>
      this.opts.log.error({ peer: st.spec.role, what, err: err instanceof Error ? err.message : String(err) }, 'peer request handler failed'),
    );
    link.once('close', (reason: string) => {
      if (st.link !== link) return;
      st.link = undefined;
      st.since = Date.now();
      this.opts.log.info({ peer: st.spec.role, name: st.spec.name, reason }, 'peer link down');
      this.emit('down', st.spec.role);
      if (this.dialsTo(st.spec.role)) {
        st.attempt = 0;
        this.scheduleDial(st);
      }
    });
    link.attach(this.opts.handlers);
    this.opts.log.info({ peer: st.spec.role, name: st.spec.name, version: hello.version }, 'peer link up');
    this.emit('up', st.spec.role);
  }

  private setProblem(st: PeerState, kind: LinkProblem['kind'], message: string): void {
    const prev = st.problem;
    st.problem = { kind, message, at: Date.now() };
    if (!prev || prev.kind !== kind || prev.message !== message) {
      if (kind === 'incompatible') this.opts.log.error({ peer: st.spec.role, name: st.spec.name, kind, message }, 'peer link refused: incompatible peer');
      else this.opts.log.info({ peer: st.spec.role, name: st.spec.name, kind, message }, 'peer not reachable yet');
    }
  }
}

class IncompatiblePeer extends EkmError {
  constructor(message: string, code: 'EKM_PEER_INCOMPATIBLE' | 'EKM_RELEASE_INCOMPATIBLE' = 'EKM_PEER_INCOMPATIBLE') {
    super(code, message);
  }
}

/**
 * A peer whose release is outside the rolling-upgrade window (`releasesInteroperate`). The message
 * is all an operator sees (ucl server test, both logs), so it names both releases and the rule.
 */
class IncompatibleRelease extends IncompatiblePeer {
  constructor(
    spec: PeerSpec,
    readonly remoteVersion: string,
    local: string,
  ) {
    super(
      `${spec.role} ${spec.name} runs ekm ${remoteVersion}, this server ekm ${local}: releases link only within one major version and at most one minor version apart`,
      'EKM_RELEASE_INCOMPATIBLE',
    );
  }
}

export function describeSocketError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused (is ekm running there?)';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return 'host unreachable';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host name';
    case 'ECONNRESET':
      return 'connection reset';
    default:
      return err.code ?? err.message;
  }
}

/** Turns a listen failure into an operator message (port in use, no permission, bad address). */
export function listenError(err: NodeJS.ErrnoException, host: string, port: number, what: string): EkmError {
  if (err.code === 'EADDRINUSE') {
    return new EkmError('EKM_PORT_IN_USE', `${what} port ${host}:${port} is already in use`, { hint: 'stop what listens there or choose another port' });
  }
  if (err.code === 'EACCES') {
    return new EkmError('EKM_PORT_DENIED', `not allowed to listen on ${host}:${port}`, { hint: 'use a port above 1023 or run with the needed privilege' });
  }
  if (err.code === 'EADDRNOTAVAIL') {
    return new EkmError('EKM_ADDRESS_UNAVAILABLE', `${host} is not an address of this machine`, { hint: 'give this server\'s own host name or IP with -s' });
  }
  return new EkmError('EKM_LISTEN_FAILED', `cannot listen on ${host}:${port}: ${err.message}`);
}
