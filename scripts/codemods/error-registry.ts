/**
 * Rewrites the positional form of `new EkmError(code, message, hint, exitCode, httpStatus)` (and
 * `super(…)` in a class that extends EkmError) into the options form
 * `new EkmError(code, message, { hint })`, whose status and exit code come from the error table
 * (src/error-codes.ts). A site is rewritten only if the status and exit code it spells out (400 and
 * 1 when left out, as the positional form meant) equal the table's line for its code.
 *
 *   node --import tsx scripts/codemods/error-registry.ts [--check] [--adopt=CODE,…] [file or folder …]   (default: src)
 *
 * Prints three lists and exits 1 if any is not empty, leaving those sites as they are:
 *  - mismatches: the site's status or exit code is not the table's (decide which is right; if both
 *    are, split the code in two);
 *  - undeclared codes: add them to src/error-codes.ts by hand, then run this again;
 *  - sites it cannot convert: a code that is not a literal (nor a union of literals), a status or
 *    exit code that is not a number literal, a third argument that is neither a hint nor options.
 * Idempotent: a site in the options form is left as it is. A call with two arguments reads the
 * same in both forms and is only checked for a declared code; the table then gives its status.
 * A file that prettier found already laid out is laid out again after the rewrite; others keep
 * their layout, so no line the rewrite did not touch changes. `--check` writes nothing. `--adopt=EKM_A,EKM_B` converts the mismatched sites of those codes too,
 * once you have decided that the table's status and exit code are the right ones for them.
 */
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import prettier from 'prettier';
import ts from 'typescript';
import { ERROR_CODES, isErrorCode } from '../../src/error-codes.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
/** What the positional form meant when exitCode or httpStatus was left out. */
const POSITIONAL_DEFAULTS = { exitCode: 1, httpStatus: 400 };

interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

interface Finding {
  readonly where: string;
  readonly what: string;
}

interface Run {
  readonly checker: ts.TypeChecker;
  readonly report: Report;
  /** Codes whose mismatched sites take the table's status and exit code. */
  readonly adopt: ReadonlySet<string>;
}

interface Report {
  readonly converted: Finding[];
  readonly mismatches: Finding[];
  readonly undeclared: Finding[];
  readonly unconvertible: Finding[];
}

function tsFilesUnder(path: string): string[] {
  if (statSync(path).isFile()) return path.endsWith('.ts') && !path.endsWith('.d.ts') ? [path] : [];
  return readdirSync(path)
    .filter((name) => name !== 'node_modules' && !name.startsWith('.'))
    .flatMap((name) => tsFilesUnder(join(path, name)));
}

function compilerOptions(): ts.CompilerOptions {
  const configPath = join(ROOT, 'tsconfig.json');
  const read = ts.readConfigFile(configPath, (p) => ts.sys.readFile(p));
  return ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT).options;
}

function isEkmErrorName(expr: ts.Expression): boolean {
  return (ts.isIdentifier(expr) && expr.text === 'EkmError') || (ts.isPropertyAccessExpression(expr) && expr.name.text === 'EkmError');
}

/** `super(…)` inside a class declared `extends EkmError` builds an EkmError by the same arguments. */
function isEkmErrorSuper(call: ts.CallExpression): boolean {
  if (call.expression.kind !== ts.SyntaxKind.SuperKeyword) return false;
  let node: ts.Node | undefined = call.parent;
  while (node && !ts.isClassLike(node)) node = node.parent;
  const heritage = node?.heritageClauses?.find((h) => h.token === ts.SyntaxKind.ExtendsKeyword);
  return heritage?.types.some((t) => isEkmErrorName(t.expression)) ?? false;
}

function ekmErrorArguments(node: ts.Node): readonly ts.Expression[] | undefined {
  if (ts.isNewExpression(node) && isEkmErrorName(node.expression)) return node.arguments ?? [];
  if (ts.isCallExpression(node) && isEkmErrorSuper(node)) return node.arguments;
  return undefined;
}

function isUndefinedArgument(arg: ts.Expression): boolean {
  return (ts.isIdentifier(arg) && arg.text === 'undefined') || ts.isVoidExpression(arg);
}

/** The codes an argument can hold: its literal, or the members of its union of string literals. */
function literalCodes(arg: ts.Expression, checker: ts.TypeChecker): string[] | undefined {
  if (ts.isStringLiteral(arg) || ts.isNoSubstitutionTemplateLiteral(arg)) return [arg.text];
  const type = checker.getTypeAtLocation(arg);
  const members = type.isUnion() ? type.types : [type];
  const codes = members.map((t) => (t.isStringLiteral() ? t.value : undefined));
  return codes.every((c): c is string => c !== undefined) ? codes : undefined;
}

/** The third argument of the options form: an object literal, or an expression of a type that is no hint (string or undefined). */
function isOptionsArgument(arg: ts.Expression, checker: ts.TypeChecker): boolean {
  if (ts.isObjectLiteralExpression(arg)) return true;
  if (isUndefinedArgument(arg)) return false;
  const type = checker.getTypeAtLocation(arg);
  const members = type.isUnion() ? type.types : [type];
  return !members.every((t) => (t.flags & (ts.TypeFlags.StringLike | ts.TypeFlags.Undefined)) !== 0);
}

/** Options that relay another party's code: the code argument is only the stand-in. */
function isRelayed(options: ts.Expression | undefined): boolean {
  return options !== undefined && ts.isObjectLiteralExpression(options) && options.properties.some((p) => p.name?.getText() === 'relayed');
}

