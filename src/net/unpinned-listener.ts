/**
 * The peer-port listener of a server that trusts no certificate yet: a bootstrap (before its
 * operator approved the peers) and a server waiting to join a cluster. TLS 1.3 asks for a client
 * certificate without verifying it; every request handler gets the fingerprint the caller
 * presented, and decides what that caller may do.
 */
import tls from 'node:tls';
import { PeerLink } from './link.js';
import { listenError } from './peers.js';

export interface UnpinnedListener {
  close(): Promise<void>;
}

export async function listenUnpinned(opts: {
  readonly identity: { readonly keyPem: string; readonly certPem: string };
  readonly host: string;
  readonly port: number;
  readonly onRequest: (method: string, body: Uint8Array, clientFingerprint: string | undefined) => Promise<Uint8Array> | Uint8Array;
}): Promise<UnpinnedListener> {
  const links = new Set<PeerLink>();
  const server = tls.createServer({
    key: opts.identity.keyPem,
    cert: opts.identity.certPem,
    minVersion: 'TLSv1.3',
    maxVersion: 'TLSv1.3',
    requestCert: true,
    rejectUnauthorized: false,
  });
  server.on('secureConnection', (socket) => {
    const clientFp = socket.getPeerX509Certificate()?.fingerprint256;
    const link = new PeerLink(socket, socket.remoteAddress ?? '?');
    links.add(link);
    link.once('close', () => links.delete(link));
    link.attach({ onRequest: (method, body) => opts.onRequest(method, body, clientFp) });
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(listenError(err, opts.host, opts.port, 'peer')));
    server.listen(opts.port, opts.host, () => resolve());
  });
  return {
    close: async () => {
      for (const l of links) l.close('closing');
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
