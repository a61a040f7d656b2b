/**
 * The `-restore` bootstrap's part of a restore (called by src/cluster/bootstrap.ts):
 *
 *  - inspect the restored store before anything else: migrate an older schema, refuse a newer
 *    one, refuse a store of another role, read its cluster id and key epochs;
 *  - EP ↔ Partner: compare the two archives (same cluster; same keys at a common epoch) and
 *    refuse a pair that does not match, naming the keys, unless both were given `--partial`;
 *  - when the bootstrap writes: keep every key at the agreed epoch only, drop the others, remove
 *    single-use material and the old triplet's server rows, and (EP) mark the Aux recovery
 *    pending: the EP re-derives the Aux's shares and refreshes every key at its next start.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { ROLE_LABEL, type Role } from '../config/roles.js';
import { EkmError } from '../errors.js';
import type { HomePaths } from '../config/home.js';
import { loadServerConfig } from '../config/server-config.js';
import { Barrier } from '../store/barrier.js';
import { RESTORE_TOKEN_META, copyPostgresToSqlite, writeRestoreToken } from '../store/pg-copy.js';
import { parseDbUrl } from '../store/postgres.js';
import { pgConnection } from '../store/server-store.js';
import { SqliteStore } from '../store/sqlite.js';
import { RECOVERY_META } from '../service/aux-recovery.js';
import { type KeyEpochs, type RestorePlan, keysDigest, listedKeys, planRestore, readKeyEpochs } from './key-epochs.js';

export interface RestoredStore {
  readonly clusterId: string;
  readonly keys: KeyEpochs[];
  readonly keysDigest: string;
  readonly schemaVersion: number;
}

/** What a `-restore` bootstrap says about its store in its hello. */
export const RestoreHello = z.object({
  clusterId: z.string().regex(/^[0-9a-f]{16}$/),
  keysDigest: z.string(),
  keyCount: z.number().int(),
  partial: z.boolean(),
});
export type RestoreHello = z.infer<typeof RestoreHello>;

const KeyEpochsList = z.array(
  z.object({
    keyId: z.string(),
    alg: z.string(),
    epoch: z.number().int(),
    held: z.array(z.object({ epoch: z.number().int(), status: z.enum(['current', 'previous']), pub: z.string() })),
  }),
);

export function parseKeyEpochs(raw: unknown): KeyEpochs[] {
  const r = KeyEpochsList.safeParse(raw);
  if (!r.success) throw new EkmError('EKM_PEER_PROTOCOL', 'the peer sent a malformed key list');
  return r.data;
}

/** Opens (and migrates) the restored store, checks it is this role's, reads its cluster id and keys. */
export async function inspectRestoredStore(sqlitePath: string, role: Role): Promise<RestoredStore> {
  if (role === 'aux') throw new EkmError('EKM_USAGE', 'an Aux is never restored', { hint: 'bootstrap a fresh Aux' });
  // Opening through the store runs the migrations (an older schema is migrated in one
  // transaction) and refuses a schema newer than this release (EKM_SCHEMA_TOO_NEW).
  const store = SqliteStore.open(sqlitePath, { create: false });
  const schemaVersion = await store.schemaVersion();
  await store.close();
  const db = new Database(sqlitePath, { fileMustExist: true });
  try {
    const meta = (name: string): string | undefined =>
      (db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined)?.value;
    const storeRole = meta('role');
    const clusterId = meta('cluster_id');
    if (storeRole !== role) {
      const label =
        storeRole === 'ep' || storeRole === 'partner' || storeRole === 'aux' ? `an ${ROLE_LABEL[storeRole]}` : 'an unknown server';
      throw new EkmError('EKM_RESTORE_ROLE', `the store in EKM_HOME is ${label}'s store, and this is the ${ROLE_LABEL[role]} bootstrap`, {
        hint: `restore the ${ROLE_LABEL[role]}'s archive here (ekm restore --force), or run this bootstrap on the server that holds the ${ROLE_LABEL[role]}'s store`,
      });
    }
    if (!clusterId || !/^[0-9a-f]{16}$/.test(clusterId))
      throw new EkmError('EKM_STORE_STATE', 'the restored store has no cluster id', { hint: 'restore it again from a backup archive' });
    const keys = readKeyEpochs(db);
    return { clusterId, keys, keysDigest: keysDigest(listedKeys(keys)), schemaVersion };
  } finally {
    db.close();
  }
}

