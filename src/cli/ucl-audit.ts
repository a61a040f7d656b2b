/** `ucl audit list|verify`: the hash-chained, signed audit log of the EP. */
import type { Command } from 'commander';
import { EkmError, usageError } from '../errors.js';
import { type CredentialOpts, type UclContext, call, credentials, printJson, withCredentials } from './ucl-session.js';

interface Row {
  seq: number;
  at: string;
  requestId: string | null;
  actor: string | null;
  partition: string | null;
  operation: string;
  keyId: string | null;
  result: string;
  status: number | null;
  client: string | null;
  detail: string | null;
}

interface VerifyResult {
  ok: boolean;
  rows: number;
  head: { seq: number; hash: string } | null;
  problems: { seq: number; problem: string }[];
  notices?: { seq: number; problem: string }[];
  acknowledged?: { seq: number; problem: string; by: { seq: number; actor: string | null } }[];
}

export function formatAuditRow(r: Row): string {
  const parts = [`#${r.seq}`, r.at, r.actor ?? '-', r.operation, r.keyId ? `key=${r.keyId}` : '', `${r.result}${r.status ? ` ${r.status}` : ''}`, r.detail ?? '', `from ${r.client ?? '-'}`, `req=${r.requestId ?? '-'}`];
  return parts.filter((p) => p !== '').join('  ');
}

export function registerAuditCommands(program: Command, ctx: UclContext): void {
  const audit = program.command('audit').description('the audit log');

  withCredentials(
    audit
      .command('list')
      .description('print audit rows in order (root SO and auditors: all; a partition’s: its own)')
      .option('--after <seq>', 'start after this row', '0')
      .option('--limit <n>', 'at most this many rows (default: all)'),
  ).action(async (o: CredentialOpts & { after: string; limit?: string }) => {
    let after = Number(o.after);
    if (!Number.isInteger(after) || after < 0) throw usageError(`--after takes a row number, not "${o.after}"`);
    const limit = o.limit === undefined ? Infinity : Number(o.limit);
    if (!(limit === Infinity || (Number.isInteger(limit) && limit > 0))) throw usageError(`--limit takes a positive number, not "${o.limit}"`);
    const creds = await credentials(o);
    const rows: Row[] = [];
    while (rows.length < limit) {
      const page = await call<{ rows: Row[]; next: number | null }>(ctx, creds, 'GET', `/api/v1/audit?after=${after}&limit=${Math.min(1000, limit - rows.length)}`);
      rows.push(...page.rows);
      if (page.next === null) break;
      after = page.next;
    }
    if (ctx.json()) printJson(ctx, rows);
    else rows.forEach((r) => ctx.print(formatAuditRow(r)));
  });

  withCredentials(audit.command('verify').description('walk the whole chain: links, hashes, signatures; exit 1 if anything is wrong')).action(async (o: CredentialOpts) => {
    const r = await call<VerifyResult>(ctx, await credentials(o), 'GET', '/api/v1/audit/verify');
    if (ctx.json()) printJson(ctx, r);
    else {
      if (r.ok) ctx.print(`Audit chain intact: ${r.rows} rows${r.head ? `, head #${r.head.seq} ${r.head.hash}` : ''}`);
      else {
        ctx.print(`Audit chain BROKEN: ${r.problems.length}${r.problems.length === 20 ? '+' : ''} problem${r.problems.length === 1 ? '' : 's'} in ${r.rows} rows`);
        for (const p of r.problems) ctx.print(`  row ${p.seq}: ${p.problem}`);
      }
      for (const a of r.acknowledged ?? []) ctx.print(`  row ${a.seq}: acknowledged by ${a.by.actor ?? '?'} in row ${a.by.seq}: ${a.problem}`);
      for (const n of r.notices ?? []) ctx.print(`  row ${n.seq}: ${n.problem}`);
    }
    if (!r.ok) throw new EkmError('EKM_AUDIT_BROKEN', 'the audit chain does not verify');
  });

  withCredentials(
    audit
      .command('acknowledge <row>')
      .description('record in a signed row that a row whose content does not match its hash was examined (root SO; the row is never rewritten)'),
  ).action(async (row: string, o: CredentialOpts) => {
    const seq = Number(row);
    if (!Number.isInteger(seq) || seq < 1) throw usageError(`acknowledge takes a row number, not "${row}"`);
    const r = await call<{ acknowledged: number; digest: string }>(ctx, await credentials(o), 'POST', '/api/v1/audit/acknowledge', { row: seq });
    if (ctx.json()) printJson(ctx, r);
    else ctx.print(`Row ${r.acknowledged} acknowledged as stored (sha256:${r.digest}); \`ucl audit verify\` now lists it apart`);
  });
}
