/**
 * The EP's HTTPS API (fastify). This layer validates and maps errors; the work lives in services.
 * Every error leaves as `{ error: { code, message } }` with a 4xx/5xx status, never a stack trace.
 */
import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { EkmError } from '../errors.js';
import { probeRemoteTriplet } from '../cluster/health.js';
import { listenError } from '../net/peers.js';
import type { ServerContext } from '../server/server.js';
import { VERSION } from '../version.js';
import { Authenticator } from './auth.js';
import { z } from 'zod';
import { keyRoutes, parse } from './keys.js';
import { ApiDoc, describeCoreRoutes } from './openapi.js';
import { serverRoutes } from './servers.js';
import { tenancyApi } from './tenancy.js';

const MAX_PARAM_LENGTH = 800;

export interface ApiErrorBody {
  error: { code: string; message: string };
}

export function errorBody(code: string, message: string): ApiErrorBody {
  return { error: { code, message } };
}

function noFastifySchemas(): never {
  throw new Error('a route gave fastify a JSON schema: ekm routes validate with zod instead');
}

export async function startApi(ctx: ServerContext, identity: { keyPem: string; certPem: string }): Promise<FastifyInstance> {
  const api = ctx.config.api;
  if (!api) throw new EkmError('EKM_CONFIG_CORRUPT', 'the EP configuration has no API address');
  const app = Fastify({
    https: { key: identity.keyPem, cert: identity.certPem, minVersion: 'TLSv1.2' },
    logger: false,
    // Room for a 4 MiB object in base64 (AES encrypt/decrypt of large blobs); larger bodies get 413.
    bodyLimit: 6 * 1024 * 1024,
    return503OnClosing: true,
    genReqId: () => randomUUID(),
    // A key may be named in the path by its name (64 characters, percent-encoded up to 3 bytes each).
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Routes validate with zod (keys.ts `parse`) and give fastify no JSON schema, so its Ajv and
    // fast-json-stringify compilers are never needed: not loading them saves ~0.1 s of start-up.
    schemaController: { compilersFactory: { buildValidator: noFastifySchemas, buildSerializer: noFastifySchemas } },
    // Errors fastify raises before routing (an over-long path parameter, a malformed URL) get the same shape.
    frameworkErrors: (err, _req, reply) => {
      const status = err.statusCode ?? 400;
      void (reply as FastifyReply).status(status).send(errorBody(status === 414 ? 'EKM_URI_TOO_LONG' : 'EKM_BAD_REQUEST', status === 414 ? `a path segment is longer than ${MAX_PARAM_LENGTH} characters` : 'malformed URL'));
    },
  });
  // The EP's own time for the request (received to response sent), beside the key service's `op`
  // where a route reports one: what a client sees above `total` is the network and itself.
  app.addHook('onSend', async (_req, reply) => {
    const op = reply.getHeader('server-timing');
    void reply.header('server-timing', `${op ? `${String(op)}, ` : ''}total;dur=${reply.elapsedTime.toFixed(3)}`);
  });
  const doc = new ApiDoc();
  doc.collect(app);
  describeCoreRoutes(doc);

  app.setErrorHandler((err, _req, reply) => {
    if (err instanceof EkmError) {
      void reply.status(err.httpStatus).send(errorBody(err.code, err.message));
      return;
    }
    const status = typeof (err as { statusCode?: number }).statusCode === 'number' ? (err as { statusCode: number }).statusCode : 500;
    if (status >= 500) ctx.log.error({ err: (err as Error).message }, 'API request failed');
    void reply.status(status).send(errorBody(status >= 500 ? 'EKM_INTERNAL' : 'EKM_BAD_REQUEST', status >= 500 ? 'internal error' : (err as Error).message));
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.status(404).send(errorBody('EKM_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
  });

  const health = async (): Promise<{ status: number; body: unknown }> => {
    const t = await ctx.probe();
    return { status: t.inService ? 200 : 503, body: { status: t.inService ? 'ok' : 'unavailable', triplet: t } };
  };
  app.get('/api/v1/health', async (_req, reply) => {
    const h = await health();
    return reply.status(h.status).send(h.body);
  });

  app.get('/api/v1/info', async () => ({
    product: 'ekm',
    version: VERSION,
    role: ctx.config.role,
    server: ctx.config.name,
    clusterId: ctx.config.clusterId,
    tripletId: ctx.config.tripletId,
    fips: ctx.config.fips,
    schemaVersion: await ctx.store.schemaVersion(),
  }));

  /** Membership as recorded, without probing (`ucl server list`). */
  app.get('/api/v1/servers', async () => ({ clusterId: ctx.config.clusterId, servers: await ctx.store.listServers() }));

  /** Live probe of every server (`ucl server test`): this EP's triplet, then each other triplet through its EP. */
  app.get('/api/v1/servers/test', async () => {
    const members = await ctx.store.listServers();
    const others = [...new Set(members.map((m) => m.tripletId))].filter((id) => id !== ctx.config.tripletId);
    const triplets = await Promise.all([ctx.probe(), ...others.map((id) => probeRemoteTriplet(members.filter((m) => m.tripletId === id)))]);
    return { clusterId: ctx.config.clusterId, inService: triplets.every((t) => t.inService), triplets };
  });

  const auth = new Authenticator(ctx.store, ctx.settings.tokenTtlSeconds);
  const TokenBody = z.object({ grant_type: z.literal('password').optional(), username: z.string().min(1).max(256), password: z.string().min(1).max(1024) }).strict();
  app.post('/api/v1/token', async (req) => {
    const body = parse(TokenBody, req.body, 'body');
    return auth.issueToken(await auth.login(body.username, body.password));
  });
  const catalog = ctx.catalog;
  if (!catalog) throw new EkmError('EKM_INTERNAL', 'the EP API needs the key catalogue');
  keyRoutes(app, { keys: ctx.keys, catalog, store: ctx.store }, auth, doc);
  tenancyApi(app, { store: ctx.store, log: ctx.log, catalog }, auth, doc);
  if (ctx.scaleOut) serverRoutes(app, ctx.scaleOut, auth, doc);

  try {
    await app.listen({ host: api.host, port: api.port });
  } catch (e) {
    throw listenError(e as NodeJS.ErrnoException, api.host, api.port, 'API');
  }
  return app;
}
