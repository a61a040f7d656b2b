/**
 * A TCP proxy between two servers of the triplet (the fault suite's "a peer link cut and restored"). The
 * dialing server's configuration names the proxy as its peer's address (`routeThroughProxy`), so
 * the mutual-TLS peer link runs through it, untouched while the proxy passes. The faults act on
 * the TCP stream, below TLS:
 *
 * - `cut`: every connection reset, new ones refused (accepted, then reset at once);
 * - `blackhole`: connections stay open but nothing is forwarded either way (a dead network path
 *   that does not close: only the links' heartbeats find it);
 * - `delay`: every chunk held back for a random 0..`maxMs` ms, in order per direction;
 * - `corrupt`: the next chunk toward the peer has one byte flipped (TLS must refuse it).
 *
 * `pass()` restores a clean path. Bytes dropped while blackholed are gone, so a connection that
 * lived through it fails TLS's record check once traffic resumes, and the link is dialled again.
 */
import net from 'node:net';

export type ProxyMode = { kind: 'pass' } | { kind: 'cut' } | { kind: 'blackhole' } | { kind: 'delay'; maxMs: number } | { kind: 'corrupt' };

export class FaultProxy {
  private mode: ProxyMode = { kind: 'pass' };
  private readonly sockets = new Set<net.Socket>();
  private readonly server: net.Server;
  /** Chunks forwarded: a scenario checks that its traffic went through the proxy. */
  readonly counts = { chunks: 0 };

  private constructor(
    readonly port: number,
    private readonly target: { host: string; port: number },
    server: net.Server,
  ) {
    this.server = server;
  }

  /** Listens on a free loopback port and forwards to `target`. */
  static async start(target: { host: string; port: number }): Promise<FaultProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    const proxy = new FaultProxy((server.address() as net.AddressInfo).port, target, server);
    server.on('connection', (client) => proxy.accept(client));
    return proxy;
  }

  pass(): void {
    this.mode = { kind: 'pass' };
  }

  cut(): void {
    this.mode = { kind: 'cut' };
    for (const s of this.sockets) s.resetAndDestroy();
  }

  blackhole(): void {
    this.mode = { kind: 'blackhole' };
  }

  delay(maxMs: number): void {
    this.mode = { kind: 'delay', maxMs };
  }

  corruptNext(): void {
    this.mode = { kind: 'corrupt' };
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    if (this.mode.kind === 'cut') {
      client.resetAndDestroy();
      return;
    }
    const upstream = net.connect(this.target.port, this.target.host);
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => {
        this.sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
      s.on('error', () => undefined);
    }
    this.pipe(client, upstream, true);
    this.pipe(upstream, client, false);
  }

  /** Forwards `from` → `to` through the current mode; `towardPeer` is the direction corruption hits. */
  private pipe(from: net.Socket, to: net.Socket, towardPeer: boolean): void {
    let chain = Promise.resolve();
    from.on('data', (chunk: Buffer) => {
      const mode = this.mode;
      if (mode.kind === 'blackhole' || mode.kind === 'cut') return;
      this.counts.chunks++;
      if (mode.kind === 'corrupt' && towardPeer) {
        this.mode = { kind: 'pass' };
        const bad = Buffer.from(chunk);
        bad[bad.length >> 1]! ^= 0x40;
        to.write(bad);
        return;
      }
      if (mode.kind === 'delay') {
        const wait = Math.floor(Math.random() * mode.maxMs);
        // Chained so that a direction stays in order (TCP never reorders what it delivers).
        chain = chain.then(() => new Promise<void>((r) => setTimeout(r, wait))).then(() => void to.write(chunk));
        return;
      }
      chain = chain.then(() => void to.write(chunk));
    });
  }
}
