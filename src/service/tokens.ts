/**
 * Bearer tokens of the API's password grant. They live in the store, not in one EP's memory, so
 * that every EP sharing the store (the EPs of a grown cluster share PostgreSQL) accepts a token any
 * of them issued, and a revocation on one EP holds on all of them at the next request:
 * - the store keeps only the SHA-256 of a token: a copy of the store (or a backup) holds no token
 *   that works;
 * - a token records its user's credential version, read with the password hash its login checked;
 *   a password reset or change bumps the version (and deletes the user's token rows), deleting a
 *   user or partition deletes them, so a token of the old credentials matches no more — also one
 *   issued by a login whose password check raced the reset (the store refuses to record it);
 * - every request with a token reads its row, joined with its user, by primary key: the role and
 *   partition are the current ones, and nothing is cached across requests.
 * Expiry uses the wall clock of the EP that checks (ISO-8601 UTC in the store): EPs whose clocks
 * differ by a few seconds end a token a few seconds apart.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Store } from '../store/store.js';
import type { Accounts, Actor } from './accounts.js';

export interface IssuedToken {
  readonly token: string;
  readonly actor: Actor;
  readonly expiresInSeconds: number;
}

/** A token's name in the store: its SHA-256, hex (a token has 256 random bits, so no salt or slow hash is needed). */
export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class ApiTokens {
  constructor(
    private readonly store: Store,
    private readonly accounts: Accounts,
    /** The token lifetime (the EKM_TOKEN_TTL_SECONDS setting). */
    readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * The password grant: the login check (with lockout), then a new token recorded for the
   * credentials it checked; undefined when they changed meanwhile (the caller answers 401).
   */
  async issue(username: string, password: string): Promise<IssuedToken | undefined> {
    const { actor, credentialVersion } = await this.accounts.verifiedLogin(username, password);
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    const recorded = await this.store.createApiToken(
      {
        tokenSha256: tokenDigest(token),
        partitionId: actor.partitionId,
        user: actor.user,
        credentialVersion,
        expiresAt: new Date(now + this.ttlSeconds * 1000).toISOString(),
      },
      new Date(now).toISOString(),
    );
    return recorded ? { token, actor, expiresInSeconds: this.ttlSeconds } : undefined;
  }

  /** Who holds `token` now, or undefined when it is unknown, expired, revoked or its user is gone. */
  async holder(token: string): Promise<Actor | undefined> {
    const h = await this.store.getApiToken(tokenDigest(token), new Date(this.now()).toISOString());
    return h ? { user: h.user, partition: h.partition, partitionId: h.partitionId, role: h.role } : undefined;
  }

  /** Logout: `token` stops working on every EP. False when it was not recorded (already ended). */
  async end(token: string): Promise<boolean> {
    return this.store.deleteApiToken(tokenDigest(token));
  }
}
