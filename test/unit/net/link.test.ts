/**
 * PeerLink over a real TLS 1.3 connection in one process: multiplexed requests answered out of
 * order, errors with their code, timeouts, ping, heartbeats, and what closing does to pending work.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { type Identity, createIdentity } from '../../../src/cluster/identity.js';
import { EkmError } from '../../../src/errors.js';
import {
  LinkClosedError,
  type LinkHandlers,
  type LinkOptions,
  PeerLink,
  PeerRequestError,
  PeerTimeoutError,
} from '../../../src/net/link.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let a: Identity;
let b: Identity;
before(async () => {
  [a, b] = await Promise.all([
    createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 }),
    createIdentity({ role: 'partner', host: '127.0.0.1', years: 1 }),
  ]);
});

interface Pair {
  client: PeerLink;
  server: PeerLink;
  close(): Promise<void>;
}

/** A TLS 1.3 connection with mutual certificates; a PeerLink on each end. */
async function pair(opts?: LinkOptions, serverOpts: LinkOptions | undefined = opts): Promise<Pair> {
  const srv = tls.createServer({ key: a.keyPem, cert: a.certPem, minVersion: 'TLSv1.3', requestCert: true, rejectUnauthorized: false });
  const accepted = new Promise<tls.TLSSocket>((r) => srv.once('secureConnection', r));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as AddressInfo).port;
  const socket = tls.connect({ host: '127.0.0.1', port, key: b.keyPem, cert: b.certPem, minVersion: 'TLSv1.3', rejectUnauthorized: false });
  await new Promise<void>((r) => socket.once('secureConnect', () => r()));
  const serverSocket = await accepted;
  assert.equal(socket.getProtocol(), 'TLSv1.3');
  assert.equal(serverSocket.getPeerX509Certificate()?.fingerprint256, b.fingerprint);
  const client = new PeerLink(socket, 'server', opts);
  const server = new PeerLink(serverSocket, 'client', serverOpts);
  return {
    client,
    server,
    async close() {
      client.close('test done');
      server.close('test done');
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}

const noRequests: LinkHandlers = {
  onRequest() {
    throw new EkmError('EKM_UNKNOWN_METHOD', 'no requests here');
  },
};

describe('PeerLink', () => {
  let p: Pair;
  const pairs: Pair[] = [];
  const fresh = async (opts?: LinkOptions, serverOpts?: LinkOptions): Promise<Pair> => {
    const x = await pair(opts, serverOpts ?? opts);
    pairs.push(x);
    return x;
  };
  before(async () => {
    p = await fresh();
  });
  after(async () => {
    await Promise.all(pairs.map((x) => x.close()));
  });

  it('multiplexes concurrent requests and matches answers that come back out of order', async () => {
    // The server holds every request until all 20 are in, then answers the last one first.
    const answered: number[] = [];
    const held: (() => void)[] = [];
    p.server.attach({
      onRequest(method, body) {
        const n = Number(dec(body));
        return new Promise<Uint8Array>((resolve) => {
          held[n] = () => {
            answered.push(n);
            resolve(enc(`${method}:${n * n}`));
          };
          if (held.filter(Boolean).length === 20) for (let i = 19; i >= 0; i--) held[i]!();
        });
      },
    });
    p.client.attach(noRequests);
    const replies = await Promise.all(Array.from({ length: 20 }, (_, n) => p.client.request(`sq${n}`, enc(String(n)))));
    assert.deepEqual(
      replies.map(dec),
      Array.from({ length: 20 }, (_, n) => `sq${n}:${n * n}`),
    );
    assert.deepEqual(
      answered,
      Array.from({ length: 20 }, (_, n) => 19 - n),
    );
  });

  it('carries requests both ways on one connection, and one-way messages', async () => {
    const x = await fresh();
    const got: string[] = [];
    x.server.attach({ onRequest: (m) => enc(`server answers ${m}`), onMessage: (t, body) => got.push(`${t}=${dec(body)}`) });
    x.client.attach({ onRequest: (m) => enc(`client answers ${m}`) });
    assert.equal(dec(await x.client.request('a', enc(''))), 'server answers a');
    assert.equal(dec(await x.server.request('b', enc(''))), 'client answers b');
    x.client.send('proto', enc('m1'));
    x.client.send('proto', enc('m2'));
    await x.client.request('flush', enc(''));
    assert.deepEqual(got, ['proto=m1', 'proto=m2']);
  });

  it('replays frames that arrived before handlers were attached', async () => {
    const x = await fresh();
    x.client.attach(noRequests);
    const reply = x.client.request('early', enc('1'));
    await sleep(50);
    x.server.attach({ onRequest: (m, body) => enc(`${m}/${dec(body)}`) });
    assert.equal(dec(await reply), 'early/1');
  });

  it('propagates a handler error with its code; other errors become EKM_INTERNAL without details', async () => {
    const x = await fresh();
    const handlerErrors: string[] = [];
    x.server.on('handler-error', (what: string, err: Error) => handlerErrors.push(`${what}: ${err.message}`));
    x.server.attach({
      onRequest(method) {
        if (method === 'ekm') throw new EkmError('EKM_KEY_NOT_FOUND', 'key k1 does not exist');
        throw new Error('secret internals');
      },
    });
    x.client.attach(noRequests);
    await assert.rejects(x.client.request('ekm', enc('')), (e: unknown) => {
      assert.ok(e instanceof PeerRequestError);
      assert.equal(e.code, 'EKM_KEY_NOT_FOUND');
      assert.equal(e.message, 'server: key k1 does not exist');
      return true;
    });
    await assert.rejects(x.client.request('boom', enc('')), (e: unknown) => {
      assert.ok(e instanceof PeerRequestError);
      assert.equal(e.code, 'EKM_INTERNAL');
      assert.doesNotMatch(e.message, /secret internals/);
      return true;
    });
    assert.deepEqual(handlerErrors, ['boom: secret internals']);
    assert.equal(dec(await x.client.ping().then(() => enc('still up'))), 'still up');
  });

  it('times out a request that gets no answer, and ignores the late answer', async () => {
    const x = await fresh();
    let release: (() => void) | undefined;
    x.server.attach({
      onRequest: () =>
        new Promise<Uint8Array>((r) => {
          release = () => r(enc('late'));
        }),
    });
    x.client.attach(noRequests);
    const t0 = Date.now();
    await assert.rejects(x.client.request('slow', enc(''), 100), (e: unknown) => {
      assert.ok(e instanceof PeerTimeoutError);
      assert.equal(e.code, 'EKM_PEER_TIMEOUT');
      assert.match(e.message, /server did not answer slow within 100 ms/);
      return true;
    });
    assert.ok(Date.now() - t0 >= 95);
    release!();
    await sleep(20);
    assert.equal(x.client.closed, false);
    assert.ok((await x.client.ping()) >= 0);
  });

  it('measures a ping round trip', async () => {
    const rtts = await Promise.all([p.client.ping(), p.client.ping(), p.server.ping()]);
    for (const rtt of rtts) assert.ok(rtt >= 0 && rtt < 1000, `rtt ${rtt}`);
  });

  it('keeps an idle healthy link alive through heartbeats', async () => {
    const x = await fresh({ heartbeatMs: 30, deadAfterMs: 150 });
    x.server.attach(noRequests);
    x.client.attach(noRequests);
    await sleep(450);
    assert.equal(x.client.closed, false);
    assert.equal(x.server.closed, false);
  });

  it('declares the peer dead when it stops reading and answering', async () => {
    // The server end's own heartbeat is slow, so it does not hang up first: it just hangs.
    const x = await fresh({ heartbeatMs: 30, deadAfterMs: 150 }, { heartbeatMs: 60_000, deadAfterMs: 120_000 });
    x.server.attach(noRequests);
    x.client.attach(noRequests);
    const closed = new Promise<string>((r) => x.client.once('close', r));
    const pending = x.client.request('never', enc(''), 5000);
    x.server.socket.pause(); // the peer hangs: reads nothing, answers nothing
    const t0 = Date.now();
    assert.equal(await closed, 'no heartbeat for 150 ms');
    assert.ok(Date.now() - t0 < 1000);
    await assert.rejects(pending, (e: unknown) => e instanceof LinkClosedError && /no heartbeat/.test(e.message));
  });

  it('rejects pending requests and pings when closed, and refuses new work after', async () => {
    const x = await fresh();
    x.server.attach({ onRequest: () => new Promise<Uint8Array>(() => undefined) });
    x.client.attach(noRequests);
    const r1 = x.client.request('hang1', enc(''));
    const r2 = x.client.request('hang2', enc(''));
    await sleep(20);
    x.client.close('operator said so');
    for (const r of [r1, r2]) {
      await assert.rejects(r, (e: unknown) => {
        assert.ok(e instanceof LinkClosedError);
        assert.equal(e.code, 'EKM_LINK_CLOSED');
        assert.equal(e.message, 'link to server closed: operator said so');
        return true;
      });
    }
    await assert.rejects(x.client.request('after', enc('')), LinkClosedError);
    await assert.rejects(x.client.ping(), LinkClosedError);
    assert.throws(() => x.client.send('t', enc('')), LinkClosedError);
  });

  it('rejects pending requests when the peer closes the connection', async () => {
    const x = await fresh();
    x.server.attach({ onRequest: () => new Promise<Uint8Array>(() => undefined) });
    x.client.attach(noRequests);
    const r = x.client.request('hang', enc(''));
    await sleep(20);
    x.server.close('peer going away');
    await assert.rejects(r, (e: unknown) => e instanceof LinkClosedError && /closed: connection closed/.test(e.message));
  });

  it('drops the connection on a framing violation', async () => {
    const x = await fresh();
    x.server.attach(noRequests);
    const closed = new Promise<string>((r) => x.server.once('close', r));
    x.client.socket.write(Buffer.from([0, 0, 0, 6, 99, 0, 0, 0, 0, 0]));
    assert.equal(await closed, 'protocol violation: unknown frame kind 99');
  });

  it('exchanges hellos; a refusal reaches the other side with its reason', async () => {
    const x = await fresh();
    const hello = x.server.awaitHello(1000);
    x.client.sendHello({ purpose: 'link', role: 'partner' });
    assert.deepEqual(await hello, { purpose: 'link', role: 'partner' });

    const y = await fresh();
    const answer = y.client.awaitHello(1000);
    y.server.refuse('certificate not approved by this server');
    await assert.rejects(answer, (e: unknown) => {
      assert.ok(e instanceof EkmError);
      assert.equal(e.code, 'EKM_PEER_REFUSED');
      assert.equal(e.message, 'server refused this server: certificate not approved by this server');
      return true;
    });
    assert.equal(y.server.closed, true);

    const z = await fresh();
    await assert.rejects(z.client.awaitHello(50), PeerTimeoutError);
    z.server.socket.write(Buffer.from([0, 0, 0, 6, 1, 0, 0, 0, 0, 0x7b]));
    const bad = z.client.awaitHello(1000);
    await assert.rejects(bad, (e: unknown) => e instanceof EkmError && e.code === 'EKM_PEER_PROTOCOL');
  });
});
