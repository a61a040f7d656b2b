/**
 * Keys as an operator manages them, on a real triplet: names and descriptions, lookup
 * by name within the partition only, listing with paging and filters, KMIP-like states
 * (a deactivated key verifies and decrypts but neither signs nor encrypts), and destruction on
 * all three servers — read back from each server's own store, including an Aux that was down
 * when the key was destroyed and erases its share once it is back; imported public keys.
 */
import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, privateDecrypt, sign as nodeSign, verify as nodeVerify } from 'node:crypto';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { type BasicCaller, assertApiError, b64, basicCaller, unb64 } from '../support/api.js';
import { ROOT_SO_PASSWORD, type Role, type Triplet, ekm, servingTriplet, waitInService } from '../support/cluster.js';

interface KeyView {
  keyId: string;
  alg: string;
  name: string | null;
  description: string | null;
  state: string;
  epoch: number | null;
  publicKey?: string | null;
}

const ROOT = ['so@root', ROOT_SO_PASSWORD] as const;
const TEAM_SO = ['so@team', 'Team-SO-pass-1'] as const;
const AUDITOR = ['audrey@root', 'Audrey-pass-1'] as const;

let t: Triplet;
let api: BasicCaller;
const as = <T = KeyView>(who: readonly [string, string], method: string, path: string, body?: unknown) => api.as<T>(who[0], who[1], method, path, body);

/** Rows a server's own store holds for the key: its record and its shares (read with SQLite directly). */
function storeRows(role: Role, keyId: string): { keys: number; shares: number } {
  const db = new Database(join(t.homes[role], 'data', 'ekm.db'), { readonly: true, fileMustExist: true });
  try {
    const count = (table: string): number => (db.prepare(`SELECT count(*) AS n FROM ${table} WHERE key_id = ?`).get(keyId) as { n: number }).n;
    return { keys: count('keys'), shares: count('key_shares') };
  } finally {
    db.close();
  }
}

/** The notAfter a server's own store keeps with the key's current share (its policy), or undefined. */
function storedNotAfter(role: Role, keyId: string): string | undefined {
  const db = new Database(join(t.homes[role], 'data', 'ekm.db'), { readonly: true, fileMustExist: true });
  try {
    const row = db.prepare("SELECT public_data FROM key_shares WHERE key_id = ? AND status = 'current'").get(keyId) as { public_data: string } | undefined;
    return row ? (JSON.parse(row.public_data) as { notAfter?: string }).notAfter : undefined;
  } finally {
    db.close();
  }
}

before(async () => {
  t = await servingTriplet();
  api = basicCaller(t);
  assert.equal((await as(ROOT, 'POST', '/partitions', { name: 'team', soPassword: TEAM_SO[1] })).status, 201);
  assert.equal((await as(ROOT, 'POST', '/partitions/root/users', { name: 'audrey', password: AUDITOR[1], role: 'auditor' })).status, 201);
});
after(async () => {
  api?.close();
  await t?.cleanup();
});

