/**
 * Rewrites citations of the threshold-protocol specification, which used to live outside the
 * repository as `threshold-protocols.md`, into citations of docs/protocols.md, which now holds it.
 * Idempotent: a second run changes nothing. Exits 1 and lists every citation it cannot map.
 *
 *   node --import tsx scripts/codemods/cite-protocols.ts           rewrite the files in place
 *   node --import tsx scripts/codemods/cite-protocols.ts --check   only report (exit 1 if anything would change)
 *
 * What it rewrites, in src/, test/, docs/, bench/, scripts/ and README.md:
 * - explicit citations: `threshold-protocols.md §3.3`, "spec §7 (c)", "design §6, R9", "spec R4",
 *   and every § chained to them ("§2 K5, §5 RF2–RF4, §11 R4"), through SECTION_MAP;
 * - bare § in a source file that cites the old specification explicitly (its bare § meant the
 *   same document), for the sections whose number changed; a § right after another document's
 *   name (RFC 8017 §9.2, draft-… §7) or with deeper numbering is left, and so is every bare § of
 *   a page under docs/, where a bare § means the page's own section;
 * - a few citations the rules cannot decide, matched by their phrase (PHRASES).
 */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

/** Section of the old specification → section of docs/protocols.md. */
export const SECTION_MAP: Readonly<Record<string, string>> = {
  '1': '1',
  '1.1': '1.1',
  '1.2': '1.2',
  '1.3': '1.3',
  '1.4': '1.4',
  '1.5': '1.5',
  '1.6': '1.6',
  '2': '2',
  '3': '3',
  '3.1': '3.1',
  '3.2': '3.2',
  '3.3': '3.5', // checks that abort
  '3.4': '3.6', // never reuse
  '3.5': '3.4', // rounds and modes: pool mode
  '4': '4',
  '5': '5',
  '6': '6',
  '7': '12', // RSA and AES keys: §12.1 RSA, §12.2 AES (sectionFor picks one from the context)
  '8': '13', // test plan
  '9': '9',
  '10': '10',
  '11': '11',
  '11.1': '11.1',
  '11.2': '11.2',
  '11.3': '11.3',
};

/** The section a citation of the old `section` maps to, given the line and file it stands in. */
export function sectionFor(section: string, context: string): string | undefined {
  if (section !== '7') return SECTION_MAP[section];
  if (/dprf|dleq|DiSE|\bAES\b|\bPRF\b/i.test(context)) return '12.2';
  if (/\brsa|modexp|λ\(N\)/i.test(context)) return '12.1';
  return SECTION_MAP[section];
}

/**
 * Citations the rules cannot decide: bare § in files that never named the old specification (or
 * that may move into such a file while code is reorganised), so nothing says which document they
 * meant, and one explicit citation that needs a subsection. Each phrase is specific enough to be
 * found wherever the code moves.
 */
const PHRASES: readonly (readonly [string, string])[] = [
  ["before this party's online message leaves (§3.4)", "before this party's online message leaves (docs/protocols.md §3.6)"],
  ['(§3.4). At the EP, a refresh or re-derivation burnt it', '(docs/protocols.md §3.6). At the EP, a refresh or re-derivation burnt it'],
  ['Malicious-party tests for the DPRF (§7, §8)', 'Malicious-party tests for the DPRF (docs/protocols.md §8.1, §13)'],
  ['(src/protocols/dprf.ts, §7)', '(src/protocols/dprf.ts, docs/protocols.md §8.1)'],
  ['spec §7 (c)', '`docs/protocols.md` §12.1 (c)'],
];

/** The directories and files whose citations are rewritten, relative to the repository. */
export const CITATION_ROOTS = ['src', 'test', 'docs', 'bench', 'scripts', 'README.md'];
/** Recorded data and vendored files: never rewritten. */
const SKIPPED = ['bench/results', 'test/vectors', 'node_modules'];
const TEXT_FILE = /\.(ts|js|md|sh)$/;
/** Files that name the old forms on purpose: this script and the test that forbids them. */
const SELF = ['scripts/codemods/cite-protocols.ts', 'test/unit/docs-citations.test.ts'];

