/**
 * The store's logic, written once for both backends against a small SQL driver (SQLite:
 * src/store/sqlite.ts, synchronous; PostgreSQL: src/store/postgres.ts, asynchronous). Every
 * operation is a generator of SQL statements (`Steps`): the driver runs each yielded statement and
 * sends its result back in, so the same steps run inside a synchronous SQLite transaction or an
 * awaited PostgreSQL one. SQL is written with `?` placeholders in the dialect both backends share
 * (ON CONFLICT, RETURNING, CAST); the driver renumbers them where it needs to.
 */
import { ROLE_LABEL } from '../config/roles.js';
import { EkmError } from '../errors.js';
import type { Barrier } from './barrier.js';
import type {
  KeyRow,
  KeyUsage,
  KeyWrite,
  OpenSession,
  SessionRecord,
  RsaShareRecord,
  ShareRecord,
  ShareStatus,
  StoredRsaShare,
  StoredShare,
} from './key-records.js';
import { LATEST_SCHEMA, MIGRATIONS, type Migration, tooNewError } from './migrations.js';
import {
  keyNameTaken,
  type ApiTokenGrant,
  type ApiTokenHolder,
  type AuditChain,
  type AuditEntry,
  type AuditPartition,
  type AuditRecord,
  type DestroyedKeyRow,
  type IntegrityKeyRow,
  type KeyListQuery,
  type KeyPurge,
  type LoginAdmission,
  type PartitionRow,
  type ServerRow,
  type Store,
  type UserRole,
  type UserRow,
} from './store.js';

export type SqlValue = string | number | null | Uint8Array;
export interface Stmt {
  readonly sql: string;
  readonly params: readonly SqlValue[];
  /** Several statements without parameters (a migration). */
  readonly script?: true;
  /**
   * No statement follows in this transaction: a driver may commit together with it (the SQLite
   * writer thread then needs one round trip, not two). Yielding another statement after it is an error.
   */
  readonly last?: true;
}
export interface StmtResult {
  readonly rows: readonly unknown[];
  readonly changes: number;
}
export type Steps<T> = Generator<Stmt, T, StmtResult>;

function* all<R>(sql: string, ...params: SqlValue[]): Steps<R[]> {
  return (yield { sql, params }).rows as R[];
}
function* one<R>(sql: string, ...params: SqlValue[]): Steps<R | undefined> {
  return (yield* all<R>(sql, ...params))[0];
}
/** Runs a write; returns how many rows it changed. */
function* write(sql: string, ...params: SqlValue[]): Steps<number> {
  return (yield { sql, params }).changes;
}
/** Runs the transaction's final write (see Stmt.last); returns how many rows it changed. */
function* lastWrite(sql: string, ...params: SqlValue[]): Steps<number> {
  return (yield { sql, params, last: true }).changes;
}

/** Drives steps to their end, awaiting `exec`'s answer to each statement (the synchronous twin is in sqlite.ts). */
export async function driveAsync<T>(steps: Steps<T>, exec: (s: Stmt) => Promise<StmtResult>): Promise<T> {
  let next = steps.next();
  while (!next.done) next = steps.next(await exec(next.value));
  return next.value;
}

export type StoreRole = ServerRow['role'];

export interface SqlDriver {
  readonly kind: Store['kind'];
  /** Where the store lives, for messages (a path, or a URL without its password). */
  readonly where: string;
  /** One-parameter query that returns a row when a table of that name exists. */
  readonly tableExistsSql: string;
  /** The migration's SQL in this backend's dialect. */
  migrationSql(m: Migration): string;
  /** A UNIQUE or PRIMARY KEY constraint refused the statement. */
  isUniqueViolation(e: unknown): boolean;
  /** Runs the steps with each statement on its own (autocommit). */
  run<T>(steps: Steps<T>): Promise<T>;
  /** Runs the steps as one transaction, serialised with every other writer of the store; nothing stays of a failed one. */
  transaction<T>(steps: Steps<T>): Promise<T>;
  close(): Promise<void>;
}

/**
 * Brings the store to LATEST_SCHEMA (each migration with its version bump) and claims it for
 * `role`: run as one transaction, so a failure leaves the store as it was. A store already
 * claimed by another role is refused: two roles never share a database.
 */
export function* migrateSteps(d: SqlDriver, opts: { create: boolean; role?: StoreRole }): Steps<void> {
  const hasMeta = (yield* all(d.tableExistsSql, 'meta')).length > 0;
  const from = hasMeta ? Number((yield* one<{ value: string }>("SELECT value FROM meta WHERE name = 'schema_version'"))?.value ?? 0) : 0;
  if (from > LATEST_SCHEMA) throw tooNewError(from);
  if (from === 0 && !opts.create) {
    throw new EkmError(
      'EKM_STORE_UNAVAILABLE',
      `${d.where} holds no ekm store`,
      { hint: 'point this server at the database it was bootstrapped with, or bootstrap it again' },
    );
  }
  for (const m of MIGRATIONS) {
    if (m.version <= from) continue;
    yield { sql: d.migrationSql(m), params: [], script: true };
    yield* write(META_UPSERT, 'schema_version', String(m.version));
  }
  if (!opts.role) return;
  const owner = (yield* one<{ value: string }>("SELECT value FROM meta WHERE name = 'role'"))?.value;
  if (owner === undefined) yield* write(META_UPSERT, 'role', opts.role);
  else if (owner !== opts.role) throw otherRoleError(d, owner, opts.role);
}

function otherRoleError(d: SqlDriver, owner: string, role: StoreRole): EkmError {
  return new EkmError(
    'EKM_STORE_OTHER_ROLE',
    `${d.where} holds the store of the ${ROLE_LABEL[owner as StoreRole] ?? owner} role; this server is a${role === 'ep' ? 'n' : ''} ${ROLE_LABEL[role]}`,
    { hint: d.kind === 'postgres'
      ? 'give each role its own database (every EP shares the EP database, every Partner the Partner database): set EKM_DB_URL to it and bootstrap again'
      : "this EKM_HOME holds another server's store: point EKM_HOME at this server's own, or restore it from its backup" },
  );
}

