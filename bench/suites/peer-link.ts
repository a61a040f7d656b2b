/**
 * Peer-link figures: round trip of an empty protocol message EP→Partner→EP over a real peer link,
 * and messages per second over one link. The EP end runs here; the Partner end is a separate
 * process (bench/lib/peer-partner.ts), so the two do not share an event loop.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import tls from 'node:tls';
import pino from 'pino';
import { createIdentity } from '../../src/cluster/identity.js';
import { PeerManager } from '../../src/net/peers.js';
import { sampleSequential, summarize, throughput } from '../lib/stats.js';
import type { PartnerConfig } from '../lib/peer-partner.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from '../lib/types.js';

const WARMUP = 2000;
const SEQUENTIAL = 5000;
const CONCURRENCY = [1, 16, 256] as const;
const THROUGHPUT_MS = 3000;
const GOAL_MS = 0.3;

export const suite: Suite = {
  name: 'peer-link',
  description:
    'Round trip of an empty message EP→Partner→EP over one TLS 1.3 peer link (PeerManager/PeerLink, pinned certificates) between two Node.js processes on loopback, and messages per second over that link.',
  run,
};

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const [epId, partnerId] = await Promise.all([
    createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 }),
    createIdentity({ role: 'partner', host: '127.0.0.1', years: 1 }),
  ]);
  const common = { clusterId: 'bench-cluster', tripletId: 'bench-triplet', version: 'bench' };
  const cfg: PartnerConfig = {
    self: {
      role: 'partner',
      name: 'partner',
      listenHost: '127.0.0.1',
      listenPort: 0,
      keyPem: partnerId.keyPem,
      certPem: partnerId.certPem,
      ...common,
    },
    ep: { role: 'ep', name: 'ep', host: '127.0.0.1', port: 1, fingerprint: epId.fingerprint },
  };
  const child = spawn(process.execPath, [...process.execArgv, join(ctx.root, 'bench', 'lib', 'peer-partner.ts')], {
    env: { ...process.env, EKM_BENCH_PARTNER: JSON.stringify(cfg) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let ep: PeerManager | undefined;
  let rawSocket: tls.TLSSocket | undefined;
  try {
    const [peerPort, rawPort] = await childReady(child);
    ep = new PeerManager({
      self: { role: 'ep', name: 'ep', listenHost: '127.0.0.1', listenPort: 0, keyPem: epId.keyPem, certPem: epId.certPem, ...common },
      peers: [{ role: 'partner', name: 'partner', host: '127.0.0.1', port: peerPort, fingerprint: partnerId.fingerprint }],
      handlers: { onRequest: () => new Uint8Array(0) },
      log: pino({ level: 'warn', base: undefined }, pino.destination(2)),
    });
    await ep.start();
    await ep.waitAllUp(10_000);
    const link = ep.requireLink('partner');
    const empty = new Uint8Array(0);
    const echo = (): Promise<unknown> => link.request('echo', empty);
    const ping = (): Promise<unknown> => link.ping();

    rawSocket = await rawConnect(rawPort, partnerId.fingerprint);
    const rawRoundTrip = rawEcho(rawSocket);

    ctx.log(`raw TLS echo: ${WARMUP} warm-up + ${SEQUENTIAL} round trips`);
    const rawSamples = await sampleSequential(rawRoundTrip, SEQUENTIAL, WARMUP);
    const raw = summarize('raw', rawSamples);
    const baseline = { label: 'raw TLS echo, no framing', p50Ms: raw.p50Ms!, opsPerSec: raw.opsPerSec! };

    ctx.log(`echo request: ${WARMUP} warm-up + ${SEQUENTIAL} round trips`);
    const echoSamples = await sampleSequential(echo, SEQUENTIAL, WARMUP);
    ctx.log(`ping: ${WARMUP} warm-up + ${SEQUENTIAL} round trips`);
    const pingSamples = await sampleSequential(ping, SEQUENTIAL, WARMUP);

    const goal = `p50 < ${GOAL_MS} ms`;
    const measurements: Measurement[] = [
      withGoal(summarize("link.request('echo', empty), sequential", echoSamples, { baseline }), goal),
      withGoal(summarize('link.ping(), sequential', pingSamples, { baseline }), goal),
      summarize('raw TLS 9-byte echo, sequential (transport alone)', rawSamples, {
        note: 'same two processes, a second TLS socket, no PeerLink',
      }),
    ];
    for (const n of CONCURRENCY) {
      ctx.log(`echo request, ${n} in flight, ${THROUGHPUT_MS} ms`);
      const t = await throughput(echo, n, THROUGHPUT_MS);
      measurements.push(
        summarize(`link.request('echo', empty), ${n} in flight`, t.latencies, {
          opsPerSec: t.opsPerSec,
          note: `${t.completed} requests in ${THROUGHPUT_MS / 1000} s over one link; latency per request`,
        }),
      );
    }
    return {
      measurements,
      notes: [
        `Sequential rows: ${WARMUP} warm-up round trips, then ${SEQUENTIAL} measured one at a time; goal: p50 under ${GOAL_MS} ms on loopback.`,
        "`echo` is a Request frame (u32 length, kind, id, u16 method name, empty body) answered by an async handler on the Partner, as EkmServer's `echo` peer method is; `ping` is a Ping frame answered by PeerLink itself.",
        'Baseline: a raw TLS 1.3 socket between the same two processes echoing a 9-byte message (the size of an empty frame), without PeerLink, framing or handlers: what the transport alone costs.',
        `Concurrent rows: N requests kept in flight for ${THROUGHPUT_MS / 1000} s on one link; ops/s = completed / elapsed. Both processes share the 2 cores with each other and with other jobs.`,
      ],
    };
  } finally {
    rawSocket?.destroy();
    await ep?.stop();
    child.stdin?.end();
    const exited = once(child, 'exit');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(t);
  }
}

function withGoal(m: Measurement, goal: string): Measurement {
  return { ...m, goal, goalMet: m.p50Ms! < GOAL_MS };
}

function childReady(child: ReturnType<typeof spawn>): Promise<[number, number]> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('peer-partner child did not start within 20 s')), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /ready (\d+) (\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve([Number(m[1]), Number(m[2])]);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`peer-partner child exited (${code}) before it was ready`));
    });
  });
}

async function rawConnect(port: number, fingerprint: string): Promise<tls.TLSSocket> {
  const socket = tls.connect({ host: '127.0.0.1', port, minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3', rejectUnauthorized: false });
  await once(socket, 'secureConnect');
  if (socket.getPeerX509Certificate()?.fingerprint256 !== fingerprint) throw new Error('raw echo: unexpected certificate');
  socket.setNoDelay(true);
  return socket;
}

/** One round trip of a 9-byte message over a raw TLS socket to an echo server. */
function rawEcho(socket: tls.TLSSocket): () => Promise<void> {
  const msg = Buffer.alloc(9);
  let waiting: (() => void) | undefined;
  let got = 0;
  socket.on('data', (d: Buffer) => {
    got += d.length;
    if (got >= msg.length && waiting) {
      got -= msg.length;
      const w = waiting;
      waiting = undefined;
      w();
    }
  });
  return () =>
    new Promise<void>((resolve) => {
      waiting = resolve;
      socket.write(msg);
    });
}
