/** What every key service of the EP (and its helpers on Partner and Aux) is built from. */
import type { Logger } from 'pino';
import type { PeerManager, PeerRole } from '../net/peers.js';
import type { PartyId } from '../protocols/types.js';
import type { Store } from '../store/store.js';
import type { CommonData } from './party-recipes.js';
import type { ProtocolHost } from './protocol-host.js';

export interface ServiceDeps {
  readonly self: PartyId;
  readonly tripletId: string;
  readonly store: Store;
  readonly peers: PeerManager;
  readonly host: ProtocolHost;
  readonly log: Logger;
  /** Identity key and triplet certificates for the two-phase commits' signed statements. */
  readonly identity: CommonData;
  /** Registers a request handler on the peer links (RSA shares are dealt this way); `from` is the caller's proven role. */
  readonly registerPeerMethod: (name: string, handler: (body: Uint8Array, from: PeerRole | undefined) => Promise<Uint8Array>) => void;
}
