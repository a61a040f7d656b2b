/**
 * The repository stands alone: no source, test, script, benchmark or doc cites the protocol
 * specification that used to live outside it (`threshold-protocols.md`), and every citation of
 * docs/protocols.md names a section that exists there as a heading (and, for §11, an amendment
 * R1–R10 that exists as its own heading). scripts/codemods/cite-protocols.ts rewrites old
 * citations into this form.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { citationFiles, lineOf } from '../../scripts/codemods/cite-protocols.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const PROTOCOLS = readFileSync(join(ROOT, 'docs', 'protocols.md'), 'utf8');

/** Section numbers of docs/protocols.md's `##` and `###` headings ("3", "3.4"). */
const SECTIONS = new Set([...PROTOCOLS.matchAll(/^#{2,3} (\d+(?:\.\d+)?)[. ]/gm)].map((m) => m[1]));
/** The review's amendments, each a `####` heading of §11 ("R4"). */
const AMENDMENTS = new Set([...PROTOCOLS.matchAll(/^#### (R\d+)\b/gm)].map((m) => m[1]));

/** A citation of docs/protocols.md and the § chained to it: "`docs/protocols.md` §2 K0, §3 PS0", "§1.2–1.3, §11 R6c". */
const CITATION =
  /protocols\.md`?\)?\s?(§\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)?(?:\s(?!and\b|with\b)\w+)?(?:(?:,\s|\/|\sand\s|\swith\s)§\d+(?:\.\d+)?(?:[–-]\d+(?:\.\d+)?)?(?:\s(?!and\b|with\b)\w+)?)*)/g;
const CITED_SECTION = /§(\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))?(?:\s(R\d+)\b)?/g;

interface Finding {
  readonly file: string;
  readonly line: number;
  readonly what: string;
}

/** What in one file cites the old specification, or a part of docs/protocols.md that does not exist. */
function findings(file: string, text: string): Finding[] {
  const found: Finding[] = [];
  for (const m of text.matchAll(/threshold-protocols\.md/g)) {
    found.push({ file, line: lineOf(text, m.index), what: 'cites threshold-protocols.md' });
  }
  for (const citation of text.matchAll(CITATION)) {
    for (const cited of citation[1]!.matchAll(CITED_SECTION)) {
      const [, from, to, amendment] = cited;
      for (const section of [from, to]) {
        if (section !== undefined && !SECTIONS.has(section)) {
          found.push({ file, line: lineOf(text, citation.index), what: `cites docs/protocols.md §${section}, which has no such heading` });
        }
      }
      if (amendment !== undefined && from === '11' && !AMENDMENTS.has(amendment)) {
        found.push({
          file,
          line: lineOf(text, citation.index),
          what: `cites docs/protocols.md §11 ${amendment}, which has no such heading`,
        });
      }
    }
  }
  return found;
}

test('docs/protocols.md numbers its sections and gives each amendment R1–R10 a heading', () => {
  for (const section of ['1.5', '1.6', '3.5', '3.6', '9', '10', '11', '11.3', '12', '13']) assert.ok(SECTIONS.has(section), `§${section}`);
  for (let r = 1; r <= 10; r++) assert.ok(AMENDMENTS.has(`R${r}`), `R${r}`);
});

test('the checks catch an old citation and a citation of a missing section', () => {
  const text = 'see threshold-protocols.md §3\nsee docs/protocols.md §3.4, §99 and `docs/protocols.md` §11 R42\n';
  assert.deepEqual(
    findings('example.ts', text).map((f) => `${f.line}: ${f.what}`),
    [
      '1: cites threshold-protocols.md',
      '2: cites docs/protocols.md §99, which has no such heading',
      '2: cites docs/protocols.md §11 R42, which has no such heading',
    ],
  );
});

test('no file cites the old specification, and every citation of docs/protocols.md exists', () => {
  const files = citationFiles(ROOT);
  assert.ok(files.includes('docs/protocols.md') && files.some((f) => f.startsWith('src/protocols/')), 'the walk reads src and docs');
  const found = files.flatMap((file) => findings(file, readFileSync(join(ROOT, file), 'utf8')));
  assert.deepEqual(
    found.map((f) => `${f.file}:${f.line}: ${f.what}`),
    [],
    'run `node --import tsx scripts/codemods/cite-protocols.ts` to rewrite old citations',
  );
});