/**
 * A rerun of `-restore -externaldb` on a server whose restore bootstrap finished while a peer's
 * did not (a kill, or a failure after this one wrote server.json): the rerun on all three needs
 * this server's restored store again, and it is in the database that server.json names. It is
 * copied back into data/ekm.db under a new restore token, written to the database first so that
 * the copy carries it and the load that follows may replace the database; the copy lands under
 * another name and is renamed, so a kill never leaves a partial data/ekm.db. Only a server
 * bootstrapped with -restore, and only from its own database: false otherwise.
 */
export async function copyBackRestoredStore(paths: HomePaths, dbUrl: string | undefined): Promise<boolean> {
  const config = loadServerConfig(paths);
  if (!config.restored || config.store.kind !== 'postgres' || !dbUrl || parseDbUrl(dbUrl).url !== config.store.url) return false;
  const conn = pgConnection(config.store, new Barrier(readFileSync(paths.systemKey)));
  await writeRestoreToken(conn, randomBytes(16).toString('hex'));
  const tmp = `${paths.sqlite}.copy`;
  for (const f of [tmp, `${tmp}-wal`, `${tmp}-shm`]) rmSync(f, { force: true });
  await copyPostgresToSqlite(conn, tmp);
  renameSync(tmp, paths.sqlite);
  return true;
}

/** The restore token of this restored store (src/store/pg-copy.ts): made by the first -restore -externaldb run, kept for its reruns. */
export function ensureRestoreToken(sqlitePath: string): string {
  const db = new Database(sqlitePath, { fileMustExist: true });
  try {
    db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING').run(
      RESTORE_TOKEN_META,
      randomBytes(16).toString('hex'),
    );
    return (db.prepare('SELECT value FROM meta WHERE name = ?').get(RESTORE_TOKEN_META) as { value: string }).value;
  } finally {
    db.close();
  }
}

const MAX_LISTED = 50;

/**
 * EP ↔ Partner check, run by both with the same inputs (so both reach the same plan): returns the
 * plan, or null when neither restores. `ownRole` is 'ep' or 'partner'.
 */
export async function checkRestorePair(
  ownRole: 'ep' | 'partner',
  own: (RestoredStore & { partial: boolean }) | undefined,
  peer: RestoreHello | null | undefined,
  fetchPeerKeys: () => Promise<KeyEpochs[]>,
  print: (line: string) => void,
): Promise<RestorePlan | null> {
  const peerLabel = ownRole === 'ep' ? 'Partner' : 'EP';
  if (!own && !peer) return null;
  if (own && !peer) {
    throw mismatch(
      `the ${peerLabel} is not bootstrapping with -restore`,
      `restore its archive with \`ekm restore\` and bootstrap it with -restore too`,
    );
  }
  if (!own && peer) {
    throw mismatch(
      `the ${peerLabel} is bootstrapping with -restore and this server is not`,
      "restore this server's archive with `ekm restore` and bootstrap it with -restore too",
    );
  }
  const mine = own!;
  const theirs = peer!;
  if (theirs.clusterId !== mine.clusterId) {
    throw mismatch(
      `the EP and Partner archives belong to different clusters (this ${ROLE_LABEL[ownRole]} ${mine.clusterId}, the ${peerLabel} ${theirs.clusterId})`,
      'restore a pair of backups of the same cluster',
    );
  }
  const peerKeys = await fetchPeerKeys();
  const plan = ownRole === 'ep' ? planRestore(mine.keys, peerKeys) : planRestore(peerKeys, mine.keys);
  const total = plan.keep.length + plan.problems.length;
  if (plan.problems.length > 0) {
    print(`The EP and Partner archives differ on ${plan.problems.length} of ${total} keys:`);
    for (const p of plan.problems.slice(0, MAX_LISTED)) print(`  key ${p.keyId} (${p.alg}): ${p.why}`);
    if (plan.problems.length > MAX_LISTED) print(`  … and ${plan.problems.length - MAX_LISTED} more`);
    if (!(mine.partial && theirs.partial)) {
      const first = plan.problems
        .slice(0, 3)
        .map((p) => `${p.keyId} ${p.why}`)
        .join('; ');
      const given = mine.partial
        ? ` (--partial was given to this ${ROLE_LABEL[ownRole]} only)`
        : theirs.partial
          ? ` (--partial was given to the ${peerLabel} only)`
          : '';
      throw mismatch(
        `the EP and Partner archives do not match: ${plan.problems.length} of ${total} keys cannot be restored (${first}${plan.problems.length > 3 ? '; …' : ''})${given}`,
        `restore a pair of backups taken together, or bootstrap both EP and Partner with --partial to restore only the ${plan.keep.length} keys both hold at a common epoch`,
      );
    }
    print(
      `Partial restore (--partial on EP and Partner): ${plan.keep.length} keys restored, the ${plan.problems.length} keys above are dropped.`,
    );
  } else {
    print(`The EP and Partner archives match: ${plan.keep.length} keys, cluster ${mine.clusterId}.`);
  }
  if (plan.rolledBack > 0)
    print(`  ${plan.rolledBack} keys are restored at the epoch before their last refresh (one archive was made before it).`);
  return plan;
}

