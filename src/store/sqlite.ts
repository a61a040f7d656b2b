/**
 * The embedded store: one SQLite file per server (better-sqlite3), WAL mode with full fsync, so a
 * crash or kill never loses a committed (acknowledged) write.
 */
import Database from 'better-sqlite3';
import { makeDirs } from '../config/home.js';
import { dirname } from 'node:path';
import { EkmError } from '../errors.js';
import { LATEST_SCHEMA, MIGRATIONS, tooNewError } from './migrations.js';
import { type AuditEntry, type AuditRecord, type DestroyedKeyRow, type IntegrityKeyRow, type KeyListQuery, type KeyPurge, type PartitionRow, type ServerRow, type Store, type UserRow, keyNameTaken } from './store.js';
import type { Barrier } from './barrier.js';
import type { KeyRow, KeyUsage, KeyWrite, OpenSession, RsaShareRecord, ShareRecord, ShareStatus, StoredRsaShare, StoredShare } from './key-records.js';

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
}
interface DestroyedKeyDb {
  key_id: string;
  partition_id: number;
  alg: string;
  name: string | null;
  description: string | null;
  created_at: string;
  destroyed_at: string;
}
interface ShareDb {
  key_id: string;
  epoch: number;
  status: ShareStatus;
  party_id: 1 | 2 | 3;
  public_data: string;
  share_sealed: Buffer;
}

const shareAad = (keyId: string, epoch: number, party: number): string => `share|${keyId}|${epoch}|${party}`;
const presigAad = (psid: string): string => `presig|${psid}`;

interface PartitionDb {
  id: number;
  name: string;
  fips_required: number;
  created_at: string;
  max_failed_logins: number;
}
interface AuditDb {
  seq: number;
  at: string;
  request_id: string | null;
  actor: string | null;
  partition: string | null;
  operation: string;
  key_id: string | null;
  result: AuditEntry['result'];
  status: number | null;
  client: string | null;
  detail: string | null;
  prev_hash: string;
  hash: string;
  sig: string;
  key_ref: string;
}
interface IntegrityKeyDb {
  id: string;
  partition_id: number;
  public_key: string;
  sealed: Buffer;
  created_at: string;
}
const integrityAad = (id: string): string => `integrity|${id}`;
/** The hash before the first audit row. */
export const AUDIT_GENESIS = '0'.repeat(64);
interface UserDb {
  partition_id: number;
  name: string;
  role: UserRow['role'];
  password_hash: string;
  failed_logins: number;
  locked: number;
  created_at: string;
}
interface ServerDb {
  name: string;
  role: ServerRow['role'];
  triplet_id: string;
  host: string;
  port: number;
  api: string | null;
  fingerprint: string;
  added_at: string;
}

export class SqliteStore implements Store {
  readonly kind = 'sqlite' as const;
  private readonly db: Database.Database;

  private constructor(
    db: Database.Database,
    private readonly barrier: Barrier | undefined,
  ) {
    this.db = db;
  }

  /** Opens (creating if asked) and migrates the store at `path`; secrets need the barrier. */
  static open(path: string, opts: { create: boolean; barrier?: Barrier }): SqliteStore {
    let db: Database.Database;
    try {
      if (opts.create) makeDirs(dirname(path));
      db = new Database(path, { fileMustExist: !opts.create });
    } catch (e) {
      throw new EkmError('EKM_STORE_UNAVAILABLE', `cannot open the store ${path}: ${(e as Error).message}`, 'check EKM_HOME and its permissions');
    }
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    const store = new SqliteStore(db, opts.barrier);
    try {
      store.migrate();
    } catch (e) {
      db.close();
      if (e instanceof EkmError) throw e;
      throw new EkmError(
        'EKM_MIGRATION_FAILED',
        `the store ${path} could not be migrated to schema ${LATEST_SCHEMA}: ${(e as Error).message}`,
        'nothing was changed; restore the store from a backup or report this with the log',
      );
    }
    return store;
  }

  private currentVersion(): number {
    const has = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    if (!has) return 0;
    const row = this.db.prepare("SELECT value FROM meta WHERE name = 'schema_version'").get() as { value: string } | undefined;
    return row ? Number(row.value) : 0;
  }

