/**
 * Who is calling: HTTP Basic `user@partition:password`, or a bearer token from
 * `POST /api/v1/token` (short-lived, recorded in the store so that every EP sharing it accepts
 * and revokes it: service/tokens.ts). Passwords are checked with scrypt in constant time; a
 * failure never says whether the user or the password was wrong.
 */
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { EkmError } from '../errors.js';
import { Accounts, splitUsername } from '../service/accounts.js';
import { ROOT_PARTITION_ID } from '../service/audit.js';
import { ApiTokens } from '../service/tokens.js';
import { isCleanText, safeText } from '../util/text.js';
import type { Store, UserRole } from '../store/store.js';

export interface Principal {
  readonly user: string;
  readonly partition: string;
  readonly partitionId: number;
  readonly role: UserRole;
}

const unauthorized = (): EkmError =>
  new EkmError('EKM_UNAUTHORIZED', 'authentication required: HTTP Basic user@partition:password, or a bearer token');

const unknownToken = (): EkmError =>
  new EkmError('EKM_UNAUTHORIZED', 'the bearer token is unknown, expired or revoked', { hint: 'get a new one from POST /api/v1/token' });

/** The bearer token an `Authorization` header presents, if it presents one. */
export function bearerToken(req: FastifyRequest): string | undefined {
  const [scheme, value] = (req.headers.authorization ?? '').split(' ', 2);
  return scheme?.toLowerCase() === 'bearer' && value ? value : undefined;
}

export class Authenticator {
  /** One authentication per request, however many hooks and handlers ask (a failed login counts once). */
  private readonly perRequest = new WeakMap<FastifyRequest, Promise<Principal>>();
  /** Who a request was (or claimed to be), for the audit log; never the password. */
  private readonly seen = new WeakMap<FastifyRequest, { principal?: Principal; claimed?: string }>();
  readonly accounts: Accounts;
  private readonly tokens: ApiTokens;

  /** `ttlSeconds`: the bearer token lifetime (EKM_TOKEN_TTL_SECONDS); `passwordChecks`: scrypt runs at once (EKM_PASSWORD_CHECKS). */
  constructor(
    private readonly store: Store,
    readonly ttlSeconds: number,
    passwordChecks: number,
  ) {
    this.accounts = new Accounts(store, { passwordChecks });
    this.tokens = new ApiTokens(store, this.accounts, ttlSeconds);
  }

  identity(req: FastifyRequest): { principal?: Principal; claimed?: string } | undefined {
    return this.seen.get(req);
  }

  /** The caller of `req`, checked once per request (a token: one store read; Basic: one password check). */
  async authenticate(req: FastifyRequest): Promise<Principal> {
    let p = this.perRequest.get(req);
    if (!p) {
      p = this.authenticateOnce(req).then((principal) => {
        this.seen.set(req, { principal });
        return principal;
      });
      this.perRequest.set(req, p);
    }
    return p;
  }

  /**
   * Whether the caller showed, as its TLS client certificate, the identity of an EP of the
   * cluster (its fingerprint as the store records it): another EP probing this triplet, or `ucl`
   * run in an EP's home. The TLS handshake proved the caller holds that certificate's key, so
   * the fingerprint is as good as the peer pinning between servers.
   */
  async isClusterEp(req: FastifyRequest): Promise<boolean> {
    const fingerprint = presentedFingerprint(req);
    if (fingerprint === undefined) return false;
    return (await this.store.listServers()).some((s) => s.role === 'ep' && s.fingerprint === fingerprint);
  }

  /**
   * A guard for what describes the cluster itself (its servers, their health, the metrics): an EP
   * of the cluster, or an authenticated caller of one of `roles` (any role when absent), in the
   * root partition only when `rootOnly`.
   */
  async clusterReader(req: FastifyRequest, opts: { rootOnly?: boolean; what: string }): Promise<void> {
    if (await this.isClusterEp(req)) return;
    const p = await this.authenticate(req);
    if (opts.rootOnly && (p.partitionId !== ROOT_PARTITION_ID || p.role === 'user')) {
      throw new EkmError('EKM_FORBIDDEN', `not allowed: the root SO and root auditors ${opts.what}`);
    }
  }

  async login(username: string, password: string): Promise<Principal> {
    return this.accounts.login(username, password);
  }

  /** The password grant; the caller of the request becomes the token's user (for the audit log). */
  async issueToken(
    req: FastifyRequest,
    username: string,
    password: string,
  ): Promise<{ access_token: string; token_type: 'Bearer'; expires_in: number }> {
    const issued = await this.tokens.issue(username, password);
    if (!issued)
      throw new EkmError('EKM_UNAUTHORIZED', 'the password was changed while this login was checked', {
        hint: 'log in again with the new password',
      });
    this.seen.set(req, { principal: issued.actor });
    return { access_token: issued.token, token_type: 'Bearer', expires_in: issued.expiresInSeconds };
  }

  /** Logout: the bearer token `req` presents stops working on every EP sharing the store. */
  async logout(req: FastifyRequest): Promise<void> {
    const token = bearerToken(req);
    if (!req.headers.authorization) throw unauthorized();
    if (!token)
      throw new EkmError('EKM_BAD_REQUEST', 'logout ends the bearer token the request presents: HTTP Basic has none to end', {
        hint: 'send Authorization: Bearer <token>',
      });
    await this.authenticate(req);
    // Two logouts of one token at once: the one that finds no row has nothing left to end.
    if (!(await this.tokens.end(token))) throw unknownToken();
  }

  /** Records the user a failed login claimed (for the audit log). */
  claim(req: FastifyRequest, username: string): void {
    this.seen.set(req, { claimed: claimedActor(username) });
  }

  private async authenticateOnce(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (!header) throw unauthorized();
    const token = bearerToken(req);
    if (token) {
      const holder = await this.tokens.holder(token);
      if (!holder) throw unknownToken();
      return holder;
    }
    const [scheme, value] = header.split(' ', 2);
    if (scheme?.toLowerCase() === 'basic' && value) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw unauthorized();
      this.claim(req, decoded.slice(0, colon));
      // Text no user name or password can hold (NUL, controls) never reaches the store: PostgreSQL
      // refuses NUL in text, and the answer is the one any wrong login gets.
      if (!isCleanText(decoded)) throw new EkmError('EKM_UNAUTHORIZED', 'wrong user, partition or password');
      return this.login(decoded.slice(0, colon), decoded.slice(colon + 1));
    }
    throw unauthorized();
  }
}

/** The SHA-256 fingerprint of the TLS client certificate of `req`, if one was shown. */
function presentedFingerprint(req: FastifyRequest): string | undefined {
  const socket = req.raw.socket as Partial<TLSSocket> | undefined;
  return socket?.getPeerX509Certificate?.()?.fingerprint256;
}

/**
 * The `user@partition` a login claimed, as the audit log keeps it: unauthenticated text, so each
 * part is cut to 64 code points and made safe to store and show (util/text.ts).
 */
export function claimedActor(username: string): string {
  const s = splitUsername(username);
  return `${safeText(s.user, 64)}@${safeText(s.partition, 64)}`;
}
