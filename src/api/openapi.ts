/**
 * The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Routes of this issue describe
 * themselves through `ApiDoc.add` with the same zod schemas that validate them; the routes of
 * app.ts and keys.ts are described here by hand (their schemas are private to those files).
 * Every route fastify registered is checked against the document at start-up: one that is not
 * documented is listed under `x-undocumented` (a test requires that list to be absent).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { VERSION } from '../version.js';

type Schema = z.ZodType;

export interface OpDoc {
  readonly method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'HEAD';
  /** Fastify form, e.g. `/api/v1/partitions/:partition`. */
  readonly url: string;
  readonly summary: string;
  readonly tag: string;
  /** Who may call: `public` or a list of roles. */
  readonly access: 'public' | string;
  readonly params?: Schema;
  readonly query?: Schema;
  readonly body?: Schema;
  readonly ok: { status: number; description: string; schema?: Schema };
  /** Error statuses this operation answers with (besides 400/401/404 that most do). */
  readonly errors?: readonly number[];
}

const ErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const json = (s: Schema): unknown => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
const openapiPath = (url: string): string => url.replace(/:([A-Za-z]+)/g, '{$1}');

const ERROR_TEXT: Record<number, string> = {
  400: 'bad request (validation)',
  401: 'not authenticated, wrong credentials, expired token or locked user',
  403: 'authenticated but not allowed',
  404: 'no such partition, user, key or route',
  409: 'conflict (exists, not empty)',
  413: 'body too large',
  502: 'a threshold protocol aborted (safe to retry)',
  503: 'the triplet is not in service',
};

export class ApiDoc {
  private readonly ops: OpDoc[] = [];
  private readonly registered: { method: string; url: string }[] = [];

  add(op: OpDoc): OpDoc {
    this.ops.push(op);
    return op;
  }

  /** Records every route fastify registers from now on (call before any route is added). */
  collect(app: FastifyInstance): void {
    app.addHook('onRoute', (r) => {
      for (const m of [r.method].flat()) if (m !== 'HEAD' || !r.url.startsWith('/api/v1/health')) this.registered.push({ method: m, url: r.url });
    });
  }

  undocumented(): string[] {
    const have = new Set(this.ops.map((o) => `${o.method} ${o.url}`));
    return this.registered
      .filter((r) => r.method !== 'HEAD' && !have.has(`${r.method} ${r.url}`))
      .map((r) => `${r.method} ${r.url}`);
  }

