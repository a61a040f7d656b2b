/**
 * The one interface every store backend implements (SQLite embedded; PostgreSQL for shared role
 * stores). Services depend on this, never on a backend. Secret columns hold values sealed by the
 * Barrier; the store itself never sees a plaintext share.
 */
export interface PartitionRow {
  readonly id: number;
  readonly name: string;
  readonly fipsRequired: boolean;
  readonly createdAt: string;
  /** Failed logins after which a user of the partition is locked (schema 3; default 5). */
  readonly maxFailedLogins: number;
}

export type UserRole = 'so' | 'user' | 'auditor';

export interface UserRow {
  readonly partitionId: number;
  readonly name: string;
  readonly role: UserRole;
  readonly passwordHash: string;
  readonly failedLogins: number;
  readonly locked: boolean;
  readonly createdAt: string;
  /** Bumped by every password reset or change (schema 9): a bearer token holds the version it was issued at. */
  readonly credentialVersion: number;
}

/** A member of the cluster as the stores record it (`ucl server list`). */
export interface ServerRow {
  readonly name: string;
  readonly role: 'ep' | 'partner' | 'aux';
  readonly tripletId: string;
  readonly host: string;
  readonly port: number;
  /** HTTPS API address (EPs only), as host:port. */
  readonly api: string | null;
  readonly fingerprint: string;
  readonly addedAt: string;
}

import { EkmError } from '../errors.js';
import type { KeyRow, KeyStore, KeyUsage } from './key-records.js';

/** A key name is unique within its partition: every backend refuses a second one with this error. */
export function keyNameTaken(name: string): EkmError {
  return new EkmError('EKM_KEY_NAME_TAKEN', `a key named "${name}" already exists in the partition`, { hint: 'choose another name, or rename or delete the other key first' });
}

/** What remains of a destroyed key on the EP (schema 4): its identity, never a share. */
export interface DestroyedKeyRow {
  readonly keyId: string;
  readonly partitionId: number;
  readonly alg: string;
  readonly name: string | null;
  readonly description: string | null;
  readonly createdAt: string;
  readonly destroyedAt: string;
}

export interface KeyListQuery {
  readonly after?: string;
  readonly limit: number;
  readonly alg?: string;
  /** Exact name. */
  readonly name?: string;
  readonly usage?: KeyUsage;
}

/** A peer that has not yet confirmed erasing its share of a destroyed key. */
export interface KeyPurge {
  readonly keyId: string;
  readonly role: 'partner' | 'aux';
}

/** One row of the hash-chained audit log (schema 3). Never holds a secret or a password. */
export interface AuditEntry {
  readonly at: string;
  readonly requestId: string | null;
  /** `user@partition` as authenticated, or as claimed on a failed login; null when anonymous. */
  readonly actor: string | null;
  readonly partition: string | null;
  /**
   * The id of that partition when it exists (schema 8): a stable identity, where a name may be
   * given again to a later partition. Null (or absent) when there is none, and in rows written
   * before schema 8.
   */
  readonly partitionId?: number | null;
  readonly operation: string;
  readonly keyId: string | null;
  readonly result: 'ok' | 'denied' | 'error';
  readonly status: number | null;
  readonly client: string | null;
  readonly detail: string | null;
}

/** What filters a partition's audit rows: its id, and for rows older than ids in the log, its name and creation. */
export type AuditPartition = Pick<PartitionRow, 'id' | 'name' | 'createdAt'>;

/** Links an audit row to the row before it: its hash, and the signature over that hash. */
export type AuditChain = (prev: { seq: number; hash: string }, entry: AuditEntry) => { hash: string; sig: string; keyRef: string };

export interface AuditRecord extends AuditEntry {
  readonly partitionId: number | null;
  readonly seq: number;
  readonly prevHash: string;
  readonly hash: string;
  readonly sig: string;
  readonly keyRef: string;
}

/** An integrity (audit signing) key as listed: public part only. */
export interface IntegrityKeyRow {
  readonly id: string;
  readonly partitionId: number;
  readonly publicKeyPem: string;
  readonly createdAt: string;
}

