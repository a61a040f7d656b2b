/**
 * Scale-out figures: a triplet on PostgreSQL (EP and Partner databases of one throwaway server),
 * signatures per second through it, then the seed's scale-out (three `ekm_boot_additional_server.sh`,
 * `ucl server create -f`, Partner2 and Aux2 started, EP2 last) timed until both triplets are in
 * service, signatures per second through both EPs at once with the CPU each server used, and a
 * rolling restart of both triplets under load counting the failed requests.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { EkmClient } from '../../src/client/client.js';
import {
  BOOT_SCRIPT,
  ROLES,
  ROOT_SO_PASSWORD,
  type Role,
  type Triplet,
  ekm,
  makeTriplet,
  run as runBin,
  ucl,
} from '../../test/support/cluster.js';
import { startPostgres } from '../../test/support/postgres.js';
import { percentile, timed } from '../lib/stats.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from '../lib/types.js';

const LOAD_MS = 8000;
const IN_FLIGHT = 8;
const CLK_TCK = 100;
const ALGS = ['eddsa-ed25519', 'ecdsa-p256'] as const;

export const suite: Suite = {
  name: 'scale-out',
  description:
    'A cluster on PostgreSQL grown from one triplet to two by the seed Quickstart: signatures per second through one and two triplets (with CPU per server), the time `ucl server create` takes to a serving triplet, and failed requests during a rolling restart.',
  run,
};

interface Caller {
  sign(keyId: string, message: string): Promise<number>;
  close(): void;
}

/** A client of one or several EPs; `token` logs in once (bearer, per EP), else HTTP Basic on every request. */
async function caller(eps: readonly Triplet[], auth: 'token' | 'basic'): Promise<Caller> {
  const client = new EkmClient({
    servers: eps.map((t) => ({ host: '127.0.0.1', port: t.apiPort })),
    trustedCertsPem: eps.map((t) => readFileSync(join(t.homes.ep, 'tls', 'server.crt'), 'utf8')),
    timeoutMs: 60_000,
  });
  let header = `Basic ${Buffer.from(`so@root:${ROOT_SO_PASSWORD}`).toString('base64')}`;
  if (auth === 'token') {
    const tok = await client.request<{ access_token: string }>('POST', '/api/v1/token', {
      username: 'so@root',
      password: ROOT_SO_PASSWORD,
    });
    if (tok.status !== 200) throw new Error(`login failed: ${tok.status}`);
    header = `Bearer ${tok.body.access_token}`;
  }
  return {
    async sign(keyId, message) {
      const r = await client.request(
        'POST',
        `/api/v1/keys/${keyId}/sign`,
        { message: Buffer.from(message).toString('base64') },
        { authorization: header },
      );
      return r.status;
    },
    close: () => client.close(),
  };
}

