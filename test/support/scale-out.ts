/**
 * Scale-out tests' common steps: a triplet whose EP and Partner keep their stores on
 * PostgreSQL (one database per role), servers bootstrapped to join, `ucl server create`, an API
 * caller of several EPs, and the waits around them.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EkmClient } from '../../src/client/client.js';
import type { Api } from './api.js';
import {
  BOOT_SCRIPT,
  ROLES,
  ROOT_SO_PASSWORD,
  type Role,
  type RunResult,
  type Triplet,
  ekm,
  makeTriplet,
  run,
  startSeedOrder,
  ucl,
} from './cluster.js';
import type { PgServer } from './postgres.js';

/**
 * A triplet bootstrapped (not started) on `pgServer`: its EP and Partner stores in new databases
 * `<prefix>_ep` and `<prefix>_partner`.
 */
export async function bootPostgresTriplet(pgServer: PgServer, prefix = 'ekm'): Promise<Triplet> {
  for (const db of [`${prefix}_ep`, `${prefix}_partner`]) await pgServer.createDatabase(db);
  const t = await makeTriplet();
  const urls: Record<Role, string | undefined> = {
    ep: pgServer.url(`${prefix}_ep`, 'pw-1'),
    partner: pgServer.url(`${prefix}_partner`, 'pw-2'),
    aux: undefined,
  };
  const boots = await Promise.all(
    ROLES.map((r) =>
      run(BOOT_SCRIPT[r], t.bootArgs(r, ['-f', '--timeout', '60', ...(urls[r] ? ['-externaldb'] : [])]), {
        ...t.env(r),
        EKM_DB_URL: urls[r] ?? '',
      }),
    ),
  );
  for (const [i, b] of boots.entries()) assert.equal(b.code, 0, `${ROLES[i]} bootstrap: ${b.stderr}`);
  return t;
}

/** A serving triplet on `pgServer`: its EP and Partner stores in new databases `<prefix>_ep` and `<prefix>_partner`. */
export async function postgresTriplet(pgServer: PgServer, prefix = 'ekm'): Promise<Triplet> {
  const t = await bootPostgresTriplet(pgServer, prefix);
  await startSeedOrder(t);
  return t;
}

/** `ekm_boot_additional_server.sh -s <name> -fips` for `role`'s place in `t`. */
export function bootAdditional(t: Triplet, role: Role, env: Record<string, string> = {}): Promise<RunResult> {
  return run('ekm_boot_additional_server.sh', ['-s', t.names[role], '-fips', '--api-port', String(t.apiPort)], { ...t.env(role), ...env });
}

/** `ucl server create -e -p -a` on `on`'s EP for the three servers of `target`. */
export function serverCreate(on: Triplet, target: Triplet, ...extra: string[]): Promise<RunResult> {
  return ucl(
    on,
    'server',
    'create',
    '-e',
    target.names.ep,
    '-p',
    target.names.partner,
    '-a',
    target.names.aux,
    '-w',
    ROOT_SO_PASSWORD,
    ...extra,
  );
}

/** An API caller of the given EP(s), logged in as the root SO (HTTP Basic, as ucl). */
export async function apiOf(...eps: Triplet[]): Promise<Api & { close(): void }> {
  const client = new EkmClient({
    servers: eps.map((t) => ({ host: '127.0.0.1', port: t.apiPort })),
    trustedCertsPem: eps.map((t) => readFileSync(join(t.homes.ep, 'tls', 'server.crt'), 'utf8')),
    timeoutMs: 60_000,
  });
  const auth = { authorization: `Basic ${Buffer.from(`so@root:${ROOT_SO_PASSWORD}`).toString('base64')}` };
  return {
    async call<T>(method: string, path: string, body?: unknown) {
      const r = await client.request<T>(method, `/api/v1${path}`, body, auth);
      return { status: r.status, body: r.body };
    },
    close: () => client.close(),
  };
}

export function certFingerprintOf(t: Triplet, role: Role): string {
  return new X509Certificate(readFileSync(join(t.homes[role], 'tls', 'server.crt'), 'utf8')).fingerprint256;
}

/** Until `role` of `t` no longer runs (a server that joined stops its waiting service). */
export async function waitStopped(t: Triplet, role: Role, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if ((await ekm(t, role, 'status')).stdout.includes('not running')) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${role} of the new triplet still runs ${timeoutMs} ms after it joined`);
}

/** Until `ucl server test` on `on`'s EP passes with `triplets` triplets in the cluster. */
export async function waitClusterInService(on: Triplet, triplets: number, timeoutMs = 60_000): Promise<RunResult> {
  const end = Date.now() + timeoutMs;
  let last: RunResult | undefined;
  while (Date.now() < end) {
    last = await ucl(on, 'server', 'test');
    if (last.code === 0 && last.stdout.includes(`${triplets} triplets`)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`the cluster is not in service:\n${last?.stdout}\n${last?.stderr}`);
}

/**
 * The seed's scale-out of the new servers `t` into `on`'s cluster: the additional bootstraps, the
 * Partner's approval of the new Partner, `ucl server create -f`, then Partner, Aux and the EP last;
 * returns once `ucl server test` shows `triplets` triplets in service.
 */
export async function addTriplet(on: Triplet, t: Triplet, triplets: number): Promise<void> {
  const boots = await Promise.all(ROLES.map((r) => bootAdditional(t, r)));
  for (const [i, b] of boots.entries()) assert.equal(b.code, 0, `additional bootstrap of ${ROLES[i]}: ${b.stderr}`);
  const approved = await ekm(on, 'partner', 'approve-join', certFingerprintOf(t, 'partner'));
  assert.equal(approved.code, 0, approved.stderr);
  const created = await serverCreate(on, t, '-f');
  assert.equal(created.code, 0, created.stderr);
  for (const role of ROLES) await waitStopped(t, role);
  for (const role of ['partner', 'aux', 'ep'] as const) {
    const r = await ekm(t, role, 'start');
    assert.equal(r.code, 0, `ekm start (${role}): ${r.stderr}`);
  }
  await waitClusterInService(on, triplets);
}
