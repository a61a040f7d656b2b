/**
 * Key routes on the EP, schema first: generate (EC, RSA, AES) and import (RSA) with a name and a
 * description, list with paging and filters, show, rename / describe / (de)activate, destroy,
 * export the public key, sign, verify, encrypt, decrypt, data keys, refresh, and the Aux
 * re-derivation. A key is named in the path by its UID or by its name, always within the caller's
 * partition (a key of another partition answers 404, as if it did not exist). Who may do what
 * is checked here; whether the key may serve the purpose is the catalogue's rule.
 */
import { performance } from 'node:perf_hooks';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { isRsaAlg } from '../protocols/rsa.js';
import { ROOT_PARTITION_ID } from '../service/audit.js';
import { KEY_NAME_RE, type KeyPurpose, MAX_DESCRIPTION } from '../service/key-catalog.js';
import { KEY_ALGS, type KeyAlg, type PublicKeyFormat } from '../service/key-service.js';
import { importPublicKey } from '../service/keys/imported-public-keys.js';
import { KEY_UID_RE, type KeyRow } from '../store/key-records.js';
import type { DestroyedKeyRow } from '../store/store.js';
import type { Authenticator, Principal } from './auth.js';
import type { ApiDeps } from './deps.js';
import type { ApiDoc } from './openapi.js';
import { parse, route } from './routing.js';

/** Base64 of at most 4 MiB of binary data. */
const b64 = z.string().max(5_600_000).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64').describe('base64');
const Alg = z.enum(KEY_ALGS as [KeyAlg, ...KeyAlg[]]);
const KeyName = z.string().regex(KEY_NAME_RE, 'a name has 1 to 64 printable characters and no "/"').refine((s) => !KEY_UID_RE.test(s), 'a name cannot be 16 hex characters (that is a UID)');
const Description = z.string().max(MAX_DESCRIPTION);
const KeyRef = z.object({ keyId: z.string().min(1).max(64).describe('the key’s UID (16 hex characters) or its name') }).strict();
const GenerateBody = z
  .object({
    alg: Alg,
    name: KeyName.optional(),
    description: Description.optional(),
    notAfter: z.iso
      .datetime({ offset: true })
      .optional()
      .describe('EC signing keys: the time after which the key no longer signs, fixed for its life and enforced by all three servers (ISO 8601)'),
  })
  .strict();
const ImportBody = z
  .object({
    privateKeyPem: z.string().min(1).max(20_000).optional().describe('an RSA private key, PKCS#8 or PKCS#1 PEM: split into shares at once'),
    publicKeyPem: z.string().min(1).max(20_000).optional().describe('an SPKI PEM public key (ECDSA, Ed25519, RSA): kept to verify (RSA: to encrypt)'),
    name: KeyName.optional(),
    description: Description.optional(),
  })
  .strict()
  .refine((b) => (b.privateKeyPem === undefined) !== (b.publicKeyPem === undefined), 'give exactly one of privateKeyPem and publicKeyPem');
const UpdateBody = z
  .object({
    name: KeyName.nullable().optional().describe('new name; null removes it'),
    description: Description.nullable().optional(),
    state: z.enum(['active', 'deactivated']).optional().describe('deactivated: verifies and decrypts, never signs or encrypts'),
  })
  .strict()
  .refine((b) => b.name !== undefined || b.description !== undefined || b.state !== undefined, 'give name, description or state');
const ListQuery = z
  .object({
    after: z.string().regex(KEY_UID_RE).optional().describe('UID to continue after (paging)'),
    limit: z.coerce.number().int().min(1).max(1000).default(100),
    alg: Alg.optional(),
    name: KeyName.optional().describe('exact name'),
    state: z.enum(['active', 'deactivated', 'destroyed']).optional().describe('default: active and deactivated keys'),
  })
  .strict();
