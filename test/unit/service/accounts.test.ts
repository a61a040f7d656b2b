/** Partitions, users, roles and lockout (src/service/accounts.ts) over a real SQLite store. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { hashPassword } from '../../../src/crypto/password.js';
import { EkmError } from '../../../src/errors.js';
import { Accounts, type Actor } from '../../../src/service/accounts.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';

let dir: string;
let store: SqliteStore;
let acc: Accounts;
let rootSo: Actor;

const rejects = async (p: Promise<unknown>, code: string, status?: number): Promise<void> => {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof EkmError, String(e));
    assert.equal(e.code, code, e.message);
    if (status) assert.equal(e.httpStatus, status);
    return true;
  });
};

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ekm-accounts-'));
  store = SqliteStore.open(join(dir, 'ekm.db'), { create: true, barrier: new Barrier(randomBytes(32)) });
  const root = await store.createPartition({ name: 'root', fipsRequired: false });
  await store.createUser({ partitionId: root.id, name: 'so', role: 'so', passwordHash: await hashPassword('Root-SO-pass-1') });
  acc = new Accounts(store);
  rootSo = await acc.login('so@root', 'Root-SO-pass-1');
});
after(async () => {
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('accounts', () => {
  it('root is id 1 and the root SO logs in with a bare or qualified name', async () => {
    assert.equal(rootSo.partitionId, 1);
    assert.deepEqual(await acc.login('so', 'Root-SO-pass-1'), rootSo);
  });

  it('creates partitions (root SO only), refuses duplicates, bad names and short passwords', async () => {
    const p = await acc.createPartition(rootSo, { name: 'codesign', soPassword: 'Codesign-SO-1', maxFailedLogins: 3 });
    assert.equal(p.name, 'codesign');
    assert.equal(p.maxFailedLogins, 3);
    assert.equal(p.index, 1);
    await rejects(acc.createPartition(rootSo, { name: 'codesign', soPassword: 'Codesign-SO-1' }), 'EKM_EXISTS', 409);
    await rejects(acc.createPartition(rootSo, { name: 'bad name', soPassword: 'Codesign-SO-1' }), 'EKM_BAD_REQUEST', 400);
    await rejects(acc.createPartition(rootSo, { name: 'short', soPassword: 'short' }), 'EKM_WEAK_PASSWORD', 400);
    const cso = await acc.login('so@codesign', 'Codesign-SO-1');
    await rejects(acc.createPartition(cso, { name: 'other', soPassword: 'Other-SO-pass' }), 'EKM_FORBIDDEN', 403);
  });

  it('per role: SO manages users, a user and an auditor do not; a user sees only itself', async () => {
    const cso = await acc.login('so@codesign', 'Codesign-SO-1');
    await acc.createUser(cso, 'codesign', { name: 'alice', password: 'Alice-pass-1', role: 'user' });
    await acc.createUser(cso, 'codesign', { name: 'audrey', password: 'Audrey-pass-1', role: 'auditor' });
    const alice = await acc.login('alice@codesign', 'Alice-pass-1');
    const audrey = await acc.login('audrey@codesign', 'Audrey-pass-1');
    await rejects(acc.createUser(alice, 'codesign', { name: 'x1', password: 'Xxxxxxxx-1', role: 'user' }), 'EKM_FORBIDDEN', 403);
    await rejects(acc.createUser(audrey, 'codesign', { name: 'x2', password: 'Xxxxxxxx-1', role: 'user' }), 'EKM_FORBIDDEN', 403);
    await rejects(acc.listUsers(alice, 'codesign'), 'EKM_FORBIDDEN', 403);
    assert.deepEqual((await acc.listUsers(audrey, 'codesign')).map((u) => u.name), ['alice', 'audrey', 'so']);
    assert.equal((await acc.showUser(alice, 'codesign', 'alice')).role, 'user');
    await rejects(acc.showUser(alice, 'codesign', 'so'), 'EKM_FORBIDDEN', 403);
    await rejects(acc.deleteUser(audrey, 'codesign', 'alice'), 'EKM_FORBIDDEN', 403);
    await rejects(acc.resetPassword(alice, 'codesign', 'audrey', 'Newpass-123'), 'EKM_FORBIDDEN', 403);
    await rejects(acc.createUser(cso, 'codesign', { name: 'weak', password: 'seven77', role: 'user' }), 'EKM_WEAK_PASSWORD');
  });

  it('a partition is invisible from another one (not found, not forbidden)', async () => {
    await acc.createPartition(rootSo, { name: 'payments', soPassword: 'Payments-SO-1' });
    const cso = await acc.login('so@codesign', 'Codesign-SO-1');
    await rejects(acc.listUsers(cso, 'payments'), 'EKM_NOT_FOUND', 404);
    await rejects(acc.showPartition(cso, 'payments'), 'EKM_NOT_FOUND', 404);
    assert.deepEqual((await acc.listPartitions(cso)).map((p) => p.name), ['codesign']);
    assert.deepEqual((await acc.listPartitions(rootSo)).map((p) => p.name), ['root', 'codesign', 'payments']);
  });

  it('locks after the partition limit; the lock holds with the right password; an SO reset unlocks', async () => {
    for (let i = 1; i <= 2; i++) await rejects(acc.login('alice@codesign', 'wrong-password'), 'EKM_UNAUTHORIZED', 401);
    await rejects(acc.login('alice@codesign', 'wrong-password'), 'EKM_LOCKED', 401);
    await rejects(acc.login('alice@codesign', 'Alice-pass-1'), 'EKM_LOCKED', 401);
    const cso = await acc.login('so@codesign', 'Codesign-SO-1');
    assert.equal((await acc.showUser(cso, 'codesign', 'alice')).locked, true);
    await acc.resetPassword(cso, 'codesign', 'alice', 'Alice-pass-2');
    const alice = await acc.login('alice@codesign', 'Alice-pass-2');
    assert.equal((await acc.showUser(cso, 'codesign', 'alice')).failedLogins, 0);
    await rejects(acc.changePassword(alice, 'not-the-old-one', 'Alice-pass-3'), 'EKM_UNAUTHORIZED', 401);
    await acc.changePassword(alice, 'Alice-pass-2', 'Alice-pass-3');
    await acc.login('alice@codesign', 'Alice-pass-3');
  });

  it('a success resets the failure count; unknown users and partitions fail alike', async () => {
    await rejects(acc.login('alice@codesign', 'wrong-password'), 'EKM_UNAUTHORIZED');
    await acc.login('alice@codesign', 'Alice-pass-3');
    const cso = await acc.login('so@codesign', 'Codesign-SO-1');
    assert.equal((await acc.showUser(cso, 'codesign', 'alice')).failedLogins, 0);
    await rejects(acc.login('nobody@codesign', 'whatever-1'), 'EKM_UNAUTHORIZED');
    await rejects(acc.login('so@nowhere', 'whatever-1'), 'EKM_UNAUTHORIZED');
  });

  it('deletes users but not oneself nor the last SO', async () => {
    const cso = await acc.login('so@codesign', 'Codesign-SO-1');
    await rejects(acc.deleteUser(cso, 'codesign', 'so'), 'EKM_FORBIDDEN');
    await rejects(acc.deleteUser(rootSo, 'codesign', 'so'), 'EKM_FORBIDDEN');
    await acc.deleteUser(cso, 'codesign', 'audrey');
    await rejects(acc.login('audrey@codesign', 'Audrey-pass-1'), 'EKM_UNAUTHORIZED');
  });

  it('root is undeletable; a partition with keys is deleted only when forced', async () => {
    const destroyed: number[] = [];
    const destroyKeys = async (id: number): Promise<void> => void destroyed.push(id);
    await rejects(acc.deletePartition(rootSo, 'root', true, destroyKeys), 'EKM_FORBIDDEN', 403);
    const pay = (await store.getPartition('payments'))!;
    // A key record placed in the partition (the key service writes these).
    const share = { keyId: '00000000000000aa', alg: 'rsa-2048', epoch: 1, partyId: 1 as const, n: Uint8Array.of(1), e: Uint8Array.of(3), pieces: Uint8Array.of(5) };
    await store.applyKeyWrites([{ op: 'rsa-key-create', keyId: share.keyId, alg: share.alg, share }]);
    await store.setKeyAttributes(share.keyId, { partitionId: pay.id });
    assert.equal(await store.countPartitionKeys(pay.id), 1);
    await rejects(acc.deletePartition(rootSo, 'payments', false, destroyKeys), 'EKM_PARTITION_NOT_EMPTY', 409);
    assert.deepEqual(destroyed, []);
    assert.deepEqual(await acc.deletePartition(rootSo, 'payments', true, destroyKeys), { keysDeleted: 1 });
    // Forced: the keys are destroyed on every server (the catalogue) before the partition goes.
    assert.deepEqual(destroyed, [pay.id]);
    assert.equal(await store.getPartition('payments'), undefined);
    assert.equal(await store.getKey('00000000000000aa'), undefined);
  });

  it('a FIPS-only partition refuses secp256k1 and BIP340', async () => {
    await acc.createPartition(rootSo, { name: 'fips', soPassword: 'Fips-SO-pass-1', fipsRequired: true });
    const fso = await acc.login('so@fips', 'Fips-SO-pass-1');
    await acc.checkKeyAlg(fso, 'ecdsa-p256');
    await acc.checkKeyAlg(fso, 'eddsa-ed25519');
    await rejects(acc.checkKeyAlg(fso, 'ecdsa-secp256k1'), 'EKM_NOT_FIPS');
    await rejects(acc.checkKeyAlg(fso, 'schnorr-bip340'), 'EKM_NOT_FIPS');
    await acc.checkKeyAlg(rootSo, 'ecdsa-secp256k1');
  });
});
