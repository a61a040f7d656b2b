/**
 * What the stores keep of threshold keys, in storage terms (bytes, not curve objects): the key
 * record, each epoch's share (sealed by the barrier, AAD = key id, epoch, party), presignature
 * shares (sealed, single use) and protocol sessions (replay cache and restart checkpoints).
 */
/** A key's UID: 16 lower-case hex characters (8 random bytes). */
export const KEY_UID_RE = /^[0-9a-f]{16}$/;

export type ShareStatus = 'current' | 'pending' | 'previous';

/** KMIP-like usage of a live key: a deactivated key still verifies and decrypts, never signs or encrypts. */
export type KeyUsage = 'active' | 'deactivated';

export interface KeyRow {
  readonly keyId: string;
  readonly alg: string;
  /** Protocol state: pending until every party stored its share. */
  readonly state: 'pending' | 'active';
  readonly currentEpoch: number;
  /** EP and Partner: the Aux holds f(3) of the current epoch (false after an Aux loss until re-derived). */
  readonly auxPresent: boolean;
  readonly createdAt: string;
  /** Attributes the EP's key service keeps (schema 4); defaults elsewhere. */
  readonly partitionId: number;
  readonly name: string | null;
  readonly description: string | null;
  readonly usage: KeyUsage;
  readonly usageChangedAt: string | null;
  /** An imported public key (SPKI PEM, schema 5): the key has no shares and only verifies (RSA: encrypts). */
  readonly publicKey: string | null;
}

/** One party's share of one key at one epoch. `share` is the scalar's canonical bytes (secret). */
export interface ShareRecord {
  readonly keyId: string;
  readonly alg: string;
  readonly epoch: number;
  readonly partyId: 1 | 2 | 3;
  readonly share: Uint8Array;
  readonly Y: Uint8Array;
  readonly C1: Uint8Array;
  readonly A1: Uint8Array;
  readonly A2: Uint8Array;
  readonly A3: Uint8Array;
  /** The key's policy (src/protocols/key-policy.ts): ms after which it no longer signs. */
  readonly notAfter?: number;
}

export interface StoredShare extends ShareRecord {
  readonly status: ShareStatus;
}

/** One party's RSA share at one epoch: public modulus and exponent, and its two secret pieces (encoded). */
export interface RsaShareRecord {
  readonly keyId: string;
  readonly alg: string;
  readonly epoch: number;
  readonly partyId: 1 | 2 | 3;
  readonly n: Uint8Array;
  readonly e: Uint8Array;
  /** The party's pieces of d, encoded by the key service (secret: sealed at rest). */
  readonly pieces: Uint8Array;
}

export interface StoredRsaShare extends RsaShareRecord {
  readonly status: ShareStatus;
}

export interface OpenSession {
  readonly sid: string;
  readonly proto: string;
  readonly checkpoint: string;
}

export interface SessionRecord {
  readonly proto: string;
  readonly state: 'open' | 'done' | 'aborted';
  /** The last confirm checkpoint (JSON), once PENDING was persisted; kept when the session is done. */
  readonly checkpoint: string | null;
  /** Recorded by this server's triplet (a shared store also holds the other triplets' sessions). */
  readonly ownTriplet: boolean;
}

/** Protocol writes, applied together in one durable transaction before a step's messages leave. */
export type KeyWrite =
  | { readonly op: 'session-open'; readonly sid: string; readonly proto: string }
  | { readonly op: 'session-checkpoint'; readonly sid: string; readonly checkpoint: string }
  | { readonly op: 'session-done'; readonly sid: string }
  /** This party dropped its PENDING on a NEVER: the session ended here without activating, for good. */
  | { readonly op: 'session-abort'; readonly sid: string; readonly proto: string }
  /** The host's promise before it signs NEVER: aborted, unless the session has persisted confirm state. */
  | { readonly op: 'session-never'; readonly sid: string; readonly proto: string }
  /** A PENDING epoch that will never activate: dropped; a key that was never active goes entirely. */
  | { readonly op: 'pending-discard'; readonly keyId: string; readonly epoch: number }
  | { readonly op: 'key-create'; readonly keyId: string; readonly alg: string; readonly share: ShareRecord }
  | { readonly op: 'key-activate'; readonly keyId: string }
  | { readonly op: 'share-put'; readonly share: ShareRecord; readonly status: ShareStatus }
  /** An RSA key dealt at the EP: its record (active at once: every party acknowledged) and this party's share. */
  | { readonly op: 'rsa-key-create'; readonly keyId: string; readonly alg: string; readonly share: RsaShareRecord }
  | { readonly op: 'rsa-share-put'; readonly share: RsaShareRecord; readonly status: ShareStatus }
  | { readonly op: 'epoch-activate'; readonly keyId: string; readonly from: number; readonly to: number }
  | { readonly op: 'epoch-erase'; readonly keyId: string; readonly epoch: number }
  | { readonly op: 'aux-present'; readonly keyId: string }
  /** Aux re-derivation at the Aux: the key record may not exist yet (a new or wiped Aux). */
  | { readonly op: 'aux-share-pending'; readonly share: ShareRecord }
  /** The re-derived share becomes CURRENT; shares of other epochs this Aux held are dropped. */
  | { readonly op: 'aux-share-activate'; readonly keyId: string; readonly epoch: number }
  | { readonly op: 'presig-put'; readonly psid: string; readonly keyId: string; readonly epoch: number; readonly secret: Uint8Array }
  | { readonly op: 'presig-delete'; readonly psid: string }
  /** The key is destroyed: this party's record, shares and presignatures of it are erased. */
  | { readonly op: 'key-purge'; readonly keyId: string }
  /**
   * Aux of a triplet that did not take part in the key's last refresh: erases the key here only if
   * this store holds nothing of it but a CURRENT share older than `below` (no PENDING, no PREVIOUS:
   * no session of its own is committing). It is re-derived at the new epoch when next needed.
   */
  | { readonly op: 'key-purge-stale'; readonly keyId: string; readonly below: number };

export interface KeyStore {
  applyKeyWrites(writes: readonly KeyWrite[]): Promise<void>;
  getKey(keyId: string): Promise<KeyRow | undefined>;
  listKeys(opts: { after?: string; limit: number }): Promise<KeyRow[]>;
  countKeys(): Promise<number>;
  /** Every share held of the key (CURRENT, and PENDING / PREVIOUS during a refresh), opened. */
  getShares(keyId: string): Promise<StoredShare[]>;
  /** The same for an RSA key. */
  getRsaShares(keyId: string): Promise<StoredRsaShare[]>;
  sidSeen(sid: string): Promise<boolean>;
  /**
   * The triplet of the server using this store: its sessions and presignatures are the ones
   * recorded (and listed) under it; rows from before triplets were recorded become its own.
   */
  bindTriplet(tripletId: string): Promise<void>;
  /** What this party recorded of a session (any state), or undefined if it never wrote one. */
  sessionRecord(sid: string): Promise<SessionRecord | undefined>;
  openSessions(): Promise<OpenSession[]>;
  listPresigs(): Promise<{ psid: string; keyId: string; epoch: number }[]>;
  /** The opened presignature share, or undefined if unknown (never stored, used or burnt). */
  getPresig(psid: string): Promise<Uint8Array | undefined>;
}
