/**
 * No class of the service layer grows past 400 lines: a class that big holds more than one job
 * (the EP's key service once held every family's operations, helper answers and store writes in
 * one class). A new key family is a module of `src/service/keys/`, not more lines in a class.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { sourceFiles } from '../../support/source-files.js';

const SERVICE = join(dirname(fileURLToPath(import.meta.url)), '../../../src/service');
const MAX_CLASS_LINES = 400;

/** Every class declaration of a file with its length in lines, from its first to its last line. */
function classLengths(path: string): { name: string; lines: number }[] {
  const source = ts.createSourceFile(path, readFileSync(path, 'utf8'), ts.ScriptTarget.Latest, true);
  const found: { name: string; lines: number }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) {
      const first = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const last = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      found.push({ name: node.name?.text ?? '(anonymous)', lines: last - first + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

it(`no class in src/service is longer than ${MAX_CLASS_LINES} lines`, () => {
  const all = sourceFiles(SERVICE).flatMap((f) => classLengths(f).map((c) => ({ ...c, file: relative(SERVICE, f) })));
  assert.ok(all.length > 10, `expected the service layer's classes, found ${all.length}`);
  const long = all.filter((c) => c.lines > MAX_CLASS_LINES).map((c) => `${c.file}: ${c.name} has ${c.lines} lines`);
  assert.deepEqual(long, []);
});