describe('key names, states and destruction', () => {
  let signer: KeyView;
  let aes: KeyView;
  let teamKey: KeyView;

  it('generates keys with a name and a description; a name is unique in its partition and never looks like a UID', async () => {
    const r = await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'code-signing', description: 'release builds' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    signer = r.body;
    assert.deepEqual([signer.name, signer.description, signer.state, signer.epoch], ['code-signing', 'release builds', 'active', 0]);
    assertApiError(await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'code-signing' }), 409, 'EKM_KEY_NAME_TAKEN');
    assertApiError(await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', name: '0123456789abcdef' }), 400, 'EKM_BAD_REQUEST');
    assertApiError(await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'a/b' }), 400, 'EKM_BAD_REQUEST');
    // The same name in another partition is another key.
    const other = await as(TEAM_SO, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'code-signing' });
    assert.equal(other.status, 201, JSON.stringify(other.body));
    assert.notEqual(other.body.keyId, signer.keyId);
    teamKey = other.body;
    const a = await as(ROOT, 'POST', '/keys', { alg: 'aes-256-dprf', name: 'backups dek' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    aes = a.body;
  });

  it('finds a key by name or UID, only within the caller’s partition', async () => {
    const byName = await as(ROOT, 'GET', `/keys/${encodeURIComponent('code-signing')}`);
    assert.equal(byName.status, 200);
    assert.equal(byName.body.keyId, signer.keyId);
    const team = await as(TEAM_SO, 'GET', '/keys/code-signing');
    assert.notEqual(team.body.keyId, signer.keyId);
    assertApiError(await as(TEAM_SO, 'GET', `/keys/${signer.keyId}`), 404, 'EKM_KEY_NOT_FOUND');
    const s = await as<{ signature: string }>(ROOT, 'POST', '/keys/code-signing/sign', { message: b64('by name'), format: 'der' });
    assert.equal(s.status, 200, JSON.stringify(s.body));
    assert.ok(nodeVerify('sha256', Buffer.from('by name'), createPublicKey(signer.publicKey!), unb64(s.body.signature)));
    const spaced = await as(ROOT, 'POST', `/keys/${encodeURIComponent('backups dek')}/encrypt`, { plaintext: b64('x') });
    assert.equal(spaced.status, 200, JSON.stringify(spaced.body));
  });

  it('lists the partition’s keys with paging and filters (alg, name, state)', async () => {
    for (let i = 0; i < 3; i++) assert.equal((await as(ROOT, 'POST', '/keys', { alg: 'eddsa-ed25519', name: `ed-${i}` })).status, 201);
    type Page = { total: number; keys: KeyView[]; next: string | null };
    const seen: string[] = [];
    let after = '';
    for (;;) {
      const p = await as<Page>(ROOT, 'GET', `/keys?limit=2${after ? `&after=${after}` : ''}`);
      assert.equal(p.status, 200, JSON.stringify(p.body));
      assert.ok(p.body.keys.length <= 2);
      seen.push(...p.body.keys.map((k) => k.keyId));
      assert.equal(p.body.total, 5);
      if (!p.body.next) break;
      after = p.body.next;
    }
    assert.equal(new Set(seen).size, 5);
    assert.deepEqual(seen, [...seen].sort());
    const ed = await as<Page>(ROOT, 'GET', '/keys?alg=eddsa-ed25519');
    assert.deepEqual(ed.body.keys.map((k) => k.name).sort(), ['ed-0', 'ed-1', 'ed-2']);
    const named = await as<Page>(ROOT, 'GET', '/keys?name=ed-1');
    assert.deepEqual(named.body.keys.map((k) => k.name), ['ed-1']);
    assertApiError(await as(ROOT, 'GET', '/keys?state=lost'), 400, 'EKM_BAD_REQUEST');
    assertApiError(await as(ROOT, 'GET', '/keys?limit=0'), 400, 'EKM_BAD_REQUEST');
  });

  it('renames and describes; an auditor reads but changes nothing', async () => {
    const r = await as(ROOT, 'PATCH', '/keys/code-signing', { name: 'release-signing', description: null });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual([r.body.name, r.body.description], ['release-signing', null]);
    assertApiError(await as(ROOT, 'GET', '/keys/code-signing'), 404, 'EKM_KEY_NOT_FOUND');
    assertApiError(await as(ROOT, 'PATCH', '/keys/release-signing', { name: 'ed-0' }), 409, 'EKM_KEY_NAME_TAKEN');
    assertApiError(await as(ROOT, 'PATCH', '/keys/release-signing', {}), 400, 'EKM_BAD_REQUEST');
    assert.equal((await as(AUDITOR, 'GET', '/keys/release-signing')).status, 200);
    assertApiError(await as(AUDITOR, 'PATCH', '/keys/release-signing', { description: 'mine' }), 403, 'EKM_FORBIDDEN');
    assertApiError(await as(AUDITOR, 'DELETE', '/keys/release-signing'), 403, 'EKM_FORBIDDEN');
  });

  it('a deactivated key verifies and decrypts but neither signs nor encrypts; reactivated, it signs again', async () => {
    const msg = b64('before deactivation');
    const s = await as<{ signature: string }>(ROOT, 'POST', `/keys/${signer.keyId}/sign`, { message: msg });
    const ct = await as<{ ciphertext: string }>(ROOT, 'POST', `/keys/${aes.keyId}/encrypt`, { plaintext: b64('kept secret') });
    for (const k of [signer, aes]) {
      const d = await as(ROOT, 'PATCH', `/keys/${k.keyId}`, { state: 'deactivated' });
      assert.equal(d.body.state, 'deactivated');
    }
    assertApiError(await as(ROOT, 'POST', `/keys/${signer.keyId}/sign`, { message: msg }), 409, 'EKM_KEY_DEACTIVATED');
    assertApiError(await as(ROOT, 'POST', `/keys/${aes.keyId}/encrypt`, { plaintext: b64('x') }), 409, 'EKM_KEY_DEACTIVATED');
    assertApiError(await as(ROOT, 'POST', `/keys/${aes.keyId}/datakey`, {}), 409, 'EKM_KEY_DEACTIVATED');
    const v = await as<{ valid: boolean }>(ROOT, 'POST', `/keys/${signer.keyId}/verify`, { message: msg, signature: s.body.signature });
    assert.equal(v.body.valid, true);
    const pt = await as<{ plaintext: string }>(ROOT, 'POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: ct.body.ciphertext });
    assert.equal(unb64(pt.body.plaintext).toString(), 'kept secret');
    const deactivated = await as<{ keys: KeyView[] }>(ROOT, 'GET', '/keys?state=deactivated');
    assert.deepEqual(deactivated.body.keys.map((k) => k.keyId).sort(), [signer.keyId, aes.keyId].sort());
    assert.equal((await as(ROOT, 'PATCH', `/keys/${signer.keyId}`, { state: 'active' })).body.state, 'active');
    assert.equal((await as(ROOT, 'POST', `/keys/${signer.keyId}/sign`, { message: msg })).status, 200);
  });

  it('a key generated with a notAfter signs until then and never after; all three servers hold the policy, refresh keeps it', async () => {
    // Room for a DKG, a signature and a refresh on a loaded machine.
    const notAfter = new Date(Date.now() + 15_000).toISOString();
    const k = await as<KeyView & { notAfter: string | null }>(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', notAfter });
    assert.equal(k.status, 201, JSON.stringify(k.body));
    assert.equal(k.body.notAfter, notAfter);
    for (const role of ['ep', 'partner', 'aux'] as const) assert.equal(storedNotAfter(role, k.body.keyId), String(Date.parse(notAfter)), role);
    const msg = b64('in time');
    const sig = await as<{ signature: string }>(ROOT, 'POST', `/keys/${k.body.keyId}/sign`, { message: msg });
    assert.equal(sig.status, 200);
    assert.equal((await as(ROOT, 'POST', `/keys/${k.body.keyId}/refresh`)).status, 200);
    const shown = await as<{ epoch: number; notAfter: string | null }>(ROOT, 'GET', `/keys/${k.body.keyId}`);
    assert.deepEqual([shown.body.epoch, shown.body.notAfter], [1, notAfter]);
    for (const role of ['ep', 'partner', 'aux'] as const) assert.equal(storedNotAfter(role, k.body.keyId), String(Date.parse(notAfter)), `${role} after refresh`);
    await new Promise((r) => setTimeout(r, Math.max(0, Date.parse(notAfter) - Date.now() + 200)));
    assertApiError(await as(ROOT, 'POST', `/keys/${k.body.keyId}/sign`, { message: msg }), 409, 'EKM_KEY_EXPIRED');
    const v = await as<{ valid: boolean }>(ROOT, 'POST', `/keys/${k.body.keyId}/verify`, { message: msg, signature: sig.body.signature });
    assert.equal(v.body.valid, true, 'what it signed in time still verifies');
    assertApiError(await as(ROOT, 'POST', '/keys', { alg: 'eddsa-ed25519', notAfter: new Date(Date.now() - 1000).toISOString() }), 400, 'EKM_BAD_INPUT');
    assertApiError(await as(ROOT, 'POST', '/keys', { alg: 'aes-256-dprf', notAfter }), 400, 'EKM_BAD_INPUT');
    assertApiError(await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', notAfter: 'tomorrow' }), 400, 'EKM_BAD_REQUEST');
  });

  it('destroys a key on all three servers: every store erases its record and shares; the EP keeps a destroyed record', async () => {
    for (const role of ['ep', 'partner', 'aux'] as const) assert.deepEqual(storeRows(role, signer.keyId), { keys: 1, shares: 1 }, role);
    const d = await as<KeyView & { pendingPurge: string[] }>(ROOT, 'DELETE', '/keys/release-signing');
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.deepEqual([d.body.state, d.body.pendingPurge], ['destroyed', []]);
    for (const role of ['ep', 'partner', 'aux'] as const) assert.deepEqual(storeRows(role, signer.keyId), { keys: 0, shares: 0 }, role);
    const shown = await as(ROOT, 'GET', `/keys/${signer.keyId}`);
    assert.deepEqual([shown.status, shown.body.state, shown.body.publicKey], [200, 'destroyed', null]);
    assertApiError(await as(ROOT, 'POST', `/keys/${signer.keyId}/sign`, { message: b64('x') }), 410, 'EKM_KEY_DESTROYED');
    assertApiError(await as(ROOT, 'DELETE', `/keys/${signer.keyId}`), 410, 'EKM_KEY_DESTROYED');
    assertApiError(await as(ROOT, 'GET', '/keys/release-signing'), 404, 'EKM_KEY_NOT_FOUND');
    const gone = await as<{ keys: KeyView[] }>(ROOT, 'GET', '/keys?state=destroyed');
    assert.deepEqual(gone.body.keys.map((k) => k.keyId), [signer.keyId]);
    // The name is free again.
    assert.equal((await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p256', name: 'release-signing' })).status, 201);
  });

  it('destroys a key while the Aux is down: unusable at once; the Aux erases its share when it is back', async () => {
    const k = (await as(ROOT, 'POST', '/keys', { alg: 'ecdsa-p384', name: 'short-lived' })).body;
    assert.equal((await ekm(t, 'aux', 'stop')).code, 0);
    const d = await as<KeyView & { pendingPurge: string[] }>(ROOT, 'DELETE', '/keys/short-lived');
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.deepEqual(d.body.pendingPurge, ['aux']);
    assert.deepEqual(storeRows('ep', k.keyId), { keys: 0, shares: 0 });
    assert.deepEqual(storeRows('partner', k.keyId), { keys: 0, shares: 0 });
    assert.deepEqual(storeRows('aux', k.keyId), { keys: 1, shares: 1 });
    assert.equal((await ekm(t, 'aux', 'start')).code, 0);
    await waitInService(t, 60_000);
    const deadline = Date.now() + 30_000;
    while (storeRows('aux', k.keyId).keys !== 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
    assert.deepEqual(storeRows('aux', k.keyId), { keys: 0, shares: 0 });
  });

  it('imported public keys verify (RSA also encrypts), do nothing else, and live on the EP only', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pem = ec.publicKey.export({ type: 'spki', format: 'pem' }) as string;
    const r = await as(ROOT, 'POST', '/keys/import', { publicKeyPem: pem, name: 'vendor-ec' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.deepEqual([r.body.alg, (r.body as unknown as { imported: string }).imported, r.body.publicKey], ['ecdsa-p256', 'public', pem]);
    const msg = Buffer.from('signed by the vendor');
    const sig = nodeSign('sha256', msg, { key: ec.privateKey, dsaEncoding: 'der' });
    const v = await as<{ valid: boolean }>(ROOT, 'POST', '/keys/vendor-ec/verify', { message: b64(msg), signature: b64(sig), format: 'der' });
    assert.equal(v.body.valid, true);
    // node:crypto does not normalise s: both (r, s) and (r, n − s) are valid ECDSA and must verify.
    const raw = nodeSign('sha256', msg, { key: ec.privateKey, dsaEncoding: 'ieee-p1363' });
    const n = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');
    const twin = Buffer.concat([raw.subarray(0, 32), Buffer.from((n - BigInt(`0x${raw.subarray(32).toString('hex')}`)).toString(16).padStart(64, '0'), 'hex')]);
    for (const s of [raw, twin]) {
      const t = await as<{ valid: boolean }>(ROOT, 'POST', '/keys/vendor-ec/verify', { message: b64(msg), signature: b64(s), format: 'raw' });
      assert.equal(t.body.valid, true);
    }
    const bad = await as<{ valid: boolean }>(ROOT, 'POST', '/keys/vendor-ec/verify', { message: b64('other'), signature: b64(sig), format: 'der' });
    assert.equal(bad.body.valid, false);
    assertApiError(await as(ROOT, 'POST', '/keys/vendor-ec/sign', { message: b64(msg) }), 409, 'EKM_PUBLIC_KEY_ONLY');
    assertApiError(await as(ROOT, 'POST', '/keys/vendor-ec/refresh'), 409, 'EKM_PUBLIC_KEY_ONLY');
    for (const role of ['ep', 'partner', 'aux'] as const) assert.deepEqual(storeRows(role, r.body.keyId), role === 'ep' ? { keys: 1, shares: 0 } : { keys: 0, shares: 0 }, role);

    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rk = await as(ROOT, 'POST', '/keys/import', { publicKeyPem: rsa.publicKey.export({ type: 'spki', format: 'pem' }) });
    assert.equal(rk.status, 201, JSON.stringify(rk.body));
    const ct = await as<{ ciphertext: string }>(ROOT, 'POST', `/keys/${rk.body.keyId}/encrypt`, { plaintext: b64('to the vendor') });
    assert.equal(ct.status, 200, JSON.stringify(ct.body));
    assert.equal(privateDecrypt({ key: rsa.privateKey, oaepHash: 'sha256' }, unb64(ct.body.ciphertext)).toString(), 'to the vendor');
    assertApiError(await as(ROOT, 'POST', `/keys/${rk.body.keyId}/decrypt`, { ciphertext: ct.body.ciphertext }), 409, 'EKM_PUBLIC_KEY_ONLY');

    assertApiError(await as(ROOT, 'POST', '/keys/import', { publicKeyPem: 'not a key' }), 400, 'EKM_BAD_PUBLIC_KEY');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' });
    assertApiError(await as(ROOT, 'POST', '/keys/import', { publicKeyPem: small }), 400, 'EKM_BAD_PUBLIC_KEY');
    assertApiError(await as(ROOT, 'POST', '/keys/import', { publicKeyPem: pem, privateKeyPem: 'x' }), 400, 'EKM_BAD_REQUEST');
    const d = await as<{ pendingPurge: string[] }>(ROOT, 'DELETE', '/keys/vendor-ec');
    assert.deepEqual([d.status, d.body.pendingPurge], [200, []]);
  });

  it('a forced partition delete destroys its keys on all three servers', async () => {
    for (const role of ['ep', 'partner', 'aux'] as const) assert.deepEqual(storeRows(role, teamKey.keyId), { keys: 1, shares: 1 }, role);
    assertApiError(await as(ROOT, 'DELETE', '/partitions/team'), 409, 'EKM_PARTITION_NOT_EMPTY');
    const d = await as<{ keysDeleted: number }>(ROOT, 'DELETE', '/partitions/team?force=true');
    assert.deepEqual([d.status, d.body.keysDeleted], [200, 1]);
    for (const role of ['ep', 'partner', 'aux'] as const) assert.deepEqual(storeRows(role, teamKey.keyId), { keys: 0, shares: 0 }, role);
  });
});
