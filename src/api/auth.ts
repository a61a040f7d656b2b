/**
 * Who is calling: HTTP Basic `user@partition:password`, or a bearer token from
 * `POST /api/v1/token` (short-lived, held in the EP's memory). Passwords are checked with scrypt
 * in constant time; a failure never says whether the user or the password was wrong.
 */
import { randomBytes } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { verifyPassword } from '../crypto/password.js';
import { EkmError } from '../errors.js';
import type { Store, UserRole } from '../store/store.js';

export interface Principal {
  readonly user: string;
  readonly partition: string;
  readonly partitionId: number;
  readonly role: UserRole;
}

export const TOKEN_TTL_SECONDS = 900;

const unauthorized = (): EkmError =>
  new EkmError('EKM_UNAUTHORIZED', 'authentication required: HTTP Basic user@partition:password, or a bearer token', undefined, 1, 401);

export class Authenticator {
  private readonly tokens = new Map<string, { principal: Principal; expires: number }>();

  constructor(private readonly store: Store) {}

  async login(username: string, password: string): Promise<Principal> {
    const at = username.lastIndexOf('@');
    const user = at > 0 ? username.slice(0, at) : username;
    const partitionName = at > 0 ? username.slice(at + 1) : 'root';
    const partition = await this.store.getPartition(partitionName);
    const row = partition ? await this.store.getUser(partition.id, user) : undefined;
    // Hash even for an unknown user, so timing does not tell which part was wrong.
    const ok = await verifyPassword(password, row?.passwordHash ?? 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=');
    if (!row || !partition || !ok || row.locked) {
      throw new EkmError('EKM_UNAUTHORIZED', 'wrong user, partition or password', undefined, 1, 401);
    }
    return { user, partition: partition.name, partitionId: partition.id, role: row.role };
  }

  issueToken(principal: Principal): { access_token: string; token_type: 'Bearer'; expires_in: number } {
    const token = randomBytes(32).toString('base64url');
    this.tokens.set(token, { principal, expires: Date.now() + TOKEN_TTL_SECONDS * 1000 });
    return { access_token: token, token_type: 'Bearer', expires_in: TOKEN_TTL_SECONDS };
  }

  async authenticate(req: FastifyRequest): Promise<Principal> {
    const header = req.headers.authorization;
    if (!header) throw unauthorized();
    const [scheme, value] = header.split(' ', 2);
    if (scheme?.toLowerCase() === 'bearer' && value) {
      const t = this.tokens.get(value);
      if (!t || t.expires < Date.now()) {
        if (t) this.tokens.delete(value);
        throw new EkmError('EKM_UNAUTHORIZED', 'the bearer token is unknown or expired', 'get a new one from POST /api/v1/token', 1, 401);
      }
      return t.principal;
    }
    if (scheme?.toLowerCase() === 'basic' && value) {
      const decoded = Buffer.from(value, 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      if (colon < 0) throw unauthorized();
      return this.login(decoded.slice(0, colon), decoded.slice(colon + 1));
    }
    throw unauthorized();
  }
}
