/**
 * Numbered, forward-only schema migrations. Each runs in one transaction with the version bump,
 * so a failed migration leaves the store exactly as it was. A store whose version is newer than
 * the newest migration here was written by a newer release and is refused.
 */
import { EkmError } from '../errors.js';

export interface Migration {
  readonly version: number;
  readonly name: string;
  /** SQL for SQLite; statements separated by `;`. */
  readonly sqlite: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'cluster, partitions and users',
    sqlite: `
      CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE partitions (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        fips_required INTEGER NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE users (
        partition_id INTEGER NOT NULL REFERENCES partitions(id),
        name TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('so', 'user', 'auditor')),
        password_hash TEXT NOT NULL,
        failed_logins INTEGER NOT NULL DEFAULT 0,
        locked INTEGER NOT NULL DEFAULT 0,
        created_at TEXT NOT NULL,
        PRIMARY KEY (partition_id, name)
      );
      CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('ep', 'partner', 'aux')),
        triplet_id TEXT NOT NULL,
        host TEXT NOT NULL,
        port INTEGER NOT NULL,
        api TEXT,
        fingerprint TEXT NOT NULL,
        added_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'threshold keys, shares, presignatures, protocol sessions',
    sqlite: `
      CREATE TABLE keys (
        key_id TEXT PRIMARY KEY,
        alg TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'active')),
        current_epoch INTEGER NOT NULL,
        aux_present INTEGER NOT NULL DEFAULT 1,
        created_at TEXT NOT NULL
      );
      CREATE TABLE key_shares (
        key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('current', 'pending', 'previous')),
        party_id INTEGER NOT NULL,
        public_data TEXT NOT NULL,
        share_sealed BLOB NOT NULL,
        PRIMARY KEY (key_id, epoch)
      );
      CREATE TABLE presignatures (
        psid TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES keys(key_id) ON DELETE CASCADE,
        epoch INTEGER NOT NULL,
        sealed BLOB NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX presignatures_key ON presignatures (key_id, epoch);
      CREATE TABLE protocol_sessions (
        sid TEXT PRIMARY KEY,
        proto TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'done')),
        checkpoint TEXT,
        created_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: 'partition settings, keys by partition, integrity keys, hash-chained audit log',
    // keys.partition_id defaults to 1: bootstrap creates the root partition first, so root is id 1
    // (SQLite cannot add a REFERENCES column with a non-NULL default while foreign keys are on).
    // The audit table is append-only: triggers refuse UPDATE and DELETE through SQL.
    sqlite: `
      ALTER TABLE partitions ADD COLUMN max_failed_logins INTEGER NOT NULL DEFAULT 5;
      ALTER TABLE keys ADD COLUMN partition_id INTEGER NOT NULL DEFAULT 1;
      CREATE INDEX keys_partition ON keys (partition_id, key_id);
      CREATE TABLE integrity_keys (
        id TEXT PRIMARY KEY,
        partition_id INTEGER NOT NULL,
        public_key TEXT NOT NULL,
        sealed BLOB NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        request_id TEXT,
        actor TEXT,
        partition TEXT,
        operation TEXT NOT NULL,
        key_id TEXT,
        result TEXT NOT NULL,
        status INTEGER,
        client TEXT,
        detail TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL,
        sig TEXT NOT NULL,
        key_ref TEXT NOT NULL
      );
      CREATE INDEX audit_partition ON audit (partition, seq);
      CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    `,
  },
  {
    version: 4,
    name: 'key names, descriptions and KMIP-like states; destroyed-key records and pending share purges',
    // A name is unique within its partition. A destroyed key leaves the keys table (its shares go
    // with it) and keeps a record in destroyed_keys; key_purges lists the peers (EP side) that have
    // not yet confirmed erasing their share of it.
    sqlite: `
      ALTER TABLE keys ADD COLUMN name TEXT;
      ALTER TABLE keys ADD COLUMN description TEXT;
      ALTER TABLE keys ADD COLUMN usage TEXT NOT NULL DEFAULT 'active' CHECK (usage IN ('active', 'deactivated'));
      ALTER TABLE keys ADD COLUMN usage_changed_at TEXT;
      CREATE UNIQUE INDEX keys_name ON keys (partition_id, name) WHERE name IS NOT NULL;
      CREATE TABLE destroyed_keys (
        key_id TEXT PRIMARY KEY,
        partition_id INTEGER NOT NULL,
        alg TEXT NOT NULL,
        name TEXT,
        description TEXT,
        created_at TEXT NOT NULL,
        destroyed_at TEXT NOT NULL
      );
      CREATE TABLE key_purges (
        key_id TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('partner', 'aux')),
        PRIMARY KEY (key_id, role)
      );
    `,
  },
  {
    version: 5,
    name: 'imported public keys',
    // EP only: a key row whose public_key is set has no shares anywhere.
    sqlite: `
      ALTER TABLE keys ADD COLUMN public_key TEXT;
    `,
  },
  {
    version: 6,
    name: 'protocol sessions that ended without activating',
    // 'aborted': this party never activated the session and never will (it dropped its PENDING on a
    // peer's signed NEVER, or it signed NEVER itself). The table is rebuilt to widen the CHECK.
    sqlite: `
      CREATE TABLE protocol_sessions_v6 (
        sid TEXT PRIMARY KEY,
        proto TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('open', 'done', 'aborted')),
        checkpoint TEXT,
        created_at TEXT NOT NULL
      );
      INSERT INTO protocol_sessions_v6 (sid, proto, state, checkpoint, created_at)
        SELECT sid, proto, state, checkpoint, created_at FROM protocol_sessions;
      DROP TABLE protocol_sessions;
      ALTER TABLE protocol_sessions_v6 RENAME TO protocol_sessions;
    `,
  },
  {
    version: 7,
    name: 'sessions and presignatures belong to a triplet',
    // Scale-out: the EPs (and Partners) of several triplets share one store; each resumes only its
    // own triplet's sessions and uses only presignatures its own Partner and Aux hold. Rows written
    // before are claimed by the first triplet that starts (bindTriplet), the only one there was.
    sqlite: `
      ALTER TABLE protocol_sessions ADD COLUMN triplet_id TEXT;
      ALTER TABLE presignatures ADD COLUMN triplet_id TEXT;
    `,
  },
  {
    version: 8,
    name: 'identifiers never reused: partition id high-water mark, audit rows bound to a partition id',
    // A partition id is never given twice (a deleted partition's id stays retired): meta holds the
    // highest id ever given, started here from the highest found anywhere a partition id is kept,
    // and createPartition numbers past it. Audit rows name the partition's id from now on (NULL in
    // rows written before, which are filed by name only); the column is not in the canonical form
    // of a row whose id is NULL, so every row written before still verifies.
    sqlite: `
      ALTER TABLE audit ADD COLUMN partition_id INTEGER;
      CREATE INDEX audit_partition_id ON audit (partition_id, seq);
      INSERT INTO meta (name, value)
        SELECT 'partition_id_high', '' || COALESCE(MAX(id), 0) FROM (
          SELECT id FROM partitions
          UNION ALL SELECT partition_id FROM users
          UNION ALL SELECT partition_id FROM keys
          UNION ALL SELECT partition_id FROM destroyed_keys
          UNION ALL SELECT partition_id FROM integrity_keys
        ) AS ids;
    `,
  },
  {
    version: 9,
    name: 'credential versions and bearer tokens in the shared store',
    // A bearer token is accepted by every EP sharing the store and revoked for all of them at once:
    // the store keeps the SHA-256 of each token (never the token), bound to the user's credential
    // version at the login that issued it. A password reset or change bumps the version, so the
    // user's tokens (also one issued by a login that raced the reset) match no more; deleting the
    // user or partition deletes its token rows. expires_at is an ISO-8601 UTC time (compared as text).
    sqlite: `
      ALTER TABLE users ADD COLUMN credential_version INTEGER NOT NULL DEFAULT 1;
      CREATE TABLE api_tokens (
        token_sha256 TEXT PRIMARY KEY,
        partition_id INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        credential_version INTEGER NOT NULL,
        expires_at TEXT NOT NULL,
        created_at TEXT NOT NULL
      );
      CREATE INDEX api_tokens_user ON api_tokens (partition_id, user_name);
      CREATE INDEX api_tokens_expiry ON api_tokens (expires_at);
    `,
  },
];

export const LATEST_SCHEMA = MIGRATIONS[MIGRATIONS.length - 1]!.version;

export function tooNewError(found: number): EkmError {
  return new EkmError('EKM_SCHEMA_TOO_NEW', `the store is at schema ${found}, newer than this release knows (${LATEST_SCHEMA})`, {
    hint: 'it was written by a newer ekm: install that release (or newer) instead of downgrading',
  });
}
