/**
 * Partition, user and audit routes on a real in-process triplet, through `inject()`: success and
 * refusal (401, 403, 404, 400, 409) of each, every answer checked against its declared schema.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiTriplet, ROOT_SO, assertError, startApiTriplet } from '../support/api-triplet.js';

type Who = readonly [string, string];
const SALES_SO: Who = ['so@sales', 'Sales-SO-pass-1'];
const BOB: Who = ['bob@sales', 'Bob-pass-1'];
const AUDITOR: Who = ['eve@sales', 'Eve-pass-1'];
const ROOT_AUDITOR: Who = ['ray@root', 'Ray-pass-1'];

type Partition = { name: string; index: number; fipsRequired: boolean; maxFailedLogins: number; keys: number };
type User = { name: string; partition: string; role: string; locked: boolean; failedLogins: number };

describe('partition, user and audit routes', () => {
  let t: ApiTriplet;
  const as = <T = Record<string, unknown>>(who: Who, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown) => t.call<T>({ method, path, body, as: who });

  before(async () => {
    t = await startApiTriplet();
  });
  after(async () => t?.close());

  it('the root SO creates, shows, changes and lists partitions', async () => {
    const created = await t.root<Partition>('POST', '/partitions', { name: 'sales', soPassword: SALES_SO[1], fipsRequired: true, maxFailedLogins: 3 });
    assert.equal(created.status, 201);
    assert.equal(created.body.fipsRequired, true);
    assertError(await t.root('POST', '/partitions', { name: 'sales', soPassword: 'Another-pass-1' }), 409, 'EKM_EXISTS');
    assert.equal((await as<Partition>(SALES_SO, 'GET', '/partitions/sales')).body.maxFailedLogins, 3);
    assert.equal((await as<Partition>(SALES_SO, 'PATCH', '/partitions/sales', { maxFailedLogins: 5 })).body.maxFailedLogins, 5);
    const all = await t.root<{ partitions: Partition[] }>('GET', '/partitions');
    assert.deepEqual(all.body.partitions.map((p) => p.name).sort(), ['root', 'sales']);
    const own = await as<{ partitions: Partition[] }>(SALES_SO, 'GET', '/partitions');
    assert.deepEqual(
      own.body.partitions.map((p) => p.name),
      ['sales'],
    );
  });

  it('counts a password as it is hashed (NFKC): eight code points that compose into four characters are too short', async () => {
    const fourComposed = 'e\u0301o\u0301a\u0301u\u0301';
    assertError(await as(SALES_SO, 'POST', '/partitions/sales/users', { name: 'nfkc', password: fourComposed, role: 'user' }), 400, 'EKM_WEAK_PASSWORD', /at least 8 characters/);
    assertError(await as(SALES_SO, 'POST', '/partitions/sales/users/so/reset-password', { password: fourComposed }), 400, 'EKM_WEAK_PASSWORD');
    const composed = `${fourComposed}${fourComposed}`;
    assert.equal((await as(SALES_SO, 'POST', '/partitions/sales/users', { name: 'nfkc', password: composed, role: 'user' })).status, 201);
    // The same password typed precomposed logs in: it is one password.
    assert.equal((await t.call({ method: 'GET', path: '/me', as: ['nfkc@sales', composed.normalize('NFC')], basic: true })).status, 200);
    assert.deepEqual((await as(SALES_SO, 'DELETE', '/partitions/sales/users/nfkc')).body, { deleted: 'nfkc@sales' });
  });

  it('creates of one name at once: one is made, the others are refused 409, never a 5xx', async () => {
    const partitions = await Promise.all([1, 2, 3].map(() => t.root('POST', '/partitions', { name: 'twice', soPassword: 'Twice-SO-pass-1' })));
    assert.deepEqual(partitions.map((r) => r.status).sort(), [201, 409, 409]);
    for (const r of partitions.filter((x) => x.status === 409)) assertError(r, 409, 'EKM_EXISTS');
    const users = await Promise.all([1, 2, 3].map(() => t.root('POST', '/partitions/twice/users', { name: 'dup', password: 'Dup-user-pass-1', role: 'user' })));
    assert.deepEqual(users.map((r) => r.status).sort(), [201, 409, 409]);
    for (const r of users.filter((x) => x.status === 409)) assertError(r, 409, 'EKM_EXISTS');
  });

  it('a partition SO creates, shows, lists, resets and deletes users', async () => {
    assert.equal((await as<User>(SALES_SO, 'POST', '/partitions/sales/users', { name: 'bob', password: BOB[1], role: 'user' })).status, 201);
    assert.equal((await as<User>(SALES_SO, 'POST', '/partitions/sales/users', { name: 'eve', password: AUDITOR[1], role: 'auditor' })).status, 201);
    assert.equal((await t.root<User>('POST', '/partitions/root/users', { name: 'ray', password: ROOT_AUDITOR[1], role: 'auditor' })).status, 201);
    assertError(await as(SALES_SO, 'POST', '/partitions/sales/users', { name: 'bob', password: BOB[1], role: 'user' }), 409, 'EKM_EXISTS');
    const users = await as<{ users: User[] }>(SALES_SO, 'GET', '/partitions/sales/users');
    assert.deepEqual(users.body.users.map((u) => u.name).sort(), ['bob', 'eve', 'so']);
    assert.equal((await as<User>(BOB, 'GET', '/partitions/sales/users/bob')).body.role, 'user');

    assert.equal((await as<User>(SALES_SO, 'POST', '/partitions/sales/users', { name: 'tmp', password: 'Tmp-pass-1', role: 'user' })).status, 201);
    const reset = await as(SALES_SO, 'POST', '/partitions/sales/users/tmp/reset-password', { password: 'Tmp-pass-2' });
    assert.deepEqual(reset.body, { reset: 'tmp@sales', locked: false });
    assert.equal((await t.call({ method: 'GET', path: '/me', as: ['tmp@sales', 'Tmp-pass-2'], basic: true })).status, 200);
    assert.deepEqual((await as(SALES_SO, 'DELETE', '/partitions/sales/users/tmp')).body, { deleted: 'tmp@sales' });
    assertError(await as(SALES_SO, 'GET', '/partitions/sales/users/tmp'), 404, 'EKM_NOT_FOUND');
  });

  it('who am I, and changing one’s own password (the old one is asked again)', async () => {
    assert.deepEqual((await as(BOB, 'GET', '/me')).body, { user: 'bob', partition: 'sales', role: 'user' });
    assert.equal((await as(SALES_SO, 'POST', '/partitions/sales/users', { name: 'carol', password: 'Carol-pass-1', role: 'user' })).status, 201);
    const carol: Who = ['carol@sales', 'Carol-pass-1'];
    assertError(await t.call({ method: 'POST', path: '/me/password', as: carol, basic: true, body: { oldPassword: 'Wrong-pass-1', newPassword: 'Carol-pass-2' } }), 401, 'EKM_UNAUTHORIZED');
    const changed = await t.call({ method: 'POST', path: '/me/password', as: carol, basic: true, body: { oldPassword: carol[1], newPassword: 'Carol-pass-2' } });
    assert.deepEqual(changed.body, { changed: 'carol@sales' });
    assertError(await t.call({ method: 'GET', path: '/me', as: carol, basic: true }), 401, 'EKM_UNAUTHORIZED');
    assert.equal((await t.call({ method: 'GET', path: '/me', as: ['carol@sales', 'Carol-pass-2'], basic: true })).status, 200);
  });

  it('keys of a partition are listed from within it only', async () => {
    const k = await as<{ keyId: string }>(BOB, 'POST', '/keys', { alg: 'ecdsa-p256' });
    assert.equal(k.status, 201);
    const listed = await as<{ keys: { keyId: string }[]; total: number }>(BOB, 'GET', '/partitions/sales/keys?alg=ecdsa-p256&limit=10');
    assert.deepEqual(
      listed.body.keys.map((x) => x.keyId),
      [k.body.keyId],
    );
    assertError(await t.root('GET', '/partitions/sales/keys'), 403, 'EKM_FORBIDDEN');
    assertError(await as(BOB, 'POST', '/keys', { alg: 'ecdsa-secp256k1' }), 400, 'EKM_NOT_FIPS');
    assertError(await as(BOB, 'GET', '/partitions/sales/keys?limit=0'), 400, 'EKM_BAD_REQUEST', /^query\.limit: /);
  });

  it('the audit log: rows by partition, the chain verified by the root', async () => {
    type Rows = { rows: { operation: string; partition: string | null }[]; next: number | null };
    // A row is appended once its request was answered (group commit): the last ones may take a moment.
    let rows = await as<Rows>(SALES_SO, 'GET', '/audit?limit=1000');
    for (let i = 0; i < 40 && !rows.body.rows.some((r) => r.operation === 'key.generate'); i++) {
      await new Promise((r) => setTimeout(r, 50));
      rows = await as<Rows>(SALES_SO, 'GET', '/audit?limit=1000');
    }
    assert.ok(rows.body.rows.length > 0, 'rows');
    assert.ok(rows.body.rows.every((r) => r.partition === 'sales'), JSON.stringify(rows.body.rows.filter((r) => r.partition !== 'sales')));
    assert.ok(rows.body.rows.some((r) => r.operation === 'key.generate'), JSON.stringify(rows.body.rows.map((r) => r.operation)));
    const page = await as<{ rows: { seq: number }[]; next: number | null }>(ROOT_AUDITOR, 'GET', '/audit?limit=2');
    assert.equal(page.body.rows.length, 2);
    assert.equal(page.body.next, page.body.rows[1]!.seq);
    const verified = await as<{ ok: boolean; problems: unknown[] }>(ROOT_AUDITOR, 'GET', '/audit/verify');
    assert.equal(verified.body.ok, true, JSON.stringify(verified.body.problems));
    assertError(await as(BOB, 'GET', '/audit'), 403, 'EKM_FORBIDDEN');
    assertError(await as(AUDITOR, 'GET', '/audit/verify'), 403, 'EKM_FORBIDDEN');
    assertError(await as(AUDITOR, 'GET', '/audit?after=-1'), 400, 'EKM_BAD_REQUEST', /^query\.after: /);
    assertError(await as(BOB, 'GET', '/audit?after=-1'), 403, 'EKM_FORBIDDEN');
  });

  it('deletes a partition: refused while it holds keys, then with force', async () => {
    assertError(await t.root('DELETE', '/partitions/sales'), 409, 'EKM_PARTITION_NOT_EMPTY');
    assertError(await t.root('DELETE', '/partitions/sales?force=yes'), 400, 'EKM_BAD_REQUEST', /^query\.force: /);
    assertError(await as(SALES_SO, 'DELETE', '/partitions/sales?force=true'), 403, 'EKM_FORBIDDEN');
    assertError(await t.root('DELETE', '/partitions/root'), 403, 'EKM_FORBIDDEN');
    const d = await t.root('DELETE', '/partitions/sales?force=true');
    assert.deepEqual(d.body, { deleted: 'sales', keysDeleted: 1 });
    assertError(await t.root('GET', '/partitions/sales'), 404, 'EKM_NOT_FOUND');
  });

  describe('refusals', () => {
    it('401 before any word about the input', async () => {
      assertError(await t.call({ method: 'POST', path: '/partitions', body: { name: 'bad name' } }), 401, 'EKM_UNAUTHORIZED');
      assertError(await t.call({ method: 'GET', path: '/partitions/bad%20name!/users' }), 401, 'EKM_UNAUTHORIZED');
      assertError(await t.call({ method: 'GET', path: '/me' }), 401, 'EKM_UNAUTHORIZED');
      assertError(await t.call({ method: 'GET', path: '/audit' }), 401, 'EKM_UNAUTHORIZED');
    });

    it('403 for one who may not', async () => {
      assertError(await as(ROOT_AUDITOR, 'POST', '/partitions', { name: 'nope', soPassword: 'Nope-pass-1' }), 403, 'EKM_FORBIDDEN');
      assertError(await as(ROOT_AUDITOR, 'POST', '/partitions/root/users', { name: 'x', password: 'Xx-pass-1', role: 'user' }), 403, 'EKM_FORBIDDEN');
    });

    it('404 for a partition or user that does not exist', async () => {
      assertError(await t.root('GET', '/partitions/ghost'), 404, 'EKM_NOT_FOUND');
      assertError(await t.root('GET', '/partitions/root/users/ghost'), 404, 'EKM_NOT_FOUND');
      assertError(await t.root('GET', '/partitions/ghost/users'), 404, 'EKM_NOT_FOUND');
    });

    it('400 with the part and field that is wrong', async () => {
      assertError(await t.root('POST', '/partitions', { name: 'bad name', soPassword: 'Pass-word-1' }), 400, 'EKM_BAD_REQUEST', /^body\.name: /);
      assertError(await t.root('POST', '/partitions', { name: 'ok', soPassword: 'Pass-word-1', maxFailedLogins: 0 }), 400, 'EKM_BAD_REQUEST', /^body\.maxFailedLogins: /);
      assertError(await t.root('PATCH', '/partitions/root', {}), 400, 'EKM_BAD_REQUEST', /^body\.maxFailedLogins: /);
      assertError(await t.root('GET', '/partitions/bad%20name!'), 400, 'EKM_BAD_REQUEST', /^path\.partition: /);
      assertError(await t.root('POST', '/partitions/root/users', { name: 'x', password: 'Xx-pass-1', role: 'admin' }), 400, 'EKM_BAD_REQUEST', /^body\.role: /);
      assertError(await t.root('GET', '/partitions/root/users/bad!'), 400, 'EKM_BAD_REQUEST', /^path\.user: /);
      assertError(await t.root('POST', '/me/password', { oldPassword: ROOT_SO[1] }), 400, 'EKM_BAD_REQUEST', /^body\.newPassword: /);
      assertError(await t.call({ method: 'POST', path: '/token', body: { username: 'so@root' } }), 400, 'EKM_BAD_REQUEST', /^body\.password: /);
    });
  });
});
