/**
 * The layering of `src/`, checked on its import graph: no import cycle between modules, and no
 * import from a lower floor to a higher one. This file is the one place the floors are declared.
 *
 * Every relative import counts, `import type` and `export … from` included (a type import still
 * ties the importer to the module's meaning), and so do dynamic `import()`s (the CLIs load parts
 * lazily; a lazy import upward is still upward).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { sourceFiles } from '../../support/source-files.js';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '../../../src');

/**
 * Floors, top to bottom; a module may import its own floor's modules and any lower floor's.
 * A top-level entry of `src/` (a folder, or a single file without its `.ts`) belongs to one floor.
 */
const FLOORS: readonly { readonly name: string; readonly parts: readonly string[]; readonly why: string }[] = [
  {
    name: 'front doors',
    parts: ['cli', 'client'],
    why: 'the command-line programs and the HTTPS client they use; nothing imports them',
  },
  {
    name: 'server',
    parts: ['server'],
    why: 'one process of any role: composes the API, the services, the links and the store',
  },
  {
    name: 'api',
    parts: ['api'],
    why: "the EP's HTTPS routes, built by the server over the services",
  },
  {
    name: 'services',
    parts: ['service', 'cluster', 'backup'],
    why: 'what the cluster does: keys over the triplet, membership and bootstrap, backup and restore (one floor: a restore boot recovers the Aux, the Aux recovery probes health)',
  },
  {
    name: 'mechanisms',
    parts: ['protocols', 'net', 'store'],
    why: 'pure protocol state machines, peer links, persistence: each knows nothing of the others',
  },
  {
    name: 'crypto',
    parts: ['crypto'],
    why: 'pure math and encodings',
  },
  {
    name: 'foundations',
    parts: ['config', 'util', 'errors', 'error-codes', 'version', 'failpoints', 'worker-spawn'],
    why: 'paths and settings, small data structures, the error type and its table, the release: importable from anywhere',
  },
];

/**
 * Upward imports that are known and owned elsewhere, each with the reason it still stands.
 * Keys are `importer -> imported`, paths relative to `src/`.
 */
const ALLOWED_UPWARD: Readonly<Record<string, string>> = {};

/** The relative imports of every module of `src/`, as paths relative to `src/`. */
function importGraph(): Map<string, string[]> {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file);
    const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
    const targets = info.importedFiles
      .map((i) => i.fileName)
      .filter((name) => name.startsWith('.'))
      .map((name) => normalize(join(dirname(from), name)).replace(/\.js$/, '.ts'));
    graph.set(from, [...new Set(targets)]);
  }
  return graph;
}

/** The floor index of a module (0 is the top); undefined for a part no floor names. */
function floorOf(module: string): number | undefined {
  const part = module.split('/')[0]!.replace(/\.ts$/, '');
  const i = FLOORS.findIndex((f) => f.parts.includes(part));
  return i < 0 ? undefined : i;
}

/** Strongly connected components of more than one module (or a module importing itself): the cycles. */
function cycles(graph: ReadonlyMap<string, readonly string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

describe('the import graph of src/', () => {
  const graph = importGraph();

  it('resolves every relative import to a module of src/', () => {
    const missing = [...graph].flatMap(([from, targets]) => targets.filter((t) => !graph.has(t)).map((t) => `${from} -> ${t}`));
    assert.deepEqual(missing, []);
  });

  it('places every top-level part of src/ on a floor', () => {
    const unplaced = [...graph.keys()].filter((m) => floorOf(m) === undefined);
    assert.deepEqual(unplaced, [], 'add the part to FLOORS with the reason for its floor');
  });

  it('has no import cycle', () => {
    // An allowed upward import closes a cycle with the downward import it answers (the server
    // builds the API, the API names the server's type); it is listed, and leaves, on its own.
    const downward = new Map([...graph].map(([from, targets]) => [from, targets.filter((t) => !(`${from} -> ${t}` in ALLOWED_UPWARD))]));
    const found = cycles(downward).map((c) => c.join(' -> '));
    assert.deepEqual(found, [], `import cycles:\n${found.join('\n')}`);
  });

  it('imports only down (or within a floor)', () => {
    const upward = [...graph].flatMap(([from, targets]) =>
      targets.filter((t) => floorOf(t)! < floorOf(from)!).map((t) => `${from} -> ${t}`),
    );
    const unexpected = upward.filter((edge) => !(edge in ALLOWED_UPWARD));
    assert.deepEqual(unexpected, [], `upward imports:\n${unexpected.join('\n')}`);
  });

  it('allows only upward imports that still exist', () => {
    const edges = new Set([...graph].flatMap(([from, targets]) => targets.map((t) => `${from} -> ${t}`)));
    const stale = Object.keys(ALLOWED_UPWARD).filter((edge) => !edges.has(edge));
    assert.deepEqual(stale, [], 'remove the exception: the import is gone');
  });
});