const SignBody = z
  .object({
    message: b64.optional(),
    digest: b64.optional().describe('a precomputed digest instead of message (ECDSA, RSA)'),
    hash: z.enum(['sha256', 'sha384', 'sha512']).optional(),
    format: z.enum(['raw', 'der']).optional().describe('ECDSA signature encoding; raw = r‖s'),
    scheme: z.enum(['pkcs1v15', 'pss']).optional().describe('RSA signature scheme'),
  })
  .strict();
const VerifyBody = SignBody.extend({ signature: b64 }).strict();
const EncryptBody = z
  .object({ plaintext: b64, aad: b64.optional().describe('AES: bound, must match on decrypt'), scheme: z.enum(['oaep', 'pkcs1v15']).optional(), hash: z.enum(['sha1', 'sha256']).optional() })
  .strict();
const DecryptBody = z
  .object({ ciphertext: b64, aad: b64.optional(), scheme: z.enum(['oaep', 'pkcs1v15']).optional(), hash: z.enum(['sha1', 'sha256']).optional(), label: b64.optional() })
  .strict();
// The whole body may be left out: a 256-bit data key without AAD.
const DataKeyBody = z.object({ bits: z.union([z.literal(128), z.literal(256)]).default(256), aad: b64.optional() }).strict().default({ bits: 256 });
const PublicQuery = z.object({ format: z.enum(['pem', 'der', 'raw', 'jwk']).default('pem') }).strict();
const EmptyBody = z.object({}).strict().optional();

const KeyOut = z.object({
  keyId: z.string(),
  alg: z.string(),
  name: z.string().nullable(),
  description: z.string().nullable(),
  state: z.enum(['active', 'deactivated', 'destroyed']),
  stateChangedAt: z.string().nullable(),
  createdAt: z.string(),
  epoch: z.number().nullable().describe('share epoch (null once destroyed)'),
  imported: z.enum(['public']).nullable().describe('"public": an imported public key, without shares'),
});
const NotAfterOut = z.string().nullable().describe('when the key stops signing (its policy; null: no limit)');
const KeyShowOut = KeyOut.extend({
  publicKey: z.string().nullable().describe('PEM (null for AES and destroyed keys)'),
  presignaturesReady: z.number(),
  notAfter: NotAfterOut,
});

const b64out = (b: Uint8Array): string => Buffer.from(b).toString('base64');
const bytes = (s: string | undefined): Uint8Array | undefined => (s === undefined ? undefined : new Uint8Array(Buffer.from(s, 'base64')));

function keyOut(k: KeyRow | DestroyedKeyRow): z.infer<typeof KeyOut> {
  const live = 'usage' in k;
  return {
    keyId: k.keyId,
    alg: k.alg,
    name: k.name,
    description: k.description,
    state: live ? k.usage : 'destroyed',
    stateChangedAt: live ? k.usageChangedAt : k.destroyedAt,
    createdAt: k.createdAt,
    epoch: live ? k.currentEpoch : null,
    imported: live && k.publicKey ? 'public' : null,
  };
}

const keyIds = new WeakMap<FastifyRequest, string>();

/** The UID of the key a request acted on (resolved from a name, or just created), for the audit log. */
export function auditedKeyId(req: FastifyRequest): string | undefined {
  return keyIds.get(req);
}

/**
 * Runs the key service's part of a request and reports its duration as `Server-Timing: op;dur=…`,
 * so that a client (and the REST benchmark) can tell the API's own time from the protocol's.
 */
async function timedOp<T>(reply: FastifyReply, op: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  try {
    return await op();
  } finally {
    void reply.header('server-timing', `op;dur=${(performance.now() - t0).toFixed(3)}`);
  }
}

const CRYPTO_ROLES = ['so', 'user'] as const;
const ANY_ROLE = ['so', 'user', 'auditor'] as const;
/**
 * Destroying a key cannot be undone, and for an AES key it destroys every object the key
 * encrypted: an application's credentials (a `user`) may use and deactivate keys, and only the
 * partition's SO destroys one (docs/security-model.md §1.3a).
 */
