/**
 * A bounded, seeded fuzzer over every route of the OpenAPI document, on a real in-process
 * triplet: each request takes a documented method and path (parameters real, hostile or random),
 * a random body (JSON of any shape, fields the routes know with random values, hostile text,
 * bytes that are not JSON) and random credentials (none, wrong, a user's, the root SO's, junk).
 * Every answer must be below 500 and, from 400, carry the error shape without a stack trace; the
 * audit chain must verify afterwards. Prints the requests sent and the answers by status.
 * EKM_FUZZ_RUNS sets the number of requests (500 in `npm test`, about 50 s; 3,000 in
 * `npm run test:full`); EKM_FUZZ_SEED the seed.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { type ApiTriplet, ROOT_SO, startApiTriplet } from '../support/api-triplet.js';

const RUNS = Number(process.env.EKM_FUZZ_RUNS ?? 500);
const SEED = Number(process.env.EKM_FUZZ_SEED ?? 20261208);
const USER = ['fuzzer@fz', 'Fuzzer-pass-1'] as const;
const basic = (u: string, p: string): string => `Basic ${Buffer.from(`${u}:${p}`, 'utf8').toString('base64')}`;
const HOSTILE = ['\uD800', 'a\u0000b', '\u202Egnp', '../../etc/passwd', '%00', "' OR 1=1 --", 'x'.repeat(300), '😀'.repeat(70), 'so@root', ''];
const FIELDS = ['alg', 'message', 'digest', 'signature', 'plaintext', 'ciphertext', 'aad', 'name', 'description', 'state', 'password', 'soPassword', 'oldPassword', 'newPassword', 'username', 'role', 'fipsRequired', 'maxFailedLogins', 'row', 'bits', 'scheme', 'hash', 'label', 'notAfter', 'publicKeyPem', 'keys', 'ep', 'partner', 'aux'];

describe(`fuzzing every route of the OpenAPI document (${RUNS} requests, seed ${SEED})`, () => {
  let t: ApiTriplet;
  let routes: { method: string; path: string }[] = [];
  const real: { keyIds: string[]; partitions: string[]; users: string[] } = { keyIds: [], partitions: ['root', 'fz'], users: ['so', 'fuzzer'] };
  let rootBearer = '';

  before(async () => {
    t = await startApiTriplet();
    assert.equal((await t.root('POST', '/partitions', { name: 'fz', soPassword: 'Fz-SO-pass-1' })).status, 201);
    assert.equal((await t.call({ method: 'POST', path: '/partitions/fz/users', body: { name: 'fuzzer', password: USER[1], role: 'user' }, as: ['so@fz', 'Fz-SO-pass-1'] })).status, 201);
    for (const alg of ['ecdsa-p256', 'eddsa-ed25519', 'aes-256-dprf']) {
      const k = await t.call<{ keyId: string }>({ method: 'POST', path: '/keys', body: { alg, name: `k-${alg}` }, as: USER });
      assert.equal(k.status, 201);
      real.keyIds.push(k.body.keyId, `k-${alg}`);
    }
    const tok = await t.call<{ access_token: string }>({ method: 'POST', path: '/token', body: { username: ROOT_SO[0], password: ROOT_SO[1] } });
    rootBearer = `Bearer ${tok.body.access_token}`;
    const doc = (await t.call<{ paths: Record<string, Record<string, unknown>> }>({ method: 'GET', path: '/openapi.json' })).body;
    routes = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((method) => ({ method: method.toUpperCase(), path })));
    assert.ok(routes.length >= 30, `${routes.length} routes`);
  });
  after(async () => t?.close());

  it('every answer is below 500, in the error shape when refused; the audit chain verifies', { timeout: 900_000 }, async () => {
    const param = fc.oneof(
      fc.constantFrom(...real.keyIds, ...real.partitions, ...real.users),
      fc.constantFrom(...HOSTILE),
      fc.string({ maxLength: 40 }),
    );
    const value = fc.oneof(fc.string({ maxLength: 80 }), fc.constantFrom(...HOSTILE), fc.integer(), fc.boolean(), fc.constant(null), fc.base64String({ maxLength: 64 }), fc.constantFrom(...real.keyIds));
    const body = fc.oneof(
      fc.constant(undefined),
      fc.dictionary(fc.constantFrom(...FIELDS), value, { maxKeys: 5 }),
      fc.jsonValue({ maxDepth: 4 }),
      fc.uint8Array({ maxLength: 100 }).map((b) => Buffer.from(b)),
    );
    // Mostly credentials that pass, so that requests reach the routes' validation and handlers.
    const auth = fc.oneof(
      { weight: 3, arbitrary: fc.constant(basic(USER[0], USER[1])) },
      { weight: 3, arbitrary: fc.constant(rootBearer) },
      { weight: 1, arbitrary: fc.constantFrom<string | undefined>(undefined, basic(USER[0], 'Wrong-pass-1'), basic('nobody@nowhere', 'Nobody-pass-1'), 'Bearer not-a-token', 'Basic !!!', 'Digest x') },
    );
    const statuses = new Map<number, number>();
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...routes), fc.array(param, { minLength: 3, maxLength: 3 }), body, auth, async (route, params, b, authorization) => {
        let i = 0;
        const url = route.path.replace(/\{[A-Za-z]+\}/g, () => encodeURIComponent(params[i++]!.replace(/[\uD800-\uDFFF]/g, 'x')));
        const payload = b === undefined ? undefined : Buffer.isBuffer(b) ? b : JSON.stringify(b);
        const r = await t.app.inject({
          method: route.method as 'GET',
          url,
          headers: { ...(authorization ? { authorization } : {}), ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
          ...(payload !== undefined ? { payload } : {}),
        });
        sent++;
        statuses.set(r.statusCode, (statuses.get(r.statusCode) ?? 0) + 1);
        assert.ok(r.statusCode < 500, `${route.method} ${url} -> ${r.statusCode} ${r.body.slice(0, 300)}`);
        if (r.statusCode >= 400) {
          const e = (JSON.parse(r.body) as { error?: { code?: unknown; message?: unknown } }).error;
          assert.equal(typeof e?.code, 'string', r.body.slice(0, 200));
          assert.equal(typeof e?.message, 'string', r.body.slice(0, 200));
          assert.ok(!/\n\s+at /.test(r.body), 'no stack trace');
        }
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: true },
    );
    const v = await t.root<{ ok: boolean; rows: number; problems: unknown[] }>('GET', '/audit/verify');
    assert.deepEqual(v.body.problems, []);
    const byStatus = [...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}: ${n}`).join(', ');
    process.stdout.write(`# fuzz: ${sent} requests over ${routes.length} routes; by status ${byStatus}; audit chain ${v.body.ok ? 'verifies' : 'BROKEN'} (${v.body.rows} rows)\n`);
  });
});
