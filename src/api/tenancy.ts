/**
 * Mounts the tenancy routes on the EP's fastify app: partitions, users, the audit log and its hook, /metrics and the OpenAPI document.
 */
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { AuditLog } from '../service/audit.js';
import type { KeyCatalog } from '../service/key-catalog.js';
import type { Store } from '../store/store.js';
import { auditRoutes } from './audit.js';
import type { Authenticator } from './auth.js';
import { Metrics } from './metrics.js';
import { type ApiDoc, openApiRoute } from './openapi.js';
import { partitionRoutes } from './partitions.js';
import { userRoutes } from './users.js';

export function tenancyApi(app: FastifyInstance, ctx: { store: Store; log: Logger; catalog: KeyCatalog }, auth: Authenticator, doc: ApiDoc): { audit: AuditLog; metrics: Metrics } {
  const audit = new AuditLog(ctx.store);
  // Rows still waiting for their group commit are written before the store closes.
  app.addHook('onClose', async () => audit.drain());
  const metrics = new Metrics();
  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
  });
  metrics.register(app);
  partitionRoutes(app, auth, ctx.store, ctx.catalog, doc);
  userRoutes(app, auth, doc);
  auditRoutes(app, auth, audit, doc, ctx.log);
  openApiRoute(app, doc);
  return { audit, metrics };
}
