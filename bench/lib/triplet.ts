/**
 * A real triplet for benchmarks: three `ekm` processes on loopback, bootstrapped with -f,
 * started with `bin/ekm start`, each with its own EKM_HOME. Reuses the test harness
 * (test/support/cluster.ts) so that benchmarks run the system exactly as the cluster tests do.
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { EkmClient } from '../../src/client/client.js';
import {
  ROLES,
  ROOT_SO_PASSWORD,
  type Role,
  type RunResult,
  type Triplet,
  bootAll,
  ekm,
  makeTriplet,
  ucl,
} from '../../test/support/cluster.js';
import { type Http1Response, Http1Pool } from './http1-client.js';
import type { SuiteContext } from './types.js';

export { ROLES, ekm, ucl, type Role, type RunResult, type Triplet };

/** Builds dist/ if stale, makes homes and ports, bootstraps all three with -f (not started). */
export async function bootTriplet(ctx: SuiteContext): Promise<Triplet> {
  await ctx.ensureBuilt();
  const t = await makeTriplet();
  try {
    const boots = await bootAll(t);
    for (const r of ROLES)
      if (boots[r].code !== 0) throw new Error(`bootstrap of ${r} failed (${boots[r].code}): ${boots[r].stderr.trim()}`);
  } catch (e) {
    await t.cleanup();
    throw e;
  }
  return t;
}

/** `ekm <command>` that must succeed. */
export async function ekmOk(t: Triplet, role: Role, ...args: string[]): Promise<RunResult> {
  const r = await ekm(t, role, ...args);
  if (r.code !== 0) throw new Error(`ekm ${args.join(' ')} (${role}) failed (${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  return r;
}

export async function stopAll(t: Triplet): Promise<void> {
  await Promise.all(ROLES.map((r) => ekmOk(t, r, 'stop')));
}

/** Starts the three in the given order (each `ekm start` returns once its daemon serves). */
export async function startInOrder(t: Triplet, order: readonly Role[]): Promise<void> {
  for (const r of order) await ekmOk(t, r, 'start');
}

/** Runs `ucl server test` until it exits 0; returns how many runs that took, or throws after `timeoutMs`. */
export async function untilInService(t: Triplet, timeoutMs = 20_000): Promise<number> {
  const end = Date.now() + timeoutMs;
  let last: RunResult | undefined;
  for (let attempts = 1; Date.now() < end; attempts++) {
    last = await ucl(t, 'server', 'test');
    if (last.code === 0) return attempts;
  }
  throw new Error(`triplet not in service after ${timeoutMs} ms:\n${last?.stdout ?? ''}${last?.stderr ?? ''}`);
}

export function logFile(t: Triplet, role: Role): string {
  return join(t.homes[role], 'logs', 'ekm.log');
}

/** Current size of a server's log, to read only what is written after this point. */
export function logMark(t: Triplet, role: Role): number {
  try {
    return statSync(logFile(t, role)).size;
  } catch {
    return 0;
  }
}

/** Wall-clock times (ms since the epoch) of the log lines with message `msg` written after `from`. */
export function logTimes(t: Triplet, role: Role, from: number, msg: string): number[] {
  const path = logFile(t, role);
  const size = statSync(path).size;
  const buf = Buffer.alloc(Math.max(0, size - from));
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buf, 0, buf.length, from);
  } finally {
    closeSync(fd);
  }
  const out: number[] = [];
  for (const line of buf.toString('utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const rec = JSON.parse(line) as { msg?: string; time?: string | number };
      if (rec.msg === msg && rec.time !== undefined) out.push(typeof rec.time === 'number' ? rec.time : Date.parse(rec.time));
    } catch {
      // not a log record
    }
  }
  return out;
}

/** The lean load generator (http1-client.ts) on the triplet's API, logged in as the root SO. */
export interface LeanApi {
  /** POST to /api/v1`path`; any status but 200 throws, naming `path`. */
  post(path: string, body: unknown): Promise<Http1Response>;
  close(): void;
}

export async function leanApi(t: Triplet): Promise<LeanApi> {
  const certPem = readFileSync(join(t.homes.ep, 'tls', 'server.crt'), 'utf8');
  const client = new EkmClient({ servers: [{ host: '127.0.0.1', port: t.apiPort }], trustedCertsPem: [certPem], timeoutMs: 60_000 });
  const tok = await client.request<{ access_token: string }>('POST', '/api/v1/token', { username: 'so@root', password: ROOT_SO_PASSWORD });
  client.close();
  if (tok.status !== 200) throw new Error(`login failed: ${tok.status}`);
  const auth = { authorization: `Bearer ${tok.body.access_token}` };
  const pool = new Http1Pool('127.0.0.1', t.apiPort, certPem);
  return {
    async post(path, body) {
      const r = await pool.request('POST', `/api/v1${path}`, auth, body);
      if (r.status !== 200) throw new Error(`${path}: HTTP ${r.status} ${r.body.toString()}`);
      return r;
    },
    close: () => pool.close(),
  };
}
