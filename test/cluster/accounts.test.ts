/**
 * Partitions, users, roles, tokens, the audit log, /metrics, OpenAPI and a bounded fuzz of the
 * API, on a real triplet. The EP runs with EKM_TOKEN_TTL_SECONDS=3 so that token expiry
 * is observable.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { EkmClient } from '../../src/client/client.js';
import { type BasicCaller, assertApiError as assertError, basicCaller } from '../support/api.js';
import { ROOT_SO_PASSWORD, type Triplet, bootAll, makeTriplet, run, waitInService } from '../support/cluster.js';
import { parseExposition, samplesOf } from '../support/prometheus.js';

const TTL = 3;
let t: Triplet;
let client: EkmClient;
let caller: BasicCaller;
let cert: string;

async function as<T = Record<string, unknown>>(user: string, password: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  return caller.as<T>(user, password, method, path, body);
}

const ROOT = ['so@root', ROOT_SO_PASSWORD] as const;
const A_SO = ['so@teama', 'TeamA-SO-pass'] as const;
const A_USER = ['alice@teama', 'Alice-pass-1'] as const;
const A_AUDITOR = ['audrey@teama', 'Audrey-pass-1'] as const;
const B_SO = ['so@teamb', 'TeamB-SO-pass'] as const;
const B_USER = ['bob@teamb', 'Bob-pass-123'] as const;
const SECRETS = [ROOT_SO_PASSWORD, A_SO[1], A_USER[1], A_AUDITOR[1], B_SO[1], B_USER[1], 'Alice-pass-2', 'wrong-password-1'];

before(async () => {
  t = await makeTriplet();
  await bootAll(t);
  for (const role of ['partner', 'aux', 'ep'] as const) {
    // Every wrong password of this file comes from one address: its limit is lifted (tested in test/api/login-limits.test.ts).
    const r = await run('ekm', ['start'], { ...t.env(role), EKM_TOKEN_TTL_SECONDS: String(TTL), EKM_LOGIN_FAILURES: '1000' });
    assert.equal(r.code, 0, r.stderr);
  }
  await waitInService(t, 60_000);
  cert = readFileSync(join(t.homes.ep, 'tls', 'server.crt'), 'utf8');
  client = new EkmClient({ servers: [{ host: '127.0.0.1', port: t.apiPort }], trustedCertsPem: [cert], timeoutMs: 60_000 });
  caller = basicCaller(t);
});
after(async () => {
  client?.close();
  caller?.close();
  await t?.cleanup();
});

describe('partitions and users per role', () => {
  let keyA: string;
  let keyB: string;

  it('the root SO creates partitions; nobody else does', async () => {
    assert.equal((await as(...ROOT, 'POST', '/partitions', { name: 'teama', soPassword: A_SO[1] })).status, 201);
    assert.equal((await as(...ROOT, 'POST', '/partitions', { name: 'teamb', soPassword: B_SO[1], fipsRequired: true })).status, 201);
    assertError(await as(...ROOT, 'POST', '/partitions', { name: 'teama', soPassword: A_SO[1] }), 409, 'EKM_EXISTS');
    assertError(await as(...ROOT, 'POST', '/partitions', { name: 'teamc', soPassword: 'short' }), 400, 'EKM_WEAK_PASSWORD');
    assertError(await as(...A_SO, 'POST', '/partitions', { name: 'teamc', soPassword: 'TeamC-SO-pass' }), 403, 'EKM_FORBIDDEN');
    const list = await as<{ partitions: { index: number; name: string }[] }>(...ROOT, 'GET', '/partitions');
    assert.deepEqual(
      list.body.partitions.map((p) => `${p.index}:${p.name}`),
      ['0:root', '1:teama', '2:teamb'],
    );
  });

  it('a partition SO creates users; a user and an auditor cannot', async () => {
    assert.equal((await as(...A_SO, 'POST', '/partitions/teama/users', { name: 'alice', password: A_USER[1], role: 'user' })).status, 201);
    assert.equal((await as(...A_SO, 'POST', '/partitions/teama/users', { name: 'audrey', password: A_AUDITOR[1], role: 'auditor' })).status, 201);
    assert.equal((await as(...B_SO, 'POST', '/partitions/teamb/users', { name: 'bob', password: B_USER[1], role: 'user' })).status, 201);
    assertError(await as(...A_USER, 'POST', '/partitions/teama/users', { name: 'eve', password: 'Eve-pass-123', role: 'so' }), 403, 'EKM_FORBIDDEN');
    assertError(await as(...A_AUDITOR, 'POST', '/partitions/teama/users', { name: 'eve', password: 'Eve-pass-123', role: 'user' }), 403, 'EKM_FORBIDDEN');
    assertError(await as(...A_USER, 'GET', '/partitions/teama/users'), 403, 'EKM_FORBIDDEN');
    assert.equal((await as(...A_AUDITOR, 'GET', '/partitions/teama/users')).status, 200);
    const me = await as(...A_USER, 'GET', '/partitions/teama/users/alice');
    assert.deepEqual([me.status, me.body.role, me.body.locked], [200, 'user', false]);
  });

  it('users and auditors: generate and sign only as SO or user; an auditor reads and verifies', async () => {
    const g = await as<{ keyId: string }>(...A_USER, 'POST', '/keys', { alg: 'ecdsa-p256' });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    keyA = g.body.keyId;
    assertError(await as(...A_AUDITOR, 'POST', '/keys', { alg: 'ecdsa-p256' }), 403, 'EKM_FORBIDDEN');
    const msg = Buffer.from('hello').toString('base64');
    const s = await as<{ signature: string }>(...A_USER, 'POST', `/keys/${keyA}/sign`, { message: msg });
    assert.equal(s.status, 200);
    assertError(await as(...A_AUDITOR, 'POST', `/keys/${keyA}/sign`, { message: msg }), 403, 'EKM_FORBIDDEN');
    assert.equal((await as(...A_AUDITOR, 'GET', `/keys/${keyA}`)).status, 200);
    const v = await as<{ valid: boolean }>(...A_AUDITOR, 'POST', `/keys/${keyA}/verify`, { message: msg, signature: s.body.signature });
    assert.equal(v.body.valid, true);
    assertError(await as(...A_AUDITOR, 'POST', `/keys/${keyA}/refresh`, {}), 403, 'EKM_FORBIDDEN');
    const list = await as<{ keys: { keyId: string }[]; total: number }>(...A_AUDITOR, 'GET', '/partitions/teama/keys');
    assert.deepEqual(list.body.keys.map((k) => k.keyId), [keyA]);
  });

  it('a FIPS-only partition refuses secp256k1 and accepts P-256', async () => {
    assertError(await as(...B_USER, 'POST', '/keys', { alg: 'ecdsa-secp256k1' }), 400, 'EKM_NOT_FIPS');
    const g = await as<{ keyId: string }>(...B_USER, 'POST', '/keys', { alg: 'ecdsa-p256' });
    assert.equal(g.status, 201);
    keyB = g.body.keyId;
  });

  it('a user of partition A cannot see partition B, its users or its keys', async () => {
    for (const path of [`/keys/${keyB}`, `/keys/${keyB}/public`]) assertError(await as(...A_USER, 'GET', path), 404);
    assertError(await as(...A_USER, 'POST', `/keys/${keyB}/sign`, { message: 'aGk=' }), 404);
    assertError(await as(...A_SO, 'GET', '/partitions/teamb'), 404, 'EKM_NOT_FOUND');
    assertError(await as(...A_SO, 'GET', '/partitions/teamb/users'), 404, 'EKM_NOT_FOUND');
    assertError(await as(...A_SO, 'GET', '/partitions/teamb/keys'), 404, 'EKM_NOT_FOUND');
    assertError(await as(...A_SO, 'POST', '/partitions/teamb/users', { name: 'x', password: 'Xx-pass-123', role: 'so' }), 404);
    const mine = await as<{ partitions: { name: string }[] }>(...A_USER, 'GET', '/partitions');
    assert.deepEqual(mine.body.partitions.map((p) => p.name), ['teama']);
    // Root sees that partitions exist, not their keys.
    assertError(await as(...ROOT, 'GET', `/keys/${keyA}`), 404);
    assertError(await as(...ROOT, 'GET', '/partitions/teama/keys'), 403);
    assertError(await as(...A_SO, 'POST', '/servers/aux/rederive', {}), 403, 'EKM_FORBIDDEN');
  });

  it('partition delete: never root, not while it holds keys unless forced', async () => {
    assertError(await as(...ROOT, 'DELETE', '/partitions/root'), 403);
    assertError(await as(...A_SO, 'DELETE', '/partitions/teama'), 403);
    assertError(await as(...ROOT, 'DELETE', '/partitions/teamb'), 409, 'EKM_PARTITION_NOT_EMPTY');
    const r = await as<{ keysDeleted: number }>(...ROOT, 'DELETE', '/partitions/teamb?force=true');
    assert.deepEqual([r.status, r.body.keysDeleted], [200, 1]);
    assertError(await as(...B_USER, 'GET', '/me'), 401);
  });
});

describe('lockout, reset, tokens', () => {
  it('locks after 5 failed logins, even with the right password; an SO reset unlocks', async () => {
    for (let i = 1; i <= 4; i++) assertError(await as('alice@teama', 'wrong-password-1', 'GET', '/me'), 401, 'EKM_UNAUTHORIZED');
    assertError(await as('alice@teama', 'wrong-password-1', 'GET', '/me'), 401, 'EKM_LOCKED');
    assertError(await as(...A_USER, 'GET', '/me'), 401, 'EKM_LOCKED');
    const shown = await as(...A_SO, 'GET', '/partitions/teama/users/alice');
    assert.deepEqual([shown.body.locked, shown.body.failedLogins], [true, 5]);
    assertError(await as(...A_AUDITOR, 'POST', '/partitions/teama/users/alice/reset-password', { password: 'Alice-pass-2' }), 403);
    assert.equal((await as(...A_SO, 'POST', '/partitions/teama/users/alice/reset-password', { password: 'Alice-pass-2' })).status, 200);
    assertError(await as(...A_USER, 'GET', '/me'), 401, 'EKM_UNAUTHORIZED');
    assert.equal((await as('alice@teama', 'Alice-pass-2', 'GET', '/me')).status, 200);
  });

  it('the root SO is never locked: after five failures its next check waits', async () => {
    for (let i = 0; i < 5; i++) assertError(await as('so@root', 'wrong-password-1', 'GET', '/me'), 401, 'EKM_UNAUTHORIZED');
    assertError(await as(...ROOT, 'GET', '/me'), 429, 'EKM_LOGIN_DELAYED');
    await new Promise((r) => setTimeout(r, 1100));
    assert.equal((await as(...ROOT, 'GET', '/me')).status, 200);
  });

  it('a bearer token works until EKM_TOKEN_TTL_SECONDS, then is refused', async () => {
    const tok = await client.request<{ access_token: string; expires_in: number }>('POST', '/api/v1/token', { username: 'alice@teama', password: 'Alice-pass-2' });
    assert.equal(tok.status, 200);
    assert.equal(tok.body.expires_in, TTL);
    const bearer = { authorization: `Bearer ${tok.body.access_token}` };
    const ok = await client.request<{ user: string }>('GET', '/api/v1/me', undefined, bearer);
    assert.deepEqual([ok.status, ok.body.user], [200, 'alice']);
    await new Promise((r) => setTimeout(r, TTL * 1000 + 700));
    const late = await client.request('GET', '/api/v1/me', undefined, bearer);
    assertError(late, 401, 'EKM_UNAUTHORIZED');
    assert.match(JSON.stringify(late.body), /unknown, expired or revoked/);
  });

  it('a password reset revokes the user’s tokens', async () => {
    const tok = await client.request<{ access_token: string }>('POST', '/api/v1/token', { username: 'alice@teama', password: 'Alice-pass-2' });
    const bearer = { authorization: `Bearer ${tok.body.access_token}` };
    assert.equal((await as(...A_SO, 'POST', '/partitions/teama/users/alice/reset-password', { password: 'Alice-pass-1' })).status, 200);
    assertError(await client.request('GET', '/api/v1/me', undefined, bearer), 401);
  });
});

describe('audit, metrics, OpenAPI', () => {
  it('the audit log has who, partition, operation, key, result, client and request id, and verifies', async () => {
    const rows = (await as<{ rows: Record<string, unknown>[] }>(...ROOT, 'GET', '/audit?limit=1000')).body.rows;
    const sign = rows.find((r) => r.operation === 'key.sign' && r.result === 'ok');
    assert.ok(sign, 'a sign is audited');
    assert.equal(sign.actor, 'alice@teama');
    assert.equal(sign.partition, 'teama');
    assert.match(String(sign.keyId), /^[0-9a-f]{16}$/);
    assert.equal(sign.client, '127.0.0.1');
    assert.match(String(sign.requestId), /^[0-9a-f-]{36}$/);
    const gen = rows.find((r) => r.operation === 'key.generate' && r.result === 'ok');
    assert.match(String(gen?.keyId), /^[0-9a-f]{16}$/, 'the generated key id is recorded');
    assert.ok(rows.some((r) => r.operation === 'user.whoami' && r.result === 'denied' && r.actor === 'alice@teama' && r.detail === 'EKM_LOCKED'));
    assert.ok(rows.some((r) => r.operation === 'key.sign' && r.result === 'denied' && r.actor === 'audrey@teama'));
    const v = await as<{ ok: boolean; rows: number }>(...ROOT, 'GET', '/audit/verify');
    assert.equal(v.body.ok, true, JSON.stringify(v.body));
    assert.ok(v.body.rows >= rows.length);
  });

  it('partition auditors see their partition’s rows only; users none; only root verifies', async () => {
    const rows = (await as<{ rows: { partition: string }[] }>(...A_AUDITOR, 'GET', '/audit')).body.rows;
    assert.ok(rows.length > 0);
    assert.ok(rows.every((r) => r.partition === 'teama'));
    assertError(await as(...A_USER, 'GET', '/audit'), 403);
    assertError(await as(...A_AUDITOR, 'GET', '/audit/verify'), 403);
  });

  it('no password appears in the audit log or the EP log', async () => {
    const rows = JSON.stringify((await as(...ROOT, 'GET', '/audit?limit=1000')).body);
    const log = readFileSync(join(t.homes.ep, 'logs', 'ekm.log'), 'utf8');
    for (const s of SECRETS) {
      assert.ok(!rows.includes(s), `audit holds ${s}`);
      assert.ok(!log.includes(s), `log holds ${s}`);
    }
  });

  it('/metrics speaks the Prometheus text format with per-route counts and latencies, and the process defaults, to the root SO only', async () => {
    const basicOf = ([user, password]: readonly [string, string]): Record<string, string> => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
    assert.equal((await client.request('GET', '/metrics')).status, 401, 'no metrics without credentials');
    assert.equal((await client.request('GET', '/metrics', undefined, basicOf(A_AUDITOR))).status, 403, "not to a partition's auditor");
    const r = await client.request<string>('GET', '/metrics', undefined, basicOf(ROOT));
    assert.equal(r.status, 200);
    // The strict reader refuses any line that is not a HELP, TYPE or sample of a declared family.
    const metrics = parseExposition(String(r.body));
    const sign = { method: 'POST', route: '/api/v1/keys/:keyId/sign', operation: 'key.sign' };
    assert.equal(metrics.families.get('ekm_http_requests_total')?.type, 'counter');
    assert.ok((samplesOf(metrics, 'ekm_http_requests_total', { ...sign, status: '200' })[0]?.value ?? 0) >= 1, 'signs are counted');
    assert.equal(metrics.families.get('ekm_http_request_duration_seconds')?.type, 'histogram');
    assert.ok((samplesOf(metrics, 'ekm_http_request_duration_seconds_bucket', { ...sign, le: '+Inf' })[0]?.value ?? 0) >= 1, 'sign latencies are recorded');
    assert.equal(metrics.families.get('ekm_protocol_aborts_total')?.type, 'counter');
    for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_active_handles_total'])
      assert.ok(metrics.families.has(name), name);
  });

  it('the OpenAPI document covers every route, the key routes included', async () => {
    const r = await client.request<{ openapi: string; paths: Record<string, Record<string, unknown>>; 'x-undocumented'?: string[] }>('GET', '/api/v1/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.body.openapi, '3.1.0');
    assert.equal(r.body['x-undocumented'], undefined, `undocumented: ${r.body['x-undocumented']?.join(', ')}`);
    for (const p of ['/api/v1/keys', '/api/v1/keys/{keyId}/sign', '/api/v1/keys/{keyId}/verify', '/api/v1/keys/{keyId}/public', '/api/v1/token', '/api/v1/partitions/{partition}/users/{user}'])
      assert.ok(r.body.paths[p], p);
  });
});

describe('bounded API fuzz', () => {
  /** Raw requests (no client niceties): any method, path, headers and body. */
  function raw(method: string, path: string, headers: Record<string, string>, body: Buffer | undefined): Promise<{ status: number; text: string }> {
    return new Promise((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', port: t.apiPort, method, path, headers: { ...headers, ...(body ? { 'content-length': String(body.length) } : {}) }, ca: [cert], checkServerIdentity: () => undefined, timeout: 30_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`hang: ${method} ${path}`)));
      req.on('error', (e: NodeJS.ErrnoException) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve({ status: 413, text: '{"error":{"code":"reset","message":"reset"}}' }) : reject(e)));
      if (body) req.write(body);
      req.end();
    });
  }

  const ROUTES = [
    '/api/v1/token',
    '/api/v1/keys',
    '/api/v1/keys/0123456789abcdef',
    '/api/v1/keys/0123456789abcdef/sign',
    '/api/v1/keys/0123456789abcdef/verify',
    '/api/v1/keys/0123456789abcdef/public',
    '/api/v1/keys/0123456789abcdef/refresh',
    '/api/v1/keys/0123456789abcdef/encrypt',
    '/api/v1/keys/0123456789abcdef/decrypt',
    '/api/v1/keys/0123456789abcdef/datakey',
    '/api/v1/keys/no%20such%20key',
    '/api/v1/keys/import',
    '/api/v1/partitions',
    '/api/v1/partitions/teama',
    '/api/v1/partitions/teama/users',
    '/api/v1/partitions/teama/users/alice',
    '/api/v1/partitions/teama/users/alice/reset-password',
    '/api/v1/partitions/teama/keys',
    '/api/v1/me',
    '/api/v1/me/password',
    '/api/v1/audit',
    '/api/v1/servers/aux/rederive',
  ];
  const junk = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('..', '%00', '%2e%2e/', '\u00ff', ':id', '{keyId}', 'A'.repeat(300), '0123456789ABCDEF'));
  const path = fc.oneof(
    fc.constantFrom(...ROUTES),
    fc.tuple(fc.constantFrom(...ROUTES), junk).map(([r, j]) => `${r}/${encodeURIComponent(j)}`),
    fc.tuple(fc.constantFrom(...ROUTES), junk).map(([r, j]) => `${r}?${encodeURIComponent(j)}=${encodeURIComponent(j)}`),
    junk.map((j) => `/api/v1/${encodeURIComponent(j)}`),
  );
  const auth = fc.oneof(
    fc.constant(undefined),
    fc.constant(`Basic ${Buffer.from('fuzz@nowhere:not-a-password').toString('base64')}`),
    fc.constant(`Basic ${Buffer.from(`${A_USER[0]}:${A_USER[1]}`).toString('base64')}`),
    fc.string({ maxLength: 60 }).map((s) => `Basic ${Buffer.from(s).toString('base64')}`),
    fc.string({ maxLength: 60 }).map((s) => `Bearer ${s.replace(/[^\x21-\x7e]/g, 'x')}`),
    fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
  );
  const body = fc.oneof(
    fc.constant(undefined),
    fc.jsonValue({ maxDepth: 3 }).map((v) => Buffer.from(JSON.stringify(v) ?? 'null')),
    fc.record({ alg: fc.string(), message: fc.string(), name: fc.string(), password: fc.string(), soPassword: fc.string(), role: fc.string() }, { requiredKeys: [] }).map((v) => Buffer.from(JSON.stringify(v))),
    fc
      .record({ name: fc.oneof(fc.string(), fc.constant(null)), description: fc.string(), state: fc.string(), plaintext: fc.string(), ciphertext: fc.base64String(), privateKeyPem: fc.string() }, { requiredKeys: [] })
      .map((v) => Buffer.from(JSON.stringify(v))),
    fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    fc.constant(Buffer.from('{"message":"' + 'A'.repeat(1_500_000) + '"}')),
    fc.constant(Buffer.from('{"a":'.repeat(5000))),
  );
  const ctype = fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=utf-16', 'multipart/form-data', undefined);

  it('every malformed request gets a 4xx with the error shape: no 5xx, no hang', { timeout: 900_000 }, async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'PATCH', 'DELETE'), path, auth, body, ctype, async (method, p, a, b, ct) => {
        const headers: Record<string, string> = {};
        if (a !== undefined) headers.authorization = a;
        if (ct !== undefined) headers['content-type'] = ct;
        const sendBody = method === 'GET' ? undefined : b;
        const r = await raw(method, p, headers, sendBody);
        if (r.status < 400) return; // a well-formed request that happened to be allowed (e.g. alice reading her partition)
        assert.ok(r.status < 500, `${method} ${p} -> ${r.status} ${r.text.slice(0, 200)}`);
        const parsed = JSON.parse(r.text) as { error?: { code?: unknown; message?: unknown } };
        assert.equal(typeof parsed.error?.code, 'string', r.text.slice(0, 200));
        assert.equal(typeof parsed.error?.message, 'string', r.text.slice(0, 200));
        assert.ok(!/\n\s+at /.test(r.text), 'no stack trace');
      }),
      { numRuns: 150, seed: 5 },
    );
    // Still serving, and alice was never locked by the fuzz (it only ever sent her right password).
    assert.equal((await as(...A_USER, 'GET', '/me')).status, 200);
  });
});
