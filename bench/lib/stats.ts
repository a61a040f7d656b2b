/** Percentiles, summaries and timing for benchmark suites (times in milliseconds). */
import { performance } from 'node:perf_hooks';
import type { Measurement } from './types.js';

/** The p-th percentile (0..100) of the samples, linearly interpolated between closest ranks. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (rank - lo);
}

/** A table row from latency samples; `extra` adds goal, baseline, note or ops/s. */
export function summarize(operation: string, samples: readonly number[], extra: Partial<Measurement> = {}): Measurement {
  const sorted = [...samples].sort((a, b) => a - b);
  const sum = sorted.reduce((a, b) => a + b, 0);
  const mean = sorted.length > 0 ? sum / sorted.length : NaN;
  return {
    operation,
    n: sorted.length,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    meanMs: mean,
    minMs: sorted[0],
    maxMs: sorted[sorted.length - 1],
    // Sequential operations: one at a time, so throughput is the inverse of the mean latency.
    opsPerSec: sum > 0 ? (1000 * sorted.length) / sum : undefined,
    ...extra,
  };
}

/** Wall time of one call, in milliseconds, with its result. */
export async function timed<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Runs `fn` sequentially `count` times (after `warmup` unmeasured runs) and returns each duration. */
export async function sampleSequential(fn: () => Promise<unknown>, count: number, warmup = 0): Promise<number[]> {
  for (let i = 0; i < warmup; i++) await fn();
  const out = new Array<number>(count);
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    await fn();
    out[i] = performance.now() - t0;
  }
  return out;
}

/**
 * Keeps `concurrency` calls of `fn` in flight for `durationMs` and counts completions; returns
 * completed operations per second and the latency of each completed call.
 */
export async function throughput(
  fn: () => Promise<unknown>,
  concurrency: number,
  durationMs: number,
): Promise<{ completed: number; opsPerSec: number; latencies: number[] }> {
  const latencies: number[] = [];
  const t0 = performance.now();
  const end = t0 + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      const s = performance.now();
      await fn();
      latencies.push(performance.now() - s);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  const elapsed = performance.now() - t0;
  return { completed: latencies.length, opsPerSec: (1000 * latencies.length) / elapsed, latencies };
}