/**
 * The largest failed-login limit the store compares with: `failed_logins` is an INTEGER column,
 * 32-bit on PostgreSQL, which refuses a larger parameter (a limit meaning "never lock" uses this).
 */
export const MAX_FAILED_LOGINS_LIMIT = 2_147_483_647;

/** Whether a password check may run: admitted (and counted), or refused without checking. */
export type LoginAdmission =
  | { readonly admitted: true; readonly failedLogins: number }
  | { readonly admitted: false; readonly reason: 'locked' | 'busy' | 'unknown'; readonly failedLogins: number };

/** A bearer token as the store keeps it: the SHA-256 of the token, never the token itself. */
export interface ApiTokenGrant {
  readonly tokenSha256: string;
  readonly partitionId: number;
  readonly user: string;
  /** The user's credential version read with the password hash the login checked. */
  readonly credentialVersion: number;
  /** ISO-8601 UTC. */
  readonly expiresAt: string;
}

/** Whose a live token is, as of now: its user's current role and partition name. */
export interface ApiTokenHolder {
  readonly partitionId: number;
  readonly partition: string;
  readonly user: string;
  readonly role: UserRole;
  readonly expiresAt: string;
}

/** Partitions, users, key placement, integrity keys and the audit log (schema 3). */
export interface AccountStore {
  getPartitionById(id: number): Promise<PartitionRow | undefined>;
  setPartitionMaxFailedLogins(id: number, n: number): Promise<void>;
  /**
   * Removes the partition, its users, their bearer tokens and its settings in one transaction; everything of it goes but
   * its audit rows. A key still in it is refused (EKM_PARTITION_NOT_EMPTY), or with `withKeys`
   * destroyed as destroyKey does, its peers listed to purge. The names and descriptions of its
   * destroyed keys go too: only their ids stay, so that peers are still told to erase shares.
   * Its id is never given to another partition.
   */
  deletePartition(id: number, opts: { withKeys: boolean }): Promise<void>;
  listUsers(partitionId: number): Promise<UserRow[]>;
  /** Removes the user and its bearer tokens. */
  deleteUser(partitionId: number, name: string): Promise<boolean>;
  /** New password hash; clears the failed-login count and the lock, bumps the credential version and ends the user's bearer tokens. */
  setUserPassword(partitionId: number, name: string, passwordHash: string): Promise<boolean>;
  /**
   * Records a bearer token, only while its user still exists at `credentialVersion` (a reset
   * between the login's password check and this call refuses it: false); drops expired tokens.
   */
  createApiToken(grant: ApiTokenGrant, now: string): Promise<boolean>;
  /** The holder of a token that is recorded, unexpired at `now`, and of a user still at the version it was issued at. */
  getApiToken(tokenSha256: string, now: string): Promise<ApiTokenHolder | undefined>;
  /** Ends one token (logout); false when it was not recorded. */
  deleteApiToken(tokenSha256: string): Promise<boolean>;
  /**
   * A password check about to run, counted as a failure before it runs, in one statement: the
   * attempt is admitted only while the user is unlocked and fewer than `limit` failures (settled or
   * still being checked) are counted, so concurrent attempts on any EP sharing the store never
   * check more than `limit` passwords between two successes.
   */
  admitLoginAttempt(partitionId: number, name: string, limit: number): Promise<LoginAdmission>;
  /** The admitted attempt's password was wrong: lock the user once the count has reached `limit`. */
  settleLoginFailure(partitionId: number, name: string, limit: number): Promise<{ failedLogins: number; locked: boolean }>;
  /**
   * The admitted attempt's password was right: the count goes back to 0, and true, unless the user
   * was locked (by failures checked at the same time) or deleted meanwhile: false, the login fails.
   */
  settleLoginSuccess(partitionId: number, name: string): Promise<boolean>;

