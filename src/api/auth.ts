/**
 * Who is calling: HTTP Basic `user@partition:password`, or a bearer token from
 * `POST /api/v1/token` (short-lived, held in the EP's memory). Passwords are checked with scrypt
 * in constant time; a failure never says whether the user or the password was wrong.
 */
import { randomBytes } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import type { FastifyRequest } from 'fastify';
import { EkmError } from '../errors.js';
import { Accounts, splitUsername } from '../service/accounts.js';
import { ROOT_PARTITION_ID } from '../service/audit.js';
import { safeText } from '../util/text.js';
import type { Store, UserRole } from '../store/store.js';

export interface Principal {
  readonly user: string;
  readonly partition: string;
  readonly partitionId: number;
  readonly role: UserRole;
}

const unauthorized = (): EkmError =>
  new EkmError('EKM_UNAUTHORIZED', 'authentication required: HTTP Basic user@partition:password, or a bearer token');

export class Authenticator {
  private readonly tokens = new Map<string, { principal: Principal; expires: number }>();
  /** One authentication per request, however many hooks and handlers ask (a failed login counts once). */
  private readonly perRequest = new WeakMap<FastifyRequest, Promise<Principal>>();
  /** Who a request was (or claimed to be), for the audit log; never the password. */
  private readonly seen = new WeakMap<FastifyRequest, { principal?: Principal; claimed?: string }>();
  readonly accounts: Accounts;

  /** `ttlSeconds`: the bearer token lifetime (the EKM_TOKEN_TTL_SECONDS setting). */
  constructor(
    private readonly store: Store,
    readonly ttlSeconds: number,
  ) {
    this.accounts = new Accounts(store);
  }

  /** Drops the bearer tokens of a user (or of a whole partition), e.g. after a reset or delete. */
  revoke(partitionId: number, user?: string): void {
    for (const [tok, t] of this.tokens) {
      if (t.principal.partitionId === partitionId && (user === undefined || t.principal.user === user)) this.tokens.delete(tok);
    }
  }

  identity(req: FastifyRequest): { principal?: Principal; claimed?: string } | undefined {
    return this.seen.get(req);
  }

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

  issueToken(principal: Principal): { access_token: string; token_type: 'Bearer'; expires_in: number } {
    const token = randomBytes(32).toString('base64url');
    const now = performance.now();
    for (const [tok, t] of this.tokens) if (t.expires < now) this.tokens.delete(tok);
    this.tokens.set(token, { principal, expires: now + this.ttlSeconds * 1000 });
    return { access_token: token, token_type: 'Bearer', expires_in: this.ttlSeconds };
  }

  /** Records the user a failed login claimed (for the audit log). */
  claim(req: FastifyRequest, username: string): void {
    this.seen.set(req, { claimed: claimedActor(username) });
  }

  private async authenticateOnce(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (!header) throw unauthorized();
    const [scheme, value] = header.split(' ', 2);
    if (scheme?.toLowerCase() === 'bearer' && value) {
      const t = this.tokens.get(value);
      if (!t || t.expires < performance.now()) {
        if (t) this.tokens.delete(value);
        throw new EkmError('EKM_UNAUTHORIZED', 'the bearer token is unknown or expired', { hint: 'get a new one from POST /api/v1/token' });
      }
      return t.principal;
    }
    if (scheme?.toLowerCase() === 'basic' && value) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw unauthorized();
      this.claim(req, decoded.slice(0, colon));
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