  private migrate(): void {
    // BEGIN IMMEDIATE takes the write lock, so two processes never migrate at once.
    const run = this.db.transaction(() => {
      const from = this.currentVersion();
      if (from > LATEST_SCHEMA) throw tooNewError(from);
      for (const m of MIGRATIONS) {
        if (m.version <= from) continue;
        this.db.exec(m.sqlite);
        this.db.prepare("INSERT INTO meta (name, value) VALUES ('schema_version', ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value").run(
          String(m.version),
        );
      }
    });
    run.immediate();
  }

  async schemaVersion(): Promise<number> {
    return this.currentVersion();
  }

  async getMeta(name: string): Promise<string | undefined> {
    return (this.db.prepare('SELECT value FROM meta WHERE name = ?').get(name) as { value: string } | undefined)?.value;
  }

  async setMeta(name: string, value: string): Promise<void> {
    this.db.prepare('INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET value = excluded.value').run(name, value);
  }

  async createPartition(p: { name: string; fipsRequired: boolean }): Promise<PartitionRow> {
    const createdAt = new Date().toISOString();
    const info = this.db.prepare('INSERT INTO partitions (name, fips_required, created_at) VALUES (?, ?, ?)').run(p.name, p.fipsRequired ? 1 : 0, createdAt);
    return { id: Number(info.lastInsertRowid), name: p.name, fipsRequired: p.fipsRequired, createdAt, maxFailedLogins: 5 };
  }

  async getPartition(name: string): Promise<PartitionRow | undefined> {
    const row = this.db.prepare('SELECT * FROM partitions WHERE name = ?').get(name) as PartitionDb | undefined;
    return row ? partitionFromDb(row) : undefined;
  }

  async listPartitions(): Promise<PartitionRow[]> {
    return (this.db.prepare('SELECT * FROM partitions ORDER BY id').all() as PartitionDb[]).map(partitionFromDb);
  }

