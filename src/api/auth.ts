/**
 * Who is calling: HTTP Basic `user@partition:password`, or a bearer token from
 * `POST /api/v1/token` (short-lived, held in the EP's memory). Passwords are checked with scrypt
 * in constant time; a failure never says whether the user or the password was wrong.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { EkmError } from '../errors.js';
import { Accounts, splitUsername } from '../service/accounts.js';
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

  /** `ttlSeconds`: the bearer token lifetime (EKM_TOKEN_TTL_SECONDS); `passwordChecks`: scrypt runs at once (EKM_PASSWORD_CHECKS). */
  constructor(
    store: Store,
    readonly ttlSeconds: number,
    passwordChecks: number,
  ) {
    this.accounts = new Accounts(store, { passwordChecks });
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

/**
 * The `user@partition` a login claimed, as the audit log keeps it: unauthenticated text, so each
 * part is cut to 64 code points and made safe to store and show (util/text.ts).
 */
export function claimedActor(username: string): string {
  const s = splitUsername(username);
  return `${safeText(s.user, 64)}@${safeText(s.partition, 64)}`;
}
