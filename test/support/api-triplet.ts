/**
 * A real triplet in the test's own process, for the API tests: the three servers are bootstrapped
 * as `ekm_boot_*.sh -f` does (cluster/bootstrap.ts) and started as `ekm run` does (EkmServer), each
 * with its own EKM_HOME and SQLite store in a temporary folder, talking mutual TLS on loopback.
 * The EP serves no HTTPS listener: the test builds the API on the EP's dependencies (`buildApi`)
 * and answers with `inject()`, checking every answer against the schema its route declares.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance, InjectOptions } from 'fastify';
import pino from 'pino';
import { buildApi } from '../../src/api/app.js';
import type { ApiDoc } from '../../src/api/openapi.js';
import { autoApprover } from '../../src/cluster/approval.js';
import { parseBootArgs } from '../../src/cluster/boot-args.js';
import { bootstrap } from '../../src/cluster/bootstrap.js';
import { homePaths } from '../../src/config/home.js';
import { readSettings } from '../../src/config/settings.js';
import { EkmServer } from '../../src/server/server.js';
import { ROLES, ROOT_SO_PASSWORD, type Role, freePorts } from './cluster.js';

export { ROOT_SO_PASSWORD };

export interface Answer<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
  readonly headers: Record<string, unknown>;
}

export interface Request {
  readonly method: InjectOptions['method'];
  /** The path under /api/v1 (e.g. `/keys`), or an absolute one (`/metrics`). */
  readonly path: string;
  readonly body?: unknown;
  /**
   * Who calls (`user@partition` and password), as an application does: a bearer token from the
   * password grant, fetched once per user (a password check costs an scrypt). None: no credentials.
   */
  readonly as?: readonly [string, string];
  /** Send `as` with HTTP Basic on this request, as `ucl` does. */
  readonly basic?: boolean;
  readonly headers?: Record<string, string>;
  /** The client address the EP sees (default 127.0.0.1). */
  readonly remoteAddress?: string;
}

export interface ApiTriplet {
  readonly app: FastifyInstance;
  readonly doc: ApiDoc;
  readonly servers: Record<Role, EkmServer>;
  /** One request, its answer checked against the schema its route declares for the status. */
  call<T = Record<string, unknown>>(req: Request): Promise<Answer<T>>;
  /** The same request as the root SO. */
  root<T = Record<string, unknown>>(method: Request['method'], path: string, body?: unknown): Promise<Answer<T>>;
  close(): Promise<void>;
}

export const ROOT_SO: readonly [string, string] = ['so@root', ROOT_SO_PASSWORD];

const basic = ([user, password]: readonly [string, string]): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

