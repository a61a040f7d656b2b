/**
 * `npm run bench [-- [--snapshot] <suite> ...]`: runs every suite in bench/suites/ (or the ones
 * named), prints a table per suite, writes bench/results/<date>.json and re-renders
 * docs/benchmarks.md.
 *
 * `--snapshot` measures the committed HEAD instead of the working tree: it checks HEAD out into a
 * temporary git worktree (sharing node_modules), builds it there and runs the benchmark in it,
 * writing results and report into this tree. Use it while others edit the tree: the bin/ scripts
 * run compiled only while dist/ is newer than every source, and a half-edited tree may not build.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { describeMachine, loadAverage, machineLine } from './lib/machine.js';
import { type ResultsFile, type SuiteRecord, resultsFileName, writeReport } from './lib/results.js';
import { textTable } from './lib/table.js';
import type { Suite, SuiteContext, SuiteResult } from './lib/types.js';

const ROOT = resolve(import.meta.dirname, '..');
const SUITES_DIR = join(ROOT, 'bench', 'suites');
/** Where results and the report go: this tree, or the tree that started a --snapshot run. */
const OUT = process.env.EKM_BENCH_OUT ?? ROOT;
const RESULTS_DIR = join(OUT, 'bench', 'results');
const DOC = join(OUT, 'docs', 'benchmarks.md');
/** A suite that overruns this is reported as failed (suites bound themselves well below it). */
const SUITE_GUARD_MS = 6 * 60_000;

async function loadSuites(): Promise<Suite[]> {
  const files = readdirSync(SUITES_DIR)
    .filter((f) => f.endsWith('.ts'))
    .sort();
  const suites: Suite[] = [];
  for (const f of files) {
    const mod = (await import(pathToFileURL(join(SUITES_DIR, f)).href)) as { suite?: Suite };
    if (!mod.suite || typeof mod.suite.run !== 'function') throw new Error(`bench/suites/${f} does not export a suite`);
    suites.push(mod.suite);
  }
  return suites;
}

function distFresh(): boolean {
  const r = spawnSync('find', ['src', 'package.json', '-newer', 'dist/.stamp', '-print', '-quit'], { cwd: ROOT, encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() === '' && existsSync(join(ROOT, 'dist', '.stamp'));
}

let building: Promise<boolean> | undefined;
function ensureBuilt(): Promise<boolean> {
  building ??= (async () => {
    if (distFresh()) return true;
    process.stderr.write('  (dist/ is older than src/: npm run build)\n');
    const r = spawnSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) process.stderr.write(`  npm run build failed, bin/ scripts will run from source:\n${r.stdout}${r.stderr}\n`);
    return distFresh();
  })().finally(() => (building = undefined));
  return building;
}

/** Runs this benchmark again inside a temporary worktree of HEAD (see the header). */
function runInSnapshot(args: readonly string[]): number {
  const git = (...a: string[]): string => {
    const r = spawnSync('git', a, { cwd: ROOT, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`git ${a.join(' ')} failed: ${r.stderr.trim()}`);
    return r.stdout.trim();
  };
  const head = git('rev-parse', 'HEAD');
  const dir = join(mkdtempSync(join(tmpdir(), 'ekm-bench-')), 'tree');
  console.log(`Snapshot: HEAD ${head.slice(0, 10)} in ${dir}`);
  git('worktree', 'add', '--detach', dir, head);
  try {
    symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'));
    const r = spawnSync(process.execPath, [...process.execArgv, join('bench', 'run.ts'), ...args], {
      cwd: dir,
      env: { ...process.env, EKM_BENCH_OUT: ROOT },
      stdio: 'inherit',
    });
    return r.status ?? 1;
  } finally {
    git('worktree', 'remove', '--force', dir);
    rmSync(resolve(dir, '..'), { recursive: true, force: true });
  }
}

async function main(): Promise<number> {
  if (process.argv.includes('--snapshot') && process.env.EKM_BENCH_OUT === undefined) {
    return runInSnapshot(process.argv.slice(2).filter((a) => a !== '--snapshot'));
  }
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const all = await loadSuites();
  const unknown = wanted.filter((w) => !all.some((s) => s.name === w));
  if (unknown.length > 0) {
    process.stderr.write(`bench: no suite named ${unknown.join(', ')}; suites: ${all.map((s) => s.name).join(', ')}\n`);
    return 2;
  }
  const chosen = wanted.length > 0 ? all.filter((s) => wanted.includes(s.name)) : all;
  const startedAt = new Date().toISOString();
  const machine = describeMachine(ROOT);
  const loadBefore = loadAverage();
  console.log(`Machine: ${machineLine(machine)}; load average ${loadBefore.join(' / ')}; commit ${machine.gitCommit?.slice(0, 10) ?? '?'}`);
  const ctx: SuiteContext = { root: ROOT, log: (m) => process.stderr.write(`  ${m}\n`), ensureBuilt, distFresh };
  const records: SuiteRecord[] = [];
  let failed = 0;
  for (const s of chosen) {
    console.log(`\n== ${s.name}: ${s.description}`);
    const sStarted = new Date().toISOString();
    const sLoad = loadAverage();
    const t0 = performance.now();
    const record = (result: SuiteResult, error?: string): SuiteRecord => ({
      name: s.name,
      description: s.description,
      startedAt: sStarted,
      durationMs: Math.round(performance.now() - t0),
      loadAverageBefore: sLoad,
      loadAverageAfter: loadAverage(),
      measurements: result.measurements,
      notes: result.notes ?? [],
      ...(error !== undefined ? { error } : {}),
    });
    let guard: NodeJS.Timeout | undefined;
    try {
      const rec = record(
        await Promise.race([
          s.run(ctx),
          new Promise<never>((_, reject) => {
            guard = setTimeout(() => reject(new Error(`suite ran longer than ${SUITE_GUARD_MS / 1000} s`)), SUITE_GUARD_MS);
          }),
        ]),
      );
      records.push(rec);
      console.log(textTable(rec.measurements));
      for (const n of rec.notes) console.log(`  - ${n}`);
      console.log(
        `  (${(rec.durationMs / 1000).toFixed(1)} s; load average ${rec.loadAverageBefore.join(' / ')} -> ${rec.loadAverageAfter.join(' / ')})`,
      );
    } catch (e) {
      failed++;
      const error = e instanceof Error ? e.message : String(e);
      console.log(`  FAILED: ${error}`);
      records.push(record({ measurements: [] }, error));
    } finally {
      clearTimeout(guard);
    }
  }
  const results: ResultsFile = {
    schema: 1,
    startedAt,
    finishedAt: new Date().toISOString(),
    argv: process.argv.slice(2),
    machine,
    loadAverageBefore: loadBefore,
    loadAverageAfter: loadAverage(),
    suites: records,
  };
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, resultsFileName(startedAt));
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  mkdirSync(join(OUT, 'docs'), { recursive: true });
  writeReport(RESULTS_DIR, DOC);
  console.log(
    `\nWrote bench/results/${basename(file)} and docs/benchmarks.md (load average after: ${results.loadAverageAfter.join(' / ')})`,
  );
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
