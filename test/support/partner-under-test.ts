/**
 * A real Partner key service (its ProtocolHost and KeyService over the caller's store) with no
 * network: what it sends is recorded, and envelopes are delivered to it as if from the EP. For
 * tests that play a compromised EP against an honest Partner.
 */
import { EventEmitter } from 'node:events';
import pino from 'pino';
import { toHex } from '../../src/crypto/encoding.js';
import type { PeerManager, PeerRole } from '../../src/net/peers.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../src/protocols/types.js';
import { KeyService } from '../../src/service/key-service.js';
import type { CommonData } from '../../src/service/party-recipes.js';
import { InProcessRunner } from '../../src/service/party-runner.js';
import { PROTO_TOPIC, ProtocolHost } from '../../src/service/protocol-host.js';
import type { Store } from '../../src/store/store.js';

export interface SentByPartner {
  readonly to: PeerRole;
  readonly topic: string;
  /** The session id (hex) of a protocol message or of an abort notice. */
  readonly sid: string;
}

export interface PartnerUnderTest {
  readonly sent: SentByPartner[];
  /** The Partner's log lines, parsed. */
  readonly log: { msg: string; event?: string }[];
  deliver(fromEp: Envelope): void;
}

export function partnerUnderTest(store: Store, tripletId: string): PartnerUnderTest {
  const sent: SentByPartner[] = [];
  const link = (to: PeerRole) => ({
    send: (topic: string, bytes: Uint8Array) =>
      sent.push({ to, topic, sid: topic === PROTO_TOPIC ? toHex(decodeEnvelope(bytes).sid) : toHex(bytes.subarray(0, 32)) }),
  });
  const peers = Object.assign(new EventEmitter(), { link, allUp: () => true }) as unknown as PeerManager;
  const log: { msg: string; event?: string }[] = [];
  const logger = pino({ level: 'debug', base: undefined }, { write: (s: string) => void log.push(JSON.parse(s) as { msg: string }) });
  const host = new ProtocolHost({
    self: 2,
    peers,
    store,
    log: logger,
    runner: new InProcessRunner(),
    signer: { sign: () => new Uint8Array(64) },
  });
  new KeyService({
    self: 2,
    tripletId,
    store,
    peers,
    host,
    log: logger,
    identity: { id: 2, tripletId, identityKeyPem: '', certs: [] } as CommonData,
    registerPeerMethod: () => {},
  });
  return { sent, log, deliver: (e) => host.deliver('ep', encodeEnvelope(e)) };
}
