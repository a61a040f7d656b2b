/**
 * Scale-out routes (`ucl server create`): who the new servers are, then adding them as a triplet.
 * Root SO only: a new triplet receives the role secrets of the cluster's stores.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { ROOT_PARTITION_ID } from '../service/audit.js';
import type { Authenticator } from './auth.js';
import type { ApiScaleOut } from './deps.js';
import type { ApiDoc } from './openapi.js';
import { route } from './routing.js';

const ServerName = z.string().min(1).max(300).describe('host[:port] of a server bootstrapped with ekm_boot_additional_server.sh');
const NewTriplet = z.object({ ep: ServerName, partner: ServerName, aux: ServerName }).strict();
const NewAux = z.object({ aux: ServerName }).strict();
const Approval = {
  approve: z
    .record(z.string(), z.string().regex(/^[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){31}$/))
    .optional()
    .describe('server name → approved SHA-256 certificate fingerprint'),
  force: z.boolean().optional().describe('approve every certificate without comparing (ucl -f)'),
};
const CreateBody = NewTriplet.extend(Approval).strict();
const ReplaceAuxBody = NewAux.extend(Approval).strict();
const ServerParam = z.object({ name: z.string().min(1).max(300) }).strict();
const DeleteQuery = z.object({ force: z.enum(['true', 'false']).optional().describe('remove even while its triplet runs') }).strict();
const ServerView = z.object({
  role: z.enum(['ep', 'partner', 'aux']),
  name: z.string(),
  address: z.string(),
  fingerprint: z.string(),
  version: z.string(),
});

export interface ServerRoutesOptions {
  readonly scaleOut: ApiScaleOut;
  readonly auth: Authenticator;
  readonly doc: ApiDoc;
}

const Inspect = z.union([NewTriplet, NewAux]);

export const serverRoutes: FastifyPluginAsync<ServerRoutesOptions> = async (app, { scaleOut, auth, doc }) => {
  /** Every server route is the root SO's, checked before its input is validated. */
  async function rootSo(req: FastifyRequest): Promise<void> {
    const p = await auth.authenticate(req);
    if (p.role !== 'so' || p.partitionId !== ROOT_PARTITION_ID)
      throw new EkmError('EKM_FORBIDDEN', 'not allowed: only the root SO adds servers');
  }
  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/servers/inspect',
      summary: 'Contact three servers waiting to join, or a new Aux alone, and show their certificates (changes nothing)',
      tag: 'system',
      access: 'so of root',
      body: Inspect,
      ok: { status: 200, description: 'the servers, for approval', schema: z.object({ servers: z.array(ServerView) }) },
      errors: [403, 409, 502],
      guard: rootSo,
    },
    async (req) => {
      const body = req.body;
      return { servers: 'ep' in body ? await scaleOut.inspect(body) : [await scaleOut.inspectAux(body.aux)] };
    },
  );
  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/servers/aux',
      summary:
        "Replace this EP's triplet's Aux by a server waiting to join (ucl server create -a); its shares are re-derived and every key refreshed once it runs",
      tag: 'system',
      access: 'so of root',
      body: ReplaceAuxBody,
      ok: { status: 201, description: 'the new Aux', schema: z.object({ tripletId: z.string(), servers: z.array(ServerView) }) },
      errors: [403, 409, 502, 503],
      guard: rootSo,
    },
    async (req, reply) => {
      const { approve, force, aux } = req.body;
      if (!force && !approve) throw new EkmError('EKM_NOT_APPROVED', 'give the approved certificate fingerprint (approve), or force');
      return reply.status(201).send(await scaleOut.replaceAux({ aux, approve: approve ?? {}, force: force === true }));
    },
  );
  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/servers',
      summary: 'Add a triplet of servers waiting to join (ucl server create -e -p -a)',
      tag: 'system',
      access: 'so of root',
      body: CreateBody,
      ok: { status: 201, description: 'the new triplet', schema: z.object({ tripletId: z.string(), servers: z.array(ServerView) }) },
      errors: [403, 409, 502, 503],
      guard: rootSo,
    },
    async (req, reply) => {
      const { approve, force, ...servers } = req.body;
      if (!force && !approve) throw new EkmError('EKM_NOT_APPROVED', 'give the approved certificate fingerprints (approve), or force');
      return reply.status(201).send(await scaleOut.create({ servers, approve: approve ?? {}, force: force === true }));
    },
  );
  route(
    app,
    doc,
    {
      method: 'DELETE',
      url: '/api/v1/servers/:name',
      summary: 'Remove a server of another, stopped triplet from the cluster list (ucl server delete)',
      tag: 'system',
      access: 'so of root',
      params: ServerParam,
      query: DeleteQuery,
      ok: { status: 200, description: 'the removed server', schema: z.object({ deleted: z.object({}).passthrough() }) },
      errors: [403, 404, 409],
      guard: rootSo,
    },
    async (req) => {
      const { name } = req.params;
      const { force } = req.query;
      return { deleted: await scaleOut.delete(name, force === 'true') };
    },
  );
};
