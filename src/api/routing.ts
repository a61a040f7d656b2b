/**
 * How an API route is declared: one `RouteSpec` gives fastify the zod schemas that validate the
 * request (params, query, body) and gives the OpenAPI document the same schemas, plus the
 * response schemas per status. A route's `guard` runs before validation (fastify's
 * `preValidation`), so an unauthenticated or forbidden caller hears 401/403 before any word about
 * its input, as a handler that authenticated first and parsed second would answer.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, FastifySchemaCompiler, RouteHandlerMethod } from 'fastify';
import type { z } from 'zod';
import { EkmError } from '../errors.js';
import { safeText, textProblem } from '../util/text.js';
import type { ApiDoc, OpDoc } from './openapi.js';

type Schema = z.ZodType;

/** How an error message names the part of the request that was wrong (`path.keyId: …`). */
const PART_NAME: Readonly<Record<string, string>> = { body: 'body', querystring: 'query', params: 'path', headers: 'headers' };

/** The API's 400 for input that does not match its schema: the first issue, with where it is. */
export function badInput(where: string, issues: readonly z.core.$ZodIssue[]): EkmError {
  const i = issues[0];
  const at = i && i.path.length ? `.${i.path.join('.')}` : '';
  return new EkmError('EKM_BAD_REQUEST', `${where}${at}: ${i?.message ?? 'invalid'}`);
}

/** Parses `value` with `schema` or throws the API's 400 naming `where` (body, query, path). */
export function parse<T>(schema: z.ZodType<T>, value: unknown, where: string): T {
  const unclean = uncleanInput(where, value);
  if (unclean) throw unclean;
  const r = schema.safeParse(value);
  if (!r.success) throw badInput(where, r.error.issues);
  return r.data;
}

/**
 * Fastify's validator compiler for zod schemas: the parsed value (coerced, defaults filled)
 * replaces the raw one, and a failure is the API's own 400. Fastify hands a missing body over
 * as `null`; it is given to the schema as absent, so an optional body may be left out.
 */
export const zodValidatorCompiler: FastifySchemaCompiler<Schema> = ({ schema, httpPart }) => {
  const part = httpPart ?? 'body';
  const where = PART_NAME[part] ?? part;
  return (data: unknown) => {
    const unclean = uncleanInput(where, data);
    if (unclean) return { error: unclean };
    const r = schema.safeParse(part === 'body' && data === null ? undefined : data);
    return r.success ? { value: r.data } : { error: badInput(where, r.error.issues) };
  };
};

/**
 * The first string of a request part (or object key) that is not clean text — a lone surrogate,
 * NUL or another control character (util/text.ts) — with where it is: such input is refused at
 * the edge, before a store could keep it as something else than what was checked or hashed.
 * Iterative, so a deeply nested body cannot exhaust the stack.
 */
/** The API's 400 for a request part holding text that is not clean (uncleanText), or undefined. */
function uncleanInput(where: string, data: unknown): EkmError | undefined {
  const unclean = uncleanText(data);
  return unclean ? new EkmError('EKM_BAD_REQUEST', `${where}${safeText(unclean.at, 200)}: ${unclean.problem}`) : undefined;
}

export function uncleanText(data: unknown): { at: string; problem: string } | undefined {
  const stack: [unknown, string][] = [[data, '']];
  while (stack.length > 0) {
    const [v, at] = stack.pop()!;
    if (typeof v === 'string') {
      const problem = textProblem(v);
      if (problem) return { at, problem };
    } else if (Array.isArray(v)) {
      v.forEach((x, i) => stack.push([x, `${at}.${i}`]));
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v)) {
        const problem = textProblem(k);
        if (problem) return { at, problem: `a field name ${problem}` };
        stack.push([x, `${at}.${k}`]);
      }
    }
  }
  return undefined;
}

type Parsed<S> = S extends Schema ? z.output<S> : unknown;

/** The request a handler receives: its params, query and body already parsed by the route's schemas. */
export type RouteRequest<P, Q, B> = FastifyRequest<{ Params: Parsed<P>; Querystring: Parsed<Q>; Body: Parsed<B> }>;

export interface RouteSpec<P extends Schema | undefined, Q extends Schema | undefined, B extends Schema | undefined> extends OpDoc {
  readonly params?: P;
  readonly query?: Q;
  readonly body?: B;
  /** Who may call, checked before the input is validated (authentication, role, the key of the path). */
  readonly guard?: (req: FastifyRequest) => Promise<unknown>;
}

/** Registers a route and its documentation from one spec. */
export function route<P extends Schema | undefined = undefined, Q extends Schema | undefined = undefined, B extends Schema | undefined = undefined>(
  app: FastifyInstance,
  doc: ApiDoc,
  spec: RouteSpec<P, Q, B>,
  handler: (req: RouteRequest<P, Q, B>, reply: FastifyReply) => Promise<unknown>,
): void {
  doc.add(spec);
  const guard = spec.guard;
  app.route({
    method: spec.method,
    url: spec.url,
    schema: {
      ...(spec.params ? { params: spec.params } : {}),
      ...(spec.query ? { querystring: spec.query } : {}),
      ...(spec.body ? { body: spec.body } : {}),
    },
    ...(guard
      ? {
          preValidation: async (req: FastifyRequest) => {
            await guard(req);
          },
        }
      : {}),
    handler: handler as unknown as RouteHandlerMethod,
  });
}