/** A migration failure as the operator sees it: EkmErrors as they are, anything else EKM_MIGRATION_FAILED. */
export function asMigrationError(d: SqlDriver, e: unknown): EkmError {
  if (e instanceof EkmError) return e;
  return new EkmError(
    'EKM_MIGRATION_FAILED',
    `${d.where} could not be migrated to schema ${LATEST_SCHEMA}: ${(e as Error).message}`,
    { hint: 'nothing was changed; restore the store from a backup or report this with the log' },
  );
}

/** Opens the store through `d` and migrates it; the driver is closed if that fails. */
export async function openSqlStore(d: SqlDriver, opts: { create: boolean; role?: StoreRole; barrier?: Barrier }): Promise<SqlStore> {
  try {
    await d.transaction(migrateSteps(d, opts));
  } catch (e) {
    await d.close();
    throw asMigrationError(d, e);
  }
  return new SqlStore(d, opts.barrier);
}

/** The SQL fragments whose value is given, and those values in order: only fixed fragments are joined, every value is bound. */
function given(terms: readonly (readonly [string, SqlValue | undefined])[]): { parts: string[]; args: SqlValue[] } {
  const set = terms.filter((t): t is readonly [string, SqlValue] => t[1] !== undefined);
  return { parts: set.map((t) => t[0]), args: set.map((t) => t[1]) };
}

/** The hash before the first audit row. */
export const AUDIT_GENESIS = '0'.repeat(64);

/** Audit columns in insert order; seq and status are integers (cast: PostgreSQL types a VALUES list's parameters as text). */
const AUDIT_INSERT_COLUMNS =
  'seq, at, request_id, actor, partition, partition_id, operation, key_id, result, status, client, detail, prev_hash, hash, sig, key_ref';
const AUDIT_ROW_VALUES = '(CAST(? AS INTEGER), ?, ?, ?, ?, CAST(? AS INTEGER), ?, ?, ?, CAST(? AS INTEGER), ?, ?, ?, ?, ?, ?)';

/**
 * Appends `entries` as the rows after `prev`, in one statement that inserts only if `prev` is
 * still the chain's head: row prev.seq exists with that hash (genesis: the table is empty) and,
 * seq being the primary key, no row prev.seq+1 does (that insert fails as a unique violation).
 * Returns undefined when `prev` is not the head, so the chain is never forked nor left with a gap.
 */
function* appendAuditAfter(prev: { seq: number; hash: string }, entries: readonly AuditEntry[], chain: AuditChain): Steps<AuditRecord[] | undefined> {
  const recs: AuditRecord[] = [];
  let link = prev;
  for (const entry of entries) {
    const c = chain(link, entry);
    const rec: AuditRecord = { ...entry, partitionId: entry.partitionId ?? null, seq: link.seq + 1, prevHash: link.hash, hash: c.hash, sig: c.sig, keyRef: c.keyRef };
    recs.push(rec);
    link = rec;
  }
  const linked = prev.seq === 0 ? 'NOT EXISTS (SELECT 1 FROM audit)' : 'EXISTS (SELECT 1 FROM audit WHERE seq = ? AND hash = ?)';
  const inserted = yield* lastWrite(
    `INSERT INTO audit (${AUDIT_INSERT_COLUMNS})
     SELECT * FROM (VALUES ${recs.map(() => AUDIT_ROW_VALUES).join(', ')}) AS v WHERE ${linked}`,
    ...recs.flatMap((r) => [r.seq, r.at, r.requestId, r.actor, r.partition, r.partitionId, r.operation, r.keyId, r.result, r.status, r.client, r.detail, r.prevHash, r.hash, r.sig, r.keyRef]),
    ...(prev.seq === 0 ? [] : [prev.seq, prev.hash]),
  );
  return inserted === recs.length ? recs : undefined;
}

const DELETE_USER_TOKENS = 'DELETE FROM api_tokens WHERE partition_id = ? AND user_name = ?';
const META_UPSERT = 'INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value';
/** The meta row holding the highest partition id ever given (schema 8). */
const PARTITION_ID_HIGH = 'partition_id_high';

/**
 * Numbers a new partition past every id ever given, the high-water mark advanced in the same
 * transaction: a deleted partition's id is never given again, so nothing left under it (audit
 * rows, a destroyed key's id, a token or a cache naming it) can ever name a later partition.
 * Both backends serialise write transactions (SQLite's write lock, PostgreSQL's advisory lock),
 * so EPs sharing a store that create partitions at once read and advance the mark in turn.
 */
function* createPartitionSteps(p: { name: string; fipsRequired: boolean }, createdAt: string): Steps<number> {
  const high = Number((yield* one<{ value: string }>('SELECT value FROM meta WHERE name = ?', PARTITION_ID_HIGH))?.value ?? 0);
  // A store whose mark is missing or behind (written by hand, restored from an older copy) still never reuses a live id.
  const top = Number((yield* one<{ n: number }>('SELECT CAST(COALESCE(MAX(id), 0) AS INTEGER) AS n FROM partitions'))!.n);
  const id = Math.max(high, top) + 1;
  yield* write('INSERT INTO partitions (id, name, fips_required, created_at) VALUES (?, ?, ?, ?)', id, p.name, p.fipsRequired ? 1 : 0, createdAt);
  yield* lastWrite(META_UPSERT, PARTITION_ID_HIGH, String(id));
  return id;
}
/**
 * The AAD of a sealed share names its row and, when the key has one, its policy's notAfter: the
 * policy sits in the clear public data, and editing it in the database must make the share fail
 * to open, not lift the policy.
 */
export const shareAad = (keyId: string, epoch: number, party: number, notAfter?: string): string =>
  `share|${keyId}|${epoch}|${party}${notAfter !== undefined ? `|notAfter=${notAfter}` : ''}`;
const presigAad = (psid: string): string => `presig|${psid}`;
const integrityAad = (id: string): string => `integrity|${id}`;

/**
 * Records key `k` as destroyed, lists `purges` as the peers still to erase their shares, and
 * erases its record here (its shares and presignatures cascade).
 */