  async createUser(u: Omit<UserRow, 'failedLogins' | 'locked' | 'createdAt'>): Promise<void> {
    this.db
      .prepare('INSERT INTO users (partition_id, name, role, password_hash, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(u.partitionId, u.name, u.role, u.passwordHash, new Date().toISOString());
  }

  async getUser(partitionId: number, name: string): Promise<UserRow | undefined> {
    const r = this.db.prepare('SELECT * FROM users WHERE partition_id = ? AND name = ?').get(partitionId, name) as UserDb | undefined;
    return r ? userFromDb(r) : undefined;
  }

  async upsertServer(s: ServerRow): Promise<void> {
    this.db
      .prepare(
        `INSERT INTO servers (name, role, triplet_id, host, port, api, fingerprint, added_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(name) DO UPDATE SET role = excluded.role, triplet_id = excluded.triplet_id, host = excluded.host,
           port = excluded.port, api = excluded.api, fingerprint = excluded.fingerprint`,
      )
      .run(s.name, s.role, s.tripletId, s.host, s.port, s.api, s.fingerprint, s.addedAt);
  }

  async listServers(): Promise<ServerRow[]> {
    return (this.db.prepare('SELECT * FROM servers ORDER BY triplet_id, name').all() as ServerDb[]).map((r) => ({
      name: r.name,
      role: r.role,
      tripletId: r.triplet_id,
      host: r.host,
      port: r.port,
      api: r.api,
      fingerprint: r.fingerprint,
      addedAt: r.added_at,
    }));
  }

  private sealer(): Barrier {
    if (!this.barrier) throw new EkmError('EKM_INTERNAL', 'store opened without its system key');
    return this.barrier;
  }

  /** Writes one party's share of a key at an epoch: public data in the clear, the secret sealed (AAD names the row). */
  private putShareRow(
    row: { keyId: string; epoch: number; partyId: number },
    status: ShareStatus,
    publicData: Record<string, string>,
    secret: Uint8Array,
  ): void {
    this.db
      .prepare(
        `INSERT INTO key_shares (key_id, epoch, status, party_id, public_data, share_sealed) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT(key_id, epoch) DO UPDATE SET status = excluded.status, party_id = excluded.party_id,
           public_data = excluded.public_data, share_sealed = excluded.share_sealed`,
      )
      .run(row.keyId, row.epoch, status, row.partyId, JSON.stringify(publicData), this.sealer().seal(secret, shareAad(row.keyId, row.epoch, row.partyId)));
  }

  private insertKeyRow(keyId: string, alg: string, state: KeyRow['state'], epoch: number, now: string): void {
    this.db
      .prepare('INSERT INTO keys (key_id, alg, state, current_epoch, aux_present, created_at) VALUES (?, ?, ?, ?, 1, ?)')
      .run(keyId, alg, state, epoch, now);
  }

  private insertShare(sh: ShareRecord, status: ShareStatus): void {
    this.putShareRow(sh, status, { alg: sh.alg, Y: hex(sh.Y), C1: hex(sh.C1), A1: hex(sh.A1), A2: hex(sh.A2), A3: hex(sh.A3) }, sh.share);
  }

  private insertRsaShare(sh: RsaShareRecord, status: ShareStatus): void {
    this.putShareRow(sh, status, { alg: sh.alg, n: hex(sh.n), e: hex(sh.e) }, sh.pieces);
  }

  private applyOne(w: KeyWrite, now: string): void {
    switch (w.op) {
      case 'session-open':
        this.db.prepare("INSERT OR IGNORE INTO protocol_sessions (sid, proto, state, created_at) VALUES (?, ?, 'open', ?)").run(w.sid, w.proto, now);
        return;
      case 'session-checkpoint':
        this.db.prepare('UPDATE protocol_sessions SET checkpoint = ? WHERE sid = ?').run(w.checkpoint, w.sid);
        return;
      case 'session-done':
        this.db.prepare("UPDATE protocol_sessions SET state = 'done', checkpoint = NULL WHERE sid = ?").run(w.sid);
        return;
      case 'key-create':
        this.insertKeyRow(w.keyId, w.alg, 'pending', w.share.epoch, now);
        this.insertShare(w.share, 'current');
        return;
      case 'rsa-key-create':
        this.insertKeyRow(w.keyId, w.alg, 'active', w.share.epoch, now);
        this.insertRsaShare(w.share, 'current');
        return;
      case 'rsa-share-put':
        this.insertRsaShare(w.share, w.status);
        return;
      case 'key-activate':
        this.db.prepare("UPDATE keys SET state = 'active' WHERE key_id = ?").run(w.keyId);
        return;
      case 'share-put':
        this.insertShare(w.share, w.status);
        return;
      case 'epoch-activate': {
        const moved = this.db
          .prepare("UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ? AND status IN ('pending', 'current')")
          .run(w.keyId, w.to);
        if (moved.changes !== 1) throw new EkmError('EKM_STORE_STATE', `key ${w.keyId} has no pending epoch ${w.to} to activate`);
        this.db.prepare("UPDATE key_shares SET status = 'previous' WHERE key_id = ? AND epoch = ?").run(w.keyId, w.from);
        this.db.prepare('UPDATE keys SET current_epoch = ? WHERE key_id = ?').run(w.to, w.keyId);
        return;
      }
      case 'epoch-erase':
        this.db.prepare("DELETE FROM key_shares WHERE key_id = ? AND epoch = ? AND status = 'previous'").run(w.keyId, w.epoch);
        this.db.prepare('DELETE FROM presignatures WHERE key_id = ? AND epoch = ?').run(w.keyId, w.epoch);
        return;
      case 'aux-present':
        // Presignatures made with the lost Aux can never complete: burn them.
        this.db.prepare('UPDATE keys SET aux_present = 1 WHERE key_id = ?').run(w.keyId);
        this.db.prepare('DELETE FROM presignatures WHERE key_id = ?').run(w.keyId);
        return;
      case 'aux-share-pending':
        this.db
          .prepare("INSERT OR IGNORE INTO keys (key_id, alg, state, current_epoch, aux_present, created_at) VALUES (?, ?, 'pending', ?, 1, ?)")
          .run(w.share.keyId, w.share.alg, w.share.epoch, now);
        this.insertShare(w.share, 'pending');
        return;
      case 'aux-share-activate':
        this.db.prepare('DELETE FROM key_shares WHERE key_id = ? AND epoch <> ?').run(w.keyId, w.epoch);
        this.db.prepare('DELETE FROM presignatures WHERE key_id = ?').run(w.keyId);
        this.db.prepare("UPDATE key_shares SET status = 'current' WHERE key_id = ? AND epoch = ?").run(w.keyId, w.epoch);
        this.db.prepare("UPDATE keys SET state = 'active', current_epoch = ? WHERE key_id = ?").run(w.epoch, w.keyId);
        return;
      case 'presig-put':
        this.db
          .prepare('INSERT INTO presignatures (psid, key_id, epoch, sealed, created_at) VALUES (?, ?, ?, ?, ?)')
          .run(w.psid, w.keyId, w.epoch, this.sealer().seal(w.secret, presigAad(w.psid)), now);
        return;
      case 'presig-delete':
        this.db.prepare('DELETE FROM presignatures WHERE psid = ?').run(w.psid);
        return;
      case 'key-purge':
        this.db.prepare('DELETE FROM keys WHERE key_id = ?').run(w.keyId); // shares and presignatures cascade
        return;
    }
  }

  async applyKeyWrites(writes: readonly KeyWrite[]): Promise<void> {
    if (writes.length === 0) return;
    const now = new Date().toISOString();
    this.db.transaction(() => {
      for (const w of writes) this.applyOne(w, now);
    }).immediate();
  }

  async getKey(keyId: string): Promise<KeyRow | undefined> {
    const r = this.db.prepare('SELECT * FROM keys WHERE key_id = ?').get(keyId) as KeyDb | undefined;
    return r ? keyFromDb(r) : undefined;
  }

  async listKeys(opts: { after?: string; limit: number }): Promise<KeyRow[]> {
    return (this.db.prepare('SELECT * FROM keys WHERE key_id > ? ORDER BY key_id LIMIT ?').all(opts.after ?? '', opts.limit) as KeyDb[]).map(keyFromDb);
  }

  async countKeys(): Promise<number> {
    return (this.db.prepare('SELECT count(*) AS n FROM keys').get() as { n: number }).n;
  }

  async getShares(keyId: string): Promise<StoredShare[]> {
    const rows = this.db.prepare('SELECT * FROM key_shares WHERE key_id = ? ORDER BY epoch').all(keyId) as ShareDb[];
    return rows.map((r) => {
      const pub = JSON.parse(r.public_data) as { alg: string; Y: string; C1: string; A1: string; A2: string; A3: string };
      return {
        keyId: r.key_id,
        alg: pub.alg,
        epoch: r.epoch,
        partyId: r.party_id,
        status: r.status,
        share: new Uint8Array(this.sealer().open(r.share_sealed, shareAad(r.key_id, r.epoch, r.party_id))),
        Y: unhex(pub.Y),
        C1: unhex(pub.C1),
        A1: unhex(pub.A1),
        A2: unhex(pub.A2),
        A3: unhex(pub.A3),
      };
    });
  }

  async getRsaShares(keyId: string): Promise<StoredRsaShare[]> {
    const rows = this.db.prepare('SELECT * FROM key_shares WHERE key_id = ? ORDER BY epoch').all(keyId) as ShareDb[];
    return rows.map((r) => {
      const pub = JSON.parse(r.public_data) as { alg: string; n?: string; e?: string };
      if (pub.n === undefined || pub.e === undefined) throw new EkmError('EKM_STORE_STATE', `key ${keyId} is not an RSA key`);
      return {
        keyId: r.key_id,
        alg: pub.alg,
        epoch: r.epoch,
        partyId: r.party_id,
        status: r.status,
        n: unhex(pub.n),
        e: unhex(pub.e),
        pieces: new Uint8Array(this.sealer().open(r.share_sealed, shareAad(r.key_id, r.epoch, r.party_id))),
      };
    });
  }

  async sidSeen(sid: string): Promise<boolean> {
    return this.db.prepare('SELECT 1 FROM protocol_sessions WHERE sid = ?').get(sid) !== undefined;
  }

  async openSessions(): Promise<OpenSession[]> {
    return this.db
      .prepare("SELECT sid, proto, checkpoint FROM protocol_sessions WHERE state = 'open' AND checkpoint IS NOT NULL ORDER BY created_at")
      .all() as OpenSession[];
  }

  async listPresigs(): Promise<{ psid: string; keyId: string; epoch: number }[]> {
    return (this.db.prepare('SELECT psid, key_id, epoch FROM presignatures ORDER BY created_at').all() as { psid: string; key_id: string; epoch: number }[]).map(
      (r) => ({ psid: r.psid, keyId: r.key_id, epoch: r.epoch }),
    );
  }

  async getPresig(psid: string): Promise<Uint8Array | undefined> {
    const r = this.db.prepare('SELECT sealed FROM presignatures WHERE psid = ?').get(psid) as { sealed: Buffer } | undefined;
    return r ? new Uint8Array(this.sealer().open(r.sealed, presigAad(psid))) : undefined;
  }

  // ---- partitions, users, key placement, integrity keys, audit (schema 3) ----

  async getPartitionById(id: number): Promise<PartitionRow | undefined> {
    const row = this.db.prepare('SELECT * FROM partitions WHERE id = ?').get(id) as PartitionDb | undefined;
    return row ? partitionFromDb(row) : undefined;
  }

  async setPartitionMaxFailedLogins(id: number, n: number): Promise<void> {
    this.db.prepare('UPDATE partitions SET max_failed_logins = ? WHERE id = ?').run(n, id);
  }

  async deletePartition(id: number, opts: { withKeys: boolean }): Promise<void> {
    this.db.transaction(() => {
      if (opts.withKeys) this.db.prepare('DELETE FROM keys WHERE partition_id = ?').run(id);
      this.db.prepare('DELETE FROM users WHERE partition_id = ?').run(id);
      this.db.prepare('DELETE FROM partitions WHERE id = ?').run(id);
    }).immediate();
  }

  async listUsers(partitionId: number): Promise<UserRow[]> {
    return (this.db.prepare('SELECT * FROM users WHERE partition_id = ? ORDER BY name').all(partitionId) as UserDb[]).map(userFromDb);
  }

  async deleteUser(partitionId: number, name: string): Promise<boolean> {
    return this.db.prepare('DELETE FROM users WHERE partition_id = ? AND name = ?').run(partitionId, name).changes === 1;
  }

  async setUserPassword(partitionId: number, name: string, passwordHash: string): Promise<boolean> {
    return (
      this.db.prepare('UPDATE users SET password_hash = ?, failed_logins = 0, locked = 0 WHERE partition_id = ? AND name = ?').run(passwordHash, partitionId, name)
        .changes === 1
    );
  }

  async recordLoginFailure(partitionId: number, name: string, lockAt: number): Promise<{ failedLogins: number; locked: boolean }> {
    const r = this.db
      .prepare(
        `UPDATE users SET failed_logins = failed_logins + 1, locked = CASE WHEN failed_logins + 1 >= ? THEN 1 ELSE locked END
         WHERE partition_id = ? AND name = ? RETURNING failed_logins, locked`,
      )
      .get(lockAt, partitionId, name) as { failed_logins: number; locked: number } | undefined;
    return { failedLogins: r?.failed_logins ?? 0, locked: (r?.locked ?? 0) !== 0 };
  }

  async recordLoginSuccess(partitionId: number, name: string): Promise<void> {
    this.db.prepare('UPDATE users SET failed_logins = 0 WHERE partition_id = ? AND name = ? AND failed_logins <> 0').run(partitionId, name);
  }

  async countPartitionKeys(partitionId: number): Promise<number> {
    return (this.db.prepare('SELECT count(*) AS n FROM keys WHERE partition_id = ?').get(partitionId) as { n: number }).n;
  }

  async listPartitionKeys(partitionId: number, q: KeyListQuery): Promise<KeyRow[]> {
    // Only fixed SQL fragments are joined; every value is a bound parameter.
    const where = ['partition_id = ?', 'key_id > ?'];
    const args: (string | number)[] = [partitionId, q.after ?? ''];
    if (q.alg !== undefined) {
      where.push('alg = ?');
      args.push(q.alg);
    }
    if (q.name !== undefined) {
      where.push('name = ?');
      args.push(q.name);
    }
    if (q.usage !== undefined) {
      where.push('usage = ?');
      args.push(q.usage);
    }
    const rows = this.db.prepare(`SELECT * FROM keys WHERE ${where.join(' AND ')} ORDER BY key_id LIMIT ?`).all(...args, q.limit) as KeyDb[];
    return rows.map(keyFromDb);
  }

  async getKeyPartition(keyId: string): Promise<number | undefined> {
    return (this.db.prepare('SELECT partition_id FROM keys WHERE key_id = ?').get(keyId) as { partition_id: number } | undefined)?.partition_id;
  }

  async findKeyByName(partitionId: number, name: string): Promise<KeyRow | undefined> {
    const r = this.db.prepare('SELECT * FROM keys WHERE partition_id = ? AND name = ?').get(partitionId, name) as KeyDb | undefined;
    return r ? keyFromDb(r) : undefined;
  }

  async setKeyAttributes(
    keyId: string,
    a: { readonly partitionId?: number; readonly name?: string | null; readonly description?: string | null; readonly usage?: KeyUsage },
  ): Promise<boolean> {
    const set: string[] = [];
    const args: (string | number | null)[] = [];
    if (a.partitionId !== undefined) {
      set.push('partition_id = ?');
      args.push(a.partitionId);
    }
    if (a.name !== undefined) {
      set.push('name = ?');
      args.push(a.name);
    }
    if (a.description !== undefined) {
      set.push('description = ?');
      args.push(a.description);
    }
    if (a.usage !== undefined) {
      set.push('usage = ?', 'usage_changed_at = ?');
      args.push(a.usage, new Date().toISOString());
    }
    if (set.length === 0) return (await this.getKey(keyId)) !== undefined;
    try {
      return this.db.prepare(`UPDATE keys SET ${set.join(', ')} WHERE key_id = ?`).run(...args, keyId).changes === 1;
    } catch (e) {
      if ((e as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') throw keyNameTaken(a.name ?? '');
      throw e;
    }
  }

  async destroyKey(keyId: string, purges: readonly KeyPurge['role'][]): Promise<DestroyedKeyRow | undefined> {
    return this.db
      .transaction((): DestroyedKeyRow | undefined => {
        const k = this.db.prepare('SELECT * FROM keys WHERE key_id = ?').get(keyId) as KeyDb | undefined;
        if (!k) return undefined;
        const row: DestroyedKeyDb = {
          key_id: k.key_id,
          partition_id: k.partition_id,
          alg: k.alg,
          name: k.name,
          description: k.description,
          created_at: k.created_at,
          destroyed_at: new Date().toISOString(),
        };
        this.db
          .prepare('INSERT INTO destroyed_keys (key_id, partition_id, alg, name, description, created_at, destroyed_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
          .run(row.key_id, row.partition_id, row.alg, row.name, row.description, row.created_at, row.destroyed_at);
        for (const role of purges) this.db.prepare('INSERT OR IGNORE INTO key_purges (key_id, role) VALUES (?, ?)').run(keyId, role);
        this.db.prepare('DELETE FROM keys WHERE key_id = ?').run(keyId); // shares and presignatures cascade
        return destroyedFromDb(row);
      })
      .immediate();
  }

  async getDestroyedKey(keyId: string): Promise<DestroyedKeyRow | undefined> {
    const r = this.db.prepare('SELECT * FROM destroyed_keys WHERE key_id = ?').get(keyId) as DestroyedKeyDb | undefined;
    return r ? destroyedFromDb(r) : undefined;
  }

  async listDestroyedKeys(partitionId: number, q: { after?: string; limit: number }): Promise<DestroyedKeyRow[]> {
    const rows = this.db
      .prepare('SELECT * FROM destroyed_keys WHERE partition_id = ? AND key_id > ? ORDER BY key_id LIMIT ?')
      .all(partitionId, q.after ?? '', q.limit) as DestroyedKeyDb[];
    return rows.map(destroyedFromDb);
  }

  async listKeyPurges(): Promise<KeyPurge[]> {
    return (this.db.prepare('SELECT key_id, role FROM key_purges ORDER BY key_id, role').all() as { key_id: string; role: KeyPurge['role'] }[]).map((r) => ({
      keyId: r.key_id,
      role: r.role,
    }));
  }

  async clearKeyPurge(p: KeyPurge): Promise<void> {
    this.db.prepare('DELETE FROM key_purges WHERE key_id = ? AND role = ?').run(p.keyId, p.role);
  }

  async putIntegrityKey(k: { id: string; partitionId: number; publicKeyPem: string; privateKeyDer: Uint8Array }): Promise<void> {
    this.db
      .prepare('INSERT INTO integrity_keys (id, partition_id, public_key, sealed, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(k.id, k.partitionId, k.publicKeyPem, this.sealer().seal(k.privateKeyDer, integrityAad(k.id)), new Date().toISOString());
  }

  async getIntegrityKey(partitionId: number): Promise<(IntegrityKeyRow & { privateKeyDer: Uint8Array }) | undefined> {
    const r = this.db.prepare('SELECT * FROM integrity_keys WHERE partition_id = ? ORDER BY created_at DESC, id LIMIT 1').get(partitionId) as
      | IntegrityKeyDb
      | undefined;
    if (!r) return undefined;
    return { ...integrityFromDb(r), privateKeyDer: new Uint8Array(this.sealer().open(r.sealed, integrityAad(r.id))) };
  }

  async listIntegrityKeys(): Promise<IntegrityKeyRow[]> {
    return (this.db.prepare('SELECT * FROM integrity_keys ORDER BY created_at, id').all() as IntegrityKeyDb[]).map(integrityFromDb);
  }

  async appendAudit(entry: AuditEntry, chain: (prev: { seq: number; hash: string }) => { hash: string; sig: string; keyRef: string }): Promise<AuditRecord> {
    return this.db.transaction((): AuditRecord => {
      const last = this.db.prepare('SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1').get() as { seq: number; hash: string } | undefined;
      const prev = last ?? { seq: 0, hash: AUDIT_GENESIS };
      const c = chain(prev);
      const rec: AuditRecord = { ...entry, seq: prev.seq + 1, prevHash: prev.hash, hash: c.hash, sig: c.sig, keyRef: c.keyRef };
      this.db
        .prepare(
          `INSERT INTO audit (seq, at, request_id, actor, partition, operation, key_id, result, status, client, detail, prev_hash, hash, sig, key_ref)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(rec.seq, rec.at, rec.requestId, rec.actor, rec.partition, rec.operation, rec.keyId, rec.result, rec.status, rec.client, rec.detail, rec.prevHash, rec.hash, rec.sig, rec.keyRef);
      return rec;
    }).immediate();
  }

  async listAudit(opts: { after?: number; limit: number; partition?: string }): Promise<AuditRecord[]> {
    const rows = opts.partition
      ? this.db.prepare('SELECT * FROM audit WHERE partition = ? AND seq > ? ORDER BY seq LIMIT ?').all(opts.partition, opts.after ?? 0, opts.limit)
      : this.db.prepare('SELECT * FROM audit WHERE seq > ? ORDER BY seq LIMIT ?').all(opts.after ?? 0, opts.limit);
    return (rows as AuditDb[]).map(auditFromDb);
  }

  async check(): Promise<void> {
    this.db.prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

function keyFromDb(r: KeyDb): KeyRow {
  return {
    keyId: r.key_id,
    alg: r.alg,
    state: r.state,
    currentEpoch: r.current_epoch,
    auxPresent: r.aux_present !== 0,
    createdAt: r.created_at,
    partitionId: r.partition_id,
    name: r.name,
    description: r.description,
    usage: r.usage,
    usageChangedAt: r.usage_changed_at,
  };
}

function destroyedFromDb(r: DestroyedKeyDb): DestroyedKeyRow {
  return {
    keyId: r.key_id,
    partitionId: r.partition_id,
    alg: r.alg,
    name: r.name,
    description: r.description,
    createdAt: r.created_at,
    destroyedAt: r.destroyed_at,
  };
}


const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));

function partitionFromDb(r: PartitionDb): PartitionRow {
  return { id: r.id, name: r.name, fipsRequired: r.fips_required !== 0, createdAt: r.created_at, maxFailedLogins: r.max_failed_logins ?? 5 };
}

function userFromDb(r: UserDb): UserRow {
  return {
    partitionId: r.partition_id,
    name: r.name,
    role: r.role,
    passwordHash: r.password_hash,
    failedLogins: r.failed_logins,
    locked: r.locked !== 0,
    createdAt: r.created_at,
  };
}

function integrityFromDb(r: IntegrityKeyDb): IntegrityKeyRow {
  return { id: r.id, partitionId: r.partition_id, publicKeyPem: r.public_key, createdAt: r.created_at };
}

function auditFromDb(r: AuditDb): AuditRecord {
  return {
    seq: r.seq,
    at: r.at,
    requestId: r.request_id,
    actor: r.actor,
    partition: r.partition,
    operation: r.operation,
    keyId: r.key_id,
    result: r.result,
    status: r.status,
    client: r.client,
    detail: r.detail,
    prevHash: r.prev_hash,
    hash: r.hash,
    sig: r.sig,
    keyRef: r.key_ref,
  };
}
