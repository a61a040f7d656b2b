/**
 * The EP's system routes: health, who this EP is, the servers of the cluster (as recorded, and
 * probed live), the password grant of a bearer token and its logout, and the OpenAPI document
 * (where `/metrics`, which metrics.ts registers on the root, is described too). Health, info, the
 * token grant and the document answer anyone; health tells an unauthenticated caller only up or
 * down. The servers (addresses, fingerprints, live probes) are for an authenticated caller or an
 * EP of the cluster (Authenticator.clusterReader).
 */
import type { FastifyPluginAsync } from 'fastify';
import { z } from 'zod';
import { VERSION } from '../version.js';
import type { Authenticator } from './auth.js';
import type { ApiDeps } from './deps.js';
import { type ApiDoc, describeMetricsRoute } from './openapi.js';
import { route } from './routing.js';

export interface SystemRoutesOptions {
  readonly deps: Pick<ApiDeps, 'server' | 'store' | 'probe' | 'probeOtherTriplet'>;
  readonly auth: Authenticator;
  readonly doc: ApiDoc;
}

const Triplet = z.object({}).passthrough().describe('triplet health: servers, states, round trips');
const Health = z.object({ status: z.enum(['ok', 'unavailable']), triplet: Triplet.optional().describe('for an authenticated caller or an EP of the cluster only') });
const TokenBody = z
  .object({ grant_type: z.literal('password').optional(), username: z.string().min(1).max(256).describe('user@partition'), password: z.string().min(1).max(1024) })
  .strict();

export const systemRoutes: FastifyPluginAsync<SystemRoutesOptions> = async (app, { deps, auth, doc }) => {
  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/health',
      summary: 'Health: 200 when the triplet is in service, 503 otherwise; the servers only to an authenticated caller',
      tag: 'system',
      access: 'public (the triplet: any role, or an EP of the cluster)',
      ok: { status: 200, description: 'in service', schema: Health },
      also: [{ status: 503, description: 'the triplet is not in service', schema: Health }],
    },
    // Credentials, when sent, are checked (a wrong one is a 401, not a quiet bare answer).
    async (req, reply) => {
      const detailed = req.headers.authorization !== undefined || (await auth.isClusterEp(req));
      if (detailed) await auth.clusterReader(req, { what: 'read the health of the triplet' });
      const t = await deps.probe();
      const status = t.inService ? 'ok' : 'unavailable';
      return reply.status(t.inService ? 200 : 503).send(detailed ? { status, triplet: t } : { status });
    },
  );

  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/info',
      summary: 'Product, version, role, names and schema of this EP',
      tag: 'system',
      access: 'public',
      ok: { status: 200, description: 'info', schema: z.object({ product: z.literal('ekm'), version: z.string(), role: z.string(), server: z.string(), clusterId: z.string(), tripletId: z.string(), fips: z.boolean(), schemaVersion: z.number() }) },
    },
    async () => ({
      product: 'ekm',
      version: VERSION,
      role: deps.server.role,
      server: deps.server.name,
      clusterId: deps.server.clusterId,
      tripletId: deps.server.tripletId,
      fips: deps.server.fips,
      schemaVersion: await deps.store.schemaVersion(),
    }),
  );

  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/servers',
      summary: 'Servers of the cluster as recorded (ucl server list; clients learn the EPs here)',
      tag: 'system',
      access: 'any role; an EP of the cluster',
      ok: { status: 200, description: 'servers', schema: z.object({ clusterId: z.string(), servers: z.array(z.object({}).passthrough()) }) },
      guard: (req) => auth.clusterReader(req, { what: 'list the servers' }),
    },
    async () => ({ clusterId: deps.server.clusterId, servers: await deps.store.listServers() }),
  );

  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/servers/test',
      summary: 'Probe every server (ucl server test)',
      tag: 'system',
      access: 'any role; an EP of the cluster',
      ok: { status: 200, description: 'probe', schema: z.object({ clusterId: z.string(), inService: z.boolean(), triplets: z.array(Triplet) }) },
      guard: (req) => auth.clusterReader(req, { what: 'probe the servers' }),
    },
    // This EP's triplet, then each other triplet through its EP.
    async () => {
      const members = await deps.store.listServers();
      const others = [...new Set(members.map((m) => m.tripletId))].filter((id) => id !== deps.server.tripletId);
      const triplets = await Promise.all([deps.probe(), ...others.map((id) => deps.probeOtherTriplet(members.filter((m) => m.tripletId === id)))]);
      return { clusterId: deps.server.clusterId, inService: triplets.every((t) => t.inService), triplets };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/token',
      summary: 'Password grant: a short-lived bearer token (EKM_TOKEN_TTL_SECONDS, default 900 s)',
      tag: 'auth',
      access: 'public',
      body: TokenBody,
      ok: { status: 200, description: 'token', schema: z.object({ access_token: z.string(), token_type: z.literal('Bearer'), expires_in: z.number() }) },
      errors: [401, 429],
    },
    async (req) => auth.issueToken(req, req.body.username, req.body.password),
  );

  route(
    app,
    doc,
    {
      method: 'DELETE',
      url: '/api/v1/token',
      summary: 'Logout: the bearer token this request presents stops working on every EP of the cluster',
      tag: 'auth',
      access: 'any (with a bearer token)',
      ok: { status: 200, description: 'the token is revoked', schema: z.object({ revoked: z.literal(true) }) },
      errors: [400, 401],
    },
    async (req) => {
      await auth.logout(req);
      return { revoked: true as const };
    },
  );

  let cached: Record<string, unknown> | undefined;
  route(app, doc, { method: 'GET', url: '/api/v1/openapi.json', summary: 'This document', tag: 'system', access: 'public', ok: { status: 200, description: 'OpenAPI 3.1' } }, async () => (cached ??= doc.document()));
  describeMetricsRoute(doc);
};
