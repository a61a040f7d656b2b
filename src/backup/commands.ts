/**
 * The operator's commands: `ekm backup-keygen`, `ekm backup`, `ekm backup verify`, `ekm restore`.
 * The backup private key is read only by `verify --key` and `restore`, never stored.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { type HomePaths, ensureWritableHome, isBootstrapped, makeDirs, writeFileAtomic } from '../config/home.js';
import { ROLE_LABEL } from '../config/roles.js';
import { loadServerConfig } from '../config/server-config.js';
import { EkmError, usageError } from '../errors.js';
import { daemonRunning } from '../config/pidfile.js';
import { Barrier } from '../store/barrier.js';
import { LATEST_SCHEMA } from '../store/migrations.js';
import { pgConnection } from '../store/server-store.js';
import { VERSION } from '../version.js';
import { type Contents, type Metadata, buildArchive, decryptContents, readArchive } from './archive.js';
import { generateBackupKeyPair, keyFingerprint, loadPrivateKey, loadPublicKey } from './envelope.js';
import { keysDigest, listedKeys, readKeyEpochs } from './key-epochs.js';
import { checkSealedShares, snapshotPostgresStore, snapshotStore } from './snapshot.js';

type Print = (line: string) => void;

function readInput(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    throw new EkmError('EKM_FILE', `cannot read the ${what} ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`, {
      hint: 'check the path and its permissions',
    });
  }
}

export function backupKeygen(opts: { out: string; name?: string }, print: Print): void {
  const name = opts.name ?? 'ekm-backup';
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw usageError(`--name "${name}" must be a plain file name`);
  const dir = resolve(opts.out);
  const priv = join(dir, `${name}.key`);
  const pub = join(dir, `${name}.pub.pem`);
  for (const f of [priv, pub])
    if (existsSync(f))
      throw new EkmError('EKM_FILE_EXISTS', `${f} already exists`, {
        hint: 'choose another --out folder or --name; never overwrite a backup key',
      });
  makeDirs(dir);
  const pair = generateBackupKeyPair();
  writeFileSync(priv, pair.privatePem, { mode: 0o600, flag: 'wx' });
  writeFileSync(pub, pair.publicPem, { mode: 0o644, flag: 'wx' });
  print(`Backup key pair (RSA-3072, OAEP-SHA256), fingerprint ${pair.fingerprint}`);
  print(`  public key  ${pub}   give it to \`ekm backup --to\` on the EP or the Partner`);
  print(`  private key ${priv}   (0600) keep it offline: only \`ekm restore\` and \`ekm backup verify --key\` read it`);
}

export async function backup(opts: { out: string; to: string }, paths: HomePaths, print: Print): Promise<Metadata> {
  const config = loadServerConfig(paths);
  if (config.role === 'aux') {
    throw new EkmError(
      'EKM_BACKUP_AUX',
      'the Aux has no backup: its shares are re-derived from the EP and the Partner when a triplet is restored',
      { hint: 'back up the EP and the Partner (`ekm backup` on each); at restore, bootstrap a fresh Aux' },
    );
  }
  const recipientKey = loadPublicKey(readInput(opts.to, 'backup public key').toString('utf8'), opts.to);
  const out = resolve(opts.out);
  if (existsSync(out))
    throw new EkmError('EKM_FILE_EXISTS', `${out} already exists`, { hint: 'give a new file name: a backup never overwrites another' });
  const systemKey = readInput(paths.systemKey, 'system key');
  const scratch = join(paths.home, 'run');
  const snap =
    config.store.kind === 'postgres'
      ? await snapshotPostgresStore(pgConnection(config.store, new Barrier(systemKey)), scratch)
      : snapshotStore(paths.sqlite, scratch);
  if (snap.role !== config.role || snap.clusterId !== config.clusterId) {
    throw new EkmError(
      'EKM_STORE_STATE',
      `the store says role ${snap.role ?? '?'} of cluster ${snap.clusterId ?? '?'}, server.json ${config.role} of ${config.clusterId}`,
      { hint: 'this EKM_HOME is inconsistent: do not back it up' },
    );
  }
  const db = new Database(snap.db);
  try {
    checkSealedShares(db, systemKey);
  } finally {
    db.close();
  }
  const { archive, metadata } = buildArchive(
    {
      clusterId: config.clusterId,
      role: config.role,
      server: config.name,
      softwareVersion: VERSION,
      schemaVersion: snap.schemaVersion,
      createdAt: new Date().toISOString(),
      store: config.store.kind,
      keys: listedKeys(snap.keys),
      removed: snap.removed,
    },
    { db: snap.db, systemKey },
    { key: recipientKey, fingerprint: keyFingerprint(recipientKey) },
  );
  makeDirs(resolve(out, '..'));
  writeFileAtomic(out, archive, 0o600);
  print(
    `Backed up ${ROLE_LABEL[config.role]} ${config.name} of cluster ${config.clusterId}: ${metadata.keyCount} keys, schema ${metadata.schemaVersion}, ${archive.length} bytes`,
  );
  if (config.store.kind === 'postgres')
    print(
      `  from the ${ROLE_LABEL[config.role]} role's PostgreSQL database ${config.store.url}, read as of one moment (the whole role: every ${ROLE_LABEL[config.role]} shares it)`,
    );
  print(`  ${out}`);
  print(`  keys digest ${metadata.keysDigest}`);
  print(
    `  not included (single use, never restored): ${snap.removed.presignatures} presignatures, ${snap.removed.openSessions} open protocol sessions`,
  );
  print(`  encrypted to backup key ${metadata.encryption.recipient}`);
  print(
    `Back up the ${config.role === 'ep' ? 'Partner' : 'EP'} too, close in time and with no key refresh in between: a restore needs both, at the same key epochs.`,
  );
  return metadata;
}

function summary(m: Metadata): string {
  const from = m.store === 'postgres' ? ' (from its PostgreSQL database)' : '';
  return `${ROLE_LABEL[m.role]} ${m.server}${from} of cluster ${m.clusterId}, ${m.keyCount} keys, schema ${m.schemaVersion}, ekm ${m.softwareVersion}, made ${m.createdAt}`;
}

function checkSchema(m: Metadata): void {
  if (m.schemaVersion > LATEST_SCHEMA) {
    throw new EkmError(
      'EKM_SCHEMA_TOO_NEW',
      `the archive holds a store at schema ${m.schemaVersion}, newer than this release knows (${LATEST_SCHEMA})`,
      { hint: `restore it with ekm ${m.softwareVersion} or newer` },
    );
  }
}

/** With the contents decrypted: the snapshot agrees with the metadata and its system key opens every share. */
function checkContents(c: Contents, m: Metadata): { shares: number } {
  let db: Database.Database;
  try {
    db = new Database(c.db);
  } catch (e) {
    throw new EkmError('EKM_BACKUP_CORRUPT', `the archive is damaged: the store in it does not open (${(e as Error).message})`, {
      hint: 'use another copy of the backup',
    });
  }
  try {
    const meta = (name: string): string | undefined =>
      (db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined)?.value;
    const bad = (what: string): EkmError =>
      new EkmError('EKM_BACKUP_CORRUPT', `the archive is damaged: ${what}`, { hint: 'use another copy of the backup' });
    if (Number(meta('schema_version')) !== m.schemaVersion) throw bad('the store schema differs from the metadata');
    if (meta('cluster_id') !== m.clusterId || meta('role') !== m.role) throw bad('the store cluster or role differs from the metadata');
    const hasTable = (t: string): boolean =>
      db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) !== undefined;
    const listed = hasTable('keys') ? listedKeys(readKeyEpochs(db)) : [];
    if (keysDigest(listed) !== m.keysDigest) throw bad('the store keys differ from the metadata key list');
    if (hasTable('presignatures') && (db.prepare('SELECT count(*) AS n FROM presignatures').get() as { n: number }).n !== 0)
      throw bad('the store holds presignatures');
    return { shares: checkSealedShares(db, c.systemKey) };
  } finally {
    db.close();
  }
}

