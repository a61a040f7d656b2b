/**
 * ProtocolHost's admission of a helper session (docs/protocols.md §1.4): a request whose session id was
 * accepted before is refused, also for the stateless protocols whose sids the store never sees
 * (FROST, DPRF, RSA, ECDSA), and also when the first request for it was refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import pino from 'pino';
import type { PeerManager } from '../../../src/net/peers.js';
import { encodeEnvelope } from '../../../src/protocols/types.js';
import type { Recipe } from '../../../src/service/party-recipes.js';
import { InProcessRunner } from '../../../src/service/party-runner.js';
import { ABORT_TOPIC, ProtocolHost, type SessionSpec } from '../../../src/service/protocol-host.js';
import type { KeyStore } from '../../../src/store/key-records.js';

type LogLine = { msg: string; proto?: string; sid?: string };

function helper(): { host: ProtocolHost; log: LogLine[]; factoryCalls: string[] } {
  const log: LogLine[] = [];
  const factoryCalls: string[] = [];
  const host = new ProtocolHost({
    self: 2,
    // No links: a refusal's abort notice has nowhere to go, which the host tolerates.
    peers: Object.assign(new EventEmitter(), { link: () => undefined }) as unknown as PeerManager,
    // Stateless protocols are never recorded: the store has seen no sid.
    store: { sidSeen: async () => false } as unknown as KeyStore,
    log: pino({ level: 'debug', base: undefined }, { write: (s: string) => void log.push(JSON.parse(s) as LogLine) }),
    runner: new InProcessRunner(),
    signer: { sign: () => new Uint8Array(64) },
  });
  host.register('frost-sign', async (env) => {
    factoryCalls.push(Buffer.from(env.sid).toString('hex'));
    // Refused here (as a helper refuses a key it does not hold): the admission check comes first either way.
    throw new Error('test factory: no such key');
  });
  return { host, log, factoryCalls };
}

const request = (sid: Uint8Array): Uint8Array =>
  encodeEnvelope({ sid, proto: 'frost-sign', round: 0, from: 1, to: 2, body: new Uint8Array([1, 2, 3]) });
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

describe('ProtocolHost: session ids are single-use', () => {
  it('a second request with the same sid is refused before any work; another sid is accepted', async () => {
    const { host, log, factoryCalls } = helper();
    const sid = new Uint8Array(randomBytes(32));
    host.deliver('ep', request(sid));
    await settle();
    assert.equal(factoryCalls.length, 1);
    host.deliver('ep', request(sid));
    await settle();
    assert.equal(factoryCalls.length, 1, 'the replay never reached the session factory');
    const refused = log.filter((l) => l.msg === 'replayed session id refused');
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.sid, Buffer.from(sid).toString('hex'));
    host.deliver('ep', request(new Uint8Array(randomBytes(32))));
    await settle();
    assert.equal(factoryCalls.length, 2);
  });
});

describe('ProtocolHost: a request whose session cannot start', () => {
  it('is logged and its abort told to the EP, not dropped in silence', async () => {
    const log: LogLine[] = [];
    const sent: { topic: string; body: Uint8Array }[] = [];
    const host = new ProtocolHost({
      self: 2,
      peers: Object.assign(new EventEmitter(), { link: (role: string) => (role === 'ep' ? { send: (topic: string, body: Uint8Array) => sent.push({ topic, body }) } : undefined) }) as unknown as PeerManager,
      store: { sidSeen: async () => false } as unknown as KeyStore,
      log: pino({ level: 'debug', base: undefined }, { write: (s: string) => void log.push(JSON.parse(s) as LogLine) }),
      // A worker that cannot start: the failure comes after the session was admitted.
      runner: Object.assign(new InProcessRunner(), {
        create: (_recipe: Recipe, _label: string) => {
          throw new Error('test runner: no worker');
        },
      }),
      signer: { sign: () => new Uint8Array(64) },
    });
    host.register('frost-sign', async () => ({ label: 'frost-sign' }) as unknown as SessionSpec);
    const sid = new Uint8Array(randomBytes(32));
    host.deliver('ep', request(sid));
    await settle();
    const refused = log.filter((l) => l.msg === 'protocol session refused');
    assert.equal(refused.length, 1, JSON.stringify(log));
    assert.equal(refused[0]!.sid, Buffer.from(sid).toString('hex'));
    assert.equal(sent.length, 1);
    assert.equal(sent[0]!.topic, ABORT_TOPIC);
    assert.deepEqual(sent[0]!.body.subarray(0, 32), Buffer.from(sid));
  });
});
