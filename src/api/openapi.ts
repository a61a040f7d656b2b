/**
 * The OpenAPI 3.1 document served at `/api/v1/openapi.json`. Every route describes itself through
 * `route` (routing.ts) with the same zod schemas that validate it, and declares its responses
 * (status → schema) here, where the API tests check each answer against them; only `/metrics`,
 * which its own module registers, is described by hand.
 * Every route fastify registered is checked against the document at start-up: one that is not
 * documented is listed under `x-undocumented` (a test requires that list to be absent).
 */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { VERSION } from '../version.js';

type Schema = z.ZodType;

export interface ResponseDoc {
  readonly status: number;
  readonly description: string;
  readonly schema?: Schema;
}

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
  readonly ok: ResponseDoc;
  /** Answers besides `ok` that are not errors (health's 503 has the same body as its 200). */
  readonly also?: readonly ResponseDoc[];
  /** Error statuses this operation answers with (besides 400/401/404 that most do). */
  readonly errors?: readonly number[];
}

/** The one error shape of the API. */
export const ErrorSchema = z.object({ error: z.object({ code: z.string(), message: z.string() }) });
const json = (s: Schema): unknown => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
const openapiPath = (url: string): string => url.replace(/:([A-Za-z]+)/g, '{$1}');

const ERROR_TEXT: Record<number, string> = {
  400: 'bad request (validation)',
  401: 'not authenticated, wrong credentials, expired token or locked user',
  403: 'authenticated but not allowed',
  404: 'no such partition, user, key or route',
  409: 'conflict (exists, not empty)',
  410: 'the key was destroyed (its record stays)',
  413: 'body too large',
  429: 'too many password checks for the user at once: try again after Retry-After seconds',
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

  /**
   * The schema a route declares for an answer with `status` to `method path` (a concrete path,
   * e.g. `/api/v1/keys/signer`): its `ok` or `also` schema, the error schema for a documented
   * error status, or a reason why the answer is not what the document promises.
   */
  responseSchema(method: string, path: string, status: number): { schema: Schema | undefined } | { problem: string } {
    const op = this.operationOf(method, path);
    // No route: the not-found handler's 404, in the error shape.
    if (!op) return status === 404 ? { schema: ErrorSchema } : { problem: `no documented route for ${method} ${path}` };
    const declared = [op.ok, ...(op.also ?? [])].find((r) => r.status === status);
    if (declared) return { schema: declared.schema };
    if (errorStatuses(op).includes(status) || FRAMEWORK_ERRORS.includes(status)) return { schema: ErrorSchema };
    return { problem: `${op.method} ${op.url} answered ${status}, which its documentation does not list` };
  }

  /** The documented operation that serves `method path`: a literal route before one with parameters, as the router chooses. */
  private operationOf(method: string, path: string): OpDoc | undefined {
    const segments = path.split('?')[0]!.split('/');
    const matches = this.ops.filter((o) => {
      const pattern = o.url.split('/');
      return o.method === method && pattern.length === segments.length && pattern.every((p, i) => p.startsWith(':') || p === segments[i]);
    });
    const params = (o: OpDoc): number => o.url.split('/').filter((p) => p.startsWith(':')).length;
    return matches.sort((a, b) => params(a) - params(b))[0];
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
      const responses: Record<string, unknown> = {};
      for (const r of [op.ok, ...(op.also ?? [])]) {
        responses[String(r.status)] = { description: r.description, ...(r.schema ? { content: { 'application/json': { schema: json(r.schema) } } } : {}) };
      }
      for (const e of errorStatuses(op)) {
        responses[String(e)] = { description: ERROR_TEXT[e] ?? 'error', content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } };
      }
      (paths[openapiPath(op.url)] ??= {})[op.method.toLowerCase()] = {
        summary: op.summary,
        tags: [op.tag],
        'x-access': op.access,
        ...(op.access === 'public' ? { security: [] } : {}),
        ...(parameters.length ? { parameters } : {}),
        ...(op.body ? { requestBody: { required: !op.body.safeParse(undefined).success, content: { 'application/json': { schema: json(op.body) } } } } : {}),
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

/** Statuses any route may answer before it runs: body too large (413), a path segment too long (414), the server closing (503). */
const FRAMEWORK_ERRORS: readonly number[] = [413, 414, 503];

/**
 * The error statuses an operation documents: 401 and 429 unless public (a password check on any
 * route may be refused for now, store.admitLoginAttempt), 400 when it takes input, and its own.
 */
function errorStatuses(op: OpDoc): number[] {
  const errs = new Set<number>([...(op.access === 'public' ? [] : [401, 429]), ...(op.body || op.query || op.params ? [400] : []), ...(op.errors ?? [])]);
  return [...errs].sort();
}

/** `/metrics` is registered by its own module (metrics.ts), so it is described here. */
export function describeMetricsRoute(doc: ApiDoc): void {
  doc.add({
    method: 'GET',
    url: '/metrics',
    summary: 'Prometheus metrics (text format 0.0.4); scrape with HTTP Basic of a root auditor',
    tag: 'system',
    access: 'root SO, root auditors; an EP of the cluster',
    ok: { status: 200, description: 'text/plain metrics' },
    errors: [403],
  });
}
