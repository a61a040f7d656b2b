/**
 * The protocols alone (no network, no store, no API): all parties of one session in one process,
 * per curve — the floor under the triplet figures of `threshold-ec`, beside node:crypto.
 */
import { generateKeyPairSync, sign as nodeSign } from 'node:crypto';
import { ECDSA_DEFAULT_HASH, type SignedInput } from '../../src/protocols/ecdsa.js';
import type { EcAlg } from '../../src/protocols/key-share.js';
import { dealKey, presigStores, runEcdsaOnline, runEcdsaSign, runFrost } from '../../test/support/ec-test-keys.js';
import { summarize } from '../lib/stats.js';
import type { Measurement, Suite } from '../lib/types.js';

const N = 60;
const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const CURVE: Record<string, string> = { 'ecdsa-p256': 'P-256', 'ecdsa-secp256k1': 'secp256k1', 'ecdsa-p384': 'P-384' };

function times(fn: () => void, n = N, warm = 5): number[] {
  for (let i = 0; i < warm; i++) fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    fn();
    out.push(performance.now() - t0);
  }
  return out;
}

function nodeBaseline(alg: EcAlg): { label: string; p50Ms: number } {
  const { privateKey } = alg === 'eddsa-ed25519' ? generateKeyPairSync('ed25519') : generateKeyPairSync('ec', { namedCurve: CURVE[alg] ?? 'secp256k1' });
  const hash = alg === 'eddsa-ed25519' ? null : alg === 'ecdsa-p384' ? 'sha384' : 'sha256';
  const xs = times(() => nodeSign(hash, Buffer.from('m'), privateKey), 300, 20).sort((a, b) => a - b);
  return { label: 'node:crypto sign (single party)', p50Ms: xs[150]! };
}

export const suite: Suite = {
  name: 'protocols',
  description: 'Threshold signing protocols with all parties in one process (pure state machines, no I/O): the CPU floor of each signature.',
  async run() {
    const rows: Measurement[] = [];
    for (const alg of ['ecdsa-p256', 'ecdsa-secp256k1', 'ecdsa-p384'] as const) {
      const key = dealKey(alg);
      const input: SignedInput = { kind: 'message', hash: ECDSA_DEFAULT_HASH[alg], data: utf8('bench') };
      rows.push(summarize(`${alg}: on-demand signature, 3 parties`, times(() => void runEcdsaSign(key, input)), { baseline: nodeBaseline(alg) }));
      const stores = presigStores(key, N + 5, `bench-${alg}`);
      const psids = [...stores[1].shares.values()].map((p) => p.psid);
      let i = 0;
      rows.push(summarize(`${alg}: online signature from a presignature, 3 parties`, times(() => void runEcdsaOnline(key, stores, psids[i++]!, input))));
    }
    for (const alg of ['eddsa-ed25519', 'schnorr-bip340'] as const) {
      const key = dealKey(alg);
      rows.push(
        summarize(`${alg}: FROST signature, EP + Partner`, times(() => void runFrost(key, 2, utf8('bench'))), {
          ...(alg === 'eddsa-ed25519' ? { baseline: nodeBaseline(alg) } : {}),
        }),
      );
    }
    return { measurements: rows, notes: ['One process runs every party in turn, so these are sums of all parties’ CPU time; on three hosts the parties work in parallel.'] };
  },
};
