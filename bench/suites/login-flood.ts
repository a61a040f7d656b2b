/**
 * Signing while unauthenticated clients hammer the login: an authenticated client (bearer token)
 * signs with a P-256 key on an idle triplet, then while 64 clients, each from its own loopback
 * address (127.0.0.2–127.0.0.65, so the per-address limit alone cannot stop them), send the
 * token grant unknown users and wrong passwords as fast as they are answered. The EP's limits as
 * shipped: EKM_LOGIN_FAILURES 2/s per address in bursts of 10, EKM_PASSWORD_CHECKS 1 at once.
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { apiFor } from '../../test/support/api.js';
import { waitInService } from '../../test/support/cluster.js';
import { sampleSequential, summarize } from '../lib/stats.js';
import { type LeanApi, bootTriplet, ekmOk, leanApi } from '../lib/triplet.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from '../lib/types.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const FLOODERS = 64;
const SAMPLES = 200;
const median = (xs: readonly number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Starts the flooders in their own process (login-flooder.ts); `stop` ends them and gives their answers by status. */
async function startFlood(root: string, port: number): Promise<{ stop(): Promise<Record<string, number>> }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'bench/lib/login-flooder.ts'), String(port), String(FLOODERS)], {
    cwd: root,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: string[] = [];
  child.stdout.setEncoding('utf8').on('data', (d: string) => lines.push(...d.split('\n').filter((l) => l !== '')));
  await new Promise<void>((resolve, reject) => {
    const poll = setInterval(() => {
      if (lines.includes('ready')) {
        clearInterval(poll);
        resolve();
      }
    }, 20);
    child.once('exit', (code) => {
      clearInterval(poll);
      reject(new Error(`the login flooder exited (${code})`));
    });
  });
  return {
    async stop() {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
      return JSON.parse(lines[lines.length - 1]!) as Record<string, number>;
    },
  };
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const t = await bootTriplet(ctx);
  const rows: Measurement[] = [];
  let lean: LeanApi | undefined;
  try {
    for (const role of ['partner', 'aux', 'ep'] as const) await ekmOk(t, role, 'start');
    await waitInService(t);
    const api = await apiFor(t);
    const keyId = (await api.call<{ keyId: string }>('POST', '/keys', { alg: 'ecdsa-p256' })).body.keyId;
    lean = await leanApi(t);
    const l = lean;
    const message = Buffer.from('login flood').toString('base64');
    const sign = (): Promise<unknown> => l.post(`/keys/${keyId}/sign`, { message });
    ctx.log('idle');
    const idle = await sampleSequential(sign, SAMPLES, 20);
    rows.push(summarize('ecdsa-p256 sign (bearer token), concurrency 1, idle', idle));

    ctx.log(`${FLOODERS} clients hammering the login`);
    const flood = await startFlood(ROOT, t.apiPort);
    const t0 = performance.now();
    // The flood's first seconds spend every address's burst; then the steady state is measured.
    await new Promise((r) => setTimeout(r, 2000));
    const loaded = await sampleSequential(sign, SAMPLES, 0);
    const answers = await flood.stop();
    const seconds = (performance.now() - t0) / 1000;
    const ratio = median(loaded) / median(idle);
    const byStatus = Object.entries(answers)
      .sort()
      .map(([s, n]) => `${s}: ${n}`)
      .join(', ');
    const total = Object.values(answers).reduce((a, b) => a + b, 0);
    rows.push(
      summarize(`ecdsa-p256 sign (bearer token), concurrency 1, while ${FLOODERS} clients flood the login`, loaded, {
        goal: 'p50 ≤ 2 × idle',
        goalMet: ratio <= 2,
        note: `${ratio.toFixed(2)} × idle; login answers ${byStatus} (${(total / seconds).toFixed(0)}/s over ${seconds.toFixed(1)} s)`,
      }),
    );
  } finally {
    lean?.close();
    await t.cleanup();
  }
  return {
    measurements: rows,
    notes: [
      'Each flooder is its own client address (in a process of its own, bench/lib/login-flooder.ts), so the per-address budget of wrong passwords (EKM_LOGIN_FAILURES) alone would let them ask for 128 checks a second; the EP runs one password check (scrypt, about 0.1 s of a core) at a time with eight waiting (EKM_PASSWORD_CHECKS), refuses the rest with 429, and holds every 429 back for its Retry-After (at most 1 s), so a flooder that ignores Retry-After gets one answer a second per connection. Flooding with new connections (a TLS handshake each) is a network-level attack for a proxy or firewall in front of the EP.',
      'All of it — three servers, 64 flooders and the signing client — shares this 2-core machine.',
    ],
  };
}

export const suite: Suite = {
  name: 'login-flood',
  description: 'Signing latency for an authenticated client, idle and while 64 unauthenticated clients flood the token grant with wrong passwords.',
  run,
};