function* destroyKeySteps(k: KeyDb, purges: readonly KeyPurge['role'][]): Steps<DestroyedKeyRow> {
  const row: DestroyedKeyDb = {
    key_id: k.key_id,
    partition_id: k.partition_id,
    alg: k.alg,
    name: k.name,
    description: k.description,
    created_at: k.created_at,
    destroyed_at: new Date().toISOString(),
  };
  yield* write(
    'INSERT INTO destroyed_keys (key_id, partition_id, alg, name, description, created_at, destroyed_at) VALUES (?, ?, ?, ?, ?, ?, ?)',
    row.key_id,
    row.partition_id,
    row.alg,
    row.name,
    row.description,
    row.created_at,
    row.destroyed_at,
  );
  for (const role of purges) yield* write('INSERT INTO key_purges (key_id, role) VALUES (?, ?) ON CONFLICT DO NOTHING', k.key_id, role);
  yield* write('DELETE FROM keys WHERE key_id = ?', k.key_id);
  return destroyedFromDb(row);
}

/** The peers that hold shares of key `k`: none for an imported public key. */
const sharePeers = (k: KeyDb): readonly KeyPurge['role'][] => (k.public_key !== null ? [] : ['partner', 'aux']);

/**
 * Deletes partition `id` and everything of it but its audit rows, in one transaction. A key still
 * there (made by a request that raced the catalogue's destroying the partition's keys) is
 * destroyed here too, its peers listed to purge, so no key record outlives its partition and no
 * share is left unlisted; without `withKeys` such a key refuses the delete. The destroyed keys
 * keep their ids (peers of other triplets are still told to erase their shares), not what named
 * or described them.
 */
function* deletePartitionSteps(id: number, withKeys: boolean): Steps<void> {
  const live = yield* all<KeyDb>('SELECT * FROM keys WHERE partition_id = ? ORDER BY key_id', id);
  if (live.length > 0 && !withKeys) {
    throw new EkmError('EKM_PARTITION_NOT_EMPTY', `the partition holds ${live.length} key${live.length === 1 ? '' : 's'}`, {
      hint: 'delete them first, or force (ucl partition delete --force)',
    });
  }
  for (const k of live) yield* destroyKeySteps(k, sharePeers(k));
  yield* write('UPDATE destroyed_keys SET name = NULL, description = NULL WHERE partition_id = ?', id);
  yield* write('DELETE FROM api_tokens WHERE partition_id = ?', id);
  yield* write('DELETE FROM users WHERE partition_id = ?', id);
  yield* lastWrite('DELETE FROM partitions WHERE id = ?', id);
}

export class SqlStore implements Store {
  readonly kind: Store['kind'];

  /** See bindTriplet; null for tools that open the store without serving (bootstrap, backup). */
  private tripletId: string | null = null;

  constructor(
    private readonly d: SqlDriver,
    private readonly barrier: Barrier | undefined,
  ) {
    this.kind = d.kind;
  }

  private all<R>(sql: string, ...params: SqlValue[]): Promise<R[]> {
    return this.d.run(all<R>(sql, ...params));
  }
  private one<R>(sql: string, ...params: SqlValue[]): Promise<R | undefined> {
    return this.d.run(one<R>(sql, ...params));
  }
  private write(sql: string, ...params: SqlValue[]): Promise<number> {
    return this.d.run(write(sql, ...params));
  }

  async schemaVersion(): Promise<number> {
    return Number((await this.one<{ value: string }>("SELECT value FROM meta WHERE name = 'schema_version'"))?.value ?? 0);
  }

  async getMeta(name: string): Promise<string | undefined> {
    return (await this.one<{ value: string }>('SELECT value FROM meta WHERE name = ?', name))?.value;
  }

  async setMeta(name: string, value: string): Promise<void> {
    await this.write(META_UPSERT, name, value);
  }

  async createPartition(p: { name: string; fipsRequired: boolean }): Promise<PartitionRow> {
    const createdAt = new Date().toISOString();
    let id: number;
    try {
      id = await this.d.transaction(createPartitionSteps(p, createdAt));
    } catch (e) {
      // Two creates of one name (from two EPs, or at once on one) both pass the caller's check.
      if (this.d.isUniqueViolation(e)) throw new EkmError('EKM_EXISTS', `partition ${p.name} already exists`);
      throw e;
    }
    return { id, name: p.name, fipsRequired: p.fipsRequired, createdAt, maxFailedLogins: 5 };
  }

  async getPartition(name: string): Promise<PartitionRow | undefined> {
    const r = await this.one<object>('SELECT * FROM partitions WHERE name = ?', name);
    return r ? partitionFromDb(r) : undefined;
  }

  async getPartitionById(id: number): Promise<PartitionRow | undefined> {
    const r = await this.one<object>('SELECT * FROM partitions WHERE id = ?', id);
    return r ? partitionFromDb(r) : undefined;
  }

  async listPartitions(): Promise<PartitionRow[]> {
    return (await this.all<object>('SELECT * FROM partitions ORDER BY id')).map(partitionFromDb);
  }

  async setPartitionMaxFailedLogins(id: number, n: number): Promise<void> {
    await this.write('UPDATE partitions SET max_failed_logins = ? WHERE id = ?', n, id);
  }

  async deletePartition(id: number, opts: { withKeys: boolean }): Promise<void> {
    await this.d.transaction(deletePartitionSteps(id, opts.withKeys));
  }

  async createUser(u: Omit<UserRow, 'failedLogins' | 'locked' | 'createdAt' | 'credentialVersion'>): Promise<void> {
    try {
      await this.write(
        'INSERT INTO users (partition_id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)',
        u.partitionId,
        u.name,
        u.role,
        u.passwordHash,
        new Date().toISOString(),
      );
    } catch (e) {
      if (this.d.isUniqueViolation(e)) throw new EkmError('EKM_EXISTS', `user ${u.name} already exists in the partition`);
      throw e;
    }
  }

  async getUser(partitionId: number, name: string): Promise<UserRow | undefined> {
    const r = await this.one<object>('SELECT * FROM users WHERE partition_id = ? AND name = ?', partitionId, name);
    return r ? userFromDb(r) : undefined;
  }

