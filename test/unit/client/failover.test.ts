/**
 * EkmClient's failover (src/client/client.ts): a refused connection, a 503, and a 502
 * EKM_PROTOCOL_ABORTED ("not performed; safe to retry") move a request to the next EP; other
 * answers are returned as they are. Two real HTTPS servers with pinned self-signed certificates.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { EkmClient } from '../../../src/client/client.js';
import { createIdentity } from '../../../src/cluster/identity.js';

interface Ep {
  server: Server;
  port: number;
  certPem: string;
  answer: { status: number; body: unknown };
  hits: number;
}

/** Both EPs get the identity a loopback cluster gives them (role ep, host 127.0.0.1), as ep1 and ep2 of a Quickstart do. */
async function ep(): Promise<Ep> {
  const id = await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 });
  const e = { answer: { status: 200, body: { ok: true } }, hits: 0, certPem: id.certPem } as Ep;
  e.server = createServer({ key: id.keyPem, cert: id.certPem }, (_req, res) => {
    e.hits++;
    res.writeHead(e.answer.status, { 'content-type': 'application/json' }).end(JSON.stringify(e.answer.body));
  });
  await new Promise<void>((r) => e.server.listen(0, '127.0.0.1', () => r()));
  e.port = (e.server.address() as { port: number }).port;
  return e;
}

describe('EkmClient failover', () => {
  let a: Ep;
  let b: Ep;
  before(async () => {
    a = await ep();
    b = await ep();
  });
  after(() => {
    a.server.close();
    b.server.close();
  });
  const client = (eps: Ep[]): EkmClient =>
    new EkmClient({ servers: eps.map((e) => ({ host: '127.0.0.1', port: e.port })), trustedCertsPem: eps.map((e) => e.certPem) });

  it('two EPs on one host, both pinned, are each trusted (their certificates differ in subject and key identifier)', async () => {
    a.answer = { status: 200, body: { ok: 'a' } };
    b.answer = { status: 200, body: { ok: 'b' } };
    for (const order of [[a, b], [b, a]]) {
      for (const only of order) {
        const c = new EkmClient({ servers: [{ host: '127.0.0.1', port: only.port }], trustedCertsPem: order.map((e) => e.certPem) });
        const r = await c.request('GET', '/api/v1/health');
        assert.equal(r.status, 200, `the EP on port ${only.port} is trusted`);
        c.close();
      }
    }
  });

  it('a 502 EKM_PROTOCOL_ABORTED goes to the next EP; with one EP it is returned', async () => {
    a.answer = { status: 502, body: { error: { code: 'EKM_PROTOCOL_ABORTED', message: 'frost-sign aborted: timeout' } } };
    b.answer = { status: 200, body: { signature: 'x' } };
    const c = client([a, b]);
    const r = await c.request('POST', '/api/v1/keys/k/sign', {});
    assert.equal(r.status, 200);
    assert.equal(r.server, `127.0.0.1:${b.port}`);
    c.close();
    const single = client([a]);
    assert.equal((await single.request('POST', '/api/v1/keys/k/sign', {})).status, 502);
    single.close();
  });

  it('other errors are the answer: a 502 with another code, a 400', async () => {
    for (const answer of [
      { status: 502, body: { error: { code: 'EKM_PEER_ERROR', message: 'x' } } },
      { status: 400, body: { error: { code: 'EKM_BAD_INPUT', message: 'x' } } },
    ]) {
      a.answer = answer;
      const before = b.hits;
      const c = client([a, b]);
      assert.equal((await c.request('POST', '/api/v1/keys/k/sign', {})).status, answer.status);
      assert.equal(b.hits, before, 'the other EP was not asked');
      c.close();
    }
  });
});
