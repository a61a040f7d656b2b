import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import ts from 'typescript';
import { ERROR_CODES, ERROR_GROUPS, type ErrorSpec, isErrorCode } from '../../src/error-codes.js';
import { EkmError, usageError } from '../../src/errors.js';
import { ERROR_TABLE_BEGIN, ERROR_TABLE_END, errorTableMarkdown } from '../../scripts/gen-error-table.js';
import { sourceFiles } from '../support/source-files.js';

const ROOT = resolve(import.meta.dirname, '..', '..');
const SRC = join(ROOT, 'src');
const REGISTRY = join(SRC, 'error-codes.ts');
const CODE_RE = /^EKM_[A-Z0-9_]+$/;

/** Climbs out of what only passes a value on (`a ? 'X' : 'Y'`, `a ?? 'X'`, parentheses, unions of literal types). */
function effectiveParent(node: ts.Node): { parent: ts.Node; child: ts.Node } {
  let child = node;
  let parent = node.parent;
  while (
    ts.isConditionalExpression(parent) ||
    ts.isParenthesizedExpression(parent) ||
    ts.isLiteralTypeNode(parent) ||
    ts.isUnionTypeNode(parent) ||
    (ts.isBinaryExpression(parent) && [ts.SyntaxKind.QuestionQuestionToken, ts.SyntaxKind.BarBarToken].includes(parent.operatorToken.kind))
  ) {
    child = parent;
    parent = parent.parent;
  }
  return { parent, child };
}

const CODE_NAME = /(code|refusal)$/i;
const ERROR_CALLEE = /(error|refus)/i;

function nameText(name: ts.Node | undefined): string {
  return name && (ts.isIdentifier(name) || ts.isStringLiteral(name) || ts.isPrivateIdentifier(name)) ? name.text : '';
}

/**
 * Whether an `'EKM_…'` literal stands for an error code where it is: what an error is built with,
 * a `code` it is given or compared with, or the code of an API error reply. Other `EKM_…` strings
 * (environment variable names) are left out.
 */
function isErrorCodeUse(literal: ts.Node): boolean {
  const { parent, child } = effectiveParent(literal);
  if (ts.isNewExpression(parent) || ts.isCallExpression(parent)) {
    const args: readonly ts.Node[] = parent.arguments ?? [];
    if (!args.includes(child)) return false;
    const callee = parent.expression;
    return callee.kind === ts.SyntaxKind.SuperKeyword || ERROR_CALLEE.test(callee.getText());
  }
  if (ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent) || ts.isParameter(parent) || ts.isVariableDeclaration(parent))
    return CODE_NAME.test(nameText(parent.name));
  if (ts.isBinaryExpression(parent)) return CODE_NAME.test((parent.left === child ? parent.right : parent.left).getText());
  if (ts.isArrayLiteralExpression(parent)) {
    const call = parent.parent.parent;
    return ts.isCallExpression(call) && call.arguments.some((a) => CODE_NAME.test(a.getText()));
  }
  return false;
}

interface Use {
  readonly code: string;
  readonly where: string;
  readonly asError: boolean;
}

function literalUses(): Use[] {
  return sourceFiles(SRC)
    .filter((f) => f !== REGISTRY)
    .flatMap((file) => {
      const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest, true);
      const uses: Use[] = [];
      const visit = (node: ts.Node): void => {
        if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && CODE_RE.test(node.text)) {
          const line = sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1;
          uses.push({ code: node.text, where: `${relative(ROOT, file)}:${line}`, asError: isErrorCodeUse(node) });
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
      return uses;
    });
}

const uses = literalUses();
const declared = Object.entries(ERROR_CODES) as [string, ErrorSpec][];