  countPartitionKeys(partitionId: number): Promise<number>;
  /** Live keys of the partition (every protocol state), by key id, after `after`. */
  listPartitionKeys(partitionId: number, q: KeyListQuery): Promise<KeyRow[]>;
  getKeyPartition(keyId: string): Promise<number | undefined>;
  findKeyByName(partitionId: number, name: string): Promise<KeyRow | undefined>;
  /**
   * Sets the given attributes of a live key; false when there is no such key. A name already used
   * in the partition is refused with EKM_KEY_NAME_TAKEN.
   */
  setKeyAttributes(
    keyId: string,
    a: { readonly partitionId?: number; readonly name?: string | null; readonly description?: string | null; readonly usage?: KeyUsage },
  ): Promise<boolean>;
  /**
   * In one transaction: records the key as destroyed, erases its record, shares and presignatures
   * here, and lists `purges` as peers still to erase theirs. Undefined when there is no such key.
   */
  destroyKey(keyId: string, purges: readonly KeyPurge['role'][]): Promise<DestroyedKeyRow | undefined>;
  getDestroyedKey(keyId: string): Promise<DestroyedKeyRow | undefined>;
  /** Records an imported public key (EP): an active key row with its SPKI PEM and no shares. */
  createPublicKey(k: { readonly keyId: string; readonly alg: string; readonly publicKeyPem: string }): Promise<void>;
  listDestroyedKeys(partitionId: number, q: { after?: string; limit: number }): Promise<DestroyedKeyRow[]>;
  listKeyPurges(): Promise<KeyPurge[]>;
  clearKeyPurge(p: KeyPurge): Promise<void>;
  /** Which of `keyIds` were destroyed (EP: an Aux of another triplet may still hold shares of them). */
  destroyedAmong(keyIds: readonly string[]): Promise<string[]>;
  /** The current epoch of those of `keyIds` that are active here with no refresh committing (only a CURRENT share). */
  settledEpochsAmong(keyIds: readonly string[]): Promise<Map<string, number>>;

  /** Stores an integrity key; the private key is sealed by the barrier (AAD `integrity|<id>`). */
  putIntegrityKey(k: { id: string; partitionId: number; publicKeyPem: string; privateKeyDer: Uint8Array }): Promise<void>;
  /** The partition's newest integrity key, opened. */
  getIntegrityKey(partitionId: number): Promise<(IntegrityKeyRow & { privateKeyDer: Uint8Array }) | undefined>;
  listIntegrityKeys(): Promise<IntegrityKeyRow[]>;
  /** The private key (PKCS#8 DER) of integrity key `id`, if its row exists and its seal opens with this store's system key. */
  openIntegrityKey(id: string): Promise<Uint8Array | undefined>;
  /**
   * Appends audit rows, in order, in one transaction: `chain` gets each row's previous row (seq
   * and hash; seq 0 and the genesis hash for the first row of the log) and returns its hash and
   * signature.
   */
  appendAudit(entries: readonly AuditEntry[], chain: AuditChain): Promise<AuditRecord[]>;
  /**
   * Rows in seq order; with `partition`, that partition's: the rows bound to its id, and rows
   * written before schema 8 (no id) under its name at or after its creation.
   */
  listAudit(opts: { after?: number; limit: number; partition?: AuditPartition }): Promise<AuditRecord[]>;
}

export interface Store extends KeyStore, AccountStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Schema version the store is at (after `migrate`). */
  schemaVersion(): Promise<number>;
  getMeta(name: string): Promise<string | undefined>;
  setMeta(name: string, value: string): Promise<void>;

  createPartition(p: { name: string; fipsRequired: boolean }): Promise<PartitionRow>;
  getPartition(name: string): Promise<PartitionRow | undefined>;
  listPartitions(): Promise<PartitionRow[]>;

  createUser(u: Omit<UserRow, 'failedLogins' | 'locked' | 'createdAt' | 'credentialVersion'>): Promise<void>;
  getUser(partitionId: number, name: string): Promise<UserRow | undefined>;

  upsertServer(s: ServerRow): Promise<void>;
  listServers(): Promise<ServerRow[]>;
  /** Removes a server from the cluster's list; false if it was not there. */
  deleteServer(name: string): Promise<boolean>;

  /** Cheap liveness probe (a read that touches the database). */
  check(): Promise<void>;
  close(): Promise<void>;
}
