/**
 * Partition routes (`ucl partition …`): list, create, show, change settings, delete, and the
 * keys a partition holds (with paging and an algorithm filter). Rules live in
 * src/service/accounts.ts; this layer validates and maps.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { DEFAULT_MAX_FAILED_LOGINS, MAX_PASSWORD, NAME_RE } from '../service/accounts.js';
import { KEY_UID_RE } from '../store/key-records.js';
import { auditUnderPartition } from './audit.js';
import type { Authenticator } from './auth.js';
import type { ApiDeps } from './deps.js';
import type { ApiDoc } from './openapi.js';
import { route } from './routing.js';

const Name = z.string().regex(NAME_RE, "letters, digits, '_', '.', '-' (up to 64)");
export const PartitionParam = z.object({ partition: Name }).strict();
const CreateBody = z
  .object({
    name: Name,
    soPassword: z.string().min(1).max(MAX_PASSWORD).describe('password of the new partition’s `so` user (at least 8 characters)'),
    fipsRequired: z.boolean().optional().describe('only FIPS-approved algorithms in this partition'),
    maxFailedLogins: z.number().int().min(1).max(100).optional().describe(`failed logins before a user is locked (default ${DEFAULT_MAX_FAILED_LOGINS})`),
  })
  .strict();
const UpdateBody = z.object({ maxFailedLogins: z.number().int().min(1).max(100) }).strict();
const DeleteQuery = z.object({ force: z.enum(['true', 'false']).optional().describe('delete even when the partition holds keys') }).strict();
const KeysQuery = z
  .object({
    after: z.string().regex(KEY_UID_RE).optional().describe('key id to continue after (paging)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    alg: z.string().regex(/^[a-z0-9-]{1,32}$/).optional().describe('e.g. ecdsa-p256, rsa-2048, aes-256-dprf'),
  })
  .strict();
const PartitionOut = z.object({ index: z.number(), name: z.string(), fipsRequired: z.boolean(), maxFailedLogins: z.number(), createdAt: z.string(), keys: z.number() });

export interface PartitionRoutesOptions {
  readonly deps: Pick<ApiDeps, 'store' | 'catalog'>;
  readonly auth: Authenticator;
  readonly doc: ApiDoc;
}

export const partitionRoutes: FastifyPluginAsync<PartitionRoutesOptions> = async (app, { deps, auth, doc }) => {
  const { store, catalog } = deps;
  const accounts = auth.accounts;
  // Every partition route authenticates before its input is validated.
  const guard = (req: FastifyRequest): Promise<unknown> => auth.authenticate(req);
  route(
    app,
    doc,
    { method: 'GET', url: '/api/v1/partitions', summary: 'List partitions (root SO and auditors: all; others: their own)', tag: 'partitions', access: 'any', ok: { status: 200, description: 'partitions', schema: z.object({ partitions: z.array(PartitionOut) }) } },
    async (req) => ({ partitions: await accounts.listPartitions(await auth.authenticate(req)) }),
  );
  route(
    app,
    doc,
    { method: 'POST', url: '/api/v1/partitions', summary: 'Create a partition and its `so` user', tag: 'partitions', access: 'so of root', body: CreateBody, ok: { status: 201, description: 'created', schema: PartitionOut }, errors: [403, 409], guard },
    async (req, reply) => {
      const actor = await auth.authenticate(req);
      return reply.status(201).send(await accounts.createPartition(actor, req.body));
    },
  );
  route(
    app,
    doc,
    { method: 'GET', url: '/api/v1/partitions/:partition', summary: 'Show a partition', tag: 'partitions', access: 'any role of the partition; root SO and auditors', params: PartitionParam, ok: { status: 200, description: 'partition', schema: PartitionOut }, errors: [404], guard },
    async (req) => {
      const actor = await auth.authenticate(req);
      return accounts.showPartition(actor, req.params.partition);
    },
  );
  route(
    app,
    doc,
    { method: 'PATCH', url: '/api/v1/partitions/:partition', summary: 'Change partition settings (lockout threshold)', tag: 'partitions', access: 'so of the partition; root SO', params: PartitionParam, body: UpdateBody, ok: { status: 200, description: 'partition', schema: PartitionOut }, errors: [403, 404], guard },
    async (req) => {
      const actor = await auth.authenticate(req);
      return accounts.updatePartition(actor, req.params.partition, req.body);
    },
  );
  route(
    app,
    doc,
    {
      method: 'DELETE',
      url: '/api/v1/partitions/:partition',
      summary: 'Delete a partition (never root; refused while it holds keys unless force=true)',
      tag: 'partitions',
      access: 'so of root',
      params: PartitionParam,
      query: DeleteQuery,
      ok: { status: 200, description: 'deleted', schema: z.object({ deleted: z.string(), keysDeleted: z.number() }) },
      errors: [403, 404, 409],
      guard,
    },
    async (req) => {
      const actor = await auth.authenticate(req);
      const { partition } = req.params;
      const { force } = req.query;
      const before = await store.getPartition(partition);
      if (before) auditUnderPartition(req, before.id);
      // The store deletes the partition's bearer tokens with its users, for every EP that shares the store.
      const r = await accounts.deletePartition(actor, partition, force === 'true', (id) => catalog.destroyPartitionKeys(id));
      return { deleted: partition, keysDeleted: r.keysDeleted };
    },
  );
  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/partitions/:partition/keys',
      summary: 'List the keys of a partition (paging with after/limit; filter by alg)',
      tag: 'keys',
      access: 'any role of the partition',
      params: PartitionParam,
      query: KeysQuery,
      ok: {
        status: 200,
        description: 'keys',
        schema: z.object({ partition: z.string(), index: z.number(), total: z.number(), keys: z.array(z.object({ keyId: z.string(), alg: z.string(), epoch: z.number(), createdAt: z.string() })), next: z.string().nullable() }),
      },
      errors: [403, 404],
      guard,
    },
    async (req) => {
      const actor = await auth.authenticate(req);
      const { partition } = req.params;
      const q = req.query;
      const p = await accounts.partitionFor(actor, partition);
      if (actor.partitionId !== p.id) {
        // Root SO and auditors see that other partitions exist, not their keys.
        throw new EkmError('EKM_FORBIDDEN', `not allowed: keys of partition ${p.name} are seen only from within it`);
      }
      const rows = (await store.listPartitionKeys(p.id, { after: q.after, limit: q.limit + 1, alg: q.alg })).filter((k) => k.state === 'active');
      const page = rows.slice(0, q.limit);
      return {
        partition: p.name,
        index: p.id - 1,
        total: await store.countPartitionKeys(p.id),
        keys: page.map((k) => ({ keyId: k.keyId, alg: k.alg, epoch: k.currentEpoch, createdAt: k.createdAt })),
        next: rows.length > q.limit ? page[page.length - 1]!.keyId : null,
      };
    },
  );
};
