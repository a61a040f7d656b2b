/**
 * The audit routes (`ucl audit list|verify`) and the hook that records every security-relevant
 * request once it is answered: who (`user@partition`, or the claimed user of a failed login),
 * partition, operation, key id, result, status, client address, request id, and the error code
 * when it failed. Never a body, a password or a token. The same facts go to the structured log.
 */
import type { FastifyInstance, FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { NAME_RE } from '../service/accounts.js';
import { AUDIT_ACKNOWLEDGE, type AuditLog, ROOT_PARTITION_ID, acknowledgementDetail } from '../service/audit.js';
import { KEY_UID_RE } from '../store/key-records.js';
import type { Store } from '../store/store.js';
import { type Authenticator, type Principal, claimedActor } from './auth.js';
import { auditedKeyId } from './keys.js';
import type { ApiDoc } from './openapi.js';
import { route } from './routing.js';

const OPERATIONS: Record<string, string> = {
  'POST /api/v1/token': 'auth.token',
  'DELETE /api/v1/token': 'auth.logout',
  'POST /api/v1/audit/acknowledge': AUDIT_ACKNOWLEDGE,
  'POST /api/v1/keys': 'key.generate',
  'GET /api/v1/keys': 'key.list',
  'GET /api/v1/keys/:keyId': 'key.show',
  'PATCH /api/v1/keys/:keyId': 'key.update',
  'DELETE /api/v1/keys/:keyId': 'key.destroy',
  'GET /api/v1/keys/:keyId/public': 'key.export-public',
  'POST /api/v1/keys/:keyId/sign': 'key.sign',
  'POST /api/v1/keys/:keyId/verify': 'key.verify',
  'POST /api/v1/keys/:keyId/refresh': 'key.refresh',
  'POST /api/v1/keys/import': 'key.import',
  'POST /api/v1/keys/:keyId/encrypt': 'key.encrypt',
  'POST /api/v1/keys/:keyId/decrypt': 'key.decrypt',
  'POST /api/v1/keys/:keyId/datakey': 'key.datakey',
  'POST /api/v1/servers/aux/rederive': 'server.aux-rederive',
  'POST /api/v1/servers/inspect': 'server.inspect',
  'POST /api/v1/servers': 'server.create',
  'POST /api/v1/servers/aux': 'server.replace-aux',
  'DELETE /api/v1/servers/:name': 'server.delete',
  'GET /api/v1/partitions': 'partition.list',
  'POST /api/v1/partitions': 'partition.create',
  'GET /api/v1/partitions/:partition': 'partition.show',
  'PATCH /api/v1/partitions/:partition': 'partition.update',
  'DELETE /api/v1/partitions/:partition': 'partition.delete',
  'GET /api/v1/partitions/:partition/keys': 'key.list',
  'GET /api/v1/partitions/:partition/users': 'user.list',
  'POST /api/v1/partitions/:partition/users': 'user.create',
  'GET /api/v1/partitions/:partition/users/:user': 'user.show',
  'DELETE /api/v1/partitions/:partition/users/:user': 'user.delete',
  'POST /api/v1/partitions/:partition/users/:user/reset-password': 'user.reset-password',
  'GET /api/v1/me': 'user.whoami',
  'POST /api/v1/me/password': 'user.change-password',
  'GET /api/v1/audit': 'audit.list',
  'GET /api/v1/audit/verify': 'audit.verify',
};

/** Routes that are not security-relevant (no credentials, no secrets): not audited. */
const NOT_AUDITED = new Set(['/api/v1/health', '/api/v1/info', '/api/v1/servers', '/api/v1/servers/test', '/api/v1/openapi.json', '/metrics']);

/** The operation name of a request (`key.sign`, …), or `METHOD route` for one not in the table. */
export function operationOf(method: string, url: string | undefined): string {
  if (!url) return 'unmatched';
  return OPERATIONS[`${method} ${url}`] ?? `${method} ${url}`;
}

const errorCodes = new WeakMap<FastifyRequest, string>();

const Problem = z.object({ seq: z.number(), problem: z.string() });
const VerifyOut = z.object({
  ok: z.boolean(),
  rows: z.number(),
  head: z.object({ seq: z.number(), hash: z.string() }).nullable(),
  problems: z.array(Problem),
  notices: z.array(Problem).describe('rows that verify once the store’s replacement of ill-formed text is undone'),
  acknowledged: z.array(Problem.extend({ by: z.object({ seq: z.number(), actor: z.string().nullable() }) })).describe('content mismatches acknowledged by a later row'),
});
const AcknowledgeBody = z.object({ row: z.number().int().positive().describe('the row whose content does not match its hash') }).strict();

const ListQuery = z
  .object({
    after: z.coerce.number().int().min(0).optional().describe('seq to continue after'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
  })
  .strict();
const Row = z.object({
  seq: z.number(),
  at: z.string(),
  requestId: z.string().nullable(),
  actor: z.string().nullable(),
  partition: z.string().nullable(),
  partitionId: z.number().nullable().describe('the partition’s id (stable: a name may be given again later); null in rows written before ids were recorded, and when no such partition exists'),
  operation: z.string(),
  keyId: z.string().nullable(),
  result: z.enum(['ok', 'denied', 'error']),
  status: z.number().nullable(),
  client: z.string().nullable(),
  detail: z.string().nullable(),
  prevHash: z.string(),
  hash: z.string(),
  sig: z.string(),
  keyRef: z.string(),
});

export interface AuditRoutesOptions {
  readonly audit: AuditLog;
  readonly store: Pick<Store, 'getPartitionById'>;
  readonly auth: Authenticator;
  readonly doc: ApiDoc;
}

export const auditRoutes: FastifyPluginAsync<AuditRoutesOptions> = async (app, { audit, store, auth, doc }) => {
  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/audit',
      summary: 'Audit rows in order (root SO and auditors: all; a partition’s SO and auditors: that partition’s, by its id — never an earlier partition’s of the same name)',
      tag: 'audit',
      access: 'so, auditor',
      query: ListQuery,
      ok: { status: 200, description: 'rows', schema: z.object({ rows: z.array(Row), next: z.number().nullable() }) },
      errors: [403],
      guard: async (req) => {
        const a = await auth.authenticate(req);
        if (a.role === 'user') throw new EkmError('EKM_FORBIDDEN', 'not allowed: a user does not read the audit log');
      },
    },
    async (req) => {
      const a = await auth.authenticate(req);
      const q = req.query;
      const own = a.partitionId === ROOT_PARTITION_ID ? undefined : await store.getPartitionById(a.partitionId);
      if (a.partitionId !== ROOT_PARTITION_ID && !own) throw new EkmError('EKM_UNAUTHORIZED', 'the partition of this credential no longer exists');
      const rows = await audit.list({ after: q.after, limit: q.limit + 1, partition: own });
      const page = rows.slice(0, q.limit);
      return { rows: page, next: rows.length > q.limit ? page[page.length - 1]!.seq : null };
    },
  );
  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/audit/verify',
      summary: 'Walk the whole chain: links, hashes, signatures, gaps',
      tag: 'audit',
      access: 'so, auditor of root',
      ok: {
        status: 200,
        description: 'result (ok=false lists the first problems)',
        schema: VerifyOut,
      },
      errors: [403],
      guard: async (req) => {
        const a = await auth.authenticate(req);
        if (a.partitionId !== ROOT_PARTITION_ID || a.role === 'user') throw new EkmError('EKM_FORBIDDEN', 'not allowed: the root SO and root auditors verify the audit chain');
      },
    },
    async () => audit.verify(),
  );
  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/audit/acknowledge',
      summary:
        'Record, in a signed row of the chain, that a row whose content does not match its hash was examined (ill-formed text stored by an older release); the row itself is never rewritten',
      tag: 'audit',
      access: 'so of root',
      body: AcknowledgeBody,
      ok: { status: 200, description: 'acknowledged', schema: z.object({ acknowledged: z.number(), digest: z.string() }) },
      errors: [403, 404, 409],
      guard: async (req) => {
        const a = await auth.authenticate(req);
        if (a.partitionId !== ROOT_PARTITION_ID || a.role !== 'so') throw new EkmError('EKM_FORBIDDEN', 'not allowed: only the root SO acknowledges audit rows');
      },
    },
    async (req) => {
      const seq = req.body.row;
      const { digest } = await audit.acknowledgeable(seq);
      auditedDetails.set(req, acknowledgementDetail(seq, digest));
      return { acknowledged: seq, digest };
    },
  );
};

