/** An SVG of latency percentiles per operation (log scale), one per suite, linked from the report. */
import type { Measurement } from './types.js';

const ROW = 22;
const LABEL_W = 430;
const PLOT_W = 460;
const PAD = 12;

export function latencySvg(title: string, ms: readonly Measurement[]): string | undefined {
  const rows = ms.filter((m) => m.p50Ms !== undefined && Number.isFinite(m.p50Ms));
  if (rows.length === 0) return undefined;
  const values = rows.flatMap((m) => [m.p50Ms, m.p90Ms, m.p99Ms, m.baseline?.p50Ms].filter((v): v is number => v !== undefined && v > 0));
  const lo = 10 ** Math.floor(Math.log10(Math.min(...values)));
  const hi = 10 ** Math.ceil(Math.log10(Math.max(...values)));
  const x = (v: number): number =>
    Math.round((LABEL_W + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * PLOT_W) * 10) / 10;
  const top = 40;
  const height = top + rows.length * ROW + 40;
  const width = LABEL_W + PLOT_W + PAD * 2;
  const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${PAD}" y="18" font-size="13" font-weight="bold">${esc(title)}: latency, log scale (ms)</text>`,
    `<text x="${PAD}" y="32" fill="#555">bar p50–p99, tick p90, dot p50, ◇ baseline p50</text>`,
  ];
  for (let d = lo; d <= hi * 1.0001; d *= 10) {
    out.push(`<line x1="${x(d)}" y1="${top - 4}" x2="${x(d)}" y2="${height - 30}" stroke="#ddd"/>`);
    out.push(`<text x="${x(d)}" y="${height - 16}" text-anchor="middle" fill="#555">${d >= 1 ? d : d.toPrecision(1)}</text>`);
  }
  rows.forEach((m, i) => {
    const y = top + i * ROW + ROW / 2;
    const label = m.operation.length > 70 ? `${m.operation.slice(0, 68)}…` : m.operation;
    out.push(`<text x="${LABEL_W - 8}" y="${y + 4}" text-anchor="end">${esc(label)}</text>`);
    const p50 = x(m.p50Ms!);
    const p99 = m.p99Ms !== undefined ? x(m.p99Ms) : p50;
    out.push(`<rect x="${p50}" y="${y - 5}" width="${Math.max(1, p99 - p50)}" height="10" fill="#9ecae1"/>`);
    if (m.p90Ms !== undefined)
      out.push(`<line x1="${x(m.p90Ms)}" y1="${y - 7}" x2="${x(m.p90Ms)}" y2="${y + 7}" stroke="#3182bd" stroke-width="2"/>`);
    out.push(`<circle cx="${p50}" cy="${y}" r="4" fill="#08519c"/>`);
    if (m.baseline?.p50Ms !== undefined && m.baseline.p50Ms > 0) {
      const b = x(m.baseline.p50Ms);
      out.push(`<path d="M${b} ${y - 6} L${b + 5} ${y} L${b} ${y + 6} L${b - 5} ${y} Z" fill="none" stroke="#e6550d" stroke-width="1.5"/>`);
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