const SECTION = String.raw`(\d+(?:\.\d+)*)(?![.\d]*[.]\w)`;
/** A step or amendment label that may follow a §: K5, RF2–RF4, R6b, R2 (a), PS0, S2, AX1-AX3, I4. */
const LABEL = String.raw`(?:\s(?:K\d|RF\d(?:[–-]RF\d)?|R\d+(?:\s?\(?[a-d]\)?)?|PS\d|S\d|AX\d(?:[–-]AX\d)?|I\d(?:[–-]I\d)?))?`;
/** One cited section, optionally a range (§1.2–1.3), with its label. */
const CITE = String.raw`§(\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))?` + LABEL;
/** Citations chained to the first: ", §5 RF2", " and §6", "/§4", " + R2". */
const CHAIN = String.raw`(?:(?:,\s?|\s?/\s?|\sand\s|\swith\s|\s\+\s)` + CITE + ')*';
/** The old document named explicitly: its file name, "spec" or "design", before a § or an R label. */
const LEAD = String.raw`\`?(?:[\w./-]*threshold-protocols\.md)\`?|\bspec(?:'s)?|\bdesign`;
const EXPLICIT = new RegExp(String.raw`(${LEAD})\s(${CITE}${CHAIN})`, 'g');
const EXPLICIT_R = new RegExp(String.raw`(${LEAD})\s(R\d+\b)`, 'g');
const BARE = new RegExp(String.raw`§` + SECTION, 'g');
/** Text right before a § that names another document, whose sections are not ours. */
const OTHER_DOCUMENT =
  /(?:RFC\s?\d+|draft[\w-]*|FIPS[\s\d-]*|\.md`?|security[- ]model|operations|reliability|eprint[\s\d/.]*|paper|of the issue|['"])\s*$/i;
/** Mentions of the old specification that no rule can map (no section, or the design folder). */
const UNMAPPABLE = /threshold-protocols\.md|shared\s+design\s+folder|shared\/design/g;

export interface Unmapped {
  readonly file: string;
  readonly line: number;
  readonly text: string;
}

export interface Rewrite {
  readonly text: string;
  readonly unmapped: readonly Unmapped[];
}

/** The form a citation of docs/protocols.md takes in a file of this kind. */
function citedDoc(file: string): string {
  if (file === 'docs/protocols.md') return '';
  return file.endsWith('.md') ? '`docs/protocols.md` ' : 'docs/protocols.md ';
}

export function lineOf(text: string, index: number): number {
  return text.slice(0, index).split('\n').length;
}

/** The whole line of `text` that holds `index`. */
function lineAt(text: string, index: number): string {
  const start = text.lastIndexOf('\n', index - 1) + 1;
  const end = text.indexOf('\n', index);
  return text.slice(start, end < 0 ? undefined : end);
}

/** Every § of a citation chain mapped; a § the map does not know is recorded as unmapped. */
function mapChain(chain: string, context: string, onUnknown: (section: string) => void): string {
  return chain.replace(/§(\d+(?:\.\d+)?)(?:([–-])(\d+(?:\.\d+)?))?/g, (_all, from: string, dash?: string, to?: string) => {
    const mapped = (section: string): string => {
      const target = sectionFor(section, context);
      if (target === undefined) onUnknown(section);
      return target ?? section;
    };
    return `§${mapped(from)}${dash && to ? `${dash}${mapped(to)}` : ''}`;
  });
}

/** Bare § of the old specification whose number changed, in a file that cited it explicitly. */
function rewriteBare(text: string, file: string): string {
  return text.replace(BARE, (all: string, section: string, offset: number) => {
    const lineStart = text.lastIndexOf('\n', offset) + 1;
    const target = sectionFor(section, `${file} ${lineAt(text, offset)}`);
    if (target === undefined || target === section) return all;
    if (OTHER_DOCUMENT.test(text.slice(lineStart, offset))) return all;
    return `${citedDoc(file)}§${target}`;
  });
}

/** Marks a § this run already mapped, so that the bare rule leaves it alone. */
const MAPPED = '\uE000';

/** The file's text with every citation of the old specification rewritten, and what could not be. */
export function rewriteCitations(text: string, file: string): Rewrite {
  const unmapped: Unmapped[] = [];
  let out = text;
  for (const [phrase, replacement] of PHRASES) out = out.split(phrase).join(replacement);
  // Decided before the rewrite: a file that named the old specification meant it by its bare § too.
  const citedOld = new RegExp(EXPLICIT.source).test(out) || new RegExp(EXPLICIT_R.source).test(out);
  out = out.replace(EXPLICIT, (all: string, _lead: string, chain: string, offset: number) => {
    const mapped = mapChain(chain, `${file} ${lineAt(out, offset)}`, (section) =>
      unmapped.push({ file, line: lineOf(out, offset), text: `${all} (no section ${section})` }),
    );
    return `${citedDoc(file)}${mapped.replaceAll('§', MAPPED)}`;
  });
  out = out.replace(EXPLICIT_R, (_all: string, _lead: string, label: string) => `${citedDoc(file)}${MAPPED}11 ${label}`);
  if (citedOld && !file.endsWith('.md')) out = rewriteBare(out, file);
  out = out.replaceAll(MAPPED, '§');
  const reported = new Set(unmapped.map((u) => u.line));
  for (const m of out.matchAll(UNMAPPABLE)) {
    const line = lineOf(out, m.index);
    if (reported.has(line)) continue;
    reported.add(line);
    unmapped.push({ file, line, text: lineAt(out, m.index).trim() });
  }
  return { text: out, unmapped };
}

/** Every text file whose citations the script keeps, as paths relative to `root`. */
export function citationFiles(root: string): string[] {
  const files: string[] = [];
  const walk = (path: string): void => {
    const rel = relative(root, path);
    if (SKIPPED.some((skip) => rel === skip || rel.startsWith(`${skip}/`))) return;
    let entries;
    try {
      entries = readdirSync(path, { withFileTypes: true });
    } catch {
      if (TEXT_FILE.test(path) && !SELF.includes(rel)) files.push(rel);
      return;
    }
    for (const entry of entries) walk(join(path, entry.name));
  };
  for (const top of CITATION_ROOTS) walk(join(root, top));
  return files.sort();
}

function main(): void {
  const root = resolve(import.meta.dirname, '..', '..');
  const check = process.argv.includes('--check');
  const changed: string[] = [];
  const unmapped: Unmapped[] = [];
  for (const file of citationFiles(root)) {
    const path = join(root, file);
    const before = readFileSync(path, 'utf8');
    const result = rewriteCitations(before, file);
    unmapped.push(...result.unmapped);
    if (result.text === before) continue;
    changed.push(file);
    if (!check) writeFileSync(path, result.text);
  }
  for (const file of changed) console.log(`${check ? 'would rewrite' : 'rewrote'} ${file}`);
  for (const u of unmapped) console.error(`${u.file}:${u.line}: cannot map: ${u.text}`);
  if (unmapped.length > 0 || (check && changed.length > 0)) process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