describe('the error table', () => {
  it('finds the error codes the sources use (the scan itself works)', () => {
    const found = new Set(uses.filter((u) => u.asError).map((u) => u.code));
    for (const code of ['EKM_KEY_NOT_FOUND', 'EKM_INTERNAL', 'EKM_BAD_REQUEST', 'EKM_URI_TOO_LONG', 'EKM_PEER_ERROR', 'EKM_FRAME', 'EKM_OBJECT_AUTH', 'EKM_RESTORE_MISMATCH'])
      assert.ok(found.has(code), `${code} not found by the scan`);
    assert.ok(found.size >= 100, `only ${found.size} codes found`);
  });

  it('declares every code the sources build an error with, compare a code with, or answer the API with', () => {
    const undeclared = uses.filter((u) => u.asError && !isErrorCode(u.code)).map((u) => `${u.where} ${u.code}`);
    assert.deepEqual(undeclared, [], 'declare these codes in src/error-codes.ts');
  });

  it('has every declared code used somewhere in src, or reserved with a reason', () => {
    const used = new Set(uses.map((u) => u.code));
    const unused = declared.filter(([code, spec]) => !used.has(code) && !spec.reserved).map(([code]) => code);
    assert.deepEqual(unused, [], 'remove these codes, or say in `reserved` why they stay');
  });

  it('gives every code a status, an exit code, a group and a one-line meaning', () => {
    for (const [code, spec] of declared) {
      assert.match(code, CODE_RE);
      assert.ok(spec.httpStatus >= 400 && spec.httpStatus <= 599, `${code}: status ${spec.httpStatus}`);
      assert.ok([1, 2, 130].includes(spec.exitCode), `${code}: exit code ${spec.exitCode}`);
      assert.ok((ERROR_GROUPS as readonly string[]).includes(spec.group), `${code}: group ${spec.group}`);
      for (const text of [spec.means, spec.action ?? '', spec.reserved ?? '']) assert.doesNotMatch(text, /\n/, `${code}: one line each`);
      assert.ok(spec.means.length > 0, `${code}: says what happened`);
    }
  });

  it("is documented in docs/operations.md's error-code table, as generated from it", () => {
    const doc = readFileSync(join(ROOT, 'docs', 'operations.md'), 'utf8');
    const begin = doc.indexOf(ERROR_TABLE_BEGIN);
    const end = doc.indexOf(ERROR_TABLE_END);
    assert.ok(begin >= 0 && end > begin, 'docs/operations.md has the generated block');
    const block = doc.slice(begin, end + ERROR_TABLE_END.length);
    for (const [code] of declared) assert.ok(block.includes(`\`${code}\``), `${code} is missing from the table`);
    // prettier pads the cells; the words must be those the generator writes.
    const words = (text: string): string => text.replace(/-{3,}/g, '---').replace(/\s+/g, ' ').trim();
    assert.equal(words(block), words(errorTableMarkdown()), 'run node --import tsx scripts/gen-error-table.ts');
  });
});

describe('EkmError', () => {
  it("takes its status and exit code from the code's line", () => {
    const e = new EkmError('EKM_KEY_NOT_FOUND', 'no key k1 in this partition', { hint: 'list the keys with `ucl list`' });
    assert.equal(e.code, 'EKM_KEY_NOT_FOUND');
    assert.equal(e.httpStatus, 404);
    assert.equal(e.exitCode, 1);
    assert.equal(e.oneLine(), 'no key k1 in this partition: list the keys with `ucl list`');
    assert.equal(new EkmError('EKM_FORBIDDEN', 'not allowed').oneLine(), 'not allowed');
    assert.equal(new EkmError('EKM_FORBIDDEN', 'not allowed').hint, undefined);
  });

  it('keeps the error it explains as its cause', () => {
    const cause = new Error('ENOENT');
    assert.equal(new EkmError('EKM_INPUT', 'cannot read x', { cause }).cause, cause);
  });

  it("passes a relayed code on with the status it arrived with, or stands in for a missing one", () => {
    const relayed = new EkmError('EKM_API', 'the EP answered 418', { relayed: { code: 'EKM_FROM_A_NEWER_RELEASE', httpStatus: 418 } });
    assert.equal(relayed.code, 'EKM_FROM_A_NEWER_RELEASE');
    assert.equal(relayed.httpStatus, 418);
    assert.equal(relayed.exitCode, 1);
    const bare = new EkmError('EKM_API', 'the EP answered 500', { relayed: { code: undefined, httpStatus: 500 } });
    assert.equal(bare.code, 'EKM_API');
    assert.equal(bare.httpStatus, 500);
  });

  it('usage errors exit 2', () => {
    const e = usageError('-n <key name or UID> is required', 'give -n');
    assert.equal(e.code, 'EKM_USAGE');
    assert.equal(e.exitCode, 2);
    assert.equal(e.oneLine(), '-n <key name or UID> is required: give -n');
  });
});