/** A number literal argument, the positional default when left out, or undefined when it is an expression. */
function numberArgument(arg: ts.Expression | undefined, fallback: number): number | undefined {
  if (arg === undefined || isUndefinedArgument(arg)) return fallback;
  return ts.isNumericLiteral(arg) ? Number(arg.text) : undefined;
}

function optionsText(hint: ts.Expression, sf: ts.SourceFile): string {
  const text = hint.getText(sf);
  return text === 'hint' ? '{ hint }' : `{ hint: ${text} }`;
}

/** Checks one site and returns the edit that converts it, or records why it is left as it is. */
function convertSite(args: readonly ts.Expression[], sf: ts.SourceFile, where: string, run: Run): Edit | undefined {
  const { checker, report, adopt } = run;
  const [code, message, hint, exitArg, statusArg] = args;
  if (!code || !message || args.length > 5) {
    report.unconvertible.push({ where, what: `${args.length} arguments` });
    return undefined;
  }
  const codes = literalCodes(code, checker);
  const undeclared = codes?.filter((c) => !isErrorCode(c)) ?? [];
  for (const c of undeclared) report.undeclared.push({ where, what: c });
  if (args.length === 2 || (args.length === 3 && isOptionsArgument(hint!, checker))) {
    if (!codes && !isRelayed(hint)) report.unconvertible.push({ where, what: `the code ${code.getText(sf)} is not a literal: narrow it to declared codes` });
    return undefined;
  }
  if (!codes) {
    report.unconvertible.push({ where, what: `the code ${code.getText(sf)} is not a literal nor a union of literals` });
    return undefined;
  }
  const exitCode = numberArgument(exitArg, POSITIONAL_DEFAULTS.exitCode);
  const httpStatus = numberArgument(statusArg, POSITIONAL_DEFAULTS.httpStatus);
  if (exitCode === undefined || httpStatus === undefined) {
    report.unconvertible.push({ where, what: `the exit code or status is not a number literal (${args.slice(3).map((a) => a.getText(sf)).join(', ')})` });
    return undefined;
  }
  if (undeclared.length > 0) return undefined;
  const wrong = codes.filter((c) => {
    const spec = ERROR_CODES[c as keyof typeof ERROR_CODES];
    return (spec.httpStatus !== httpStatus || spec.exitCode !== exitCode) && !adopt.has(c);
  });
  for (const c of wrong) {
    const spec = ERROR_CODES[c as keyof typeof ERROR_CODES];
    report.mismatches.push({ where, what: `${c}: the site says status ${httpStatus} exit ${exitCode}, the table ${spec.httpStatus} exit ${spec.exitCode}` });
  }
  if (wrong.length > 0) return undefined;
  const last = args[args.length - 1]!;
  report.converted.push({ where, what: codes.join(' | ') });
  if (hint && !isUndefinedArgument(hint)) return { start: hint.getStart(sf), end: last.end, text: optionsText(hint, sf) };
  return { start: message.end, end: last.end, text: '' };
}

function applyEdits(text: string, edits: readonly Edit[]): string {
  return [...edits].sort((a, b) => b.start - a.start).reduce((t, e) => t.slice(0, e.start) + e.text + t.slice(e.end), text);
}

function convertFile(sf: ts.SourceFile, run: Run): string | undefined {
  const edits: Edit[] = [];
  const visit = (node: ts.Node): void => {
    const args = ekmErrorArguments(node);
    if (args) {
      const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
      const edit = convertSite(args, sf, `${relative(ROOT, sf.fileName)}:${line}`, run);
      if (edit) edits.push(edit);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return edits.length > 0 ? applyEdits(sf.text, edits) : undefined;
}

/** The converted text, laid out by prettier if the original was (so only the rewritten calls change). */
async function laidOut(file: string, original: string, converted: string): Promise<string> {
  const options: prettier.Options = { ...(await prettier.resolveConfig(file)), filepath: file };
  if ((await prettier.format(original, options)) !== original) return converted;
  return prettier.format(converted, options);
}

function printList(title: string, items: readonly Finding[]): void {
  if (items.length === 0) return;
  console.log(`\n${title} (${items.length}):`);
  for (const f of items) console.log(`  ${f.where}  ${f.what}`);
}

async function main(argv: readonly string[]): Promise<number> {
  const check = argv.includes('--check');
  const adoptFlag = argv.find((a) => a.startsWith('--adopt='));
  const adopt = new Set(adoptFlag ? adoptFlag.slice('--adopt='.length).split(',').filter(Boolean) : []);
  const roots = argv.filter((a) => !a.startsWith('--'));
  const files = (roots.length > 0 ? roots : ['src']).flatMap((r) => tsFilesUnder(resolve(ROOT, r)));
  const program = ts.createProgram(files, compilerOptions());
  const report: Report = { converted: [], mismatches: [], undeclared: [], unconvertible: [] };
  const run: Run = { checker: program.getTypeChecker(), report, adopt };
  let changedFiles = 0;
  for (const file of files) {
    const sf = program.getSourceFile(file);
    if (!sf) continue;
    const converted = convertFile(sf, run);
    if (converted === undefined) continue;
    changedFiles++;
    if (!check) writeFileSync(file, await laidOut(file, sf.text, converted));
  }
  console.log(`${check ? 'would convert' : 'converted'} ${report.converted.length} positional sites in ${changedFiles} files`);
  if (!check && changedFiles > 0) console.log('(the lines below are as the files were before this run)');
  printList('mismatches: the site and the error table disagree (left as they are)', report.mismatches);
  printList('undeclared codes: declare them in src/error-codes.ts (left as they are)', report.undeclared);
  printList('sites it cannot convert (left as they are)', report.unconvertible);
  return report.mismatches.length + report.undeclared.length + report.unconvertible.length > 0 ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
