/**
 * A small client of the EP API, used by `ucl` (and usable by applications): it knows several EPs
 * and fails over to the next when one does not answer, and trusts the cluster only through the
 * certificates it was given (pinned), never a public CA. From a pinned EP it learns the cluster's
 * other EPs (their API addresses and certificate fingerprints) and trusts them too, so that
 * failover needs no certificate bundle written by hand (docs/security-model.md, "Clients").
 */
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { EkmError } from '../errors.js';
import type { ServerAddress } from '../cluster/names.js';
import { formatAddress } from '../cluster/names.js';
import {
  type ClusterMembership,
  assertSameCluster,
  learnedAddress,
  membershipFromServerList,
  readClusterCache,
  sameMembership,
  writeClusterCache,
} from './cluster-membership.js';

export interface ClientOptions {
  readonly servers: readonly ServerAddress[];
  /** PEM certificates of the EPs (self-signed); a server presenting anything else is refused. */
  readonly trustedCertsPem: readonly string[];
  readonly timeoutMs?: number;
  /**
   * Learn every EP of the cluster from an EP already trusted (`GET /api/v1/servers`) and trust
   * those too, by fingerprint; default true. False: exactly `servers` and `trustedCertsPem`.
   */
  readonly discover?: boolean;
  /**
   * A file that keeps the learned EPs between runs, so that failover works even when the EP first
   * pinned is down at start; without it the client learns in memory only.
   */
  readonly clusterCachePath?: string;
  /** The cluster the pinned EPs belong to, when known (an EP's own configuration): another is refused. */
  readonly clusterId?: string;
  /** How long a learned membership is used before it is read again (default 60 s; after a failover at once). */
  readonly membershipRefreshMs?: number;
  /**
   * An EP's own identity, where the client runs in that EP's home: shown as the TLS client
   * certificate, it lets the client read the cluster's servers and health without a password.
   */
  readonly identity?: ClientIdentity;
}

/** A TLS client certificate and its key (PEM). */
export interface ClientIdentity {
  readonly keyPem: string;
  readonly certPem: string;
}

export interface ApiResponse<T = unknown> {
  readonly status: number;
  readonly body: T;
  readonly server: string;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

/** Failures that mean "this EP is not there": try the next one. */
const FAILOVER_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * A keep-alive HTTPS agent that trusts exactly the pinned certificates, by SHA-256 fingerprint,
 * whatever names and validity dates they carry: trust comes from the operator's pin, and a client
 * whose clock is off (a new machine, an NTP step back) must still reach its EP, as the servers
 * reach each other. A connection is handed to a request only once its certificate is checked, so
 * nothing (credentials least of all) is ever sent to another server.
 */
class PinnedAgent extends https.Agent {
  constructor(
    private readonly label: string,
    private readonly isTrusted: (fingerprint: string) => boolean,
    private readonly timeoutMs: number,
    private readonly identity: ClientIdentity | undefined,
  ) {
    super({ keepAlive: true, maxSockets: 64 });
  }

  override createConnection(options: tls.ConnectionOptions, done: (err: Error | null, socket?: Duplex) => void): undefined {
    const shown = this.identity ? { key: this.identity.keyPem, cert: this.identity.certPem } : {};
    const socket = tls.connect({ ...options, ...shown, rejectUnauthorized: false });
    let settled = false;
    const fail = (err: Error): void => {
      socket.destroy();
      if (!settled) done(err);
      settled = true;
    };
    socket.once('error', fail);
    // Until the handshake ends: a server that takes the connection but never answers is one that is not there.
    const handshakeTimeout = (): void => fail(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' }));
    socket.setTimeout(this.timeoutMs, handshakeTimeout);
    socket.once('secureConnect', () => {
      // The request's own timeout takes over: this handler must not fire for it.
      socket.setTimeout(0);
      socket.off('timeout', handshakeTimeout);
      socket.off('error', fail);
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256;
      if (fingerprint === undefined || !this.isTrusted(fingerprint)) {
        fail(new EkmError('EKM_UNTRUSTED', `${this.label} presented a certificate that is not trusted`, { hint: 'check the trust= certificates in client.conf' }));
        return;
      }
      settled = true;
      done(null, socket);
    });
    return undefined;
  }
}

export class EkmClient {
  /** The operator's pins: always trusted, whatever the cluster says. */
  private readonly pinned: Set<string>;
  /** The cluster's EPs as last learned (or read from the cache file); undefined until then. */
  private learned: ClusterMembership | undefined;
  /** Where `learned` comes from, for the message when an EP of another cluster answers. */
  private learnedFrom = 'the EPs learned before';
  private learnedAt = 0;
  private learning = false;
  /** The address of the EP that answered last: the next request starts there. */
  private preferred: string | undefined;
  /** One keep-alive agent per EP: a TLS handshake per request would dominate fast operations. */
  private readonly agents = new Map<string, https.Agent>();