/** Bootstraps and starts the three servers of a new triplet, and builds the EP's API on them. */
export async function startApiTriplet(env: Readonly<Record<string, string>> = {}): Promise<ApiTriplet> {
  // One process for three servers: their protocol parties run on its event loop rather than in
  // six worker threads, and the EP keeps a small presignature pool (the sign path with and
  // without a ready presignature are both taken). Every request comes from one address here, and
  // tests send bursts of wrong passwords on purpose: the limits on failed password checks per
  // address and on checks at once are lifted, but for the tests of those limits (`env`).
  const settings = readSettings({ EKM_PROTOCOL_WORKERS: '0', EKM_POOL_TARGET: '2', EKM_LOGIN_FAILURES: '100000', EKM_PASSWORD_CHECKS: '64', ...process.env, ...env });
  const dir = mkdtempSync(join(tmpdir(), 'ekm-api-'));
  const [ep, partner, aux, apiPort] = await freePorts(4);
  const names = { ep: `127.0.0.1:${ep}`, partner: `127.0.0.1:${partner}`, aux: `127.0.0.1:${aux}` };
  const args: Record<Role, string[]> = {
    ep: ['-s', names.ep, '-p', names.partner, '-x', names.aux, '-w', ROOT_SO_PASSWORD, '--api-port', String(apiPort)],
    partner: ['-s', names.partner, '-p', names.ep, '-x', names.aux],
    aux: ['-s', names.aux, '-e', names.ep, '-p', names.partner],
  };
  const paths = Object.fromEntries(ROLES.map((r) => [r, homePaths(join(dir, r))])) as Record<Role, ReturnType<typeof homePaths>>;
  const quiet = (): void => {};
  await Promise.all(ROLES.map((r) => bootstrap(parseBootArgs(r, [...args[r], '-fips', '-f', '--timeout', '60']), paths[r], autoApprover(quiet), quiet, undefined)));
  const log = pino({ level: 'silent' });
  const started: EkmServer[] = [];
  const stopAll = async (): Promise<void> => {
    await Promise.all(started.map((s) => s.stop(1000)));
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // The seed's order: the helpers first, then the EP.
    for (const r of ['partner', 'aux', 'ep'] as const) started.push(await EkmServer.start(paths[r], settings, log, { serveApi: false }));
    const [partnerServer, auxServer, epServer] = started as [EkmServer, EkmServer, EkmServer];
    await waitInService(epServer);
    const { app, doc } = await buildApi(epServer.apiDeps());
    const tokens = new Map<string, string>();
    const authorization = async (who: readonly [string, string], useBasic: boolean | undefined): Promise<string> => {
      if (useBasic) return basic(who);
      const known = tokens.get(who.join('\n'));
      if (known) return known;
      const r = await call<{ access_token: string }>({ method: 'POST', path: '/token', body: { username: who[0], password: who[1] } });
      if (r.status !== 200) return basic(who);
      const bearer = `Bearer ${r.body.access_token}`;
      tokens.set(who.join('\n'), bearer);
      return bearer;
    };
    const call = async <T>(req: Request): Promise<Answer<T>> => {
      const url = req.path.startsWith('/api/') || req.path === '/metrics' ? req.path : `/api/v1${req.path}`;
      const r = await app.inject({
        method: req.method,
        url,
        headers: { ...(req.as ? { authorization: await authorization(req.as, req.basic) } : {}), ...req.headers },
        ...(req.body === undefined ? {} : { payload: req.body as InjectOptions['payload'] }),
        ...(req.remoteAddress ? { remoteAddress: req.remoteAddress } : {}),
      });
      const json = String(r.headers['content-type'] ?? '').startsWith('application/json');
      const body = (json ? r.json() : r.body) as T;
      checkAnswer(doc, String(req.method), url, r.statusCode, body);
      return { status: r.statusCode, body, headers: r.headers };
    };
    return {
      app,
      doc,
      servers: { ep: epServer, partner: partnerServer, aux: auxServer },
      call,
      root: (method, path, body) => call({ method, path, body, as: ROOT_SO }),
      async close() {
        await app.close();
        await stopAll();
      },
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}

async function waitInService(ep: EkmServer, timeoutMs = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ep.probe()).inService) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`the in-process triplet is not in service after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The answer is one the route documents for its status, in the shape declared for it. */
export function checkAnswer(doc: ApiDoc, method: string, url: string, status: number, body: unknown): void {
  const declared = doc.responseSchema(method, url, status);
  assert.ok(!('problem' in declared), 'problem' in declared ? `${declared.problem}: ${JSON.stringify(body)}` : '');
  if (!declared.schema) return;
  const r = declared.schema.safeParse(body);
  assert.ok(r.success, `${method} ${url} → ${status}: the answer does not match its declared schema: ${r.error?.message}\n${JSON.stringify(body)}`);
}

/** The API's one error shape, with the expected status and code. */
export function assertError(r: Answer<unknown>, status: number, code?: string, message?: RegExp): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const e = (r.body as { error: { code: string; message: string } }).error;
  if (code) assert.equal(e.code, code, e.message);
  if (message) assert.match(e.message, message);
}