const DESTROY_ROLES = ['so'] as const;

export interface KeyRoutesOptions {
  readonly deps: Pick<ApiDeps, 'keys' | 'catalog' | 'store'>;
  readonly auth: Authenticator;
  readonly doc: ApiDoc;
}

export const keyRoutes: FastifyPluginAsync<KeyRoutesOptions> = async (app, { deps, auth, doc }) => {
  const { keys, catalog, store } = deps;
  /** The key of the path, as the route's guard resolved it. */
  const resolvedKeys = new WeakMap<FastifyRequest, KeyRow>();

  async function caller(req: FastifyRequest, roles: readonly Principal['role'][], what: string): Promise<Principal> {
    const p = await auth.authenticate(req);
    if (!roles.includes(p.role)) throw new EkmError('EKM_FORBIDDEN', `not allowed: ${p.role === 'auditor' ? 'an auditor' : `a ${p.role}`} may not ${what}`);
    return p;
  }

  /** A guard: the caller has one of `roles`. */
  const allow =
    (roles: readonly Principal['role'][], what: string) =>
    (req: FastifyRequest): Promise<Principal> =>
      caller(req, roles, what);

  /**
   * A guard: the caller has one of `roles`, and the key of the path exists in the caller's
   * partition and may serve `purpose` (404/409/410 before any word about the body, as ever).
   */
  const keyOfPath =
    (roles: readonly Principal['role'][], what: string, purpose: KeyPurpose) =>
    async (req: FastifyRequest): Promise<void> => {
      const p = await caller(req, roles, what);
      const key = await catalog.resolve(p.partitionId, parse(KeyRef, req.params, 'path').keyId, purpose);
      keyIds.set(req, key.keyId);
      resolvedKeys.set(req, key);
    };

  /** The caller and the key its route's `keyOfPath` guard resolved. */
  async function keyFor(req: FastifyRequest): Promise<{ p: Principal; key: KeyRow }> {
    const key = resolvedKeys.get(req);
    if (!key) throw new EkmError('EKM_INTERNAL', 'a key route ran without resolving its key');
    return { p: await auth.authenticate(req), key };
  }

  const publicPem = async (k: KeyRow): Promise<string | null> => (k.alg === 'aes-256-dprf' ? null : ((await keys.publicKey(k.keyId, 'pem')).value as string));
  const notAfterOut = async (k: KeyRow): Promise<string | null> => {
    const { notAfter } = await keys.policyOf(k);
    return notAfter === undefined ? null : new Date(notAfter).toISOString();
  };

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys',
      summary: "Generate a threshold key in the caller's partition (FIPS-only partitions: FIPS-approved algorithms only)",
      tag: 'keys',
      access: 'so, user',
      body: GenerateBody,
      ok: { status: 201, description: 'generated', schema: KeyOut.extend({ publicKey: z.string().nullable().describe('PEM (null for AES)'), notAfter: NotAfterOut }) },
      errors: [403, 409, 502, 503],
      guard: allow(CRYPTO_ROLES, 'generate keys'),
    },
    async (req, reply) => {
      const p = await auth.authenticate(req);
      const body = req.body;
      await auth.accounts.checkKeyAlg(p, body.alg);
      const policy = body.notAfter !== undefined ? { notAfter: Date.parse(body.notAfter) } : {};
      const k = await catalog.create(p.partitionId, body, () => keys.generateKey(body.alg, policy));
      keyIds.set(req, k.keyId);
      return reply.status(201).send({ ...keyOut(k), publicKey: await publicPem(k), notAfter: await notAfterOut(k) });
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/import',
      summary: "Import into the caller's partition an RSA private key (split into shares at once, never kept whole) or a public key (verify; RSA: encrypt)",
      tag: 'keys',
      access: 'so, user',
      body: ImportBody,
      ok: { status: 201, description: 'imported', schema: KeyOut.extend({ publicKey: z.string() }) },
      errors: [403, 409, 502, 503],
      guard: allow(CRYPTO_ROLES, 'import keys'),
    },
    async (req, reply) => {
      const p = await auth.authenticate(req);
      const body = req.body;
      const pub = body.publicKeyPem;
      if (pub !== undefined) await auth.accounts.checkKeyAlg(p, importPublicKey(pub).alg);
      const k = await catalog.create(p.partitionId, body, () => (pub !== undefined ? keys.importPublic(pub) : keys.rsaAes.createRsa({ privateKeyPem: body.privateKeyPem! })));
      keyIds.set(req, k.keyId);
      return reply.status(201).send({ ...keyOut(k), publicKey: await publicPem(k) });
    },
  );

  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/keys',
      summary: "List the caller's partition's keys, by UID, with paging (after, limit) and filters (alg, name, state)",
      tag: 'keys',
      access: 'any role',
      query: ListQuery,
      ok: { status: 200, description: 'a page of keys', schema: z.object({ partition: z.string(), index: z.number(), total: z.number().describe('live keys in the partition'), keys: z.array(KeyOut), next: z.string().nullable() }) },
      guard: allow(ANY_ROLE, 'list keys'),
    },
    async (req) => {
      const p = await auth.authenticate(req);
      const page = await catalog.list(p.partitionId, req.query);
      return { partition: p.partition, index: p.partitionId - 1, total: await store.countPartitionKeys(p.partitionId), keys: page.keys.map(keyOut), next: page.next };
    },
  );

  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/keys/:keyId',
      summary: 'Show a key (a destroyed key shows its record, state destroyed)',
      tag: 'keys',
      access: 'any role of the key’s partition',
      params: KeyRef,
      ok: { status: 200, description: 'key', schema: KeyShowOut },
      errors: [404],
      guard: allow(ANY_ROLE, 'show keys'),
    },
    async (req) => {
      const p = await auth.authenticate(req);
      const ref = req.params.keyId;
      let key: KeyRow;
      try {
        key = await catalog.resolve(p.partitionId, ref, 'read');
      } catch (e) {
        const gone = e instanceof EkmError && e.code === 'EKM_KEY_DESTROYED' ? await store.getDestroyedKey(ref) : undefined;
        if (!gone) throw e;
        keyIds.set(req, gone.keyId);
        return { ...keyOut(gone), publicKey: null, presignaturesReady: 0, notAfter: null };
      }
      keyIds.set(req, key.keyId);
      return { ...keyOut(key), publicKey: await publicPem(key), presignaturesReady: keys.pool?.size(key.keyId) ?? 0, notAfter: await notAfterOut(key) };
    },
  );

  route(
    app,
    doc,
    {
      method: 'PATCH',
      url: '/api/v1/keys/:keyId',
      summary: 'Rename, describe, deactivate or reactivate a key',
      tag: 'keys',
      access: 'so, user',
      params: KeyRef,
      body: UpdateBody,
      ok: { status: 200, description: 'key', schema: KeyOut },
      errors: [403, 404, 409, 410],
      guard: keyOfPath(CRYPTO_ROLES, 'change keys', 'manage'),
    },
    async (req) => {
      const { p, key } = await keyFor(req);
      return keyOut(await catalog.update(p.partitionId, key.keyId, req.body));
    },
  );

  route(
    app,
    doc,
    {
      method: 'DELETE',
      url: '/api/v1/keys/:keyId',
      summary: 'Destroy a key on all three servers (irreversible; its record stays, state destroyed)',
      tag: 'keys',
      access: 'so (a user gets 403: it may deactivate the key instead)',
      params: KeyRef,
      ok: {
        status: 200,
        description: 'destroyed',
        schema: KeyOut.extend({ pendingPurge: z.array(z.enum(['partner', 'aux'])).describe('peers that were unreachable: asked again until they erase their share') }),
      },
      errors: [403, 404, 410],
      guard: keyOfPath(DESTROY_ROLES, "destroy keys (only the partition's SO does; a user may deactivate a key instead)", 'manage'),
    },
    async (req) => {
      const { p, key } = await keyFor(req);
      const r = await catalog.destroy(p.partitionId, key.keyId);
      return { ...keyOut(r.row), pendingPurge: r.pending };
    },
  );

  route(
    app,
    doc,
    {
      method: 'GET',
      url: '/api/v1/keys/:keyId/public',
      summary: 'Export the public key (der and raw as base64)',
      tag: 'keys',
      access: 'any role of the key’s partition',
      params: KeyRef,
      query: PublicQuery,
      ok: { status: 200, description: 'public key', schema: z.object({ keyId: z.string(), alg: z.string(), format: z.string(), value: z.unknown() }) },
      errors: [404, 410],
      guard: keyOfPath(ANY_ROLE, 'export public keys', 'read'),
    },
    async (req) => {
      const { key } = await keyFor(req);
      const { format } = req.query;
      const pub = await keys.publicKey(key.keyId, format as PublicKeyFormat);
      return { keyId: key.keyId, alg: pub.alg, format, value: pub.value instanceof Uint8Array ? b64out(pub.value) : pub.value };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/:keyId/sign',
      summary: 'Sign (threshold protocol between EP, Partner and Aux)',
      tag: 'crypto',
      access: 'so, user',
      params: KeyRef,
      body: SignBody,
      ok: { status: 200, description: 'signature', schema: z.object({ keyId: z.string(), alg: z.string(), epoch: z.number(), format: z.string(), mode: z.string(), signature: b64 }) },
      errors: [403, 404, 409, 410, 502, 503],
      guard: keyOfPath(CRYPTO_ROLES, 'sign', 'protect'),
    },
    async (req, reply) => {
      const { key } = await keyFor(req);
      const body = req.body;
      const r = await timedOp(reply, () => keys.sign(key.keyId, { message: bytes(body.message), digest: bytes(body.digest), hash: body.hash, format: body.format, scheme: body.scheme }));
      return { keyId: key.keyId, alg: r.alg, epoch: r.epoch, format: r.format, mode: r.mode, signature: b64out(r.signature) };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/:keyId/verify',
      summary: 'Verify a signature with the public key (ECDSA: any valid signature, high-s too, as OpenSSL; ekm itself always signs low-s)',
      tag: 'crypto',
      access: 'any role of the key’s partition',
      params: KeyRef,
      body: VerifyBody,
      ok: { status: 200, description: 'result', schema: z.object({ keyId: z.string(), valid: z.boolean() }) },
      errors: [404, 410],
      guard: keyOfPath(ANY_ROLE, 'verify', 'process'),
    },
    async (req, reply) => {
      const { key } = await keyFor(req);
      const body = req.body;
      const sig = bytes(body.signature)!;
      const valid = await timedOp(reply, () =>
        keys.verify(key.keyId, { message: bytes(body.message), digest: bytes(body.digest), hash: body.hash, format: body.format, scheme: body.scheme }, sig),
      );
      return { keyId: key.keyId, valid };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/:keyId/encrypt',
      summary: 'Encrypt (RSA: OAEP or PKCS#1 v1.5 with the public key; AES: threshold PRF, AES-256-GCM)',
      tag: 'crypto',
      access: 'so, user',
      params: KeyRef,
      body: EncryptBody,
      ok: { status: 200, description: 'ciphertext', schema: z.object({ keyId: z.string(), ciphertext: b64 }) },
      errors: [403, 404, 409, 410, 502, 503],
      guard: keyOfPath(CRYPTO_ROLES, 'encrypt', 'protect'),
    },
    async (req, reply) => {
      const { key } = await keyFor(req);
      const body = req.body;
      const plaintext = bytes(body.plaintext)!;
      const ciphertext = await timedOp(reply, () =>
        isRsaAlg(key.alg)
          ? keys.rsaAes.rsaEncrypt(key.keyId, body.scheme ?? 'oaep', plaintext, body.hash ?? 'sha256')
          : keys.rsaAes.aesEncrypt(key.keyId, plaintext, bytes(body.aad) ?? new Uint8Array(0)),
      );
      return { keyId: key.keyId, ciphertext: b64out(ciphertext) };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/:keyId/decrypt',
      summary: 'Decrypt (threshold protocol). RSA PKCS#1 v1.5: a faulty padding gives a synthetic plaintext, not an error (implicit rejection); OAEP faults give EKM_DECRYPTION_FAILED',
      tag: 'crypto',
      access: 'so, user',
      params: KeyRef,
      body: DecryptBody,
      ok: { status: 200, description: 'plaintext', schema: z.object({ keyId: z.string(), plaintext: b64 }) },
      errors: [400, 403, 404, 410, 502, 503],
      guard: keyOfPath(CRYPTO_ROLES, 'decrypt', 'process'),
    },
    async (req, reply) => {
      const { key } = await keyFor(req);
      const body = req.body;
      const ciphertext = bytes(body.ciphertext)!;
      const plaintext = await timedOp(reply, async () =>
        isRsaAlg(key.alg)
          ? keys.rsaAes.rsaDecrypt(key.keyId, body.scheme ?? 'oaep', ciphertext, body.hash ?? 'sha256', bytes(body.label))
          : (await keys.rsaAes.aesDecrypt(key.keyId, ciphertext, bytes(body.aad) ?? new Uint8Array(0))).plaintext,
      );
      return { keyId: key.keyId, plaintext: b64out(plaintext) };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/:keyId/datakey',
      summary: 'Generate a data key under an AES key: the plaintext key and its ciphertext (envelope encryption)',
      tag: 'crypto',
      access: 'so, user',
      params: KeyRef,
      body: DataKeyBody,
      ok: { status: 200, description: 'data key', schema: z.object({ keyId: z.string(), bits: z.number(), plaintextKey: b64, ciphertext: b64 }) },
      errors: [403, 404, 409, 410, 502, 503],
      guard: keyOfPath(CRYPTO_ROLES, 'generate data keys', 'protect'),
    },
    async (req, reply) => {
      const { key } = await keyFor(req);
      const body = req.body;
      const dk = await timedOp(reply, () => keys.rsaAes.aesDataKey(key.keyId, body.bits, bytes(body.aad) ?? new Uint8Array(0)));
      return { keyId: key.keyId, bits: body.bits, plaintextKey: b64out(dk.plaintextKey), ciphertext: b64out(dk.sealed) };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/keys/:keyId/refresh',
      summary: 'Proactive refresh of the key’s shares (same public key, new epoch)',
      tag: 'keys',
      access: 'so, user',
      params: KeyRef,
      body: EmptyBody,
      ok: { status: 200, description: 'new epoch', schema: z.object({ keyId: z.string(), epoch: z.number().nullable() }) },
      errors: [403, 404, 410, 502, 503],
      guard: keyOfPath(CRYPTO_ROLES, 'refresh keys', 'manage'),
    },
    async (req) => {
      const { key } = await keyFor(req);
      const r = await keys.refresh([key.keyId]);
      return { keyId: key.keyId, epoch: r.keys[0]?.to ?? null };
    },
  );

  route(
    app,
    doc,
    {
      method: 'POST',
      url: '/api/v1/servers/aux/rederive',
      summary: 'Re-derive the Aux’s shares of every key (after an Aux loss)',
      tag: 'system',
      access: 'so of root',
      ok: { status: 200, description: 'how many keys', schema: z.object({ keys: z.number() }) },
      errors: [403, 502, 503],
      guard: async (req) => {
        const p = await caller(req, ['so'], 're-derive the Aux');
        if (p.partitionId !== ROOT_PARTITION_ID) throw new EkmError('EKM_FORBIDDEN', 'not allowed: only the root SO re-derives the Aux');
      },
    },
    async () => {
      const r = await keys.rederiveAux();
      return { keys: r.keys.length };
    },
  );
};