  document(): Record<string, unknown> {
    const paths: Record<string, Record<string, unknown>> = {};
    for (const op of this.ops) {
      const parameters: unknown[] = [];
      for (const [where, schema] of [
        ['path', op.params],
        ['query', op.query],
      ] as const) {
        if (!schema) continue;
        const js = json(schema) as { properties?: Record<string, unknown>; required?: string[] };
        for (const [name, s] of Object.entries(js.properties ?? {})) {
          parameters.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
        }
      }
      const responses: Record<string, unknown> = {
        [String(op.ok.status)]: { description: op.ok.description, ...(op.ok.schema ? { content: { 'application/json': { schema: json(op.ok.schema) } } } : {}) },
      };
      const errs = new Set<number>([...(op.access === 'public' ? [] : [401]), ...(op.body || op.query || op.params ? [400] : []), ...(op.errors ?? [])]);
      for (const e of [...errs].sort()) {
        responses[String(e)] = { description: ERROR_TEXT[e] ?? 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
      }
      (paths[openapiPath(op.url)] ??= {})[op.method.toLowerCase()] = {
        summary: op.summary,
        tags: [op.tag],
        'x-access': op.access,
        ...(op.access === 'public' ? { security: [] } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(op.body ? { requestBody: { required: true, content: { 'application/json': { schema: json(op.body) } } } } : {}),
        responses,
      };
    }
    const missing = this.undocumented();
    return {
      openapi: '3.1.0',
      info: {
        title: 'ekm EP API',
        version: VERSION,
        description:
          'The HTTPS API of an ekm entry point (EP). JSON in and out; binary values are base64. Every error is `{ "error": { "code", "message" } }`. Authenticate with HTTP Basic `user@partition:password` or a bearer token from POST /api/v1/token.',
      },
      servers: [{ url: '/' }],
      security: [{ basic: [] }, { bearer: [] }],
      components: {
        securitySchemes: {
          basic: { type: 'http', scheme: 'basic', description: 'user@partition:password (a bare user means the root partition)' },
          bearer: { type: 'http', scheme: 'bearer', description: 'token from POST /api/v1/token' },
        },
        schemas: { Error: json(ErrorSchema) },
      },
      paths,
      ...(missing.length ? { 'x-undocumented': missing } : {}),
    };
  }
}

// ---- routes defined in app.ts and keys.ts (described here; validated there) ----

const b64 = z.string().describe('base64');
const KeyId = z.object({ keyId: z.string().regex(/^[0-9a-f]{16}$/).describe('16 hex characters') });
const EcAlg = z.enum(['ecdsa-p256', 'ecdsa-secp256k1', 'ecdsa-p384', 'eddsa-ed25519', 'schnorr-bip340', 'aes-256-dprf', 'rsa-2048', 'rsa-3072', 'rsa-4096']);
const SignIn = z.object({
  message: b64.optional(),
  digest: b64.optional().describe('a precomputed digest instead of message (ECDSA)'),
  hash: z.enum(['sha256', 'sha384', 'sha512']).optional(),
  format: z.enum(['raw', 'der']).optional().describe('ECDSA signature encoding; raw = r‖s'),
  scheme: z.enum(['pkcs1v15', 'pss']).optional().describe('RSA signature scheme'),
});

export function describeCoreRoutes(doc: ApiDoc): void {
  const Triplet = z.object({}).passthrough().describe('triplet health: servers, states, round trips');
  doc.add({ method: 'GET', url: '/api/v1/health', summary: 'Health: 200 when the triplet is in service, 503 otherwise', tag: 'system', access: 'public', ok: { status: 200, description: 'in service', schema: z.object({ status: z.enum(['ok', 'unavailable']), triplet: Triplet }) }, errors: [503] });
  doc.add({
    method: 'GET',
    url: '/api/v1/info',
    summary: 'Product, version, role, names and schema of this EP',
    tag: 'system',
    access: 'public',
    ok: { status: 200, description: 'info', schema: z.object({ product: z.literal('ekm'), version: z.string(), role: z.string(), server: z.string(), clusterId: z.string(), tripletId: z.string(), fips: z.boolean(), schemaVersion: z.number() }) },
  });
  doc.add({ method: 'GET', url: '/api/v1/servers', summary: 'Servers of the cluster as recorded (ucl server list)', tag: 'system', access: 'public', ok: { status: 200, description: 'servers', schema: z.object({ clusterId: z.string(), servers: z.array(z.object({}).passthrough()) }) } });
  doc.add({ method: 'GET', url: '/api/v1/servers/test', summary: 'Probe every server (ucl server test)', tag: 'system', access: 'public', ok: { status: 200, description: 'probe', schema: z.object({ clusterId: z.string(), inService: z.boolean(), triplets: z.array(Triplet) }) } });
  doc.add({
    method: 'POST',
    url: '/api/v1/token',
    summary: 'Password grant: a short-lived bearer token (EKM_TOKEN_TTL_SECONDS, default 900 s)',
    tag: 'auth',
    access: 'public',
    body: z.object({ grant_type: z.literal('password').optional(), username: z.string().describe('user@partition'), password: z.string() }).strict(),
    ok: { status: 200, description: 'token', schema: z.object({ access_token: z.string(), token_type: z.literal('Bearer'), expires_in: z.number() }) },
    errors: [401],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys',
    summary: "Generate a threshold key in the caller's partition (FIPS-only partitions: ecdsa-p256, ecdsa-p384, eddsa-ed25519)",
    tag: 'keys',
    access: 'so, user',
    body: z.object({ alg: EcAlg }).strict(),
    ok: { status: 201, description: 'generated', schema: z.object({ keyId: z.string(), alg: EcAlg, publicKey: z.string().nullable().describe('PEM (null for AES)') }) },
    errors: [403, 502, 503],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/import',
    summary: "Import an RSA private key (PKCS#8 or PKCS#1 PEM) into the caller's partition: it is split into shares and not kept whole",
    tag: 'keys',
    access: 'so, user',
    body: z.object({ privateKeyPem: z.string() }).strict(),
    ok: { status: 201, description: 'imported', schema: z.object({ keyId: z.string(), alg: EcAlg, publicKey: z.string() }) },
    errors: [403, 502, 503],
  });
  const bin = z.string().describe('base64');
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/:keyId/encrypt',
    summary: 'Encrypt (RSA: OAEP or PKCS#1 v1.5 with the public key; AES: threshold PRF)',
    tag: 'crypto',
    access: 'so, user',
    params: KeyId,
    body: z.object({ plaintext: bin, aad: bin.optional(), scheme: z.enum(['oaep', 'pkcs1v15']).optional(), hash: z.enum(['sha1', 'sha256']).optional() }).strict(),
    ok: { status: 200, description: 'ciphertext', schema: z.object({ keyId: z.string(), ciphertext: bin }) },
    errors: [403, 404, 502, 503],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/:keyId/decrypt',
    summary: 'Decrypt (threshold protocol)',
    tag: 'crypto',
    access: 'so, user',
    params: KeyId,
    body: z.object({ ciphertext: bin, aad: bin.optional(), scheme: z.enum(['oaep', 'pkcs1v15']).optional(), hash: z.enum(['sha1', 'sha256']).optional(), label: bin.optional() }).strict(),
    ok: { status: 200, description: 'plaintext', schema: z.object({ keyId: z.string(), plaintext: bin }) },
    errors: [403, 404, 502, 503],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/:keyId/datakey',
    summary: 'Generate a data key under an AES key: the plaintext key and its ciphertext',
    tag: 'crypto',
    access: 'so, user',
    params: KeyId,
    body: z.object({ bits: z.union([z.literal(128), z.literal(256)]).default(256), aad: bin.optional() }).strict(),
    ok: { status: 200, description: 'data key', schema: z.object({ keyId: z.string(), bits: z.number(), plaintextKey: bin, ciphertext: bin }) },
    errors: [403, 404, 502, 503],
  });
  doc.add({
    method: 'GET',
    url: '/api/v1/keys/:keyId',
    summary: 'Show a key',
    tag: 'keys',
    access: 'any role of the key’s partition',
    params: KeyId,
    ok: { status: 200, description: 'key', schema: z.object({ keyId: z.string(), alg: EcAlg, epoch: z.number(), createdAt: z.string(), publicKey: z.string().nullable(), presignaturesReady: z.number() }) },
    errors: [404],
  });
  doc.add({
    method: 'GET',
    url: '/api/v1/keys/:keyId/public',
    summary: 'Export the public key',
    tag: 'keys',
    access: 'any role of the key’s partition',
    params: KeyId,
    query: z.object({ format: z.enum(['pem', 'der', 'raw', 'jwk']).default('pem') }),
    ok: { status: 200, description: 'public key (der and raw as base64)', schema: z.object({ alg: EcAlg, format: z.string(), value: z.unknown() }) },
    errors: [404],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/:keyId/sign',
    summary: 'Sign (threshold protocol between EP, Partner and Aux)',
    tag: 'crypto',
    access: 'so, user',
    params: KeyId,
    body: SignIn.strict(),
    ok: { status: 200, description: 'signature', schema: z.object({ keyId: z.string(), alg: EcAlg, epoch: z.number(), format: z.string(), mode: z.string(), signature: b64 }) },
    errors: [403, 404, 502, 503],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/:keyId/verify',
    summary: 'Verify a signature with the public key',
    tag: 'crypto',
    access: 'any role of the key’s partition',
    params: KeyId,
    body: SignIn.extend({ signature: b64 }).strict(),
    ok: { status: 200, description: 'result', schema: z.object({ keyId: z.string(), valid: z.boolean() }) },
    errors: [404],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/keys/:keyId/refresh',
    summary: 'Proactive refresh of the key’s shares (same public key, new epoch)',
    tag: 'keys',
    access: 'so, user',
    params: KeyId,
    ok: { status: 200, description: 'new epoch', schema: z.object({ keyId: z.string(), epoch: z.number().nullable() }) },
    errors: [403, 404, 502, 503],
  });
  doc.add({
    method: 'POST',
    url: '/api/v1/servers/aux/rederive',
    summary: 'Re-derive the Aux’s shares of every key (after an Aux loss)',
    tag: 'system',
    access: 'so of root',
    ok: { status: 200, description: 'how many keys', schema: z.object({ keys: z.number() }) },
    errors: [403, 502, 503],
  });
  doc.add({ method: 'GET', url: '/api/v1/openapi.json', summary: 'This document', tag: 'system', access: 'public', ok: { status: 200, description: 'OpenAPI 3.1' } });
  doc.add({ method: 'GET', url: '/metrics', summary: 'Prometheus metrics (text format 0.0.4)', tag: 'system', access: 'public', ok: { status: 200, description: 'text/plain metrics' } });
}

export function openApiRoute(app: FastifyInstance, doc: ApiDoc): void {
  let cached: Record<string, unknown> | undefined;
  app.get('/api/v1/openapi.json', async () => (cached ??= doc.document()));
}

/** Registers a route and its documentation together. */
export function route(
  app: FastifyInstance,
  doc: ApiDoc,
  op: OpDoc,
  handler: (req: import('fastify').FastifyRequest, reply: import('fastify').FastifyReply) => Promise<unknown>,
): void {
  doc.add(op);
  app.route({ method: op.method, url: op.url, handler });
}
