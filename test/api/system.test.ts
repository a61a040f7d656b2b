/**
 * The public routes (health, info, servers, token, the OpenAPI document, metrics), the
 * scale-out routes' refusals and the answers fastify gives before routing, on a real in-process
 * triplet through `inject()`, every answer checked against its declared schema.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import type { Server as HttpsServer } from 'node:https';
import tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { type OpenApiDoc, openApiMarkdown } from '../../src/api/openapi-markdown.js';
import { API_DOC } from '../../scripts/gen-api-doc.js';
import { listenApi } from '../../src/api/app.js';
import { probeRemoteTriplet } from '../../src/cluster/health.js';
import { createIdentity } from '../../src/cluster/identity.js';
import { type ApiTriplet, ROOT_SO, assertError, startApiTriplet } from '../support/api-triplet.js';
import { freePorts } from '../support/cluster.js';

const FINGERPRINT = Array.from({ length: 32 }, () => 'AB').join(':');

describe('system routes', () => {
  let t: ApiTriplet;
  before(async () => {
    t = await startApiTriplet();
  });
  after(async () => t?.close());

  it('health: 200 and the triplet, all three servers up; to a caller without credentials only the bare status', async () => {
    const h = await t.call<{ status: string; triplet: { inService: boolean } }>({ method: 'GET', path: '/health', as: ROOT_SO });
    assert.equal(h.status, 200);
    assert.equal(h.body.status, 'ok');
    assert.equal(h.body.triplet.inService, true);
    assert.match(String(h.headers['x-request-id']), /^[0-9a-f-]{36}$/);
    const bare = await t.call({ method: 'GET', path: '/health' });
    assert.equal(bare.status, 200);
    assert.deepEqual(bare.body, { status: 'ok' }, 'no server names, versions or round trips to anyone');
    assertError(await t.call({ method: 'GET', path: '/health', as: [ROOT_SO[0], 'Wrong-pass-1'], basic: true }), 401, 'EKM_UNAUTHORIZED');
  });

  it('info and the servers of the cluster, as recorded and as probed, to any role', async () => {
    const info = await t.call<{ role: string; server: string; tripletId: string; schemaVersion: number }>({ method: 'GET', path: '/info' });
    assert.equal(info.body.role, 'ep');
    assert.equal(info.body.server, t.servers.ep.config.name);
    assert.equal((await t.root('POST', '/partitions', { name: 'readers', soPassword: 'Readers-SO-pass-1' })).status, 201);
    const reader = ['so@readers', 'Readers-SO-pass-1'] as const;
    assert.equal((await t.call({ method: 'POST', path: '/partitions/readers/users', body: { name: 'app', password: 'Reader-app-pass-1', role: 'user' }, as: reader })).status, 201);
    const servers = await t.call<{ servers: { role: string }[] }>({ method: 'GET', path: '/servers', as: ['app@readers', 'Reader-app-pass-1'], basic: true });
    assert.deepEqual(servers.body.servers.map((s) => s.role).sort(), ['aux', 'ep', 'partner']);
    const probed = await t.call<{ inService: boolean; triplets: unknown[] }>({ method: 'GET', path: '/servers/test', as: reader });
    assert.equal(probed.body.inService, true);
    assert.equal(probed.body.triplets.length, 1);
  });

  it('the servers (addresses, fingerprints, live probes) and the metrics: 401 without credentials', async () => {
    for (const path of ['/servers', '/servers/test', '/metrics']) assertError(await t.call({ method: 'GET', path }), 401, 'EKM_UNAUTHORIZED');
  });

  it('the password grant: a token for the right password, 401 otherwise', async () => {
    const ok = await t.call<{ token_type: string; expires_in: number }>({ method: 'POST', path: '/token', body: { grant_type: 'password', username: ROOT_SO[0], password: ROOT_SO[1] } });
    assert.equal(ok.body.token_type, 'Bearer');
    assertError(await t.call({ method: 'POST', path: '/token', body: { username: ROOT_SO[0], password: 'Wrong-pass-1' } }), 401, 'EKM_UNAUTHORIZED');
    assertError(await t.call({ method: 'POST', path: '/token', body: { username: ROOT_SO[0], password: ROOT_SO[1], grant_type: 'client_credentials' } }), 400, 'EKM_BAD_REQUEST', /^body\.grant_type: /);
  });

  it('the OpenAPI document lists every route, each with the schema of its answer', async () => {
    const d = await t.call<{ openapi: string; paths: Record<string, Record<string, { responses: Record<string, { content?: unknown }> }>>; 'x-undocumented'?: string[] }>({
      method: 'GET',
      path: '/openapi.json',
    });
    assert.equal(d.body.openapi, '3.1.0');
    assert.equal(d.body['x-undocumented'], undefined);
    const noSchema: string[] = [];
    for (const [path, ops] of Object.entries(d.body.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const ok = Object.entries(op.responses).find(([status]) => status.startsWith('2'));
        if (!ok?.[1].content) noSchema.push(`${method.toUpperCase()} ${path}`);
      }
    }
    // The document itself and the Prometheus text are the only answers that are not JSON objects.
    assert.deepEqual(noSchema.sort(), ['GET /api/v1/openapi.json', 'GET /metrics']);
  });

  it('docs/api.md is the document of these routes', async () => {
    const d = await t.call<OpenApiDoc>({ method: 'GET', path: '/openapi.json' });
    assert.ok(readFileSync(API_DOC, 'utf8') === openApiMarkdown(d.body), 'docs/api.md is out of date: node --import tsx scripts/gen-api-doc.ts');
  });

  it('metrics: to the root SO and root auditors only (403 to a partition SO or a root user)', async () => {
    assert.equal((await t.root('POST', '/partitions/root/users', { name: 'prometheus', password: 'Scrape-pass-1', role: 'auditor' })).status, 201);
    assert.equal((await t.root('POST', '/partitions/root/users', { name: 'rootapp', password: 'Rootapp-pass-1', role: 'user' })).status, 201);
    assert.equal((await t.call({ method: 'GET', path: '/metrics', as: ['prometheus@root', 'Scrape-pass-1'], basic: true })).status, 200);
    assertError(await t.call({ method: 'GET', path: '/metrics', as: ['rootapp@root', 'Rootapp-pass-1'] }), 403, 'EKM_FORBIDDEN', /root SO and root auditors read the metrics/);
    assertError(await t.call({ method: 'GET', path: '/metrics', as: ['so@readers', 'Readers-SO-pass-1'] }), 403, 'EKM_FORBIDDEN');
  });

  it('metrics: Prometheus text with the requests answered so far', async () => {
    const m = await t.call<string>({ method: 'GET', path: '/metrics', as: ROOT_SO });
    assert.equal(m.status, 200);
    assert.match(String(m.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(m.body, /ekm_http_requests_total\{method="GET",route="\/api\/v1\/health",operation="GET \/api\/v1\/health",status="200"\} 2/);
  });

  it("over TLS, an EP of the cluster (its identity certificate) reads the triplet's health without a password; another certificate gets up or down only", async () => {
    const [port] = await freePorts(1);
    const paths = t.servers.ep.paths;
    const identity = { keyPem: readFileSync(paths.tlsKey, 'utf8'), certPem: readFileSync(paths.tlsCert, 'utf8') };
    await listenApi(t.app, { host: '127.0.0.1', port: port!, identity });
    const ep = (await t.servers.ep.store.listServers()).find((s) => s.role === 'ep')!;
    const members = [{ ...ep, api: `127.0.0.1:${port}` }];
    const asEp = await probeRemoteTriplet(members, identity);
    assert.equal(asEp.inService, true, JSON.stringify(asEp));
    assert.deepEqual(asEp.servers.map((s) => s.role), ['ep', 'partner', 'aux']);
    const stranger = await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 });
    const asStranger = await probeRemoteTriplet(members, stranger);
    assert.equal(asStranger.inService, false);
    assert.match(asStranger.servers[0]?.detail ?? '', /told only up or down: it does not take this EP's certificate/);
    // A certificate counts as the handshake proved it, once: TLS 1.2 renegotiation is refused.
    const socket = tls.connect({ host: '127.0.0.1', port: port!, maxVersion: 'TLSv1.2', rejectUnauthorized: false });
    await once(socket, 'secureConnect');
    const renegotiated = await new Promise<Error | null>((resolve) => {
      socket.once('error', resolve);
      socket.once('close', () => resolve(new Error('closed')));
      socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? null));
    });
    socket.destroy();
    assert.notEqual(renegotiated, null, 'the EP accepted a renegotiation');
  });

  describe('scale-out routes refuse', () => {
    it('anyone but the root SO (401, 403), before any word about the input', async () => {
      assertError(await t.call({ method: 'POST', path: '/servers', body: {} }), 401, 'EKM_UNAUTHORIZED');
      assert.equal((await t.root('POST', '/partitions', { name: 'ops', soPassword: 'Ops-SO-pass-1' })).status, 201);
      const opsSo = ['so@ops', 'Ops-SO-pass-1'] as const;
      for (const [method, path] of [
        ['POST', '/servers/inspect'],
        ['POST', '/servers'],
        ['POST', '/servers/aux'],
        ['DELETE', '/servers/x'],
      ] as const) {
        assertError(await t.call({ method, path, body: method === 'POST' ? { bad: true } : undefined, as: opsSo }), 403, 'EKM_FORBIDDEN');
      }
    });

    it('bad input (400), an unapproved certificate (409), the triplet in use (409), an unknown server (404)', async () => {
      assertError(await t.root('POST', '/servers', { ep: 'a:1', partner: 'b:2' }), 400, 'EKM_BAD_REQUEST', /^body\.aux: /);
      assertError(await t.root('POST', '/servers/aux', { aux: 'c:3', approve: { 'c:3': 'not a fingerprint' } }), 400, 'EKM_BAD_REQUEST', /^body\.approve\.c:3: /);
      assertError(await t.root('POST', '/servers', { ep: 'a:1', partner: 'b:2', aux: 'c:3' }), 409, 'EKM_NOT_APPROVED');
      assertError(await t.root('POST', '/servers/aux', { aux: 'c:3' }), 409, 'EKM_NOT_APPROVED');
      assertError(await t.root('POST', '/servers', { ep: 'a:1', partner: 'b:2', aux: 'c:3', approve: { 'a:1': FINGERPRINT } }), 409, 'EKM_SCALE_OUT_NEEDS_POSTGRES');
      assertError(await t.root('DELETE', `/servers/${encodeURIComponent(t.servers.partner.config.name)}`), 409, 'EKM_SERVER_IN_USE');
      assertError(await t.root('DELETE', '/servers/ghost:1'), 404, 'EKM_SERVER_UNKNOWN');
      assertError(await t.root('DELETE', '/servers/ghost:1?force=maybe'), 400, 'EKM_BAD_REQUEST', /^query\.force: /);
    });

    it('a new Aux that does not answer (502)', async () => {
      const [port] = await freePorts(1);
      const r = await t.root('POST', '/servers/inspect', { aux: `127.0.0.1:${port}` });
      assert.equal(r.status, 502, JSON.stringify(r.body));
    });
  });

  describe('answers before routing', () => {
    it('404 for a route that does not exist', async () => {
      assertError(await t.call({ method: 'GET', path: '/nowhere' }), 404, 'EKM_NOT_FOUND', /^no route GET \/api\/v1\/nowhere$/);
    });

    it('414 for a path segment over 800 characters', async () => {
      assertError(await t.call({ method: 'GET', path: `/partitions/${'p'.repeat(801)}`, as: ROOT_SO }), 414, 'EKM_URI_TOO_LONG');
    });

    it('400 for a malformed JSON body', async () => {
      assertError(await t.call({ method: 'POST', path: '/token', headers: { 'content-type': 'application/json' }, body: '{"username":' }), 400, 'EKM_BAD_REQUEST');
    });
  });

  // Last: it stops the Aux of the shared triplet.
  it("keeps an idle client's connection as fastify does (72 s, not node's 5 s)", () => {
    const server = t.app.server as HttpsServer;
    assert.equal(server.keepAliveTimeout, 72_000);
    assert.equal(server.requestTimeout, 0);
  });

  it('health: 503 and the missing server once the Aux is down', async () => {
    await t.servers.aux.stop(1000);
    const h = await t.call<{ status: string; triplet: { inService: boolean } }>({ method: 'GET', path: '/health', as: ROOT_SO });
    assert.equal(h.status, 503);
    assert.equal(h.body.status, 'unavailable');
    assert.equal(h.body.triplet.inService, false);
  });
});