function pidOf(t: Triplet, role: Role): number {
  return Number(readFileSync(join(t.homes[role], 'run', 'ekm.pid'), 'utf8').trim());
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

interface LoadResult {
  ok: number;
  failed: number;
  opsPerSec: number;
  latencies: number[];
  /** CPU % of one core, per server label. */
  cpu: Record<string, number>;
}

/** Signs with the keys in turn, IN_FLIGHT at a time spread over the callers, for `ms`. */
async function signLoad(
  callers: readonly Caller[],
  keyIds: readonly string[],
  ms: number,
  servers: Record<string, number>,
): Promise<LoadResult> {
  const cpu0 = Object.fromEntries(Object.entries(servers).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const t0 = performance.now();
  const end = t0 + ms;
  const latencies: number[] = [];
  let failed = 0;
  let i = 0;
  const worker = async (c: Caller): Promise<void> => {
    while (performance.now() < end) {
      const s = performance.now();
      const status = await c.sign(keyIds[i++ % keyIds.length]!, `bench ${i}`).catch(() => 0);
      if (status === 200) latencies.push(performance.now() - s);
      else failed++;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, (_, k) => worker(callers[k % callers.length]!)));
  const secs = (performance.now() - t0) / 1000;
  const cpu = Object.fromEntries(Object.entries(servers).map(([k, pid]) => [k, (100 * (cpuSeconds(pid) - cpu0[k]!)) / secs]));
  return { ok: latencies.length, failed, opsPerSec: latencies.length / secs, latencies: latencies.sort((a, b) => a - b), cpu };
}

async function untilClusterInService(on: Triplet, triplets: number, timeoutMs = 90_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const r = await ucl(on, 'server', 'test');
    if (r.code === 0 && r.stdout.includes(`${triplets} triplet`)) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error(`the cluster did not reach ${triplets} triplets in service`);
}

async function must(what: string, p: Promise<{ code: number; stderr: string }>): Promise<void> {
  const r = await p;
  if (r.code !== 0) throw new Error(`${what} failed: ${r.stderr.trim()}`);
}

function cpuNote(label: string, cpu: Record<string, number>): string {
  return `${label}: CPU per server (% of one core) ${Object.entries(cpu)
    .map(([k, v]) => `${k} ${v.toFixed(0)}`)
    .join(', ')}; total ${Object.values(cpu)
    .reduce((a, b) => a + b, 0)
    .toFixed(0)} %`;
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  await ctx.ensureBuilt();
  const pg = await startPostgres();
  const t1 = await makeTriplet();
  const t2 = await makeTriplet();
  try {
    for (const db of ['ekm_ep', 'ekm_partner']) await pg.createDatabase(db);
    ctx.log('bootstrapping triplet 1 on PostgreSQL');
    const urls: Record<Role, string> = { ep: pg.url('ekm_ep', 'x'), partner: pg.url('ekm_partner', 'x'), aux: '' };
    await Promise.all(
      ROLES.map((r) =>
        must(
          `bootstrap of ${r}`,
          runBin(BOOT_SCRIPT[r], t1.bootArgs(r, ['-f', '--timeout', '60', ...(urls[r] ? ['-externaldb'] : [])]), {
            ...t1.env(r),
            EKM_DB_URL: urls[r],
          }),
        ),
      ),
    );
    for (const r of ['partner', 'aux', 'ep'] as const) await must(`ekm start (${r})`, ekm(t1, r, 'start'));
    await untilClusterInService(t1, 1);

    const setup = await caller([t1], 'token');
    const keyIds: string[] = [];
    const admin = new EkmClient({
      servers: [{ host: '127.0.0.1', port: t1.apiPort }],
      trustedCertsPem: [readFileSync(join(t1.homes.ep, 'tls', 'server.crt'), 'utf8')],
    });
    const basic = { authorization: `Basic ${Buffer.from(`so@root:${ROOT_SO_PASSWORD}`).toString('base64')}` };
    for (const alg of ALGS) {
      const r = await admin.request<{ keyId: string }>('POST', '/api/v1/keys', { alg }, basic);
      if (r.status !== 201) throw new Error(`key generation failed: ${r.status}`);
      keyIds.push(r.body.keyId);
    }
    admin.close();
    for (const k of keyIds) await setup.sign(k, 'warm-up');
    const pids1 = Object.fromEntries(ROLES.map((r) => [`${r}1`, pidOf(t1, r)]));
    ctx.log('load through one triplet');
    const one = await signLoad([setup], keyIds, LOAD_MS, pids1);
    setup.close();

    ctx.log('scale-out: three additional servers, ucl server create, start');
    await Promise.all(
      ROLES.map((r) =>
        must(
          `additional bootstrap of ${r}`,
          runBin('ekm_boot_additional_server.sh', ['-s', t2.names[r], '-fips', '--api-port', String(t2.apiPort)], t2.env(r)),
        ),
      ),
    );
    const partner2 = new X509Certificate(readFileSync(join(t2.homes.partner, 'tls', 'server.crt'), 'utf8')).fingerprint256;
    await must('ekm approve-join on the Partner', ekm(t1, 'partner', 'approve-join', partner2));
    const create = await timed(() =>
      ucl(t1, 'server', 'create', '-e', t2.names.ep, '-p', t2.names.partner, '-a', t2.names.aux, '-w', ROOT_SO_PASSWORD, '-f'),
    );
    if (create.value.code !== 0) throw new Error(`ucl server create failed: ${create.value.stderr}`);
    const serving = await timed(async () => {
      for (const r of ROLES) {
        // The waiting service stops by itself once it joined.
        while (!(await ekm(t2, r, 'status')).stdout.includes('not running')) await new Promise((res) => setTimeout(res, 50));
      }
      for (const r of ['partner', 'aux', 'ep'] as const) await must(`ekm start (${r}2)`, ekm(t2, r, 'start'));
      await untilClusterInService(t1, 2);
    });

    const both = [await caller([t1], 'token'), await caller([t2], 'token')];
    // EP2's Aux gets its shares on first use (re-derivation): not part of the steady state.
    for (const k of keyIds) await both[1]!.sign(k, 'warm-up');
    const pids = { ...pids1, ...Object.fromEntries(ROLES.map((r) => [`${r}2`, pidOf(t2, r)])) };
    ctx.log('load through two triplets');
    const two = await signLoad(both, keyIds, LOAD_MS, pids);
    for (const c of both) c.close();

    ctx.log('rolling restart under load');
    const failover = await caller([t1, t2], 'basic');
    const stop = { now: false };
    let served = 0;
    let failed = 0;
    const load = Promise.all(
      Array.from({ length: 2 }, async () => {
        for (let i = 0; !stop.now; i++) {
          if ((await failover.sign(keyIds[i % keyIds.length]!, `rolling ${i}`).catch(() => 0)) === 200) served++;
          else failed++;
        }
      }),
    );
    const restart = await timed(async () => {
      for (const [t, other] of [
        [t1, t2],
        [t2, t1],
      ] as const) {
        for (const r of ROLES) await must(`ekm stop (${r})`, ekm(t, r, 'stop'));
        for (const r of ['partner', 'aux', 'ep'] as const) await must(`ekm start (${r})`, ekm(t, r, 'start'));
        await untilClusterInService(other, 2);
      }
    });
    stop.now = true;
    await load;
    failover.close();

    const row = (operation: string, r: LoadResult, extra: Partial<Measurement> = {}): Measurement => ({
      operation,
      n: r.ok,
      p50Ms: percentile(r.latencies, 50),
      p90Ms: percentile(r.latencies, 90),
      p99Ms: percentile(r.latencies, 99),
      opsPerSec: r.opsPerSec,
      note: r.failed > 0 ? `${r.failed} failed` : undefined,
      ...extra,
    });
    const cpuTotal = (r: LoadResult): number => Object.values(r.cpu).reduce((a, b) => a + b, 0) / 100;
    return {
      measurements: [
        row(`sign (Ed25519 and P-256 in turn), ${IN_FLIGHT} in flight, 1 triplet`, one),
        row(`the same through 2 triplets (EP1 and EP2, ${IN_FLIGHT / 2} in flight each)`, two),
        { operation: 'ucl server create -e -p -a -f (3 waiting servers)', n: 1, meanMs: create.ms },
        {
          operation: 'ucl server create, then Partner2, Aux2, EP2 started, until both triplets are in service',
          n: 1,
          meanMs: create.ms + serving.ms,
        },
        {
          operation: `failed requests during a rolling restart of both triplets (${(restart.ms / 1000).toFixed(0)} s, 2 clients)`,
          n: served,
          goal: '0 failed',
          goalMet: failed === 0,
          note: `${failed} failed of ${served + failed}`,
        },
      ],
      notes: [
        cpuNote('1 triplet', one.cpu),
        cpuNote('2 triplets', two.cpu),
        `This machine has two cores shared by all six servers, PostgreSQL and the load generator, so a second triplet adds no CPU: the figure that scales is signatures per CPU-second, ${(one.opsPerSec / cpuTotal(one)).toFixed(0)} with one triplet and ${(two.opsPerSec / cpuTotal(two)).toFixed(0)} with two. On hosts with a core per server, throughput should grow about linearly with triplets until the shared PostgreSQL databases (one write per presignature and per refresh, reads per signature) become the limit.`,
      ],
    };
  } finally {
    await t2.cleanup();
    await t1.cleanup();
    pg.stop();
  }
}