export function verify(opts: { in: string; key?: string }, print: Print): void {
  const a = readArchive(readInput(opts.in, 'archive'));
  const m = a.metadata;
  print(`Archive ${resolve(opts.in)}: ${summary(m)}`);
  print(`  digests OK: metadata key list ${m.keysDigest}, encrypted payload ${m.payload.sha256}`);
  checkSchema(m);
  if (!opts.key) {
    print(`  encrypted to backup key ${m.encryption.recipient}; give --key <private key> to also decrypt and check the contents`);
    print('OK (without decryption)');
    return;
  }
  const priv = loadPrivateKey(readInput(opts.key, 'backup private key').toString('utf8'), opts.key);
  const contents = decryptContents(a, priv, keyFingerprint(priv));
  const { shares } = checkContents(contents, m);
  contents.systemKey.fill(0);
  print(
    `  decrypted: contents digest ${m.contents.sha256} OK; store and metadata agree; ${shares} sealed shares open with the archived system key`,
  );
  print('OK');
}

export function restore(opts: { in: string; key: string; force: boolean }, paths: HomePaths, print: Print): Metadata {
  if (daemonRunning(paths))
    throw new EkmError('EKM_RUNNING', `ekm is running in ${paths.home}`, { hint: 'restore into a stopped, new server: ekm stop first' });
  const occupied = [paths.config, paths.sqlite, paths.systemKey].filter((f) => existsSync(f));
  if (occupied.length > 0 && !opts.force) {
    throw new EkmError(
      'EKM_RESTORE_OCCUPIED',
      `EKM_HOME ${paths.home} already holds a ${isBootstrapped(paths) ? 'bootstrapped server' : 'store'} (${occupied.map((f) => f.slice(paths.home.length + 1)).join(', ')})`,
      { hint: "restore into a new server's EKM_HOME, or add --force to replace what is there" },
    );
  }
  const a = readArchive(readInput(opts.in, 'archive'));
  const m = a.metadata;
  checkSchema(m);
  const priv = loadPrivateKey(readInput(opts.key, 'backup private key').toString('utf8'), opts.key);
  const contents = decryptContents(a, priv, keyFingerprint(priv));
  checkContents(contents, m);
  ensureWritableHome(paths);
  // Nothing of a previous server may survive next to the restored store (only with --force).
  for (const f of [paths.config, paths.sqlite, `${paths.sqlite}-wal`, `${paths.sqlite}-shm`, paths.systemKey]) rmSync(f, { force: true });
  writeFileAtomic(paths.systemKey, contents.systemKey, 0o600);
  writeFileAtomic(paths.sqlite, contents.db, 0o600);
  contents.systemKey.fill(0);
  // An archive of a store on PostgreSQL goes back into the role's (empty) database: docs/operations.md §10.6.
  const externalDb = m.store === 'postgres' ? ' -externaldb' : '';
  const dbUrl = m.store === 'postgres' ? `EKM_DB_URL=<the empty ${ROLE_LABEL[m.role]} database's URL> ` : '';
  const script =
    m.role === 'ep'
      ? `${dbUrl}ekm_boot_ep.sh -s <ep> -p <partner> -x <aux> -fips -w <root SO password>${externalDb} -restore [-f]`
      : `${dbUrl}ekm_boot_partner.sh -s <partner> -p <ep> -x <aux> -fips${externalDb} -restore [-f]`;
  print(`Restored ${summary(m)}`);
  print(
    `  into ${paths.home} (data/ekm.db, keys/system.key); store digest ${createHash('sha256').update(contents.db).digest('hex').slice(0, 16)}…`,
  );
  print(`Next: restore the ${m.role === 'ep' ? 'Partner' : 'EP'} too, then bootstrap this server with ${script},`);
  print('  a fresh Aux with ekm_boot_auxiliary.sh, and start Partner and Aux, then the EP.');
  return m;
}
