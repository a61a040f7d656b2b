/**
 * Key routes on the EP: generate (EC, RSA, AES), import (RSA), show, export the public key, sign,
 * verify, encrypt, decrypt, data keys, refresh, and Aux re-derivation. Bodies are validated with
 * zod; binary values travel as base64.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { KEY_ALGS, type KeyAlg, type KeyService, type PublicKeyFormat } from '../service/key-service.js';
import { isRsaAlg } from '../protocols/rsa.js';
import type { Authenticator, Principal } from './auth.js';

/** Base64 of at most 4 MiB of binary data. */
const b64 = z.string().max(5_600_000).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const KeyIdParam = z.object({ keyId: z.string().regex(/^[0-9a-f]{16}$/, 'a key id is 16 hex characters') });
const GenerateBody = z.object({ alg: z.enum(KEY_ALGS as [KeyAlg, ...KeyAlg[]]) }).strict();
const ImportBody = z.object({ privateKeyPem: z.string().min(1).max(20_000) }).strict();
const SignBody = z
  .object({
    message: b64.optional(),
    digest: b64.optional(),
    hash: z.enum(['sha256', 'sha384', 'sha512']).optional(),
    format: z.enum(['raw', 'der']).optional(),
    scheme: z.enum(['pkcs1v15', 'pss']).optional(),
  })
  .strict();
const EncryptBody = z
  .object({ plaintext: b64, aad: b64.optional(), scheme: z.enum(['oaep', 'pkcs1v15']).optional(), hash: z.enum(['sha1', 'sha256']).optional() })
  .strict();
const DecryptBody = z
  .object({
    ciphertext: b64,
    aad: b64.optional(),
    scheme: z.enum(['oaep', 'pkcs1v15']).optional(),
    hash: z.enum(['sha1', 'sha256']).optional(),
    label: b64.optional(),
  })
  .strict();
const DataKeyBody = z.object({ bits: z.union([z.literal(128), z.literal(256)]).default(256), aad: b64.optional() }).strict();
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

const b64out = (b: Uint8Array): string => Buffer.from(b).toString('base64');
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
    const publicKey = k.alg === 'aes-256-dprf' ? null : (await keys.publicKey(k.keyId, 'pem')).value;
    return reply.status(201).send({ keyId: k.keyId, alg: k.alg, publicKey });
  });

  app.post('/api/v1/keys/import', async (req, reply) => {
    requireRole(await who(req), ['so', 'user'], 'import keys');
    const body = parse(ImportBody, req.body, 'body');
    const k = await keys.rsaAes.createRsa({ privateKeyPem: body.privateKeyPem });
    const pub = await keys.publicKey(k.keyId, 'pem');
    return reply.status(201).send({ keyId: k.keyId, alg: k.alg, publicKey: pub.value });
  });

  app.get('/api/v1/keys/:keyId', async (req) => {
    await who(req);
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const row = await keys.describe(keyId);
    const publicKey = row.alg === 'aes-256-dprf' ? null : (await keys.publicKey(keyId, 'pem')).value;
    return { keyId, alg: row.alg, epoch: row.currentEpoch, createdAt: row.createdAt, publicKey, presignaturesReady: keys.pool?.size(keyId) ?? 0 };
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
    const r = await keys.sign(keyId, { message: bytes(body.message), digest: bytes(body.digest), hash: body.hash, format: body.format, scheme: body.scheme });
    return { keyId, alg: r.alg, epoch: r.epoch, format: r.format, mode: r.mode, signature: Buffer.from(r.signature).toString('base64') };
  });

  app.post('/api/v1/keys/:keyId/verify', async (req) => {
    await who(req);
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const body = parse(VerifyBody, req.body, 'body');
    const valid = await keys.verify(
      keyId,
      { message: bytes(body.message), digest: bytes(body.digest), hash: body.hash, format: body.format, scheme: body.scheme },
      bytes(body.signature)!,
    );
    return { keyId, valid };
  });

  app.post('/api/v1/keys/:keyId/encrypt', async (req) => {
    requireRole(await who(req), ['so', 'user'], 'encrypt');
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const body = parse(EncryptBody, req.body, 'body');
    const row = await keys.describe(keyId);
    const plaintext = bytes(body.plaintext)!;
    const ciphertext = isRsaAlg(row.alg)
      ? await keys.rsaAes.rsaEncrypt(keyId, body.scheme ?? 'oaep', plaintext, body.hash ?? 'sha256')
      : await keys.rsaAes.aesEncrypt(keyId, plaintext, bytes(body.aad) ?? new Uint8Array(0));
    return { keyId, ciphertext: b64out(ciphertext) };
  });

  app.post('/api/v1/keys/:keyId/decrypt', async (req) => {
    requireRole(await who(req), ['so', 'user'], 'decrypt');
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const body = parse(DecryptBody, req.body, 'body');
    const row = await keys.describe(keyId);
    const ciphertext = bytes(body.ciphertext)!;
    const plaintext = isRsaAlg(row.alg)
      ? await keys.rsaAes.rsaDecrypt(keyId, body.scheme ?? 'oaep', ciphertext, body.hash ?? 'sha256', bytes(body.label))
      : (await keys.rsaAes.aesDecrypt(keyId, ciphertext, bytes(body.aad) ?? new Uint8Array(0))).plaintext;
    return { keyId, plaintext: b64out(plaintext) };
  });

  app.post('/api/v1/keys/:keyId/datakey', async (req) => {
    requireRole(await who(req), ['so', 'user'], 'generate data keys');
    const { keyId } = parse(KeyIdParam, req.params, 'path');
    const body = parse(DataKeyBody, req.body ?? {}, 'body');
    const dk = await keys.rsaAes.aesDataKey(keyId, body.bits, bytes(body.aad) ?? new Uint8Array(0));
    return { keyId, bits: body.bits, plaintextKey: b64out(dk.plaintextKey), ciphertext: b64out(dk.sealed) };
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