  constructor(private readonly opts: ClientOptions) {
    if (opts.servers.length === 0) throw new EkmError('EKM_NO_SERVER', 'no EP address is configured', { hint: 'give --server host:port, set UCL_SERVERS, or write servers= in client.conf' });
    if (opts.trustedCertsPem.length === 0) throw new EkmError('EKM_NO_TRUST', 'no trusted EP certificate is configured', { hint: 'set trust= in client.conf, or run ucl where the EP\'s EKM_HOME is' });
    this.pinned = new Set(opts.trustedCertsPem.map((p) => new X509Certificate(p).fingerprint256));
    if (this.discovers() && opts.clusterCachePath !== undefined) {
      const cached = readClusterCache(opts.clusterCachePath);
      if (cached !== undefined) {
        assertSameCluster(this.expectedCluster(), cached, `the learned cluster file ${opts.clusterCachePath}`);
        this.learned = cached;
        this.learnedFrom = `the learned cluster file ${opts.clusterCachePath}`;
      }
    }
  }

  /** The EPs this client knows now: the configured ones first, then those learned from the cluster. */
  get servers(): readonly ServerAddress[] {
    const configured = this.opts.servers;
    const known = new Set(configured.map(formatAddress));
    const learned = (this.learned?.eps ?? [])
      .map(learnedAddress)
      .filter((a) => !known.has(formatAddress(a)));
    return [...configured, ...learned];
  }

  /** The cluster the learned EPs belong to, once known. */
  get clusterId(): string | undefined {
    return this.learned?.clusterId ?? this.opts.clusterId;
  }

  /** Sends one request, trying each EP in turn (starting with the last one that answered). */
  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    // Taken once: a refresh changes the list, and each request must still try every EP once.
    const servers = this.rotation();
    const n = servers.length;
    const failures: string[] = [];
    for (const [i, server] of servers.entries()) {
      try {
        if (this.membershipDue()) {
          const refused = await this.learnMembership(server, authorizationOf(headers));
          if (refused) return refused as ApiResponse<T>;
        }
        const res = await this.once<T>(server, method, path, body, headers);
        // A 503 from a server that is shutting down or whose triplet is out, or an operation its
        // triplet aborted ("not performed; safe to retry"): another EP, with its own triplet, may serve.
        if ((res.status === 503 || isAborted(res)) && i < n - 1 && !path.startsWith('/api/v1/health') && !path.startsWith('/api/v1/servers')) {
          failures.push(`${formatAddress(server)}: ${res.status}`);
          continue;
        }
        this.preferred = formatAddress(server);
        return res;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err instanceof EkmError) throw err;
        if (!FAILOVER_CODES.has(err.code ?? '') && err.message !== 'timeout') throw e;
        failures.push(`${formatAddress(server)}: ${describeNetError(err)}`);
        // An EP that is gone may have been removed from the cluster: read the membership again.
        this.learnedAt = 0;
      }
    }
    throw new EkmError(
      'EKM_UNREACHABLE',
      `cannot reach ${n === 1 ? 'the EP' : 'any EP'} (${failures.join('; ')})`,
      { hint: 'check that ekm runs there (`ekm status`) and that --server / UCL_SERVERS / client.conf name it' },
    );
  }

  /** Closes idle keep-alive connections (a CLI calls this before it exits). */
  close(): void {
    for (const a of this.agents.values()) a.destroy();
    this.agents.clear();
  }

  private discovers(): boolean {
    return this.opts.discover !== false;
  }

  /** Every known EP once, the one that answered last first. */
  private rotation(): ServerAddress[] {
    const all = [...this.servers];
    const first = all.findIndex((s) => formatAddress(s) === this.preferred);
    return first <= 0 ? all : [...all.slice(first), ...all.slice(0, first)];
  }

