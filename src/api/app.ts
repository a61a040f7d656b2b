/**
 * The EP's HTTPS API (fastify). This layer validates and maps errors; the work lives in services.
 * Every error leaves as `{ error: { code, message } }` with a 4xx/5xx status, never a stack trace.
 * `buildApi` assembles the routes on the dependencies it is given; `listenApi` serves them over
 * TLS. Tests call the first alone and answer requests with `inject()`.
 */
import { constants as cryptoConstants, randomUUID } from 'node:crypto';
import type { Server as HttpsServer } from 'node:https';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { EkmError } from '../errors.js';
import { listenError } from '../net/peers.js';
import { AuditLog } from '../service/audit.js';
import { auditHooks, auditRoutes } from './audit.js';
import { Authenticator } from './auth.js';
import { limitFailedPasswords } from './login-limits.js';
import type { ApiDeps } from './deps.js';
import { keyRoutes } from './keys.js';
import { Metrics } from './metrics.js';
import { ApiDoc } from './openapi.js';
import { partitionRoutes } from './partitions.js';
import { zodValidatorCompiler } from './routing.js';
import { serverRoutes } from './servers.js';
import { systemRoutes } from './system.js';
import { userRoutes } from './users.js';

const MAX_PARAM_LENGTH = 800;
/** How long a refusal that says Retry-After is held back at most (a tarpit for clients that ignore it). */
const REFUSAL_DELAY_MS = 1000;
/** Refusals held back at once at most, over all connections. */
const MAX_HELD_REFUSALS = 256;

/** The TLS version floor of the API listener. */
const MIN_TLS_VERSION = 'TLSv1.2';

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ApiErrorBody {
  return { error: { code, message } };
}

function noFastifySchemas(): never {
  throw new Error('fastify was asked for its own JSON-schema compiler: ekm routes validate with zod (routing.ts)');
}

/** The API application and the document of its routes (tests check answers against it). */
export interface Api {
  readonly app: FastifyInstance;
  readonly doc: ApiDoc;
}

