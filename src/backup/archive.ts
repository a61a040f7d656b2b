/**
 * The backup archive: a gzipped ustar holding
 *
 *   metadata.json   text metadata (below), readable with `tar -xzOf <file> metadata.json`
 *   key.wrap        the AES-256-GCM key, wrapped with RSA-OAEP-SHA256 to the administrator's key
 *   payload.enc     nonce ‖ AES-256-GCM(gzip(contents)) ‖ tag, the AAD binding the metadata
 *
 * where contents is an inner ustar of `ekm.db` (the store snapshot) and `system.key` (both are
 * needed to open its sealed shares). The metadata records the SHA-256 of the contents and of
 * payload.enc, so damage is found without the private key, and the AAD makes any change to the
 * metadata's identity fields (cluster, role, keys digest, contents digest) fail decryption.
 */
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { CIPHER, KEY_WRAP, openWith, sealTo } from './envelope.js';
import type { KeyObject } from 'node:crypto';
import { keysDigest } from './key-epochs.js';
import { readTar, writeTar } from './tar.js';

export const ARCHIVE_FORMAT = 'ekm-backup';
export const ARCHIVE_VERSION = 1;

const Listed = z.object({
  keyId: z.string(),
  alg: z.string(),
  epoch: z.number().int().nonnegative(),
  previous: z.number().int().nonnegative().optional(),
});

export const Metadata = z.object({
  format: z.literal(ARCHIVE_FORMAT),
  formatVersion: z.number().int(),
  clusterId: z.string().regex(/^[0-9a-f]{16}$/),
  role: z.enum(['ep', 'partner']),
  server: z.string(),
  softwareVersion: z.string(),
  schemaVersion: z.number().int().positive(),
  createdAt: z.string(),
  /** Where the server kept the store (absent in archives made before PostgreSQL could be backed up: the embedded store). */
  store: z.enum(['sqlite', 'postgres']).optional(),
  keyCount: z.number().int().nonnegative(),
  keys: z.array(Listed),
  keysDigest: z.string().regex(/^[0-9a-f]{64}$/),
  removed: z.object({ presignatures: z.number().int(), openSessions: z.number().int() }),
  encryption: z.object({ cipher: z.literal(CIPHER), keyWrap: z.literal(KEY_WRAP), recipient: z.string() }),
  contents: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int(), files: z.array(z.string()) }),
  payload: z.object({ sha256: z.string().regex(/^[0-9a-f]{64}$/), size: z.number().int(), compression: z.literal('gzip') }),
});
export type Metadata = z.infer<typeof Metadata>;

export type MetadataDraft = Omit<Metadata, 'format' | 'formatVersion' | 'keyCount' | 'keysDigest' | 'encryption' | 'contents' | 'payload'>;

export interface Contents {
  readonly db: Buffer;
  readonly systemKey: Buffer;
}

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** What the AES-GCM tag authenticates besides the contents: the metadata fields that identify them. */
function aadOf(
  m: Pick<
    Metadata,
    'formatVersion' | 'clusterId' | 'role' | 'server' | 'schemaVersion' | 'createdAt' | 'keysDigest' | 'encryption' | 'contents'
  >,
): Buffer {
  return Buffer.from(
    [
      ARCHIVE_FORMAT,
      m.formatVersion,
      m.clusterId,
      m.role,
      m.server,
      m.schemaVersion,
      m.createdAt,
      m.keysDigest,
      m.encryption.recipient,
      m.contents.sha256,
      m.contents.size,
    ].join('|'),
  );
}

export function buildArchive(
  draft: MetadataDraft,
  contents: Contents,
  recipient: { key: KeyObject; fingerprint: string },
): { archive: Buffer; metadata: Metadata } {
  const inner = writeTar([
    { name: 'ekm.db', data: contents.db },
    { name: 'system.key', data: contents.systemKey },
  ]);
  const partial: Omit<Metadata, 'payload'> = {
    format: ARCHIVE_FORMAT,
    formatVersion: ARCHIVE_VERSION,
    ...draft,
    keyCount: draft.keys.length,
    keysDigest: keysDigest(draft.keys),
    encryption: { cipher: CIPHER, keyWrap: KEY_WRAP, recipient: recipient.fingerprint },
    contents: { sha256: sha256(inner), size: inner.length, files: ['ekm.db', 'system.key'] },
  };
  const sealed = sealTo(recipient.key, gzipSync(inner), aadOf(partial));
  inner.fill(0);
  const metadata: Metadata = { ...partial, payload: { sha256: sha256(sealed.payload), size: sealed.payload.length, compression: 'gzip' } };
  const archive = gzipSync(
    writeTar([
      { name: 'metadata.json', data: Buffer.from(`${JSON.stringify(metadata, null, 1)}\n`), mode: 0o644 },
      { name: 'key.wrap', data: sealed.wrappedKey },
      { name: 'payload.enc', data: sealed.payload },
    ]),
    { level: 1 },
  );
  return { archive, metadata };
}

