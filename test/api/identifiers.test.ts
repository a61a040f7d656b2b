/**
 * Identifiers are never reused, on a real in-process triplet: a partition deleted with its keys
 * (`ucl partition delete --force`) leaves its id retired, so a partition created after it — under
 * a new name or under the same one — sees none of its keys, destroyed keys, users or audit rows,
 * and the audit chain still verifies.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ApiTriplet, ROOT_SO, assertError, startApiTriplet } from '../support/api-triplet.js';

type Who = readonly [string, string];
type Partition = { name: string; index: number };
type Key = { keyId: string; name: string | null; description: string | null; state: string };
type AuditRow = { seq: number; actor: string | null; partition: string | null; partitionId: number | null; operation: string };

const P1_SO: Who = ['so@p1', 'P1-so-pass-1'];
const OLD_P2_SO: Who = ['so@p2', 'Old-p2-so-pass-1'];
const OLD_P2_AUDITOR: Who = ['aud@p2', 'Old-p2-aud-pass-1'];
const P3_SO: Who = ['so@p3', 'P3-so-pass-1'];
// Other passwords than the old partition's: the harness keeps one token per user and password.
const NEW_P2_SO: Who = ['so@p2', 'New-p2-so-pass-1'];
const NEW_P2_AUDITOR: Who = ['aud@p2', 'New-p2-aud-pass-1'];

describe('identifiers are never reused', () => {
  let t: ApiTriplet;
  const as = <T = Record<string, unknown>>(who: Who, method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown) =>
    t.call<T>({ method, path, body, as: who });
  const createPartition = async (name: string, so: Who): Promise<Partition> => {
    const r = await t.root<Partition>('POST', '/partitions', { name, soPassword: so[1] });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    return r.body;
  };
  /** The audit rows `who` reads once one satisfies `awaited`: a row is committed just after its answer has left. */
  const auditOf = async (who: Who, awaited: (r: AuditRow) => boolean): Promise<AuditRow[]> => {
    for (let attempt = 0; ; attempt++) {
      const r = await as<{ rows: AuditRow[] }>(who, 'GET', '/audit?limit=1000');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      if (r.body.rows.some(awaited) || attempt === 50) return r.body.rows;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  const rootAudit = (awaited: (r: AuditRow) => boolean): Promise<AuditRow[]> => auditOf(ROOT_SO, awaited);

  before(async () => {
    t = await startApiTriplet();
  });
  after(async () => t?.close());

  it('a partition created after a forced delete gets a new id and sees no key, destroyed key, user or audit row of the deleted one', async () => {
    await createPartition('p1', P1_SO);
    const oldP2 = await createPartition('p2', OLD_P2_SO);
    assert.equal((await as(P1_SO, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'p1-key' })).status, 201);
    const secret = await as<Key>(OLD_P2_SO, 'POST', '/keys', {
      alg: 'ecdsa-p256',
      name: 'merger-acme',
      description: 'signs the Acme merger',
    });
    assert.equal(secret.status, 201);
    assert.equal((await as(OLD_P2_SO, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'kept' })).status, 201);
    assert.equal((await as(OLD_P2_SO, 'DELETE', '/keys/merger-acme')).status, 200);
    assert.equal(
      (await as(OLD_P2_SO, 'POST', '/partitions/p2/users', { name: 'aud', password: OLD_P2_AUDITOR[1], role: 'auditor' })).status,
      201,
    );
    const oldRows = await auditOf(OLD_P2_AUDITOR, (r) => r.operation === 'key.destroy');
    assert.ok(
      oldRows.some((r) => r.operation === 'key.destroy'),
      'the old partition audited its destroy',
    );
    const oldSeqs = new Set(oldRows.map((r) => r.seq));

    const deleted = await t.root<{ keysDeleted: number }>('DELETE', '/partitions/p2?force=true');
    assert.equal(deleted.status, 200, JSON.stringify(deleted.body));
    assert.equal(deleted.body.keysDeleted, 1);

    // The deleted partition was the newest: the next one must not get its id.
    const p3 = await createPartition('p3', P3_SO);
    const newP2 = await createPartition('p2', NEW_P2_SO);
    assert.ok(p3.index > oldP2.index, `p3 (index ${p3.index}) does not reuse the deleted p2's (${oldP2.index})`);
    assert.ok(newP2.index > p3.index, 'a partition re-created under an old name gets a new id');

    for (const so of [P3_SO, NEW_P2_SO]) {
      const destroyed = await as<{ keys: Key[] }>(so, 'GET', '/keys?state=destroyed');
      assert.deepEqual(destroyed.body.keys, [], `${so[0]} lists no destroyed key of the deleted p2`);
      assert.deepEqual((await as<{ keys: Key[] }>(so, 'GET', '/keys')).body.keys, []);
      assertError(await as(so, 'GET', `/keys/${secret.body.keyId}`), 404, 'EKM_KEY_NOT_FOUND');
    }
    const listed = await as<{ keys: unknown[]; total: number }>(NEW_P2_SO, 'GET', '/partitions/p2/keys');
    assert.deepEqual([listed.body.keys, listed.body.total], [[], 0]);
    const users = await as<{ users: { name: string }[] }>(NEW_P2_SO, 'GET', '/partitions/p2/users');
    assert.deepEqual(
      users.body.users.map((u) => u.name),
      ['so'],
      'the old partition’s users are gone',
    );
    assertError(await t.call({ method: 'GET', path: '/me', as: OLD_P2_AUDITOR, basic: true }), 401, 'EKM_UNAUTHORIZED');

    // The new p2's audit rows: bound to its id, none of the old p2's.
    assert.equal(
      (await as(NEW_P2_SO, 'POST', '/partitions/p2/users', { name: 'aud', password: NEW_P2_AUDITOR[1], role: 'auditor' })).status,
      201,
    );
    assert.equal((await t.call({ method: 'POST', path: '/token', body: { username: 'so@p2', password: 'Wrong-pass-1' } })).status, 401);
    const newRows = await auditOf(NEW_P2_AUDITOR, (r) => r.operation === 'auth.token');
    const leaked = newRows.filter((r) => oldSeqs.has(r.seq));
    assert.deepEqual(leaked, [], 'the re-created p2 reads none of the deleted p2’s audit rows');
    assert.ok(newRows.some((r) => r.operation === 'user.create'));
    assert.ok(
      newRows.some((r) => r.operation === 'auth.token' && r.actor === 'so@p2'),
      'a failed login claiming the partition is filed under it',
    );
    const newId = newRows[0]!.partitionId;
    assert.equal(typeof newId, 'number');
    assert.ok(newRows.every((r) => r.partitionId === newId && r.partition === 'p2'));

    // The root SO sees both partitions' rows, told apart by id; the delete is filed under the old id.
    const all = await rootAudit((r) => r.operation === 'partition.delete');
    const oldId = all.find((r) => oldSeqs.has(r.seq) && r.partition === 'p2')?.partitionId;
    assert.equal(typeof oldId, 'number');
    assert.notEqual(oldId, newId);
    assert.equal(all.find((r) => r.operation === 'partition.delete')?.partitionId, oldId);

    const verified = await t.root<{ ok: boolean; problems: unknown[] }>('GET', '/audit/verify');
    assert.deepEqual([verified.body.ok, verified.body.problems], [true, []]);
  });

  it('a failed login claiming a partition that does not exist is filed under no id', async () => {
    assert.equal(
      (await t.call({ method: 'POST', path: '/token', body: { username: 'nobody@nowhere', password: 'Wrong-pass-1' } })).status,
      401,
    );
    const claimed = (r: AuditRow): boolean => r.operation === 'auth.token' && r.actor === 'nobody@nowhere';
    const row = (await rootAudit(claimed)).find(claimed);
    assert.deepEqual([row?.partition, row?.partitionId], ['nowhere', null]);
  });
});
