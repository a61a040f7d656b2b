/**
 * Partition rules for the key routes of keys.ts, applied around them without changing them:
 * a key is seen only from its own partition (elsewhere it answers 404, as if it did not exist);
 * generation in a FIPS-only partition takes only FIPS-approved algorithms; a new key is placed in
 * the caller's partition; the Aux re-derivation is for the root SO only.
 *
 * Placing the key here is interim: the key service should write `partition_id` itself when it
 * creates the key record (the column exists since schema 3, default 1 = root).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { EkmError } from '../errors.js';
import { ROOT_PARTITION_ID } from '../service/audit.js';
import type { Store } from '../store/store.js';
import type { Authenticator } from './auth.js';

const KEY_ROUTE = /^\/api\/v1\/keys\/:keyId(\/|$)/;
const created = new WeakMap<FastifyRequest, string>();

/** The key id a `POST /api/v1/keys` or `/keys/import` created (for the audit log). */
export function createdKeyId(req: FastifyRequest): string | undefined {
  return created.get(req);
}

export function keyAccess(app: FastifyInstance, auth: Authenticator, store: Store): void {
  app.addHook('preHandler', async (req) => {
    const url = req.routeOptions.url ?? '';
    if (req.method === 'POST' && url === '/api/v1/keys') {
      const p = await auth.authenticate(req);
      const alg = (req.body as { alg?: unknown } | undefined)?.alg;
      if (typeof alg === 'string') await auth.accounts.checkKeyAlg(p, alg);
      return;
    }
    if (url === '/api/v1/servers/aux/rederive') {
      const p = await auth.authenticate(req);
      if (p.partitionId !== ROOT_PARTITION_ID || p.role !== 'so') throw new EkmError('EKM_FORBIDDEN', 'not allowed: only the root SO re-derives the Aux', undefined, 1, 403);
      return;
    }
    if (KEY_ROUTE.test(url)) {
      const keyId = (req.params as { keyId?: unknown }).keyId;
      if (typeof keyId !== 'string' || !/^[0-9a-f]{16}$/.test(keyId)) return; // keys.ts answers 400
      const p = await auth.authenticate(req);
      const owner = await store.getKeyPartition(keyId);
      if (owner !== undefined && owner !== p.partitionId) throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`, undefined, 1, 404);
    }
  });

  app.addHook('onSend', async (req, reply, payload) => {
    const url = req.routeOptions.url;
    if (req.method !== 'POST' || (url !== '/api/v1/keys' && url !== '/api/v1/keys/import') || reply.statusCode !== 201 || typeof payload !== 'string') return payload;
    const keyId = (JSON.parse(payload) as { keyId?: unknown }).keyId;
    if (typeof keyId !== 'string') return payload;
    created.set(req, keyId);
    const p = auth.identity(req)?.principal;
    if (p && p.partitionId !== ROOT_PARTITION_ID && (await store.getKeyPartition(keyId)) !== p.partitionId) await store.setKeyPartition(keyId, p.partitionId);
    return payload;
  });
}