  /** The cluster every learned membership must belong to, and where that was learned. */
  private expectedCluster(): { clusterId: string; source: string } | undefined {
    if (this.learned !== undefined) return { clusterId: this.learned.clusterId, source: this.learnedFrom };
    if (this.opts.clusterId !== undefined) return { clusterId: this.opts.clusterId, source: "the EP's own configuration" };
    return undefined;
  }

  private isTrusted(fingerprint: string): boolean {
    return this.pinned.has(fingerprint) || (this.learned?.eps.some((e) => e.fingerprint === fingerprint) ?? false);
  }

  private membershipDue(): boolean {
    return this.discovers() && !this.learning && Date.now() - this.learnedAt >= (this.opts.membershipRefreshMs ?? 60_000);
  }

  /**
   * Reads the cluster's EPs from `server`, whose certificate the agent has checked (pinned, or
   * learned the same way): the membership is as trustworthy as the EP it comes from. A network
   * failure goes to the caller (the next EP is tried); an answer that is not a server list (an EP
   * of an older release) leaves what is known as it is. The list is read with the caller's
   * `authorization` (the EP shows it only to an authenticated caller or an EP of the cluster);
   * when the EP refuses those credentials (401), that answer is returned: the caller's request,
   * with the same credentials, would be refused alike, and sending it would count a second
   * failed login against the account's lockout.
   */
  private async learnMembership(server: ServerAddress, authorization: string | undefined): Promise<ApiResponse | undefined> {
    this.learning = true;
    try {
      const res = await this.once(server, 'GET', '/api/v1/servers', undefined, authorization === undefined ? {} : { authorization });
      this.learnedAt = Date.now();
      if (res.status === 401 && authorization !== undefined) return res;
      const membership = res.status === 200 ? membershipFromServerList(res.body) : undefined;
      if (membership === undefined) return undefined;
      assertSameCluster(this.expectedCluster(), membership, `the EP at ${formatAddress(server)}`);
      if (sameMembership(this.learned, membership)) return undefined;
      this.forgetDroppedEps(membership);
      this.learned = membership;
      if (this.opts.clusterCachePath !== undefined) writeClusterCache(this.opts.clusterCachePath, membership);
      return undefined;
    } finally {
      this.learning = false;
    }
  }

  /** Closes the connections to EPs no longer in the cluster: they are not trusted any more. */
  private forgetDroppedEps(next: ClusterMembership): void {
    const kept = new Set([...this.opts.servers.map(formatAddress), ...next.eps.map((e) => formatAddress(learnedAddress(e)))]);
    for (const [address, agent] of this.agents) {
      if (kept.has(address)) continue;
      agent.destroy();
      this.agents.delete(address);
    }
  }

  private agentFor(server: ServerAddress): https.Agent {
    const key = formatAddress(server);
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new PinnedAgent(key, (fingerprint) => this.isTrusted(fingerprint), this.opts.timeoutMs ?? 15_000, this.opts.identity);
      this.agents.set(key, agent);
    }
    return agent;
  }

  private once<T>(server: ServerAddress, method: string, path: string, body: unknown, headers: Record<string, string>): Promise<ApiResponse<T>> {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: server.host,
          port: server.port,
          method,
          path,
          headers: {
            accept: 'application/json',
            ...(payload ? { 'content-type': 'application/json', 'content-length': String(payload.length) } : {}),
            ...headers,
          },
          agent: this.agentFor(server),
          timeout: this.opts.timeoutMs ?? 15_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = text;
            try {
              parsed = text.length > 0 ? JSON.parse(text) : null;
            } catch {
              /* a non-JSON body is returned as text */
            }
            resolve({ status: res.statusCode ?? 0, body: parsed as T, server: formatAddress(server), headers: res.headers });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
      req.on('error', reject);
      if (payload) req.write(payload);
      req.end();
    });
  }
}

/** The `Authorization` header of a request, whatever the case of its name. */
function authorizationOf(headers: Readonly<Record<string, string>>): string | undefined {
  const name = Object.keys(headers).find((h) => h.toLowerCase() === 'authorization');
  return name === undefined ? undefined : headers[name];
}

/** EKM_PROTOCOL_ABORTED: the multi-party operation was not performed (the API's promise), so it may be sent again. */
function isAborted(res: ApiResponse): boolean {
  const body = res.body as { error?: { code?: unknown } } | null;
  return res.status === 502 && body?.error?.code === 'EKM_PROTOCOL_ABORTED';
}

function describeNetError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
      return 'no answer (timeout)';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'unknown host';
    default:
      return err.code ?? err.message;
  }
}
