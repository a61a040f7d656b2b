/**
 * The one way a server dials another's peer port: TLS 1.3 only, its own certificate as the
 * client's, and Node's CA validation off on purpose, because no CA vouches for a peer: the
 * caller decides whom it trusts from the certificate presented (the pin of an approved peer, or
 * the operator's approval of a fingerprint during a bootstrap or a scale-out).
 */
import tls, { type TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';

/** Why a dial ended before the handshake: the socket's own error, or no handshake in time. */
export type DialFailure = { readonly kind: 'error'; readonly err: NodeJS.ErrnoException } | { readonly kind: 'timeout' };

export interface Dialed {
  readonly socket: TLSSocket;
  /** The certificate the server presented (undefined if none: not an ekm server). */
  readonly cert: X509Certificate | undefined;
}

/**
 * Connects and completes the TLS handshake within `timeoutMs`; rejects with a DialFailure (the
 * socket destroyed). On success the socket has no error listener left: the caller hands it to a
 * PeerLink (which listens) or destroys it.
 */
export function dialUnpinned(opts: {
  readonly identity: { readonly keyPem: string; readonly certPem: string };
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
}): Promise<Dialed> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({
      host: opts.host,
      port: opts.port,
      key: opts.identity.keyPem,
      cert: opts.identity.certPem,
      minVersion: 'TLSv1.3',
      maxVersion: 'TLSv1.3',
      rejectUnauthorized: false,
    });
    const fail = (why: DialFailure): void => {
      socket.destroy();
      reject(why);
    };
    socket.setTimeout(opts.timeoutMs, () => fail({ kind: 'timeout' }));
    socket.once('error', (err: NodeJS.ErrnoException) => fail({ kind: 'error', err }));
    socket.once('secureConnect', () => {
      socket.setTimeout(0);
      socket.removeAllListeners('error');
      resolve({ socket, cert: socket.getPeerX509Certificate() });
    });
  });
}
