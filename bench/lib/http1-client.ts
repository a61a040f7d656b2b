/**
 * A lean HTTP/1.1 load generator over keep-alive TLS, as autocannon is: one request in flight per
 * connection, requests written as one prebuilt buffer, responses read by Content-Length. The
 * REST benchmark measures the API with it, so that its figures are the server's and the network's
 * and not node:https's client machinery (about 0.8 ms per request on this machine: measured in
 * the rest suite's notes).
 *
 * Not a general client: no redirects, no chunked responses (fastify sends Content-Length for
 * every JSON reply; anything else is an error), no pipelining.
 */
import tls from 'node:tls';

export interface Http1Response {
  readonly status: number;
  /** Header names in lower case; a repeated header keeps its last value. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: Buffer;
}

const HEADER_END = Buffer.from('\r\n\r\n');

export class Http1Connection {
  private pending: { resolve: (r: Http1Response) => void; reject: (e: Error) => void } | undefined;
  private buffer: Buffer = Buffer.alloc(0);

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', (e) => this.failPending(e));
    socket.on('close', () => this.failPending(new Error('connection closed')));
  }

  /** Opens a TLS connection that trusts exactly `certPem` (the EP's pinned certificate). */
  static open(host: string, port: number, certPem: string): Promise<Http1Connection> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host, port, ca: [certPem], checkServerIdentity: () => undefined });
      socket.once('secureConnect', () => {
        socket.setNoDelay(true);
        socket.removeListener('error', reject);
        resolve(new Http1Connection(socket));
      });
      socket.once('error', reject);
    });
  }

  /** Sends one request and resolves with its whole response. */
  request(method: string, path: string, headers: Readonly<Record<string, string>>, body?: unknown): Promise<Http1Response> {
    if (this.pending) return Promise.reject(new Error('one request at a time per connection'));
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const lines = [`${method} ${path} HTTP/1.1`, 'host: localhost', 'accept: application/json'];
    for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
    if (payload) lines.push('content-type: application/json', `content-length: ${payload.length}`);
    const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
      this.socket.write(payload ? Buffer.concat([head, payload]) : head);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buffer = this.buffer.length === 0 ? d : Buffer.concat([this.buffer, d]);
    const end = this.buffer.indexOf(HEADER_END);
    if (end < 0 || !this.pending) return;
    const [statusLine, ...headerLines] = this.buffer.subarray(0, end).toString('latin1').split('\r\n');
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine ?? '')?.[1]);
    const headers: Record<string, string> = {};
    for (const line of headerLines) {
      const colon = line.indexOf(':');
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const length = Number(headers['content-length']);
    if (!Number.isInteger(status) || !Number.isInteger(length)) {
      this.failPending(new Error(`unexpected response: ${statusLine ?? ''} (no Content-Length?)`));
      return;
    }
    if (this.buffer.length < end + 4 + length) return;
    const body = this.buffer.subarray(end + 4, end + 4 + length);
    this.buffer = this.buffer.subarray(end + 4 + length);
    const p = this.pending;
    this.pending = undefined;
    p.resolve({ status, headers, body });
  }

  private failPending(e: Error): void {
    const p = this.pending;
    this.pending = undefined;
    p?.reject(e);
  }
}

/**
 * Keep-alive connections to one server, one request in flight on each: a request takes an idle
 * connection or opens another, so `n` concurrent callers end up with `n` connections, as
 * autocannon's `n` clients.
 */
export class Http1Pool {
  private readonly idle: Http1Connection[] = [];
  private readonly all: Http1Connection[] = [];

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly certPem: string,
  ) {}

  async request(method: string, path: string, headers: Readonly<Record<string, string>>, body?: unknown): Promise<Http1Response> {
    let conn = this.idle.pop();
    if (!conn) {
      conn = await Http1Connection.open(this.host, this.port, this.certPem);
      this.all.push(conn);
    }
    try {
      const r = await conn.request(method, path, headers, body);
      this.idle.push(conn);
      return r;
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  close(): void {
    for (const c of this.all) c.close();
  }
}
