/**
 * A strict reader of the Prometheus text exposition format (0.0.4), for tests of `/metrics`:
 * every line must be empty, a `# HELP` or `# TYPE` line, or a sample of a declared family;
 * anything else throws, naming the line. Label order inside braces carries no meaning in the
 * format, so samples are compared by their label set.
 */

export interface Family {
  type: string;
  help: string;
}

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  families: Map<string, Family>;
  samples: Sample[];
}

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const COMMENT = new RegExp(`^# (HELP|TYPE) (${NAME}) (.*)$`);
const SAMPLE = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)(?: -?\\d+)?$`);
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/;
/**
 * Prometheus reads values with Go's ParseFloat, which takes NaN in any case; prom-client writes
 * `Nan` (an event-loop lag gauge before its first sample), so the reader takes it too.
 */
const VALUE = /^([Nn][Aa][Nn]|[+-]Inf|[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);
/** The sample names a family of each type may carry besides its own name. */
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['_sum', '_count'] };

const unescape = (v: string): string => v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));

function parseLabels(text: string, line: string): Record<string, string> {
  const labels: Record<string, string> = {};
  let rest = text;
  while (rest.length > 0) {
    const m = LABEL.exec(rest);
    if (!m) throw new Error(`bad labels in: ${line}`);
    if (m[1]! in labels) throw new Error(`label ${m[1]} twice in: ${line}`);
    labels[m[1]!] = unescape(m[2]!);
    rest = rest.slice(m[0].length);
  }
  return labels;
}

function parseValue(text: string, line: string): number {
  if (!VALUE.test(text)) throw new Error(`bad value in: ${line}`);
  if (/^nan$/i.test(text)) return NaN;
  return text === '+Inf' ? Infinity : text === '-Inf' ? -Infinity : Number(text);
}

function familyOf(name: string, families: Map<string, Family>): string | undefined {
  if (families.has(name)) return name;
  for (const [family, { type }] of families) if ((SUFFIXES[type] ?? []).some((s) => name === family + s)) return family;
  return undefined;
}

export function parseExposition(text: string): Exposition {
  const families = new Map<string, Family>();
  const samples: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const comment = COMMENT.exec(line);
    if (comment) {
      const [, kind, name, rest] = comment as unknown as [string, 'HELP' | 'TYPE', string, string];
      const family = families.get(name) ?? { type: 'untyped', help: '' };
      if (kind === 'TYPE' && !TYPES.has(rest)) throw new Error(`unknown type in: ${line}`);
      if (kind === 'TYPE') family.type = rest;
      else family.help = unescape(rest);
      families.set(name, family);
      continue;
    }
    const sample = SAMPLE.exec(line);
    if (!sample) throw new Error(`not a Prometheus text line: ${line}`);
    const [, name, labelText, valueText] = sample as unknown as [string, string, string | undefined, string];
    if (!familyOf(name, families)) throw new Error(`sample of an undeclared family: ${line}`);
    samples.push({ name, labels: parseLabels(labelText ?? '', line), value: parseValue(valueText, line) });
  }
  return { families, samples };
}

/** The samples named `name` whose labels include every pair in `labels`. */
export function samplesOf(exposition: Exposition, name: string, labels: Record<string, string> = {}): Sample[] {
  return exposition.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}
