/**
 * Child process of the peer-link suite: the Partner end of a real peer link. Runs a PeerManager
 * (TLS 1.3, pinned certificate, the same code as `ekm`) that answers `echo` like EkmServer does,
 * plus a raw TLS echo listener (no framing, no PeerLink) as the transport baseline.
 * Configuration comes as JSON in EKM_BENCH_PARTNER; prints `ready <peerPort> <rawPort>` on
 * stdout once both listen, and exits when its stdin closes (the parent ended or died).
 */
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import pino from 'pino';
import { EkmError } from '../../src/errors.js';
import { PeerManager, type PeerSpec, type SelfSpec } from '../../src/net/peers.js';

export interface PartnerConfig {
  readonly self: SelfSpec;
  readonly ep: PeerSpec;
}

const cfg = JSON.parse(process.env.EKM_BENCH_PARTNER ?? '') as PartnerConfig;
const log = pino({ level: 'warn', base: undefined }, pino.destination(2));
const methods = new Map<string, (body: Uint8Array) => Uint8Array | Promise<Uint8Array>>([['echo', (b) => b]]);
const manager = new PeerManager({
  self: cfg.self,
  peers: [cfg.ep],
  log,
  handlers: {
    // As EkmServer.onPeerRequest: look the method up, run it as an async handler.
    async onRequest(method, body) {
      const h = methods.get(method);
      if (!h) throw new EkmError('EKM_UNKNOWN_METHOD', `unknown peer method ${method}`);
      return await h(body);
    },
  },
});
await manager.start();

const raw = tls.createServer({ key: cfg.self.keyPem, cert: cfg.self.certPem, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3' }, (socket) => {
  socket.setNoDelay(true);
  socket.on('data', (d: Buffer) => socket.write(d));
  socket.on('error', () => socket.destroy());
});
await new Promise<void>((r) => raw.listen(0, '127.0.0.1', () => r()));

process.stdout.write(`ready ${manager.listenPort()} ${(raw.address() as AddressInfo).port}\n`);
process.stdin.resume();
process.stdin.on('end', () => {
  raw.close();
  void manager.stop().then(() => process.exit(0));
});