  async listUsers(partitionId: number): Promise<UserRow[]> {
    return (await this.all<object>('SELECT * FROM users WHERE partition_id = ? ORDER BY name', partitionId)).map(userFromDb);
  }

  async deleteUser(partitionId: number, name: string): Promise<boolean> {
    return this.d.transaction(
      (function* () {
        yield* write(DELETE_USER_TOKENS, partitionId, name);
        return (yield* lastWrite('DELETE FROM users WHERE partition_id = ? AND name = ?', partitionId, name)) === 1;
      })(),
    );
  }

  async setUserPassword(partitionId: number, name: string, passwordHash: string): Promise<boolean> {
    return this.d.transaction(
      (function* () {
        yield* write(DELETE_USER_TOKENS, partitionId, name);
        const n = yield* lastWrite(
          `UPDATE users SET password_hash = ?, failed_logins = 0, locked = 0, credential_version = credential_version + 1
           WHERE partition_id = ? AND name = ?`,
          passwordHash,
          partitionId,
          name,
        );
        return n === 1;
      })(),
    );
  }

  async createApiToken(g: ApiTokenGrant, now: string): Promise<boolean> {
    return this.d.transaction(
      (function* () {
        yield* write('DELETE FROM api_tokens WHERE expires_at <= ?', now);
        // Recorded only if the user still holds the credentials the login checked.
        const n = yield* lastWrite(
          `INSERT INTO api_tokens (token_sha256, partition_id, user_name, credential_version, expires_at, created_at)
           SELECT ?, partition_id, name, credential_version, ?, ? FROM users
           WHERE partition_id = ? AND name = ? AND credential_version = ?`,
          g.tokenSha256,
          g.expiresAt,
          now,
          g.partitionId,
          g.user,
          g.credentialVersion,
        );
        return n === 1;
      })(),
    );
  }

  async getApiToken(tokenSha256: string, now: string): Promise<ApiTokenHolder | undefined> {
    // One read by primary key: the token, its user at the version it was issued at, and its partition.
    const r = await this.one<{ partition_id: number; partition: string; user_name: string; role: UserRole; expires_at: string }>(
      `SELECT t.partition_id, p.name AS partition, t.user_name, u.role, t.expires_at
       FROM api_tokens t
       JOIN users u ON u.partition_id = t.partition_id AND u.name = t.user_name AND u.credential_version = t.credential_version
       JOIN partitions p ON p.id = t.partition_id
       WHERE t.token_sha256 = ? AND t.expires_at > ?`,
      tokenSha256,
      now,
    );
    return r ? { partitionId: r.partition_id, partition: r.partition, user: r.user_name, role: r.role, expiresAt: r.expires_at } : undefined;
  }

  async deleteApiToken(tokenSha256: string): Promise<boolean> {
    return (await this.write('DELETE FROM api_tokens WHERE token_sha256 = ?', tokenSha256)) === 1;
  }

  async admitLoginAttempt(partitionId: number, name: string, limit: number): Promise<LoginAdmission> {
    // One statement: the check and the count are one step for every EP sharing the store.
    const r = await this.one<{ failed_logins: number }>(
      `UPDATE users SET failed_logins = failed_logins + 1
       WHERE partition_id = ? AND name = ? AND locked = 0 AND failed_logins < ? RETURNING failed_logins`,
      partitionId,
      name,
      limit,
    );
    if (r) return { admitted: true, failedLogins: r.failed_logins };
    const u = await this.getUser(partitionId, name);
    if (!u) return { admitted: false, reason: 'unknown', failedLogins: 0 };
    return { admitted: false, reason: u.locked ? 'locked' : 'busy', failedLogins: u.failedLogins };
  }

  async settleLoginFailure(partitionId: number, name: string, limit: number): Promise<{ failedLogins: number; locked: boolean }> {
    const r = await this.one<{ failed_logins: number; locked: number }>(
      `UPDATE users SET locked = CASE WHEN failed_logins >= ? THEN 1 ELSE locked END
       WHERE partition_id = ? AND name = ? RETURNING failed_logins, locked`,
      limit,
      partitionId,
      name,
    );
    return { failedLogins: r?.failed_logins ?? 0, locked: (r?.locked ?? 0) !== 0 };
  }

  async settleLoginSuccess(partitionId: number, name: string): Promise<boolean> {
    return (await this.write('UPDATE users SET failed_logins = 0 WHERE partition_id = ? AND name = ? AND locked = 0', partitionId, name)) > 0;
  }

  async upsertServer(s: ServerRow): Promise<void> {
    await this.write(
      `INSERT INTO servers (name, role, triplet_id, host, port, api, fingerprint, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET role = excluded.role, triplet_id = excluded.triplet_id, host = excluded.host,
         port = excluded.port, api = excluded.api, fingerprint = excluded.fingerprint`,
      s.name,
      s.role,
      s.tripletId,
      s.host,
      s.port,
      s.api,
      s.fingerprint,
      s.addedAt,
    );
  }

  async deleteServer(name: string): Promise<boolean> {
    return (await this.write('DELETE FROM servers WHERE name = ?', name)) > 0;
  }

  async listServers(): Promise<ServerRow[]> {
    return (await this.all<object>('SELECT * FROM servers ORDER BY triplet_id, name')).map((r) => camelRow<ServerRow>(r));
  }

  private sealer(): Barrier {
    if (!this.barrier) throw new EkmError('EKM_INTERNAL', 'store opened without its system key');
    return this.barrier;
  }

  // ---- threshold keys ----

  async applyKeyWrites(writes: readonly KeyWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const now = new Date().toISOString();
    await this.d.transaction(this.keyWritesSteps(writes, now));
  }

  private *keyWritesSteps(writes: readonly KeyWrite[], now: string): Steps<void> {
    for (const w of writes) yield* this.keyWriteSteps(w, now);
  }

