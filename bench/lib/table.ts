/** Formatting of measurements for the terminal and for docs/benchmarks.md. */
import type { Measurement } from './types.js';

export const COLUMNS = ['operation', 'n', 'p50', 'p90', 'p99', 'mean', 'ops/s', 'goal', 'baseline', 'note'] as const;

/** Milliseconds with about three significant digits ("0.142 ms", "12.3 ms", "1 843 ms"). */
export function fmtMs(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms)) return '';
  if (ms < 1) return `${ms.toFixed(3)} ms`;
  if (ms < 10) return `${ms.toFixed(2)} ms`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  return `${Math.round(ms)} ms`;
}

export function fmtRate(r: number | undefined): string {
  if (r === undefined || !Number.isFinite(r)) return '';
  if (r >= 100) return String(Math.round(r));
  return r.toPrecision(3);
}

function fmtGoal(m: Measurement): string {
  if (!m.goal) return '';
  if (m.goalMet === undefined) return m.goal;
  return `${m.goal} ${m.goalMet ? '(met)' : '(NOT met)'}`;
}

function fmtBaseline(m: Measurement): string {
  const b = m.baseline;
  if (!b) return '';
  const parts = [
    b.p50Ms !== undefined ? `p50 ${fmtMs(b.p50Ms)}` : '',
    b.opsPerSec !== undefined ? `${fmtRate(b.opsPerSec)} ops/s` : '',
  ].filter(Boolean);
  return `${b.label}: ${parts.join(', ')}`;
}

export function row(m: Measurement): string[] {
  return [
    m.operation,
    String(m.n),
    fmtMs(m.p50Ms),
    fmtMs(m.p90Ms),
    fmtMs(m.p99Ms),
    fmtMs(m.meanMs),
    fmtRate(m.opsPerSec),
    fmtGoal(m),
    fmtBaseline(m),
    m.note ?? '',
  ];
}

/** A plain-text table for the terminal (empty columns left out). */
export function textTable(ms: readonly Measurement[]): string {
  const rows = ms.map(row);
  const keep = COLUMNS.map((_, i) => i === 0 || rows.some((r) => r[i] !== ''));
  const header = COLUMNS.filter((_, i) => keep[i]);
  const body = rows.map((r) => r.filter((_, i) => keep[i]));
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 || i >= cells.length - 3 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

/** A Markdown table (empty columns left out). */
export function markdownTable(ms: readonly Measurement[]): string {
  const rows = ms.map(row);
  const keep = COLUMNS.map((_, i) => i === 0 || rows.some((r) => r[i] !== ''));
  const header = COLUMNS.filter((_, i) => keep[i]);
  const esc = (s: string): string => s.replace(/\|/g, '\\|');
  const numeric = (h: string): boolean => !['operation', 'goal', 'baseline', 'note'].includes(h);
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((h) => (numeric(h) ? '---:' : '---')).join(' | ')} |`,
    ...rows.map(
      (r) =>
        `| ${r
          .filter((_, i) => keep[i])
          .map(esc)
          .join(' | ')} |`,
    ),
  ].join('\n');
}