function mismatch(message: string, hint: string): EkmError {
  return new EkmError('EKM_RESTORE_MISMATCH', message, { hint });
}

/**
 * Applies the plan to the restored store in one transaction, before server.json is written: each
 * kept key holds only its agreed epoch as CURRENT (Aux absent), other shared keys are removed, so are
 * presignatures, open protocol sessions, bearer tokens and the old triplet's server rows. The EP records that the
 * Aux recovery is pending.
 */
export function applyRestorePlan(sqlitePath: string, role: Role, plan: RestorePlan): void {
  const db = new Database(sqlitePath, { fileMustExist: true });
  try {
    db.pragma('foreign_keys = ON');
    db.transaction(() => {
      const keep = new Map(plan.keep.map((k) => [k.keyId, k.epoch]));
      // Imported public keys (EP only, no shares) are kept as they are.
      const ids = (db.prepare('SELECT key_id FROM keys WHERE public_key IS NULL').all() as { key_id: string }[]).map((r) => r.key_id);
      const delShares = db.prepare('DELETE FROM key_shares WHERE key_id = ?');
      const delKey = db.prepare('DELETE FROM keys WHERE key_id = ?');
      const delOther = db.prepare('DELETE FROM key_shares WHERE key_id = ? AND epoch <> ?');
      const setShare = db.prepare("UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ?");
      const setKey = db.prepare("UPDATE keys SET current_epoch = ?, aux_present = 0, state = 'active' WHERE key_id = ?");
      db.prepare('DELETE FROM presignatures').run();
      // Bearer tokens of the backup's time would work again (a logout since then undone): none survive a restore.
      db.prepare('DELETE FROM api_tokens').run();
      for (const id of ids) {
        const epoch = keep.get(id);
        if (epoch === undefined) {
          delShares.run(id);
          delKey.run(id);
          continue;
        }
        delOther.run(id, epoch);
        setShare.run(id, epoch);
        setKey.run(epoch, id);
      }
      db.prepare("DELETE FROM protocol_sessions WHERE state = 'open'").run();
      db.prepare('UPDATE protocol_sessions SET checkpoint = NULL WHERE checkpoint IS NOT NULL').run();
      db.prepare('DELETE FROM servers').run();
      db.prepare('DELETE FROM meta WHERE name = ?').run(RECOVERY_META);
      if (role === 'ep' && plan.keep.length > 0) {
        db.prepare('INSERT INTO meta (name, value) VALUES (?, ?)').run(
          RECOVERY_META,
          JSON.stringify({ phase: 'rederive', keys: plan.keep.length, since: new Date().toISOString() }),
        );
      }
    }).immediate();
  } finally {
    db.close();
  }
}