  /** Writes one party's share of a key at an epoch: public data in the clear, the secret sealed (AAD names the row). */
  private *shareRowSteps(
    row: { keyId: string; epoch: number; partyId: number },
    status: ShareStatus,
    publicData: Record<string, string>,
    secret: Uint8Array,
  ): Steps<void> {
    yield* write(
      `INSERT INTO key_shares (key_id, epoch, status, party_id, public_data, share_sealed) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (key_id, epoch) DO UPDATE SET status = excluded.status, party_id = excluded.party_id,
         public_data = excluded.public_data, share_sealed = excluded.share_sealed`,
      row.keyId,
      row.epoch,
      status,
      row.partyId,
      JSON.stringify(publicData),
      this.sealer().seal(secret, shareAad(row.keyId, row.epoch, row.partyId, publicData.notAfter)),
    );
  }

  private *ecShareSteps(sh: ShareRecord, status: ShareStatus): Steps<void> {
    yield* this.shareRowSteps(
      sh,
      status,
      {
        alg: sh.alg,
        Y: hex(sh.Y),
        C1: hex(sh.C1),
        A1: hex(sh.A1),
        A2: hex(sh.A2),
        A3: hex(sh.A3),
        ...(sh.notAfter !== undefined ? { notAfter: String(sh.notAfter) } : {}),
      },
      sh.share,
    );
  }

  private *rsaShareSteps(sh: RsaShareRecord, status: ShareStatus): Steps<void> {
    yield* this.shareRowSteps(sh, status, { alg: sh.alg, n: hex(sh.n), e: hex(sh.e) }, sh.pieces);
  }

  private *keyWriteSteps(w: KeyWrite, now: string): Steps<void> {
    const insertKey = (keyId: string, alg: string, state: KeyRow['state'], epoch: number, conflict = ''): Steps<number> =>
      write(
        `INSERT INTO keys (key_id, alg, state, current_epoch, aux_present, created_at) VALUES (?, ?, ?, ?, 1, ?)${conflict}`,
        keyId,
        alg,
        state,
        epoch,
        now,
      );
    switch (w.op) {
      case 'session-open':
        yield* write(
          "INSERT INTO protocol_sessions (sid, proto, state, created_at, triplet_id) VALUES (?, ?, 'open', ?, ?) ON CONFLICT DO NOTHING",
          w.sid,
          w.proto,
          now,
          this.tripletId,
        );
        return;
      case 'session-checkpoint':
        // Never on a session this server promised (NEVER) not to activate: the step's PENDING rolls back with it.
        if ((yield* write("UPDATE protocol_sessions SET checkpoint = ? WHERE sid = ? AND state <> 'aborted'", w.checkpoint, w.sid)) !== 1) {
          throw new EkmError('EKM_STORE_STATE', `protocol session ${w.sid} is aborted here (or unknown): its confirm state is refused`);
        }
        return;
      case 'session-done':
        yield* write("UPDATE protocol_sessions SET state = 'done', checkpoint = NULL WHERE sid = ?", w.sid);
        return;
      case 'session-abort':
      case 'session-never': {
        // A done session stays done (its checkpoint answers late re-sends); another triplet's is not ours.
        // NEVER (the host's promise) also spares a session that persisted its confirm state meanwhile.
        const spare = w.op === 'session-never' ? ' AND protocol_sessions.checkpoint IS NULL' : '';
        yield* write(
          `INSERT INTO protocol_sessions (sid, proto, state, created_at, triplet_id) VALUES (?, ?, 'aborted', ?, ?)
           ON CONFLICT (sid) DO UPDATE SET state = 'aborted', checkpoint = NULL
           WHERE protocol_sessions.state = 'open' AND protocol_sessions.triplet_id IS NOT DISTINCT FROM excluded.triplet_id${spare}`,
          w.sid,
          w.proto,
          now,
          this.tripletId,
        );
        return;
      }
      case 'pending-discard':
        yield* write("DELETE FROM key_shares WHERE key_id = ? AND epoch = ? AND status = 'pending'", w.keyId, w.epoch);
        yield* write("DELETE FROM keys WHERE key_id = ? AND state = 'pending'", w.keyId); // shares and presignatures cascade
        return;
      case 'key-create':
        yield* insertKey(w.keyId, w.alg, 'pending', w.share.epoch);
        yield* this.ecShareSteps(w.share, 'current');
        return;
      case 'rsa-key-create':
        yield* insertKey(w.keyId, w.alg, 'active', w.share.epoch);
        yield* this.rsaShareSteps(w.share, 'current');
        return;
      case 'rsa-share-put':
        yield* this.rsaShareSteps(w.share, w.status);
        return;
      case 'key-activate':
        yield* write("UPDATE keys SET state = 'active' WHERE key_id = ?", w.keyId);
        return;
      case 'share-put':
        yield* this.ecShareSteps(w.share, w.status);
        return;
      case 'epoch-activate': {
        const moved = yield* write(
          "UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ? AND status IN ('pending', 'current')",
          w.keyId,
          w.to,
        );
        if (moved !== 1) throw new EkmError('EKM_STORE_STATE', `key ${w.keyId} has no pending epoch ${w.to} to activate`);
        yield* write("UPDATE key_shares SET status = 'previous' WHERE key_id = ? AND epoch = ?", w.keyId, w.from);
        yield* write('UPDATE keys SET current_epoch = ? WHERE key_id = ?', w.to, w.keyId);
        return;
      }
      case 'epoch-erase':
        yield* write("DELETE FROM key_shares WHERE key_id = ? AND epoch = ? AND status = 'previous'", w.keyId, w.epoch);
        yield* write('DELETE FROM presignatures WHERE key_id = ? AND epoch = ?', w.keyId, w.epoch);
        return;
      case 'aux-present':
        // Presignatures made with the lost Aux can never complete: burn them.
        yield* write('UPDATE keys SET aux_present = 1 WHERE key_id = ?', w.keyId);
        yield* write('DELETE FROM presignatures WHERE key_id = ? AND triplet_id IS NOT DISTINCT FROM ?', w.keyId, this.tripletId);
        return;
      case 'aux-share-pending':
        yield* insertKey(w.share.keyId, w.share.alg, 'pending', w.share.epoch, ' ON CONFLICT DO NOTHING');
        yield* this.ecShareSteps(w.share, 'pending');
        return;
      case 'aux-share-activate':
        yield* write('DELETE FROM key_shares WHERE key_id = ? AND epoch <> ?', w.keyId, w.epoch);
        yield* write('DELETE FROM presignatures WHERE key_id = ?', w.keyId);
        yield* write("UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ?", w.keyId, w.epoch);
        yield* write("UPDATE keys SET state = 'active', current_epoch = ? WHERE key_id = ?", w.epoch, w.keyId);
        return;
      case 'presig-put':
        yield* write(
          'INSERT INTO presignatures (psid, key_id, epoch, sealed, created_at, triplet_id) VALUES (?, ?, ?, ?, ?, ?)',
          w.psid,
          w.keyId,
          w.epoch,
          this.sealer().seal(w.secret, presigAad(w.psid)),
          now,
          this.tripletId,
        );
        return;
      case 'presig-delete': {
        // The single-use claim (docs/protocols.md §3.6): two sessions may both have read the
        // presignature (a malicious EP can send its psid twice at once, under two sids); only the
        // one whose delete removes the row goes on. The other's transaction fails, so it sends nothing.
        const deleted = yield* write('DELETE FROM presignatures WHERE psid = ?', w.psid);
        if (deleted !== 1) throw new EkmError('EKM_PRESIG_USED', `presignature ${w.psid} is used already (or unknown): it never signs twice`);
        return;
      }
      case 'key-purge':
        yield* write('DELETE FROM keys WHERE key_id = ?', w.keyId); // shares and presignatures cascade
        return;
      case 'key-purge-stale':
        yield* write(
          "DELETE FROM keys WHERE key_id = ? AND state = 'active' AND current_epoch < ? AND NOT EXISTS (SELECT 1 FROM key_shares s WHERE s.key_id = keys.key_id AND (s.status <> 'current' OR s.epoch >= ?))",
          w.keyId,
          w.below,
          w.below,
        );
        return;
    }
  }

