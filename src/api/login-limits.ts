/**
 * Limits on what unauthenticated clients can make the EP do. A password check costs about 0.1 s
 * of a core (scrypt), whether the user exists or not (it must not tell). Each client address has
 * a budget of failed password checks (EKM_LOGIN_FAILURES per second, bursts of five times as
 * many): every request that carries a password — HTTP Basic on any route, the token grant — is
 * answered 429 before any work while its address's budget is spent; each takes one from it before
 * its check runs and gives it back unless it was answered 401. Clients that send right passwords never spend it; requests with a bearer token are
 * not looked at. How many checks run at once on the EP is bounded in the accounts service
 * (EKM_PASSWORD_CHECKS), and each account by its lockout.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EkmError } from '../errors.js';
import { RateLimiter } from '../util/rate-limit.js';

/**
 * Does the request carry a password? The route is the one fastify matched (a percent-encoded
 * path such as `/api/v1/%74oken` reaches the token grant too), never the raw URL.
 */
function carriesPassword(req: FastifyRequest): boolean {
  const authorization = req.headers.authorization;
  if (authorization !== undefined && authorization.slice(0, 6).toLowerCase() === 'basic ') return true;
  return req.method === 'POST' && req.routeOptions.url === '/api/v1/token';
}

export function limitFailedPasswords(app: FastifyInstance, failuresPerSecond: number): void {
  const perAddress = new RateLimiter<string>(failuresPerSecond, 5 * failuresPerSecond);
  const counted = new WeakSet<FastifyRequest>();
  // Counted before the check runs, given back when it did not fail (as the lockout counts): a
  // burst of concurrent wrong passwords from one address checks no more than its budget.
  app.addHook('onRequest', async (req) => {
    if (!carriesPassword(req)) return;
    const wait = perAddress.wait(req.ip);
    if (wait > 0) {
      throw new EkmError('EKM_RATE_LIMITED', `${req.ip} sent too many wrong passwords: its next password check waits ${Math.ceil(wait)} s`, {
        hint: 'check the user name and password; a client behind a shared address may raise EKM_LOGIN_FAILURES',
        retryAfterSeconds: wait,
      });
    }
    perAddress.take(req.ip);
    counted.add(req);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (counted.has(req) && reply.statusCode !== 401) perAddress.give(req.ip);
  });
}
