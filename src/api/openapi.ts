/**
 * The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Routes of this issue describe
 * themselves through `route` with the same zod schemas that validate them; the few routes of
 * app.ts are described here by hand.
 * Every route fastify registered is checked against the document at start-up: one that is not
 * documented is listed under `x-undocumented` (a test requires that list to be absent).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

// ---- routes defined in app.ts (described here; validated there) ----

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
  handler: (req: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
): void {
  doc.add(op);
  app.route({ method: op.method, url: op.url, handler });
}