  async getKey(keyId: string): Promise<KeyRow | undefined> {
    const r = await this.one<KeyDb>('SELECT * FROM keys WHERE key_id = ?', keyId);
    return r ? keyFromDb(r) : undefined;
  }

  async listKeys(opts: { after?: string; limit: number }): Promise<KeyRow[]> {
    return (await this.all<KeyDb>('SELECT * FROM keys WHERE key_id > ? ORDER BY key_id LIMIT ?', opts.after ?? '', opts.limit)).map(
      keyFromDb,
    );
  }

  async countKeys(): Promise<number> {
    return (await this.one<{ n: number }>('SELECT CAST(count(*) AS INTEGER) AS n FROM keys'))!.n;
  }

  /** Every share row of the key, opened: what EC and RSA shares have in common, the public data, the secret. */
  private async shareRows(
    keyId: string,
  ): Promise<{ head: Omit<StoredShare, keyof ShareSecrets>; pub: Record<string, string | undefined>; secret: Uint8Array }[]> {
    const rows = await this.all<ShareDb>('SELECT * FROM key_shares WHERE key_id = ? ORDER BY epoch', keyId);
    return rows.map((r) => {
      const pub = JSON.parse(r.public_data) as Record<string, string | undefined> & { alg: string };
      return {
        head: { keyId: r.key_id, alg: pub.alg, epoch: r.epoch, partyId: r.party_id, status: r.status },
        pub,
        secret: new Uint8Array(this.sealer().open(r.share_sealed, shareAad(r.key_id, r.epoch, r.party_id, pub.notAfter))),
      };
    });
  }

  async getShares(keyId: string): Promise<StoredShare[]> {
    return (await this.shareRows(keyId)).map(({ head, pub, secret }) => ({
      ...head,
      share: secret,
      Y: unhex(pub.Y!),
      C1: unhex(pub.C1!),
      A1: unhex(pub.A1!),
      A2: unhex(pub.A2!),
      A3: unhex(pub.A3!),
      ...(pub.notAfter !== undefined ? { notAfter: Number(pub.notAfter) } : {}),
    }));
  }

  async getRsaShares(keyId: string): Promise<StoredRsaShare[]> {
    return (await this.shareRows(keyId)).map(({ head, pub, secret }) => {
      if (pub.n === undefined || pub.e === undefined) throw new EkmError('EKM_STORE_STATE', `key ${keyId} is not an RSA key`);
      return { ...head, n: unhex(pub.n), e: unhex(pub.e), pieces: secret };
    });
  }

  async sidSeen(sid: string): Promise<boolean> {
    return (await this.one('SELECT 1 AS x FROM protocol_sessions WHERE sid = ?', sid)) !== undefined;
  }

  async sessionRecord(sid: string): Promise<SessionRecord | undefined> {
    const r = await this.one<SessionRecord & { triplet_id: string | null }>('SELECT proto, state, checkpoint, triplet_id FROM protocol_sessions WHERE sid = ?', sid);
    if (!r) return undefined;
    return { proto: r.proto, state: r.state, checkpoint: r.checkpoint, ownTriplet: r.triplet_id === this.tripletId };
  }

  async bindTriplet(tripletId: string): Promise<void> {
    this.tripletId = tripletId;
    await this.d.transaction(
      (function* (): Steps<void> {
        yield* write('UPDATE protocol_sessions SET triplet_id = ? WHERE triplet_id IS NULL', tripletId);
        yield* write('UPDATE presignatures SET triplet_id = ? WHERE triplet_id IS NULL', tripletId);
      })(),
    );
  }

  async openSessions(): Promise<OpenSession[]> {
    return this.all<OpenSession>(
      "SELECT sid, proto, checkpoint FROM protocol_sessions WHERE state = 'open' AND checkpoint IS NOT NULL AND triplet_id IS NOT DISTINCT FROM ? ORDER BY created_at",
      this.tripletId,
    );
  }

  async listPresigs(): Promise<{ psid: string; keyId: string; epoch: number }[]> {
    const rows = await this.all<{ psid: string; key_id: string; epoch: number }>(
      'SELECT psid, key_id, epoch FROM presignatures WHERE triplet_id IS NOT DISTINCT FROM ? ORDER BY created_at',
      this.tripletId,
    );
    return rows.map((r) => ({ psid: r.psid, keyId: r.key_id, epoch: r.epoch }));
  }

