/**
 * RSA and AES figures on a real triplet over mutual TLS (loopback, one 2-core machine): RSA
 * 2048/3072/4096 sign and decrypt latency and throughput, key generation (dealer) time; AES-256
 * (threshold PRF) encrypt / decrypt of 1 KiB and 1 MiB — beside node:crypto single-party times.
 */
import { constants, generateKeyPairSync, privateDecrypt, publicEncrypt, sign as nodeSign, createCipheriv, randomBytes } from 'node:crypto';
import { type Api, apiFor, b64 } from '../../test/support/api.js';
import { waitInService } from '../../test/support/cluster.js';
import { sampleSequential, summarize, throughput } from '../lib/stats.js';
import { type LeanApi, bootTriplet, ekmOk, leanApi } from '../lib/triplet.js';
import type { Measurement, Suite, SuiteContext, SuiteResult } from '../lib/types.js';

const N = 30;
/** How long the AES object-key pool's refills in flight take at most, here. */
const POOL_SETTLE_MS = 1500;
/** AES 1 KiB latency samples, and the warm-up before them. */
const AES_N = 200;
const AES_WARMUP_MS = 3000;
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function must<T>(p: Promise<{ status: number; body: T }>, what: string): Promise<T> {
  const r = await p;
  if (r.status >= 300) throw new Error(`${what}: HTTP ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
}

function local(fn: () => void, n = 50): number {
  const xs: number[] = [];
  for (let i = 0; i < n + 5; i++) {
    const t0 = performance.now();
    fn();
    if (i >= 5) xs.push(performance.now() - t0);
  }
  return median(xs);
}

async function run(ctx: SuiteContext): Promise<SuiteResult> {
  const t = await bootTriplet(ctx);
  const rows: Measurement[] = [];
  let lean: LeanApi | undefined;
  try {
    for (const role of ['partner', 'aux', 'ep'] as const) await ekmOk(t, role, 'start');
    await waitInService(t);
    const api: Api = await apiFor(t);
    const msg = b64('benchmark document');
    for (const bits of [2048, 3072, 4096] as const) {
      const alg = `rsa-${bits}`;
      ctx.log(`${alg}: dealer key generation`);
      const ids: string[] = [];
      const kg = await sampleSequential(
        async () => ids.push((await must(api.call<{ keyId: string }>('POST', '/keys', { alg }), 'generate')).keyId),
        bits === 4096 ? 3 : 5,
        0,
      );
      rows.push(summarize(`${alg}: key generation (dealer at the EP, then split)`, kg));
      const keyId = ids[0]!;
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: bits });
      const signOnce = (): Promise<unknown> => must(api.call('POST', `/keys/${keyId}/sign`, { message: msg }), 'sign');
      ctx.log(`${alg}: sign`);
      const lat = await sampleSequential(signOnce, N, 3);
      rows.push(
        summarize(`${alg}: sign PKCS#1 v1.5 SHA-256, concurrency 1`, lat, {
          baseline: { label: 'node:crypto sign', p50Ms: local(() => nodeSign('sha256', Buffer.from('m'), privateKey)) },
          ...(bits === 2048 ? { goal: 'p50 ≤ 15 ms', goalMet: median(lat) <= 15 } : {}),
        }),
      );
      const tp = await throughput(signOnce, 8, 3000);
      rows.push(summarize(`${alg}: sign, concurrency 8`, tp.latencies, { opsPerSec: tp.opsPerSec }));
      const pub = (await must(api.call<{ publicKey: string }>('GET', `/keys/${keyId}`), 'show')).publicKey;
      const ct = publicEncrypt(
        { key: pub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' },
        Buffer.from('a 32-byte data key for the bench'),
      ).toString('base64');
      const localCt = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, Buffer.from('k'));
      const dec = await sampleSequential(() => must(api.call('POST', `/keys/${keyId}/decrypt`, { ciphertext: ct }), 'decrypt'), N, 3);
      rows.push(
        summarize(`${alg}: decrypt OAEP SHA-256, concurrency 1`, dec, {
          baseline: {
            label: 'node:crypto privateDecrypt',
            p50Ms: local(() => privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, localCt)),
          },
        }),
      );
    }
    ctx.log('AES-256 (threshold PRF)');
    const aes = (await must(api.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' }), 'generate')).keyId;
    lean = await leanApi(t);
    const lapi = lean;
    for (const [label, size] of [
      ['1 KiB', 1024],
      ['1 MiB', 1024 * 1024],
    ] as const) {
      const pt = b64(randomBytes(size));
      const n = size > 1024 ? 10 : AES_N;
      const encrypt = (): Promise<unknown> => lapi.post(`/keys/${aes}/encrypt`, { plaintext: pt });
      // Steady state, as a service runs: the AES code compiled (JIT) in all three servers and EP's workers.
      if (size === 1024) await throughput(encrypt, 32, AES_WARMUP_MS);
      const enc = await sampleSequential(encrypt, n, 20);
      const key = randomBytes(32);
      const data = randomBytes(size);
      const gcm = local(() => {
        const c = createCipheriv('aes-256-gcm', key, randomBytes(12));
        c.update(data);
        c.final();
      }, 20);
      rows.push(
        summarize(`AES-256-GCM encrypt ${label}, concurrency 1`, enc, {
          baseline: { label: 'node:crypto AES-256-GCM (single party, key in memory)', p50Ms: gcm },
          note: `${(size / 1024 / 1024 / (median(enc) / 1000)).toFixed(2)} MiB/s`,
          ...(size === 1024 ? { goal: 'p50 ≤ 3 ms', goalMet: median(enc) <= 3 } : {}),
        }),
      );
      const sealed = (JSON.parse((await lapi.post(`/keys/${aes}/encrypt`, { plaintext: pt })).body.toString()) as { ciphertext: string })
        .ciphertext;
      // The encryptions' last pool refills (up to three sessions of 256 objects) finish first: the
      // decrypt rows measure on-demand derivation on an otherwise idle triplet, as labelled.
      await new Promise((r) => setTimeout(r, POOL_SETTLE_MS));
      const dec = await sampleSequential(() => lapi.post(`/keys/${aes}/decrypt`, { ciphertext: sealed }), n, 2);
      rows.push(summarize(`AES-256-GCM decrypt ${label}, concurrency 1`, dec));
      if (size === 1024) {
        for (const c of [16, 64]) {
          const tp = await throughput(encrypt, c, 3000);
          rows.push(
            summarize(`AES-256-GCM encrypt 1 KiB, concurrency ${c}`, tp.latencies, {
              opsPerSec: tp.opsPerSec,
              goal: '≥ 1,000 ops/s',
              goalMet: tp.opsPerSec >= 1000,
            }),
          );
        }
      }
    }
  } finally {
    lean?.close();
    await t.cleanup();
  }
  return {
    measurements: rows,
    notes: [
      'RSA shares are 2-of-3 replicated additive pieces of d (no CRT is possible on shares): each operation is two full-length modular exponentiations (EP and Partner), through OpenSSL in constant time, checked with e before release.',
      'Every AES object gets its own key from the threshold PRF: with all three servers up, EP, Partner and Aux each hash the object to P-256 and multiply (about 0.25 ms each; EP needs only the x-coordinate of its product for objects of format 2), and EP cross-checks the three partials; concurrent requests for one key share a session, and encryptions take object keys EP derived ahead of time (a pool of half a second of encryptions, 64 to 256, per key that encrypts at least twice a second, topped up once a quarter is missing, by up to three overlapping sessions; decryptions always derive on demand, so the decrypt rows show the on-demand latency). The cost per object is elliptic-curve work and the HTTPS API, not AES. The AES rows use the lean keep-alive load generator (bench/lib/http1-client.ts), as autocannon would, after 3 s of load that compiles the AES code (JIT) in all three servers and EP’s worker threads.',
      'All three servers share this 2-core machine with the benchmark client; the figures include the HTTPS API.',
    ],
  };
}

export const suite: Suite = {
  name: 'rsa-aes',
  description:
    'RSA (2048/3072/4096) and AES-256 keys on a real triplet: dealer key generation, threshold sign and decrypt, threshold-PRF encrypt and decrypt, beside node:crypto.',
  run,
};