const auditedDetails = new WeakMap<FastifyRequest, string>();

const auditedPartitionIds = new WeakMap<FastifyRequest, number>();

/**
 * Files the request's audit row under partition `id`: for a route whose partition is gone by the
 * time the row is written (a deleted partition), so that the row still names the id it acted on.
 */
export function auditUnderPartition(req: FastifyRequest, id: number): void {
  auditedPartitionIds.set(req, id);
}

/**
 * The id of the partition named `name` in a row: the one the route acted on, the caller's own,
 * or (a partition named in a path or claimed by a failed login) the one of that name now; null
 * when there is none. The id, not the name, decides whose audit rows these are.
 */
async function auditedPartitionId(
  store: Pick<Store, 'getPartition'>,
  req: FastifyRequest,
  name: string | null,
  principal: Principal | undefined,
): Promise<number | null> {
  if (name === null) return null;
  const acted = auditedPartitionIds.get(req);
  if (acted !== undefined) return acted;
  if (principal?.partition === name) return principal.partitionId;
  // Claimed text that is no partition name needs no lookup.
  if (!NAME_RE.test(name)) return null;
  return (await store.getPartition(name))?.id ?? null;
}


/**
 * Records every answered request in the audit log (and the structured log). Added on the root
 * instance before the route plugins load, so that every route's scope has it; the rows still
 * waiting for their group commit are written when the app closes, before the store does.
 */
