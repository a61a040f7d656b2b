/**
 * Backup archives: format (tar, gzip, metadata), hybrid encryption, and that every kind of damage
 * or tampering is refused with an EkmError, with or without the private key; backup, verify and
 * restore as functions on made-up stores (the full cycle on real processes is in test/cluster).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { readArchive, decryptContents } from '../../../src/backup/archive.js';
import { backup, backupKeygen, restore, verify } from '../../../src/backup/commands.js';
import { generateBackupKeyPair, keyFingerprint, loadPrivateKey, loadPublicKey, openWith, sealTo } from '../../../src/backup/envelope.js';
import { inspectRestoredStore } from '../../../src/backup/restore-boot.js';
import { readTar, writeTar } from '../../../src/backup/tar.js';
import { homePaths } from '../../../src/config/home.js';
import { EkmError } from '../../../src/errors.js';
import { LATEST_SCHEMA, MIGRATIONS } from '../../../src/store/migrations.js';
import { CLUSTER, makeHome, tempDir } from './fixture.js';

const quiet = (): void => undefined;
let dir: string;
let keyDir: string;
before(() => {
  dir = tempDir();
  keyDir = join(dir, 'admin');
  backupKeygen({ out: keyDir, name: 'ep' }, quiet);
  backupKeygen({ out: keyDir, name: 'other' }, quiet);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const pub = (): string => join(keyDir, 'ep.pub.pem');
const priv = (): string => join(keyDir, 'ep.key');

const isEkmError =
  (code: string, re?: RegExp) =>
  (e: unknown): boolean => {
    assert.ok(e instanceof EkmError, `an EkmError, not ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    assert.ok(!e.oneLine().includes('\n'));
    return true;
  };

function rejects(fn: () => unknown, code: string, re?: RegExp): void {
  assert.throws(fn, isEkmError(code, re));
}

describe('tar', () => {
  it('round-trips entries of any size, and `tar -tz` lists them', () => {
    const entries = [
      { name: 'a', data: Buffer.alloc(0) },
      { name: 'b.bin', data: Buffer.alloc(512, 7) },
      { name: 'c.json', data: Buffer.from('{"x":1}') },
    ];
    const t = writeTar(entries);
    const back = readTar(t);
    for (const e of entries) assert.deepEqual(back.get(e.name), e.data);
    const f = join(dir, 't.tar.gz');
    writeFileSync(f, gzipSync(t));
    try {
      assert.deepEqual(execFileSync('tar', ['-tzf', f]).toString().trim().split('\n'), ['a', 'b.bin', 'c.json']);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  });

  it('refuses every truncation and a header with a bad checksum', () => {
    const t = writeTar([{ name: 'x', data: Buffer.alloc(700, 1) }]);
    for (let cut = 0; cut < t.length; cut += 97) rejects(() => readTar(t.subarray(0, cut)), 'EKM_BACKUP_CORRUPT');
    const bad = Buffer.from(t);
    bad[10] = 0x41;
    rejects(() => readTar(bad), 'EKM_BACKUP_CORRUPT', /checksum/);
  });

  // The damage tar-stream and node-tar read as a whole archive, the reason src/backup/tar.ts is ours.
  it('refuses a cut at a file boundary, one end block of two, a name twice and empty input', () => {
    const t = writeTar([
      { name: 'x', data: Buffer.alloc(700, 1) },
      { name: 'y', data: Buffer.alloc(32, 2) },
    ]);
    const endOfFiles = t.length - 1024;
    rejects(() => readTar(t.subarray(0, endOfFiles)), 'EKM_BACKUP_CORRUPT', /truncated/);
    rejects(() => readTar(t.subarray(0, endOfFiles - 512)), 'EKM_BACKUP_CORRUPT', /truncated/);
    rejects(() => readTar(t.subarray(0, endOfFiles + 512)), 'EKM_BACKUP_CORRUPT', /end-of-archive/);
    rejects(() => readTar(t.subarray(0, endOfFiles + 600)), 'EKM_BACKUP_CORRUPT', /end-of-archive/);
    const twice = writeTar([
      { name: 'x', data: Buffer.from('1') },
      { name: 'x', data: Buffer.from('2') },
    ]);
    rejects(() => readTar(twice), 'EKM_BACKUP_CORRUPT', /twice/);
    rejects(() => readTar(Buffer.alloc(0)), 'EKM_BACKUP_CORRUPT', /truncated/);
  });
});

describe('hybrid encryption (RSA-OAEP-SHA256 + AES-256-GCM)', () => {
  const pair = generateBackupKeyPair();
  const pk = loadPublicKey(pair.publicPem, 'pub');
  const sk = loadPrivateKey(pair.privatePem, 'priv');
  it('opens what it sealed, only with the same AAD and key', () => {
    const s = sealTo(pk, Buffer.from('contents'), Buffer.from('aad'));
    assert.equal(openWith(sk, s, Buffer.from('aad')).toString(), 'contents');
    rejects(() => openWith(sk, s, Buffer.from('other aad')), 'EKM_BACKUP_CORRUPT');
    const flipped = Buffer.from(s.payload);
    flipped[14]! ^= 1;
    rejects(() => openWith(sk, { ...s, payload: flipped }, Buffer.from('aad')), 'EKM_BACKUP_CORRUPT');
    const other = loadPrivateKey(generateBackupKeyPair().privatePem, 'other');
    rejects(() => openWith(other, s, Buffer.from('aad')), 'EKM_BACKUP_WRONG_KEY');
    assert.equal(keyFingerprint(pk), pair.fingerprint);
  });
  it('refuses keys that are not RSA ≥ 3072 and non-PEM input', () => {
    const small = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    rejects(() => loadPublicKey(small, 'small'), 'EKM_BACKUP_KEY', /at least 3072/);
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    rejects(() => loadPublicKey(ec, 'ec'), 'EKM_BACKUP_KEY');
    rejects(() => loadPrivateKey('nonsense', 'x'), 'EKM_BACKUP_KEY');
  });
});

describe('backup, verify, restore (functions, made-up keys)', () => {
  let archive: string;
  before(async () => {
    const { paths } = await makeHome(join(dir, 'src'), 'ep', 20);
    archive = join(dir, 'ep.tar.gz');
    const lines: string[] = [];
    const m = await backup({ out: archive, to: pub() }, paths, (l) => lines.push(l));
    assert.equal(m.keyCount, 20);
    assert.deepEqual(m.removed, { presignatures: 1, openSessions: 1 });
    assert.match(lines.join('\n'), /Backed up EP .* 20 keys/);
  });

  it('writes a 0600 .tar.gz with metadata, wrapped key and payload; metadata says what is inside', () => {
    assert.equal(statSync(archive).mode & 0o777, 0o600);
    const files = readTar(gunzipSync(readFileSync(archive)));
    assert.deepEqual([...files.keys()], ['metadata.json', 'key.wrap', 'payload.enc']);
    const m = JSON.parse(files.get('metadata.json')!.toString()) as Record<string, unknown>;
    for (const f of [
      'clusterId',
      'role',
      'server',
      'softwareVersion',
      'schemaVersion',
      'createdAt',
      'keyCount',
      'keys',
      'keysDigest',
      'contents',
      'payload',
      'encryption',
    ])
      assert.ok(f in m, f);
    assert.equal(m.clusterId, CLUSTER);
    assert.equal(m.schemaVersion, LATEST_SCHEMA);
    assert.deepEqual((m.keys as unknown[])[0], { keyId: '0000000000000000', alg: 'ecdsa-p256', epoch: 0 });
    assert.equal(files.get('key.wrap')!.length, 384);
    assert.ok(!readFileSync(archive).includes(Buffer.from('SQLite format')), 'no plaintext store in the archive');
  });

  it('verifies without and with the private key', () => {
    const lines: string[] = [];
    verify({ in: archive }, (l) => lines.push(l));
    verify({ in: archive, key: priv() }, (l) => lines.push(l));
    assert.match(lines.join('\n'), /OK \(without decryption\)[\s\S]*20 sealed shares open[\s\S]*\nOK$/);
  });

  it('refuses a wrong private key', () => {
    rejects(() => verify({ in: archive, key: join(keyDir, 'other.key') }, quiet), 'EKM_BACKUP_WRONG_KEY', /does not open the archive/);
  });

  it('refuses every truncation', () => {
    const bytes = readFileSync(archive);
    const f = join(dir, 'cut.tar.gz');
    for (const cut of [0, 10, 100, bytes.length >> 2, bytes.length >> 1, bytes.length - 40, bytes.length - 1]) {
      writeFileSync(f, bytes.subarray(0, cut));
      rejects(() => verify({ in: f }, quiet), 'EKM_BACKUP_CORRUPT');
    }
  });

  /** Rewrites one entry of the archive (optionally fixing the digests an attacker could fix). */
  function tampered(edit: (files: Map<string, Buffer>) => void): string {
    const files = readTar(gunzipSync(readFileSync(archive)));
    edit(files);
    const f = join(dir, `tampered-${Math.random().toString(16).slice(2)}.tar.gz`);
    writeFileSync(f, gzipSync(writeTar([...files].map(([name, data]) => ({ name, data })))));
    return f;
  }
  const editMeta = (fn: (m: Record<string, unknown>) => void) => (files: Map<string, Buffer>) => {
    const m = JSON.parse(files.get('metadata.json')!.toString()) as Record<string, unknown>;
    fn(m);
    files.set('metadata.json', Buffer.from(JSON.stringify(m)));
  };

  it('detects tampering without the key: key list, payload bytes, missing entries', () => {
    const keyList = tampered(editMeta((m) => ((m.keys as { epoch: number }[])[0]!.epoch = 5)));
    rejects(() => verify({ in: keyList }, quiet), 'EKM_BACKUP_CORRUPT', /key list does not match its digest/);
    const payload = tampered((files) => (files.get('payload.enc')![100]! ^= 1));
    rejects(() => verify({ in: payload }, quiet), 'EKM_BACKUP_CORRUPT', /payload.enc does not match its digest/);
    const missing = tampered((files) => files.delete('key.wrap'));
    rejects(() => verify({ in: missing }, quiet), 'EKM_BACKUP_CORRUPT', /key.wrap is missing/);
  });

  it('detects with the key what a forger can re-digest: identity fields and payload bound by the AAD', () => {
    const cluster = tampered(editMeta((m) => (m.clusterId = 'ffffffffffffffff')));
    verify({ in: cluster }, quiet); // digests are consistent: only decryption can tell
    rejects(() => verify({ in: cluster, key: priv() }, quiet), 'EKM_BACKUP_CORRUPT', /fail authentication/);
    const role = tampered(editMeta((m) => (m.role = 'partner')));
    rejects(() => restore({ in: role, key: priv(), force: false }, homePaths(join(dir, 'r-role')), quiet), 'EKM_BACKUP_CORRUPT');
  });

  it('restores into an empty home, refuses an occupied one unless --force', async () => {
    const paths = homePaths(join(dir, 'new-ep'));
    restore({ in: archive, key: priv(), force: false }, paths, quiet);
    assert.equal(statSync(paths.systemKey).mode & 0o777, 0o600);
    const db = new Database(paths.sqlite, { readonly: true });
    try {
      assert.equal((db.prepare('SELECT count(*) AS n FROM keys').get() as { n: number }).n, 20);
      assert.equal((db.prepare('SELECT count(*) AS n FROM presignatures').get() as { n: number }).n, 0, 'no presignature is restored');
      const sessions = db.prepare('SELECT sid, checkpoint FROM protocol_sessions').all();
      assert.deepEqual(
        sessions,
        [{ sid: 'done-session', checkpoint: null }],
        'open sessions and checkpoints are not restored; the replay cache is',
      );
    } finally {
      db.close();
    }
    rejects(() => restore({ in: archive, key: priv(), force: false }, paths, quiet), 'EKM_RESTORE_OCCUPIED', /already holds a store/);
    restore({ in: archive, key: priv(), force: true }, paths, quiet);
    const inspected = await inspectRestoredStore(paths.sqlite, 'ep');
    assert.equal(inspected.clusterId, CLUSTER);
    assert.equal(inspected.keys.length, 20);
    await assert.rejects(inspectRestoredStore(paths.sqlite, 'partner'), /an EP's store, and this is the Partner bootstrap/);
  });

  it('the Aux is refused with an explanation', async () => {
    const { paths } = await makeHome(join(dir, 'aux-src'), 'aux', 0);
    await assert.rejects(
      backup({ out: join(dir, 'aux.tar.gz'), to: pub() }, paths, quiet),
      isEkmError('EKM_BACKUP_AUX', /the Aux has no backup/),
    );
    assert.ok(!existsSync(join(dir, 'aux.tar.gz')));
  });

  it('refuses a newer schema; migrates an older one at the -restore bootstrap', async () => {
    const newer = await makeHome(join(dir, 'newer'), 'partner', 2);
    const db = new Database(newer.paths.sqlite);
    db.prepare("UPDATE meta SET value = '99' WHERE name = 'schema_version'").run();
    db.close();
    const f = join(dir, 'newer.tar.gz');
    await backup({ out: f, to: pub() }, newer.paths, quiet);
    rejects(() => verify({ in: f }, quiet), 'EKM_SCHEMA_TOO_NEW', /schema 99, newer than this release knows/);
    rejects(() => restore({ in: f, key: priv(), force: false }, homePaths(join(dir, 'r-newer')), quiet), 'EKM_SCHEMA_TOO_NEW');

    // A store an older release left at schema 1 (no key tables yet).
    const older = await makeHome(join(dir, 'older'), 'partner', 0);
    for (const f of ['', '-wal', '-shm']) rmSync(`${older.paths.sqlite}${f}`, { force: true });
    const odb = new Database(older.paths.sqlite);
    odb.exec(MIGRATIONS[0]!.sqlite);
    const meta = odb.prepare('INSERT INTO meta (name, value) VALUES (?, ?)');
    for (const [k, v] of [
      ['schema_version', '1'],
      ['cluster_id', CLUSTER],
      ['role', 'partner'],
    ])
      meta.run(k, v);
    odb.close();
    const g = join(dir, 'older.tar.gz');
    const m = await backup({ out: g, to: pub() }, older.paths, quiet);
    assert.equal(m.schemaVersion, 1);
    const target = homePaths(join(dir, 'r-older'));
    restore({ in: g, key: priv(), force: false }, target, quiet);
    const inspected = await inspectRestoredStore(target.sqlite, 'partner');
    assert.equal(inspected.schemaVersion, LATEST_SCHEMA);
    assert.equal(MIGRATIONS.length, LATEST_SCHEMA);
  });

  it('decryptContents refuses contents whose digest does not match', () => {
    const a = readArchive(readFileSync(archive));
    const sk = loadPrivateKey(readFileSync(priv(), 'utf8'), 'k');
    const c = decryptContents(a, sk, keyFingerprint(sk));
    assert.equal(c.systemKey.length, 32);
    const forged = { ...a, metadata: { ...a.metadata, contents: { ...a.metadata.contents, sha256: '0'.repeat(64) } } };
    rejects(() => decryptContents(forged, sk, keyFingerprint(sk)), 'EKM_BACKUP_CORRUPT');
  });
});
