/**
 * A small client of the EP API, used by `ucl` (and usable by applications): it knows several EPs
 * and fails over to the next when one does not answer, and trusts the cluster only through the
 * certificates it was given (pinned), never a public CA.
 */
import https from 'node:https';
import { X509Certificate } from 'node:crypto';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { EkmError } from '../errors.js';
import type { ServerAddress } from '../cluster/names.js';
import { formatAddress } from '../cluster/names.js';

export interface ClientOptions {
  readonly servers: readonly ServerAddress[];
  /** PEM certificates of the EPs (self-signed); a server presenting anything else is refused. */
  readonly trustedCertsPem: readonly string[];
  readonly timeoutMs?: number;
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
    private readonly fingerprints: ReadonlySet<string>,
    private readonly timeoutMs: number,
  ) {
    super({ keepAlive: true, maxSockets: 64 });
  }

  override createConnection(options: tls.ConnectionOptions, done: (err: Error | null, socket?: Duplex) => void): undefined {
    const socket = tls.connect({ ...options, rejectUnauthorized: false });
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
      if (fingerprint === undefined || !this.fingerprints.has(fingerprint)) {
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
  private readonly fingerprints: Set<string>;
  private preferred = 0;
  /** One keep-alive agent per EP: a TLS handshake per request would dominate fast operations. */
  private readonly agents = new Map<string, https.Agent>();

  constructor(private readonly opts: ClientOptions) {
    if (opts.servers.length === 0) throw new EkmError('EKM_NO_SERVER', 'no EP address is configured', { hint: 'give --server host:port, set UCL_SERVERS, or write servers= in client.conf' });
    if (opts.trustedCertsPem.length === 0) throw new EkmError('EKM_NO_TRUST', 'no trusted EP certificate is configured', { hint: 'set trust= in client.conf, or run ucl where the EP\'s EKM_HOME is' });
    this.fingerprints = new Set(opts.trustedCertsPem.map((p) => new X509Certificate(p).fingerprint256));
  }

  /** Sends one request, trying each EP in turn (starting with the last one that answered). */
  async request<T = unknown>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<ApiResponse<T>> {
    const n = this.opts.servers.length;
    const failures: string[] = [];
    // Taken once: concurrent requests move `preferred`, and each request must still try every EP once.
    const first = this.preferred;
    for (let i = 0; i < n; i++) {
      const idx = (first + i) % n;
      const server = this.opts.servers[idx]!;
      try {
        const res = await this.once<T>(server, method, path, body, headers);
        // A 503 from a server that is shutting down or whose triplet is out, or an operation its
        // triplet aborted ("not performed; safe to retry"): another EP, with its own triplet, may serve.
        if ((res.status === 503 || isAborted(res)) && i < n - 1 && !path.startsWith('/api/v1/health') && !path.startsWith('/api/v1/servers')) {
          failures.push(`${formatAddress(server)}: ${res.status}`);
          continue;
        }
        this.preferred = idx;
        return res;
      } catch (e) {
        const err = e as NodeJS.ErrnoException;
        if (err instanceof EkmError) throw err;
        if (!FAILOVER_CODES.has(err.code ?? '') && err.message !== 'timeout') throw e;
        failures.push(`${formatAddress(server)}: ${describeNetError(err)}`);
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

  private agentFor(server: ServerAddress): https.Agent {
    const key = formatAddress(server);
    let agent = this.agents.get(key);
    if (!agent) {
      agent = new PinnedAgent(key, this.fingerprints, this.opts.timeoutMs ?? 15_000);
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
