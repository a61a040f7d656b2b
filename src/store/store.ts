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

import type { KeyStore } from './key-records.js';

export interface Store extends KeyStore {
  readonly kind: 'sqlite' | 'postgres';
  /** Schema version the store is at (after `migrate`). */
  schemaVersion(): Promise<number>;
  getMeta(name: string): Promise<string | undefined>;
  setMeta(name: string, value: string): Promise<void>;

  createPartition(p: { name: string; fipsRequired: boolean }): Promise<PartitionRow>;
  getPartition(name: string): Promise<PartitionRow | undefined>;
  listPartitions(): Promise<PartitionRow[]>;

  createUser(u: Omit<UserRow, 'failedLogins' | 'locked' | 'createdAt'>): Promise<void>;
  getUser(partitionId: number, name: string): Promise<UserRow | undefined>;

  upsertServer(s: ServerRow): Promise<void>;
  listServers(): Promise<ServerRow[]>;

  /** Cheap liveness probe (a read that touches the database). */
  check(): Promise<void>;
  close(): Promise<void>;
}
