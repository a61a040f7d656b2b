/**
 * `ucl`: the operator's client of the cluster. This file holds the server commands
 * (`ucl server test|list`) and `ucl version`; each command talks to an EP's HTTPS API.
 */
import { Command } from 'commander';
import { EkmClient } from '../client/client.js';
import type { TripletHealth } from '../cluster/health.js';
import { EkmError, usageError } from '../errors.js';
import type { ServerRow } from '../store/store.js';
import { VERSION } from '../version.js';
import { resolveClientOptions } from './client-config.js';
import { runCli } from './run.js';
import { registerAccountCommands } from './ucl-accounts.js';
import { registerAuditCommands } from './ucl-audit.js';
import { registerKeyCommands } from './ucl-keys.js';
import { type CredentialOpts, type UclContext, call, credentials, optionalAuthorization, withCredentials } from './ucl-session.js';
import { promptApprover } from '../cluster/approval.js';
import { ROLE_LABEL, type Role } from '../config/roles.js';
import type { Settings } from '../config/settings.js';

const print = (line: string): void => void process.stdout.write(`${line}\n`);

interface NewServer {
  role: Role;
  name: string;
  address: string;
  fingerprint: string;
  version: string;
}

interface GlobalOpts {
  server?: string;
  json?: boolean;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

/** The one line for an EP that would not tell the servers: a 401 names the credentials it wants. */
function serverReadRefused(status: number, body: unknown): EkmError {
  const message = (body as { error?: { message?: string } } | null)?.error?.message ?? JSON.stringify(body);
  if (status !== 401) return new EkmError('EKM_API', `the EP answered ${status}: ${message}`);
  return new EkmError('EKM_API', `the EP answered 401: ${message}`, {
    hint: "give --user <user@partition> and -w (any role), or run ucl in an EP's home",
  });
}

export function formatServerTest(clusterId: string, triplets: readonly TripletHealth[]): { lines: string[]; ok: boolean } {
  const servers = triplets.flatMap((t) => t.servers);
  const lines = [`Cluster ${clusterId}: ${triplets.length} triplet${triplets.length === 1 ? '' : 's'}, ${servers.length} servers`];
  triplets.forEach((t, i) => {
    lines.push('', `Triplet ${i + 1} (${t.tripletId}): ${t.inService ? 'in service' : 'NOT in service'}`);
    const rows = [['  ROLE', 'SERVER', 'VERSION', 'STATE', 'RTT', 'DETAIL']];
    for (const s of t.servers) {
      rows.push([
        `  ${s.roleLabel}`,
        s.name,
        s.version ?? '-',
        s.state,
        s.rttMs === null ? '-' : `${s.rttMs.toFixed(1)} ms`,
        s.detail ?? '',
      ]);
    }
    lines.push(...table(rows));
  });
  const bad = servers.filter((s) => s.state !== 'ok').length;
  const ok = bad === 0 && triplets.every((t) => t.inService);
  lines.push('', ok ? 'All servers are in service.' : `${bad} of ${servers.length} servers not in service.`);
  return { lines, ok };
}

async function main(settings: Settings): Promise<number> {
  let code = 0;
  const program = new Command('ucl')
    .description('ekm cluster client')
    .version(VERSION, '-V, --version')
    .option('--server <host:port,...>', 'EP API address(es); default from UCL_SERVERS, client.conf or EKM_HOME')
    .option('--json', 'print JSON for scripts')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `ucl: ${s.slice(7)}` : s) })
    .showSuggestionAfterError(true);
  const client = async (): Promise<EkmClient> => new EkmClient(await resolveClientOptions((program.opts() as GlobalOpts).server, settings));
  const json = (): boolean => (program.opts() as GlobalOpts).json === true;

  program
    .command('version')
    .description("print the ucl release and, when reachable, the EP's")
    .action(async () => {
      print(`ucl ${VERSION}`);
      let c: EkmClient | undefined;
      try {
        c = await client();
        const r = await c.request<{ version?: string; server?: string; role?: string }>('GET', '/api/v1/info');
        if (r.status === 200 && r.body?.version) print(`EP ${r.server} (${r.body.server}) ${r.body.version}`);
      } catch (e) {
        print(`EP: ${e instanceof EkmError ? e.message : (e as Error).message}`);
      } finally {
        c?.close();
      }
    });

  const ctx: UclContext = { client, json, print };
  const server = program.command('server').description('servers of the cluster');
  withCredentials(
    server
      .command('test')
      .description(
        "probe every server of every triplet; exit 0 only when all are in service (credentials: any role; none in an EP's home)",
      ),
  ).action(async (o: CredentialOpts) => {
    const res = await (
      await client()
    ).request<{ clusterId: string; inService: boolean; triplets: TripletHealth[] }>(
      'GET',
      '/api/v1/servers/test',
      undefined,
      await optionalAuthorization(o),
    );
    if (res.status !== 200) throw serverReadRefused(res.status, res.body);
    const out = formatServerTest(res.body.clusterId, res.body.triplets);
    if (json()) print(JSON.stringify(res.body, null, 2));
    else out.lines.forEach(print);
    code = out.ok ? 0 : 1;
  });
  withCredentials(
    server
      .command('list')
      .description("list the servers of the cluster as recorded, no probing (credentials: any role; none in an EP's home)"),
  ).action(async (o: CredentialOpts) => {
    const res = await (
      await client()
    ).request<{ clusterId: string; servers: ServerRow[] }>('GET', '/api/v1/servers', undefined, await optionalAuthorization(o));
    if (res.status !== 200) throw serverReadRefused(res.status, res.body);
    if (json()) {
      print(JSON.stringify(res.body, null, 2));
      return;
    }
    print(`Cluster ${res.body.clusterId}: ${res.body.servers.length} servers`);
    const label = { ep: 'EP', partner: 'Partner', aux: 'Aux' } as const;
    const rows = [['  ROLE', 'SERVER', 'TRIPLET', 'FINGERPRINT']];
    for (const s of res.body.servers) rows.push([`  ${label[s.role]}`, s.name, s.tripletId, s.fingerprint]);
    table(rows).forEach(print);
  });

  withCredentials(
    server
      .command('create')
      .description(
        "add a triplet of servers waiting to join (ekm_boot_additional_server.sh), or with -a alone replace this EP's triplet's Aux; as the root SO of the main EP",
      )
      .option('-e, --ep <host[:port]>', 'the new EP')
      .option('-p, --partner <host[:port]>', 'the new Partner')
      .requiredOption('-a, --aux <host[:port]>', 'the new Aux')
      .option('-f, --force', "approve the new servers' certificates without asking"),
    { partitionFlag: false },
  ).action(async (o: CredentialOpts & { ep?: string; partner?: string; aux: string; force?: boolean }) => {
    if ((o.ep === undefined) !== (o.partner === undefined))
      throw usageError("give -e, -p and -a for a new triplet, or -a alone to replace the Aux of this EP's triplet");
    const creds = await credentials({ user: o.user, password: o.password }, { partition: 'root' });
    const servers = o.ep !== undefined && o.partner !== undefined ? { ep: o.ep, partner: o.partner, aux: o.aux } : { aux: o.aux };
    const approve: Record<string, string> = {};
    if (!o.force) {
      const seen = await call<{ servers: NewServer[] }>(ctx, creds, 'POST', '/api/v1/servers/inspect', servers);
      const approver = promptApprover(process.stdin, process.stdout, {
        outcome: 'no server was added',
        retry: 'run ucl server create again',
        unattended: 'use -f to approve without asking',
      });
      try {
        for (const s of seen.servers) {
          await approver.approve(`${ROLE_LABEL[s.role]} ${s.name} (ekm ${s.version})`, s.fingerprint);
          approve[s.name] = s.fingerprint;
        }
      } finally {
        approver.close();
      }
    }
    const added = await call<{ tripletId: string; servers: NewServer[] }>(
      ctx,
      creds,
      'POST',
      'ep' in servers ? '/api/v1/servers' : '/api/v1/servers/aux',
      {
        ...servers,
        ...(o.force ? { force: true } : { approve }),
      },
    );
    if (json()) {
      print(JSON.stringify(added, null, 2));
      return;
    }
    if (!('ep' in servers)) {
      print(`Aux ${o.aux} replaces the Aux of triplet ${added.tripletId}:`);
      for (const s of added.servers) print(`  ${ROLE_LABEL[s.role].padEnd(7)} ${s.name}  ${s.fingerprint}`);
      print(
        `Now start ${o.aux} (service ekm start). The EP then re-derives its shares and refreshes every key; ucl server test passes once that is done.`,
      );
      return;
    }
    print(`Triplet ${added.tripletId} added to the cluster:`);
    for (const s of added.servers) print(`  ${ROLE_LABEL[s.role].padEnd(7)} ${s.name}  ${s.fingerprint}`);
    print(
      `Now start ${added.servers
        .filter((s) => s.role !== 'ep')
        .map((s) => s.name)
        .join(' and ')}, then ${servers.ep} last (service ekm start), and run ucl server test.`,
    );
  });

  withCredentials(
    server
      .command('delete <name>')
      .description('remove a server of another, stopped triplet from the cluster list (root SO)')
      .option('-f, --force', 'remove it even while its triplet still runs'),
    { partitionFlag: false },
  ).action(async (name: string, o: CredentialOpts & { force?: boolean }) => {
    const creds = await credentials({ user: o.user, password: o.password }, { partition: 'root' });
    const r = await call<{ deleted: { name: string; role: Role; tripletId: string } }>(
      ctx,
      creds,
      'DELETE',
      `/api/v1/servers/${encodeURIComponent(name)}${o.force ? '?force=true' : ''}`,
    );
    if (json()) print(JSON.stringify(r, null, 2));
    else print(`Removed ${ROLE_LABEL[r.deleted.role]} ${r.deleted.name} (triplet ${r.deleted.tripletId}) from the cluster list.`);
  });

  // `ucl audit list | head`: a closed pipe ends the output, not with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
  });
  registerAccountCommands(program, ctx);
  registerAuditCommands(program, ctx);
  registerKeyCommands(program, ctx);

  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    const c = (e as { code?: string }).code;
    if (c === 'commander.helpDisplayed' || c === 'commander.version' || c === 'commander.help') return 0;
    throw e;
  }
  return code;
}

runCli('ucl', main);