  async getPresig(psid: string): Promise<Uint8Array | undefined> {
    const r = await this.one<{ sealed: Buffer }>('SELECT sealed FROM presignatures WHERE psid = ?', psid);
    return r ? new Uint8Array(this.sealer().open(r.sealed, presigAad(psid))) : undefined;
  }

  // ---- key placement and attributes (schema 3 and 4) ----

  async countPartitionKeys(partitionId: number): Promise<number> {
    return (await this.one<{ n: number }>('SELECT CAST(count(*) AS INTEGER) AS n FROM keys WHERE partition_id = ?', partitionId))!.n;
  }

  async listPartitionKeys(partitionId: number, q: KeyListQuery): Promise<KeyRow[]> {
    const where = given([
      ['partition_id = ?', partitionId],
      ['key_id > ?', q.after ?? ''],
      ['alg = ?', q.alg],
      ['name = ?', q.name],
      ['usage = ?', q.usage],
    ]);
    return (
      await this.all<KeyDb>(`SELECT * FROM keys WHERE ${where.parts.join(' AND ')} ORDER BY key_id LIMIT ?`, ...where.args, q.limit)
    ).map(keyFromDb);
  }

  async getKeyPartition(keyId: string): Promise<number | undefined> {
    return (await this.one<{ partition_id: number }>('SELECT partition_id FROM keys WHERE key_id = ?', keyId))?.partition_id;
  }

  async findKeyByName(partitionId: number, name: string): Promise<KeyRow | undefined> {
    const r = await this.one<KeyDb>('SELECT * FROM keys WHERE partition_id = ? AND name = ?', partitionId, name);
    return r ? keyFromDb(r) : undefined;
  }

  async setKeyAttributes(
    keyId: string,
    a: { readonly partitionId?: number; readonly name?: string | null; readonly description?: string | null; readonly usage?: KeyUsage },
  ): Promise<boolean> {
    const set = given([
      ['partition_id = ?', a.partitionId],
      ['name = ?', a.name],
      ['description = ?', a.description],
      ['usage = ?', a.usage],
      ['usage_changed_at = ?', a.usage === undefined ? undefined : new Date().toISOString()],
    ]);
    if (set.parts.length === 0) return (await this.getKey(keyId)) !== undefined;
    try {
      return (await this.write(`UPDATE keys SET ${set.parts.join(', ')} WHERE key_id = ?`, ...set.args, keyId)) === 1;
    } catch (e) {
      if (this.d.isUniqueViolation(e)) throw keyNameTaken(a.name ?? '');
      throw e;
    }
  }

  async destroyKey(keyId: string, purges: readonly KeyPurge['role'][]): Promise<DestroyedKeyRow | undefined> {
    return this.d.transaction(
      (function* (): Steps<DestroyedKeyRow | undefined> {
        const k = yield* one<KeyDb>('SELECT * FROM keys WHERE key_id = ?', keyId);
        return k ? yield* destroyKeySteps(k, purges) : undefined;
      })(),
    );
  }

  async createPublicKey(k: { readonly keyId: string; readonly alg: string; readonly publicKeyPem: string }): Promise<void> {
    await this.d.transaction(
      write(
        "INSERT INTO keys (key_id, alg, state, current_epoch, aux_present, created_at, public_key) VALUES (?, ?, 'active', 0, 1, ?, ?)",
        k.keyId,
        k.alg,
        new Date().toISOString(),
        k.publicKeyPem,
      ),
    );
  }

  async getDestroyedKey(keyId: string): Promise<DestroyedKeyRow | undefined> {
    const r = await this.one<DestroyedKeyDb>('SELECT * FROM destroyed_keys WHERE key_id = ?', keyId);
    return r ? destroyedFromDb(r) : undefined;
  }

  async listDestroyedKeys(partitionId: number, q: { after?: string; limit: number }): Promise<DestroyedKeyRow[]> {
    const rows = await this.all<DestroyedKeyDb>(
      'SELECT * FROM destroyed_keys WHERE partition_id = ? AND key_id > ? ORDER BY key_id LIMIT ?',
      partitionId,
      q.after ?? '',
      q.limit,
    );
    return rows.map(destroyedFromDb);
  }

  async listKeyPurges(): Promise<KeyPurge[]> {
    const rows = await this.all<{ key_id: string; role: KeyPurge['role'] }>('SELECT key_id, role FROM key_purges ORDER BY key_id, role');
    return rows.map((r) => ({ keyId: r.key_id, role: r.role }));
  }

  async clearKeyPurge(p: KeyPurge): Promise<void> {
    await this.write('DELETE FROM key_purges WHERE key_id = ? AND role = ?', p.keyId, p.role);
  }

  async destroyedAmong(keyIds: readonly string[]): Promise<string[]> {
    return (await this.amongKeys<{ key_id: string }>('SELECT key_id FROM destroyed_keys WHERE key_id IN', keyIds)).map((r) => r.key_id);
  }

  async settledEpochsAmong(keyIds: readonly string[]): Promise<Map<string, number>> {
    const rows = await this.amongKeys<{ key_id: string; current_epoch: number }>(
      "SELECT key_id, current_epoch FROM keys k WHERE state = 'active' AND NOT EXISTS (SELECT 1 FROM key_shares s WHERE s.key_id = k.key_id AND s.status <> 'current') AND key_id IN",
      keyIds,
    );
    return new Map(rows.map((r) => [r.key_id, Number(r.current_epoch)]));
  }

  /** `sql` ending in `key_id IN`, run over `keyIds` in bounded lists (an Aux may hold tens of thousands of keys). */
  private async amongKeys<R>(sql: string, keyIds: readonly string[]): Promise<R[]> {
    const out: R[] = [];
    for (let i = 0; i < keyIds.length; i += 500) {
      const chunk = keyIds.slice(i, i + 500);
      out.push(...(await this.all<R>(`${sql} (${chunk.map(() => '?').join(', ')})`, ...chunk)));
    }
    return out;
  }

  // ---- integrity keys and the audit log (schema 3) ----