export interface OpenedArchive {
  readonly metadata: Metadata;
  readonly wrappedKey: Buffer;
  readonly payload: Buffer;
}

function corrupt(what: string): EkmError {
  return new EkmError('EKM_BACKUP_CORRUPT', `the archive is damaged: ${what}`, { hint: 'use another copy of the backup' });
}

/** Every check that needs no private key: gzip, tar, metadata, keys digest, payload digest. */
export function readArchive(bytes: Buffer): OpenedArchive {
  let tar: Buffer;
  try {
    tar = gunzipSync(bytes);
  } catch (e) {
    const msg = (e as Error).message;
    throw corrupt(/unexpected end/i.test(msg) ? 'the gzip stream ends early (truncated?)' : `not a valid gzip file (${msg})`);
  }
  const files = readTar(tar);
  for (const name of ['metadata.json', 'key.wrap', 'payload.enc'])
    if (!files.has(name)) throw corrupt(`${name} is missing (is this an ekm backup?)`);
  let raw: unknown;
  try {
    raw = JSON.parse(files.get('metadata.json')!.toString('utf8'));
  } catch {
    throw corrupt('metadata.json is not valid JSON');
  }
  const fmt = z.object({ format: z.literal(ARCHIVE_FORMAT), formatVersion: z.number().int() }).safeParse(raw);
  if (!fmt.success) throw corrupt('metadata.json is not ekm backup metadata');
  if (fmt.data.formatVersion > ARCHIVE_VERSION) {
    throw new EkmError(
      'EKM_BACKUP_TOO_NEW',
      `the archive has format version ${fmt.data.formatVersion}, newer than this release reads (${ARCHIVE_VERSION})`,
      { hint: 'use the ekm release that made it, or newer' },
    );
  }
  const parsed = Metadata.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw corrupt(`metadata.json is invalid at ${issue?.path.join('.') || '(root)'}`);
  }
  const m = parsed.data;
  if (m.keyCount !== m.keys.length) throw corrupt('the metadata key count does not match its key list');
  if (keysDigest(m.keys) !== m.keysDigest) throw corrupt('the metadata key list does not match its digest');
  const payload = files.get('payload.enc')!;
  if (payload.length !== m.payload.size || sha256(payload) !== m.payload.sha256)
    throw corrupt('payload.enc does not match its digest in the metadata');
  return { metadata: m, wrappedKey: files.get('key.wrap')!, payload };
}

/** Decrypts and checks the contents against the metadata's digest. */
export function decryptContents(a: OpenedArchive, privateKey: KeyObject, fingerprint: string): Contents {
  if (fingerprint !== a.metadata.encryption.recipient) {
    throw new EkmError(
      'EKM_BACKUP_WRONG_KEY',
      `this private key does not open the archive: it was encrypted to the key ${short(a.metadata.encryption.recipient)}, this key is ${short(fingerprint)}`,
      { hint: 'give the backup private key whose public key the backup was made to' },
    );
  }
  const zipped = openWith(privateKey, { wrappedKey: a.wrappedKey, payload: a.payload }, aadOf(a.metadata));
  let inner: Buffer;
  try {
    inner = gunzipSync(zipped);
  } catch {
    throw corrupt('the decrypted contents are not valid gzip');
  }
  if (inner.length !== a.metadata.contents.size || sha256(inner) !== a.metadata.contents.sha256)
    throw corrupt('the decrypted contents do not match their digest');
  const files = readTar(inner);
  const db = files.get('ekm.db');
  const systemKey = files.get('system.key');
  if (!db || !systemKey) throw corrupt('the contents lack ekm.db or system.key');
  if (systemKey.length !== 32) throw corrupt('the system key in the contents is not 32 bytes');
  return { db, systemKey };
}

const short = (fp: string): string => `${fp.slice(0, 23)}…`;
