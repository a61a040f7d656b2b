/**
 * Limits on what unauthenticated clients can make the EP do. A password check costs about 0.1 s
 * of a core (scrypt), whether the user exists or not (it must not tell). Each client address has
 * a budget of failed password checks (EKM_LOGIN_FAILURES per second, bursts of five times as
 * many): every request that carries a password — HTTP Basic on any route, the token grant — is
 * answered 429 before any work while its address's budget is spent, and each one answered 401
 * spends one. Clients that send right passwords never spend it; requests with a bearer token are
 * not looked at. How many checks run at once on the EP is bounded in the accounts service
 * (EKM_PASSWORD_CHECKS), and each account by its lockout.
 */
import type { FastifyInstance } from 'fastify';
import { EkmError } from '../errors.js';
import { RateLimiter } from '../util/rate-limit.js';

/** Does the request carry a password? */
function carriesPassword(method: string, url: string, authorization: string | undefined): boolean {
  if (authorization !== undefined && authorization.slice(0, 6).toLowerCase() === 'basic ') return true;
  return method === 'POST' && url.split('?')[0] === '/api/v1/token';
}

export function limitFailedPasswords(app: FastifyInstance, failuresPerSecond: number): void {
  const perAddress = new RateLimiter<string>(failuresPerSecond, 5 * failuresPerSecond);
  app.addHook('onRequest', async (req) => {
    if (!carriesPassword(req.method, req.url, req.headers.authorization)) return;
    const wait = perAddress.wait(req.ip);
    if (wait > 0) {
      throw new EkmError('EKM_RATE_LIMITED', `${req.ip} sent too many wrong passwords: its next password check waits ${Math.ceil(wait)} s`, {
        hint: 'check the user name and password; a client behind a shared address may raise EKM_LOGIN_FAILURES',
        retryAfterSeconds: wait,
      });
    }
  });
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode === 401 && carriesPassword(req.method, req.url, req.headers.authorization)) perAddress.take(req.ip);
  });
}
