/**
 * Threshold EC key routes on the EP (issue 3's service API over HTTPS): generate, show, export
 * the public key, sign, verify, refresh, and Aux re-derivation. Bodies are validated with zod;
 * binary values travel as base64.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { EC_ALGS, type EcAlg } from '../protocols/key-share.js';
import type { KeyService, PublicKeyFormat } from '../service/key-service.js';
import type { Authenticator, Principal } from './auth.js';

const b64 = z.string().max(1_400_000).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const KeyIdParam = z.object({ keyId: z.string().regex(/^[0-9a-f]{16}$/, 'a key id is 16 hex characters') });
const GenerateBody = z.object({ alg: z.enum(EC_ALGS as [EcAlg, ...EcAlg[]]) }).strict();
const SignBody = z
  .object({
    message: b64.optional(),
    digest: b64.optional(),
    hash: z.enum(['sha256', 'sha384', 'sha512']).optional(),
    format: z.enum(['raw', 'der']).optional(),
  })
  .strict();
const VerifyBody = SignBody.extend({ signature: b64 }).strict();
const PublicQuery = z.object({ format: z.enum(['pem', 'der', 'raw', 'jwk']).default('pem') });
const RefreshBody = z.object({}).strict().optional();

export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const r = schema.safeParse(value);
  if (!r.success) {
    const i = r.error.issues[0]!;
    throw new EkmError('EKM_BAD_REQUEST', `${where}${i.path.length ? `.${i.path.join('.')}` : ''}: ${i.message}`, undefined, 2, 400);
  }
  return r.data;
}

const bytes = (s: string | undefined): Uint8Array | undefined => (s === undefined ? undefined : new Uint8Array(Buffer.from(s, 'base64')));

function requireRole(p: Principal, roles: readonly Principal['role'][], what: string): void {
  if (!roles.includes(p.role)) throw new EkmError('EKM_FORBIDDEN', `a ${p.role} may not ${what}`, undefined, 1, 403);
}

export function keyRoutes(app: FastifyInstance, keys: KeyService, auth: Authenticator): void {
  const who = (req: FastifyRequest): Promise<Principal> => auth.authenticate(req);

  app.post('/api/v1/keys', async (req, reply) => {
    requireRole(await who(req), ['so', 'user'], 'generate keys');
    const body = parse(GenerateBody, req.body, 'body');
    const k = await keys.generateKey(body.alg);
    const pub = await keys.publicKey(k.keyId, 'pem');
    return reply.status(201).send({ keyId: k.keyId, alg: k.alg, publicKey: pub.value });
  });

  app.get('/api/v1/keys/:keyId', async (req) => {
    await who(req);
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const { row } = await keys.getKey(keyId);
    const pub = await keys.publicKey(keyId, 'pem');
    return { keyId, alg: row.alg, epoch: row.currentEpoch, createdAt: row.createdAt, publicKey: pub.value, presignaturesReady: keys.pool?.size(keyId) ?? 0 };
  });

  app.get('/api/v1/keys/:keyId/public', async (req, reply) => {
    await who(req);
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const { format } = parse(PublicQuery, req.query, 'query');
    const pub = await keys.publicKey(keyId, format as PublicKeyFormat);
    if (pub.value instanceof Uint8Array) return reply.send({ alg: pub.alg, format, value: Buffer.from(pub.value).toString('base64') });
    return reply.send({ alg: pub.alg, format, value: pub.value });
  });

  app.post('/api/v1/keys/:keyId/sign', async (req) => {
    requireRole(await who(req), ['so', 'user'], 'sign');
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const body = parse(SignBody, req.body, 'body');
    const r = await keys.sign(keyId, { message: bytes(body.message), digest: bytes(body.digest), hash: body.hash, format: body.format });
    return { keyId, alg: r.alg, epoch: r.epoch, format: r.format, mode: r.mode, signature: Buffer.from(r.signature).toString('base64') };
  });

  app.post('/api/v1/keys/:keyId/verify', async (req) => {
    await who(req);
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const body = parse(VerifyBody, req.body, 'body');
    const valid = await keys.verify(keyId, { message: bytes(body.message), digest: bytes(body.digest), hash: body.hash, format: body.format }, bytes(body.signature)!);
    return { keyId, valid };
  });

  app.post('/api/v1/keys/:keyId/refresh', async (req) => {
    requireRole(await who(req), ['so', 'user'], 'refresh keys');
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    parse(RefreshBody, req.body ?? undefined, 'body');
    const r = await keys.refresh([keyId]);
    return { keyId, epoch: r.keys[0]?.to ?? null };
  });

  app.post('/api/v1/servers/aux/rederive', async (req) => {
    requireRole(await who(req), ['so'], 're-derive the Aux');
    const r = await keys.rederiveAux();
    return { keys: r.keys.length };
  });
}
