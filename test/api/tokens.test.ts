/**
 * Bearer tokens on a real in-process triplet: a token stops working at once, on every EP that
 * shares the store, when its user's password is reset or changed, when the user or its partition
 * is deleted, and on logout (`DELETE /api/v1/token`); another user's token is not touched. A second
 * API built on the same EP's store stands for a second EP of the cluster (the two-triplet cluster
 * on PostgreSQL is test/cluster/scale-out.test.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApi } from '../../src/api/app.js';
import { tokenDigest } from '../../src/service/tokens.js';
import { type Answer, type ApiTriplet, assertError, checkAnswer, startApiTriplet } from '../support/api-triplet.js';

type Who = readonly [string, string];

describe('bearer tokens: revocation and logout on every EP', () => {
  let t: ApiTriplet;
  /** A second API on the same store: what another EP of the cluster sees. */
  let other: FastifyInstance;
  let n = 0;

  /** One request with `authorization` on `app`, its answer checked against the route's declared schema. */
  async function send(
    app: FastifyInstance,
    method: 'GET' | 'POST' | 'DELETE',
    path: string,
    authorization?: string,
    body?: unknown,
  ): Promise<Answer> {
    const url = `/api/v1${path}`;
    const r = await app.inject({
      method,
      url,
      headers: authorization ? { authorization } : {},
      ...(body === undefined ? {} : { payload: body as object }),
    });
    const answer = { status: r.statusCode, body: r.json<Record<string, unknown>>(), headers: r.headers };
    checkAnswer(t.doc, method, url, answer.status, answer.body);
    return answer;
  }
  const whoAmI = (app: FastifyInstance, bearer: string): Promise<Answer> => send(app, 'GET', '/me', bearer);

  async function login(app: FastifyInstance, [username, password]: Who): Promise<string> {
    const r = await send(app, 'POST', '/token', undefined, { username, password });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return `Bearer ${String(r.body.access_token)}`;
  }

  /** A new user of `partition`, with a token from each EP. */
  async function newUser(partition = 'tok'): Promise<{ who: Who; name: string; here: string; there: string }> {
    const name = `u${++n}`;
    const who: Who = [`${name}@${partition}`, `User-pass-${n}`];
    assert.equal((await t.root('POST', `/partitions/${partition}/users`, { name, password: who[1], role: 'user' })).status, 201);
    return { who, name, here: await login(t.app, who), there: await login(other, who) };
  }

  /** Both tokens of `u` are refused by both EPs; a bystander's are not. */
  async function assertRevoked(u: { here: string; there: string }, bystander: { here: string; there: string }): Promise<void> {
    for (const app of [t.app, other]) {
      for (const token of [u.here, u.there]) assertError(await whoAmI(app, token), 401, 'EKM_UNAUTHORIZED', /unknown, expired or revoked/);
      for (const token of [bystander.here, bystander.there]) assert.equal((await whoAmI(app, token)).status, 200);
    }
  }

  before(async () => {
    t = await startApiTriplet();
    other = (await buildApi(t.servers.ep.apiDeps())).app;
    assert.equal((await t.root('POST', '/partitions', { name: 'tok', soPassword: 'Tok-SO-pass-1' })).status, 201);
  });
  after(async () => {
    await other?.close();
    await t?.close();
  });

  it('a token issued by one EP is accepted by another', async () => {
    const u = await newUser();
    for (const app of [t.app, other]) {
      for (const token of [u.here, u.there]) {
        const me = await whoAmI(app, token);
        assert.deepEqual(me.body, { user: u.name, partition: 'tok', role: 'user' });
      }
    }
  });

  it('an SO resets the password: the old tokens are refused at once, on every EP', async () => {
    const [u, bystander] = [await newUser(), await newUser()];
    const r = await t.root('POST', `/partitions/tok/users/${u.name}/reset-password`, { password: 'New-user-pass-1' });
    assert.equal(r.status, 200);
    await assertRevoked(u, bystander);
    // The new password gives a token that works.
    assert.equal((await whoAmI(other, await login(t.app, [u.who[0], 'New-user-pass-1']))).status, 200);
  });

  it('the user changes its own password: its other tokens end too', async () => {
    const [u, bystander] = [await newUser(), await newUser()];
    const r = await send(other, 'POST', '/me/password', u.there, { oldPassword: u.who[1], newPassword: 'Changed-pass-1' });
    assert.equal(r.status, 200);
    await assertRevoked(u, bystander);
  });

  it('the user is deleted: its tokens are refused, also once a user of the same name is created again', async () => {
    const [u, bystander] = [await newUser(), await newUser()];
    assert.equal((await t.root('DELETE', `/partitions/tok/users/${u.name}`)).status, 200);
    await assertRevoked(u, bystander);
    assert.equal((await t.root('POST', '/partitions/tok/users', { name: u.name, password: u.who[1], role: 'so' })).status, 201);
    for (const app of [t.app, other]) assertError(await whoAmI(app, u.there), 401, 'EKM_UNAUTHORIZED');
  });

  it('the partition is deleted: the tokens of its users are refused, others are not', async () => {
    assert.equal((await t.root('POST', '/partitions', { name: 'gone', soPassword: 'Gone-SO-pass-1' })).status, 201);
    const [u, bystander] = [await newUser('gone'), await newUser()];
    assert.equal((await t.root('DELETE', '/partitions/gone')).status, 200);
    await assertRevoked(u, bystander);
  });

  it('logout: the token presented is refused on every EP; the user’s other tokens and other users are not', async () => {
    const [u, bystander] = [await newUser(), await newUser()];
    const out = await send(other, 'DELETE', '/token', u.here);
    assert.deepEqual([out.status, out.body], [200, { revoked: true }]);
    for (const app of [t.app, other]) {
      assertError(await whoAmI(app, u.here), 401, 'EKM_UNAUTHORIZED');
      assert.equal((await whoAmI(app, u.there)).status, 200, 'a logout ends only the token presented');
      assert.equal((await whoAmI(app, bystander.here)).status, 200);
    }
    // A second logout of the same token: it is gone.
    assertError(await send(t.app, 'DELETE', '/token', u.here), 401, 'EKM_UNAUTHORIZED');
    // The logout is audited under its user (a row is appended once its request was answered: group commit).
    type Rows = { rows: { operation: string; actor: string | null; result: string }[] };
    const logouts = async (): Promise<Rows['rows']> =>
      (await t.root<Rows>('GET', '/audit?limit=1000')).body.rows.filter((r) => r.operation === 'auth.logout');
    let rows = await logouts();
    for (let i = 0; i < 40 && rows.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
      rows = await logouts();
    }
    // Two logouts a few milliseconds apart may be appended in either order (each EP commits its own rows).
    assert.deepEqual(
      rows.map((r) => [r.actor, r.result]).sort((a, b) => String(b[1]).localeCompare(String(a[1]))),
      [
        [`${u.name}@tok`, 'ok'],
        [null, 'denied'],
      ],
    );
  });

  it('logout without a bearer token: no credentials is 401, HTTP Basic is 400 (it has no token to end)', async () => {
    const u = await newUser();
    assertError(await send(t.app, 'DELETE', '/token'), 401, 'EKM_UNAUTHORIZED');
    const basic = `Basic ${Buffer.from(`${u.who[0]}:${u.who[1]}`).toString('base64')}`;
    assertError(await send(t.app, 'DELETE', '/token', basic), 400, 'EKM_BAD_REQUEST', /bearer token/);
    assertError(await send(t.app, 'DELETE', '/token', 'Bearer not-a-token'), 401, 'EKM_UNAUTHORIZED');
  });

  it('the store keeps no token, only its SHA-256', async () => {
    const u = await newUser();
    const token = u.here.slice('Bearer '.length);
    const store = t.servers.ep.apiDeps().store;
    const now = new Date().toISOString();
    assert.equal(await store.getApiToken(token, now), undefined, 'the token itself is not a key of the store');
    assert.equal((await store.getApiToken(tokenDigest(token), now))?.user, u.name);
  });
});
