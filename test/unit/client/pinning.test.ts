/**
 * EkmClient's trust (src/client/client.ts): exactly the pinned certificates, by fingerprint. A
 * server with any other certificate gets nothing (not even the request line with its
 * credentials); a pinned certificate is trusted whatever its validity dates, so that a client whose
 * clock is off still reaches its EP (test/faults/clock.test.ts does it with a real triplet).
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { EkmClient } from '../../../src/client/client.js';
import { type Identity, createIdentity } from '../../../src/cluster/identity.js';

interface Ep {
  server: Server;
  port: number;
  id: Identity;
  hits: number;
}

async function ep(id: Identity): Promise<Ep> {
  const e = { id, hits: 0 } as Ep;
  e.server = createServer({ key: id.keyPem, cert: id.certPem }, (_req, res) => {
    e.hits++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  await new Promise<void>((r) => e.server.listen(0, '127.0.0.1', () => r()));
  e.port = (e.server.address() as { port: number }).port;
  return e;
}

describe('EkmClient trusts the pinned certificates only', () => {
  let pinned: Ep;
  let stranger: Ep;
  let expired: Ep;
  before(async () => {
    pinned = await ep(await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 }));
    stranger = await ep(await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 }));
    // Valid for no time at all: expired from the start.
    expired = await ep(await createIdentity({ role: 'ep', host: '127.0.0.1', years: 0 }));
  });
  after(() => {
    for (const e of [pinned, stranger, expired]) e.server.close();
  });

  it('a server with another certificate is refused before any request reaches it', async () => {
    const c = new EkmClient({ servers: [{ host: '127.0.0.1', port: stranger.port }], trustedCertsPem: [pinned.id.certPem] });
    await assert.rejects(c.request('GET', '/api/v1/health', undefined, { authorization: 'Basic c286cGFzcw==' }), (e: unknown) => {
      assert.equal((e as { code?: string }).code, 'EKM_UNTRUSTED');
      assert.match((e as Error).message, new RegExp(`127\\.0\\.0\\.1:${stranger.port} presented a certificate that is not trusted`));
      return true;
    });
    assert.equal(stranger.hits, 0, 'the stranger never saw the request');
    c.close();
  });

  it('the pinned server is trusted, also with an expired certificate', async () => {
    for (const e of [pinned, expired]) {
      // Without learning the cluster's EPs: the one request counted is the caller's.
      const c = new EkmClient({ servers: [{ host: '127.0.0.1', port: e.port }], trustedCertsPem: [e.id.certPem], discover: false });
      const r = await c.request('GET', '/api/v1/health');
      assert.equal(r.status, 200);
      assert.equal(e.hits, 1);
      c.close();
    }
  });

  // Bounded: the bug this guards against left the request hanging for ever.
  it(
    'a request on a kept-alive connection that gets no answer times out as a timeout (ETIMEDOUT), not as a reset',
    { timeout: 10_000 },
    async () => {
      let answer = true;
      const slow = await ep(await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 }));
      slow.server.removeAllListeners('request');
      slow.server.on('request', (_req, res) => {
        if (answer) res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
      const c = new EkmClient({ servers: [{ host: '127.0.0.1', port: slow.port }], trustedCertsPem: [slow.id.certPem], timeoutMs: 300 });
      assert.equal((await c.request('GET', '/api/v1/health')).status, 200);
      answer = false;
      await assert.rejects(c.request('GET', '/api/v1/health'), (e: unknown) => {
        assert.match((e as Error).message, /timeout/);
        return true;
      });
      c.close();
      slow.server.closeAllConnections();
      slow.server.close();
    },
  );

  it('a server that accepts the connection but never answers the handshake times out (and fails over)', async () => {
    const { createServer: createTcp } = await import('node:net');
    const silent = createTcp(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as { port: number }).port;
    const c = new EkmClient({
      servers: [
        { host: '127.0.0.1', port },
        { host: '127.0.0.1', port: pinned.port },
      ],
      trustedCertsPem: [pinned.id.certPem],
      timeoutMs: 300,
    });
    const r = await c.request('GET', '/api/v1/health');
    assert.equal(r.status, 200);
    assert.equal(r.server, `127.0.0.1:${pinned.port}`);
    c.close();
    silent.close();
  });
});
