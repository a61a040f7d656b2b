/**
 * `ucl` end to end on a real triplet: partition, user, generate (named), list, show, sign
 * (verified by the openssl command line), verify, export, encrypt/decrypt (AES and RSA), import,
 * update, delete, audit; bad input gives one line and a non-zero exit;
 * an audit row edited and another deleted in the EP's SQLite file are found by `ucl audit verify`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, privateDecrypt } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { ROOT_SO_PASSWORD, type Triplet, assertOneLineError, bootAll, ekm, makeTriplet, ucl, waitInService } from '../support/cluster.js';

let t: Triplet;
const ROOT = ['-w', ROOT_SO_PASSWORD];
const ALICE = ['-p', 'codesign', '--user', 'alice', '-w', 'Alice-pass-1'];
let uid = '';

const ok = async (...args: string[]): Promise<string> => {
  const r = await ucl(t, ...args);
  assert.equal(r.code, 0, `ucl ${args.join(' ')}\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
};

before(async () => {
  t = await makeTriplet();
  await bootAll(t);
  for (const role of ['partner', 'aux', 'ep'] as const) assert.equal((await ekm(t, role, 'start')).code, 0);
  await waitInService(t, 60_000);
});
after(async () => t?.cleanup());

describe('ucl end to end', () => {
  it('partition create and list', async () => {
    assert.equal(await ok('partition', 'create', '-p', 'codesign', ...ROOT, '-s', 'Codesign-SO-1'), 'Partition 1: codesign created\n');
    assert.equal(await ok('partition', 'list', ...ROOT), 'Partition 0: root\nPartition 1: codesign\n');
    const json = JSON.parse(await ok('partition', 'list', ...ROOT, '--json')) as { name: string }[];
    assert.deepEqual(json.map((p) => p.name), ['root', 'codesign']);
  });

  it('user create, list, show (JSON), change-pwd', async () => {
    assert.equal(await ok('user', 'create', '-n', 'alice', '-d', 'Alice-pass-0', '--role', 'user', '-p', 'codesign', '-w', 'Codesign-SO-1'), 'User alice@codesign created (role user)\n');
    assert.match(await ok('user', 'list', '-p', 'codesign', '-w', 'Codesign-SO-1'), /alice\s+user\s+active/);
    const shown = JSON.parse(await ok('user', 'show', '-p', 'codesign', '--user', 'alice', '-w', 'Alice-pass-0')) as { name: string; role: string };
    assert.deepEqual([shown.name, shown.role], ['alice', 'user']);
    await ok('user', 'change-pwd', '-p', 'codesign', '--user', 'alice', '-w', 'Alice-pass-0', '-d', 'Alice-pass-1');
  });

  it('generate, list, show', async () => {
    const pub = join(t.dir, 'pub.pem');
    const out = await ok('generate', '-t', 'ECC', '--curve', 'p256', '-n', 'signer', '--desc', 'release key', ...ALICE, '-o', pub);
    uid = /UID=([0-9a-f]{16})/.exec(out)![1]!;
    assert.match(readFileSync(pub, 'utf8'), /BEGIN PUBLIC KEY/);
    const list = await ok('list', ...ALICE);
    assert.equal(list, `Partition 1 codesign: 1 object found\nPrivate ECC key : UID=${uid} Name="signer" Description="release key" Alg=ecdsa-p256\n`);
    assert.match(await ok('show', '-n', uid, ...ALICE), new RegExp(`UID=${uid}[\\s\\S]*Name +: signer[\\s\\S]*ec prime256v1`));
    assert.match(await ok('show', '-n', 'signer', ...ALICE), new RegExp(`UID=${uid}`));
    assert.equal(await ok('list', '-n', 'signer', ...ALICE), list);
    assert.equal(await ok('list', ...ROOT), 'Partition 0 root: 0 objects found\n');
  });

  it('sign verifies with openssl dgst -sha256 -verify; ucl verify agrees; export matches', async () => {
    const msg = join(t.dir, 'msg.bin');
    const sig = join(t.dir, 'sig.der');
    const pub = join(t.dir, 'exported.pem');
    writeFileSync(msg, 'release 1.2.3\n');
    await ok('sign', '-n', uid, '--hash', 'sha256', '-i', msg, '-o', sig, ...ALICE);
    await ok('export', '-n', uid, '-o', pub, ...ALICE);
    assert.equal(readFileSync(pub, 'utf8'), readFileSync(join(t.dir, 'pub.pem'), 'utf8'));
    const v = execFileSync('openssl', ['dgst', '-sha256', '-verify', pub, '-signature', sig, msg], { encoding: 'utf8' });
    assert.match(v, /Verified OK/);
    assert.match(await ok('verify', '-n', uid, '-i', msg, '-s', sig, ...ALICE), /Signature is valid/);
    const b64 = join(t.dir, 'sig.b64');
    await ok('sign', '-n', uid, '-i', msg, '-o', b64, '--out-format', 'BASE64', ...ALICE);
    assert.match(readFileSync(b64, 'utf8'), /^[A-Za-z0-9+/]+=*\n$/);
    await ok('verify', '-n', uid, '-i', msg, '-s', b64, '--in-format', 'BASE64', ...ALICE);
    writeFileSync(msg, 'release 1.2.4\n');
    const bad = await ucl(t, 'verify', '-n', uid, '-i', msg, '-s', sig, ...ALICE);
    assertOneLineError(bad);
    assert.match(bad.stderr, /does not verify/);
  });

  it('errors: one line and a non-zero exit', async () => {
    const cases: [string[], RegExp][] = [
      [['list', '-p', 'codesign', '--user', 'alice', '-w', 'wrong-password'], /alice@codesign: wrong user, partition or password/],
      [['list', '-p', 'nowhere', '-w', 'Whatever-123'], /so@nowhere: wrong user, partition or password/],
      [['sign', '-n', uid, '-i', join(t.dir, 'missing'), '-o', join(t.dir, 'x'), ...ALICE], /cannot read .*missing: no such file/],
      [['sign', '-n', uid, '-i', t.dir, '-o', join(t.dir, 'x'), ...ALICE], /it is a folder/],
      [['sign', '-n', 'my-key', '-i', join(t.dir, 'msg.bin'), '-o', join(t.dir, 'x'), ...ALICE], /no key my-key in this partition/],
      [['generate', '-t', 'ECC', '-n', 'signer', ...ALICE], /a key named "signer" already exists/],
      [['delete', '-n', 'signer', ...ALICE], /give -y to confirm/],
      [['delete', '-n', 'signer', '-y', ...ALICE], /not allowed: a user may not destroy keys \(only the partition's SO does; a user may deactivate a key instead\)/],
      [['update', '-n', 'signer', ...ALICE], /nothing to change/],
      [['decrypt', '-i', join(t.dir, 'msg.bin'), '-o', join(t.dir, 'x'), ...ALICE], /not an ekm AES object/],
      [['encrypt', '-n', 'signer', '--scheme', 'ROT13', '-i', join(t.dir, 'msg.bin'), '-o', join(t.dir, 'x'), ...ALICE], /--scheme ROT13 is not available/],
      [['sign', '-n', uid, '-i', join(t.dir, 'msg.bin'), '-o', join(t.dir, 'nodir', 'x'), ...ALICE], /cannot write .*its folder does not exist/],
      [['sign', '-n', uid, '--out-format', 'XML', '-i', join(t.dir, 'msg.bin'), '-o', join(t.dir, 'x'), ...ALICE], /--out-format XML is not a format/],
      [['generate', '-t', 'ECC', '--curve', 'p999', ...ALICE], /--curve p999 is not available/],
      [['generate', '-t', 'ECC', '--not-after', 'next week', ...ALICE], /notAfter/],
      [['generate', '-t', 'RSA', '--size', '1024', ...ALICE], /--size 1024 is not an RSA size/],
      [['generate', '-t', 'ECC', '--size', '256', ...ALICE], /--size is for RSA and AES keys/],
      [['user', 'create', '-n', 'eve', '-d', 'Eve-pass-123', ...ALICE], /not allowed: a user does not create users/],
      [['user', 'create', '-n', 'eve', '-d', 'short', '-p', 'codesign', '-w', 'Codesign-SO-1'], /at least 8 characters/],
      [['user', 'create', '-n', 'eve', '-d', 'Eve-pass-123', '--role', 'king', '-p', 'codesign', '-w', 'Codesign-SO-1'], /--role king is not a role/],
      [['partition', 'create', '-p', 'other', '-s', 'Other-pass-1', '--user', 'so@codesign', '-w', 'Codesign-SO-1'], /only the root partition SO creates partitions/],
      [['partition', 'delete', '-p', 'codesign', ...ROOT], /give -y to confirm/],
      [['partition', 'delete', '-p', 'codesign', '-y', ...ROOT], /partition codesign holds 1 key/],
      [['partition', 'list'], /no password for so@root: give -w/],
      [['partition', 'frobnicate', ...ROOT], /unknown command 'frobnicate'/],
      [['sign', '--no-such-flag'], /unknown option|required option/],
      [['show', '-n', uid, ...ROOT], new RegExp(`no key ${uid}`)],
    ];
    for (const [args, expected] of cases) {
      const r = await ucl(t, ...args);
      assertOneLineError(r);
      assert.match(r.stderr, expected, `ucl ${args.join(' ')}`);
    }
  });

  it('encrypt and decrypt files (AES by name, RSA), update, delete, import', async () => {
    const plain = join(t.dir, 'plain.txt');
    const sealed = join(t.dir, 'plain.ekm');
    const back = join(t.dir, 'plain.out');
    const aad = join(t.dir, 'context');
    writeFileSync(plain, 'quarterly numbers\n');
    writeFileSync(aad, 'tenant=42');
    assert.match(await ok('generate', '-t', 'AES', '-n', 'files', ...ALICE), /Generated AES key \(aes-256-dprf\) UID=[0-9a-f]{16} Name="files"/);
    await ok('encrypt', '-n', 'files', '-i', plain, '-o', sealed, '--aad', aad, ...ALICE);
    assert.notEqual(readFileSync(sealed, 'utf8'), 'quarterly numbers\n');
    // The object names its key: decrypt needs no -n.
    assert.match(await ok('decrypt', '-i', sealed, '-o', back, '--aad', aad, ...ALICE), /Decrypted 18 bytes/);
    assert.equal(readFileSync(back, 'utf8'), 'quarterly numbers\n');
    const wrongAad = await ucl(t, 'decrypt', '-i', sealed, '-o', back, ...ALICE);
    assertOneLineError(wrongAad);

    const pem = join(t.dir, 'imported.pem');
    writeFileSync(pem, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }));
    const pub = join(t.dir, 'imported.pub');
    assert.match(await ok('import', '-i', pem, '-n', 'legacy-rsa', '--desc', 'from the old HSM', '-o', pub, ...ALICE), /Imported RSA key \(rsa-2048\)/);
    await ok('encrypt', '-n', 'legacy-rsa', '-i', plain, '-o', sealed, ...ALICE);
    assert.equal(privateDecrypt({ key: readFileSync(pem), oaepHash: 'sha256' }, readFileSync(sealed)).toString(), 'quarterly numbers\n');
    await ok('decrypt', '-n', 'legacy-rsa', '-i', sealed, '-o', back, ...ALICE);
    assert.equal(readFileSync(back, 'utf8'), 'quarterly numbers\n');

    assert.match(await ok('update', '-n', 'files', '--new-name', 'files-2026', '--state', 'deactivated', ...ALICE), /Name="files-2026".*State=deactivated/);
    const refused = await ucl(t, 'encrypt', '-n', 'files-2026', '-i', plain, '-o', sealed, ...ALICE);
    assertOneLineError(refused);
    assert.match(refused.stderr, /is deactivated/);
    assert.match(await ok('delete', '-n', 'files-2026', '-y', '-p', 'codesign', '-w', 'Codesign-SO-1'), /Destroyed AES key UID=[0-9a-f]{16}: its shares are erased/);
    assert.match(await ok('list', '--state', 'destroyed', ...ALICE), /Secret AES key : UID=[0-9a-f]{16} Name="files-2026" Description="" Alg=aes-256-dprf State=destroyed/);
  });

  it('generate --not-after: the key shows when it stops signing', async () => {
    const notAfter = '2040-01-01T00:00:00.000Z';
    const out = await ok('generate', '-t', 'EDDSA', '-n', 'expiring', '--not-after', notAfter, ...ROOT);
    const id = /UID=([0-9a-f]{16})/.exec(out)![1]!;
    assert.match(await ok('show', '-n', 'expiring', ...ROOT), new RegExp(`UID=${id}[\\s\\S]*Signs until +: ${notAfter.replace(/\./g, '\\.')}`));
    await ok('delete', '-n', 'expiring', '-y', ...ROOT);
  });

  it('audit list shows the operations; audit verify passes', async () => {
    const list = await ok('audit', 'list', ...ROOT);
    assert.match(list, new RegExp(`alice@codesign  key\\.sign  key=${uid}  ok 200`));
    assert.match(list, /alice@codesign {2}GET .*|alice@codesign {2}key\.list {2}denied 401 {2}EKM_UNAUTHORIZED/);
    assert.match(await ok('audit', 'verify', ...ROOT), /^Audit chain intact: \d+ rows, head #\d+ [0-9a-f]{64}\n$/);
  });

  it('an audit row edited and another deleted in the SQLite file: ucl audit verify fails and names them', async () => {
    assert.equal((await ekm(t, 'ep', 'stop')).code, 0);
    const db = new Database(join(t.homes.ep, 'data', 'ekm.db'));
    try {
      db.exec('DROP TRIGGER audit_no_update; DROP TRIGGER audit_no_delete;');
      db.prepare("UPDATE audit SET actor = 'nobody@root' WHERE seq = 3").run();
      db.prepare('DELETE FROM audit WHERE seq = 6').run();
    } finally {
      db.close();
    }
    assert.equal((await ekm(t, 'ep', 'start')).code, 0);
    await waitInService(t, 60_000);
    const r = await ucl(t, 'audit', 'verify', ...ROOT);
    assertOneLineError(r);
    assert.match(r.stdout, /^Audit chain BROKEN/);
    assert.match(r.stdout, /row 3: its content does not match its hash \(the row was altered\)/);
    assert.match(r.stdout, /row 6: row 6 is missing \(deleted\)/);
    assert.match(r.stdout, /row 7: its link to the previous row is broken/);
  });
});
