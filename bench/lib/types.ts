/**
 * The interface every benchmark suite implements. A suite is a module in bench/suites/ that
 * exports `suite`; bench/run.ts runs it, prints its table, stores its figures in
 * bench/results/<date>.json and renders its section of docs/benchmarks.md.
 */

/** What the runner hands a suite. */
export interface SuiteContext {
  /** Repository root (absolute). */
  readonly root: string;
  /** Progress line on stderr (not part of the report). */
  log(message: string): void;
  /**
   * Builds dist/ (`npm run build`) if any source is newer than it, so that bin/ekm and bin/ucl run
   * compiled (they fall back to tsx, much slower to start, when dist/ is stale). Resolves to
   * whether dist/ is fresh afterwards (false if the build failed: the tree is shared and may be
   * mid-edit). Call it again before each timed step if others may be editing src/.
   */
  ensureBuilt(): Promise<boolean>;
  /** Whether dist/ is at least as new as every source file right now. */
  distFresh(): boolean;
}

/** A single-party reference figure for the same operation (e.g. node:crypto, a raw socket). */
export interface Baseline {
  readonly label: string;
  readonly p50Ms?: number;
  readonly opsPerSec?: number;
}

/** One row of a suite's table. Times are milliseconds; leave out what does not apply. */
export interface Measurement {
  readonly operation: string;
  /** Samples (or, for a throughput row, operations completed). */
  readonly n: number;
  readonly p50Ms?: number;
  readonly p90Ms?: number;
  readonly p99Ms?: number;
  readonly meanMs?: number;
  readonly minMs?: number;
  readonly maxMs?: number;
  readonly opsPerSec?: number;
  /** The target, in words (e.g. "p50 < 0.3 ms"), and whether this run met it. */
  readonly goal?: string;
  readonly goalMet?: boolean;
  readonly baseline?: Baseline;
  readonly note?: string;
}

export interface SuiteResult {
  readonly measurements: readonly Measurement[];
  /** Free text for the report: method, caveats, what the figures mean. */
  readonly notes?: readonly string[];
}

export interface Suite {
  /** Short name, used on the command line (`npm run bench -- <name>`) and as the report section. */
  readonly name: string;
  readonly description: string;
  run(ctx: SuiteContext): Promise<SuiteResult>;
}