/** Every route of the EP's API on `deps`, ready to listen or to answer `inject()`. */
export async function buildApi(deps: ApiDeps): Promise<Api> {
  const app = Fastify({
    // An HTTPS server without its identity yet (listenApi sets it). Fastify creates it, so its
    // connection defaults apply (keep-alive 72 s, not node's 5 s, under which clients race idle
    // connections closing); a server factory of ours would not get them.
    // A client certificate is asked for, never required: an EP of the cluster shows its identity
    // (Authenticator.isClusterEp); any other client connects as before and authenticates by password.
    // No renegotiation (TLS 1.2): a client certificate is what the handshake proved, once.
    https: { minVersion: MIN_TLS_VERSION, requestCert: true, rejectUnauthorized: false, secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION },
    logger: false,
    // Room for a 4 MiB object in base64 (AES encrypt/decrypt of large blobs); larger bodies get 413.
    bodyLimit: 6 * 1024 * 1024,
    return503OnClosing: true,
    genReqId: () => randomUUID(),
    // A key may be named in the path by its name (64 characters, percent-encoded up to 3 bytes each).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Routes validate with zod (zodValidatorCompiler) and responses are written with JSON.stringify,
    // so fastify's Ajv and fast-json-stringify compilers are never needed: not loading them saves
    // ~0.1 s of start-up.
    schemaController: { compilersFactory: { buildValidator: noFastifySchemas, buildSerializer: noFastifySchemas } },
    // Errors fastify raises before routing (an over-long path parameter, a malformed URL) get the same shape.
    frameworkErrors: (err, _req, reply) => {
      const status = err.statusCode ?? 400;
      void (reply as FastifyReply).status(status).send(errorBody(status === 414 ? 'EKM_URI_TOO_LONG' : 'EKM_BAD_REQUEST', status === 414 ? `a path segment is longer than ${MAX_PARAM_LENGTH} characters` : 'malformed URL'));
    },
  });
  app.setValidatorCompiler(zodValidatorCompiler);
  // The EP's own time for the request (received to response sent), beside the key service's `op`
  // where a route reports one: what a client sees above `total` is the network and itself.
  app.addHook('onSend', async (_req, reply) => {
    const op = reply.getHeader('server-timing');
    void reply.header('server-timing', `${op ? `${String(op)}, ` : ''}total;dur=${reply.elapsedTime.toFixed(3)}`);
  });
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  const doc = new ApiDoc();
  doc.collect(app);

  let heldRefusals = 0;
  app.setErrorHandler(async (err, _req, reply) => {
    if (err instanceof EkmError) {
      const retryAfter = err.retryAfterSeconds;
      if (retryAfter !== undefined) {
        void reply.header('retry-after', String(Math.ceil(retryAfter)));
        // A client told to wait hears so only after a while (at most REFUSAL_DELAY_MS), and its
        // connection is closed: one that ignores Retry-After gets one refusal a second per
        // connection, requests pipelined behind it are dropped, and at most MAX_HELD_REFUSALS are
        // held at once (past that, refusals go out at once), so holding costs bounded memory.
        void reply.header('connection', 'close');
        if (heldRefusals < MAX_HELD_REFUSALS) {
          heldRefusals++;
          try {
            await new Promise((r) => setTimeout(r, Math.min(REFUSAL_DELAY_MS, 1000 * retryAfter)));
          } finally {
            heldRefusals--;
          }
        }
      }
      return reply.status(err.httpStatus).send(errorBody(err.code, err.message));
    }
    const status = typeof (err as { statusCode?: number }).statusCode === 'number' ? (err as { statusCode: number }).statusCode : 500;
    if (status >= 500) deps.log.error({ err: (err as Error).message }, 'API request failed');
    return reply.status(status).send(errorBody(status >= 500 ? 'EKM_INTERNAL' : 'EKM_BAD_REQUEST', status >= 500 ? 'internal error' : (err as Error).message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(errorBody('EKM_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  // Hooks every route shares are added here, on the root, before the route plugins load: each
  // plugin's scope inherits the hooks its parent had when it loaded.
  limitFailedPasswords(app, deps.loginLimits.failuresPerSecond);
  const auth = new Authenticator(deps.store, deps.tokenTtlSeconds, deps.loginLimits.concurrentChecks);
  const audit = new AuditLog(deps.store);
  new Metrics().register(app, (req) => auth.clusterReader(req, { rootOnly: true, what: 'read the metrics' }));
  auditHooks(app, { auth, audit, store: deps.store, log: deps.log });

  await app.register(systemRoutes, { deps, auth, doc });
  await app.register(keyRoutes, { deps, auth, doc });
  await app.register(partitionRoutes, { deps, auth, doc });
  await app.register(userRoutes, { auth, doc });
  await app.register(auditRoutes, { audit, store: deps.store, auth, doc });
  const scaleOut = deps.scaleOut;
  if (scaleOut) await app.register(serverRoutes, { scaleOut, auth, doc });
  await app.ready();
  return { app, doc };
}

export interface ApiListener {
  readonly host: string;
  readonly port: number;
  /** The EP's identity (its TLS key and certificate), the one it shows its peers. */
  readonly identity: { readonly keyPem: string; readonly certPem: string };
}

/** Serves a built API over TLS on `host:port`; a port in use is a one-line error naming it. */
export async function listenApi(app: FastifyInstance, listener: ApiListener): Promise<void> {
  (app.server as HttpsServer).setSecureContext({
    key: listener.identity.keyPem,
    cert: listener.identity.certPem,
    minVersion: MIN_TLS_VERSION,
    secureOptions: cryptoConstants.SSL_OP_NO_RENEGOTIATION,
  });
  try {
    await app.listen({ host: listener.host, port: listener.port });
  } catch (e) {
    throw listenError(e as NodeJS.ErrnoException, listener.host, listener.port, 'API');
  }
}