  async putIntegrityKey(k: { id: string; partitionId: number; publicKeyPem: string; privateKeyDer: Uint8Array }): Promise<void> {
    await this.write(
      'INSERT INTO integrity_keys (id, partition_id, public_key, sealed, created_at) VALUES (?, ?, ?, ?, ?)',
      k.id,
      k.partitionId,
      k.publicKeyPem,
      this.sealer().seal(k.privateKeyDer, integrityAad(k.id)),
      new Date().toISOString(),
    );
  }

  async getIntegrityKey(partitionId: number): Promise<(IntegrityKeyRow & { privateKeyDer: Uint8Array }) | undefined> {
    const r = await this.one<IntegrityKeyDb>(
      'SELECT * FROM integrity_keys WHERE partition_id = ? ORDER BY created_at DESC, id LIMIT 1',
      partitionId,
    );
    if (!r) return undefined;
    return { ...integrityFromDb(r), privateKeyDer: new Uint8Array(this.sealer().open(r.sealed, integrityAad(r.id))) };
  }

  async openIntegrityKey(id: string): Promise<Uint8Array | undefined> {
    const r = await this.one<IntegrityKeyDb>('SELECT * FROM integrity_keys WHERE id = ?', id);
    if (!r) return undefined;
    try {
      return new Uint8Array(this.sealer().open(r.sealed, integrityAad(r.id)));
    } catch {
      return undefined;
    }
  }

  async listIntegrityKeys(): Promise<IntegrityKeyRow[]> {
    return (await this.all<IntegrityKeyDb>('SELECT * FROM integrity_keys ORDER BY created_at, id')).map(integrityFromDb);
  }

  /**
   * The newest audit row this store object appended (its seq and hash): the next append links to
   * it in one statement instead of reading the chain's head first. Only a hint: the insert checks,
   * in its transaction, that this row is still the head (see appendAuditAfter).
   */
  private auditHead: { seq: number; hash: string } | undefined;

  async appendAudit(entries: readonly AuditEntry[], chain: AuditChain): Promise<AuditRecord[]> {
    if (entries.length === 0) return [];
    // In the serialised write transaction: EPs sharing the store append to one chain, never a fork.
    const hint = this.auditHead;
    let recs: AuditRecord[] | undefined;
    if (hint) {
      try {
        recs = await this.d.transaction(appendAuditAfter(hint, entries, chain));
      } catch (e) {
        // Another EP of a shared store appended seq hint+1 first: read the head below.
        if (!this.d.isUniqueViolation(e)) throw e;
      }
    }
    recs ??= await this.d.transaction(
      (function* (): Steps<AuditRecord[]> {
        const head = (yield* one<{ seq: number; hash: string }>('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1')) ?? {
          seq: 0,
          hash: AUDIT_GENESIS,
        };
        const r = yield* appendAuditAfter(head, entries, chain);
        if (!r) throw new Error('the audit head read in this transaction changed under it');
        return r;
      })(),
    );
    const last = recs[recs.length - 1]!;
    if (!this.auditHead || last.seq > this.auditHead.seq) this.auditHead = { seq: last.seq, hash: last.hash };
    return recs;
  }

  async listAudit(opts: { after?: number; limit: number; partition?: AuditPartition }): Promise<AuditRecord[]> {
    const p = opts.partition;
    // Rows from before schema 8 have no id: the name, and only from the partition's creation on
    // (an earlier partition of that name is not this one).
    const rows = p
      ? await this.all<object>(
          `SELECT * FROM audit WHERE (partition_id = ? OR (partition_id IS NULL AND partition = ? AND at >= ?)) AND seq > ? ORDER BY seq LIMIT ?`,
          p.id,
          p.name,
          p.createdAt,
          opts.after ?? 0,
          opts.limit,
        )
      : await this.all<object>('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?', opts.after ?? 0, opts.limit);
    return rows.map(auditFromDb);
  }

  async check(): Promise<void> {
    await this.one('SELECT 1 AS x');
  }

  async close(): Promise<void> {
    await this.d.close();
  }
}

// ---- rows as stored, and their mapping ----

interface KeyDb {
  key_id: string;
  alg: string;
  state: KeyRow['state'];
  current_epoch: number;
  aux_present: number;
  created_at: string;
  partition_id: number;
  name: string | null;
  description: string | null;
  usage: KeyUsage;
  usage_changed_at: string | null;
  public_key: string | null;
}
type DestroyedKeyDb = Pick<KeyDb, 'key_id' | 'partition_id' | 'alg' | 'name' | 'description' | 'created_at'> & { destroyed_at: string };
interface ShareDb {
  key_id: string;
  epoch: number;
  status: ShareStatus;
  party_id: 1 | 2 | 3;
  public_data: string;
  share_sealed: Buffer;
}
interface IntegrityKeyDb {
  id: string;
  partition_id: number;
  public_key: string;
  sealed: Buffer;
  created_at: string;
}

/** The fields of an EC share that are not common to every share row. */
type ShareSecrets = Omit<ShareRecord, 'keyId' | 'alg' | 'epoch' | 'partyId'>;

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

/**
 * A row as the API shapes it: snake_case columns become camelCase fields, and the INTEGER 0/1
 * columns named in `flags` booleans (both backends store flags as integers).
 */
function camelRow<T>(r: object, flags: readonly string[] = []): T {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(r)) {
    const field = k.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
    out[field] = flags.includes(field) ? v !== 0 : v;
  }
  return out as T;
}

const keyFromDb = (r: KeyDb): KeyRow => camelRow(r, ['auxPresent']);
const destroyedFromDb = (r: DestroyedKeyDb): DestroyedKeyRow => camelRow(r);
const partitionFromDb = (r: object): PartitionRow => camelRow(r, ['fipsRequired']);
const userFromDb = (r: object): UserRow => camelRow(r, ['locked']);
const auditFromDb = (r: object): AuditRecord => camelRow(r);

function integrityFromDb(r: IntegrityKeyDb): IntegrityKeyRow {
  return { id: r.id, partitionId: r.partition_id, publicKeyPem: r.public_key, createdAt: r.created_at };
}