export function auditHooks(
  app: FastifyInstance,
  { auth, audit, store, log }: { auth: Authenticator; audit: AuditLog; store: Pick<Store, 'getPartition'>; log: Logger },
): void {
  app.addHook('onClose', async () => audit.drain());
  app.addHook('onError', async (req, _reply, err) => {
    errorCodes.set(req, err instanceof EkmError ? err.code : 'EKM_BAD_REQUEST');
  });

  app.addHook('onResponse', async (req, reply) => {
    const url = req.routeOptions.url;
    if (!url || NOT_AUDITED.has(url)) return;
    try {
      const who = auth.identity(req);
      let actor = who?.principal ? `${who.principal.user}@${who.principal.partition}` : (who?.claimed ?? null);
      let partition = who?.principal?.partition ?? (who?.claimed ? who.claimed.slice(who.claimed.lastIndexOf('@') + 1) : null);
      if (!actor && url === '/api/v1/token') {
        const u = (req.body as { username?: unknown } | undefined)?.username;
        if (typeof u === 'string') {
          actor = claimedActor(u);
          partition = actor.slice(actor.lastIndexOf('@') + 1);
        }
      }
      const params = req.params as { keyId?: unknown; partition?: unknown } | undefined;
      // Partition-scoped routes are filed under the partition acted on (its auditors see the root SO's acts in it).
      if (typeof params?.partition === 'string' && NAME_RE.test(params.partition) && who?.principal) partition = params.partition;
      const partitionId = await auditedPartitionId(store, req, partition, who?.principal);
      const keyId = auditedKeyId(req) ?? (typeof params?.keyId === 'string' && KEY_UID_RE.test(params.keyId) ? params.keyId : null);
      const status = reply.statusCode;
      const entry = {
        requestId: String(req.id).slice(0, 64),
        actor,
        partition,
        partitionId,
        operation: operationOf(req.method, url),
        keyId,
        result: status < 400 ? ('ok' as const) : status === 401 || status === 403 ? ('denied' as const) : ('error' as const),
        status,
        client: req.ip,
        detail: status >= 400 ? (errorCodes.get(req) ?? null) : (auditedDetails.get(req) ?? null),
      };
      const rec = await audit.record(entry);
      log.info({ event: 'audit', seq: rec.seq, ...entry }, 'audit');
    } catch (e) {
      log.error({ event: 'audit_failed', err: (e as Error).message, requestId: req.id }, 'could not append to the audit log');
    }
  });
}
