/**
 * `ucl`: the operator's client of the cluster. This file holds the server commands
 * (`ucl server test|list`) and `ucl version`; each command talks to an EP's HTTPS API.
 */
import { Command } from 'commander';
import { EkmClient } from '../client/client.js';
import type { TripletHealth } from '../cluster/health.js';
import { EkmError } from '../errors.js';
import type { ServerRow } from '../store/store.js';
import { VERSION } from '../version.js';
import { resolveClientOptions } from './client-config.js';
import { runCli } from './run.js';
import { registerAccountCommands } from './ucl-accounts.js';
import { registerAuditCommands } from './ucl-audit.js';
import { registerKeyCommands } from './ucl-keys.js';
import type { UclContext } from './ucl-session.js';

const print = (line: string): void => void process.stdout.write(`${line}\n`);

interface GlobalOpts {
  server?: string;
  json?: boolean;
}

function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd());
}

export function formatServerTest(clusterId: string, triplets: readonly TripletHealth[]): { lines: string[]; ok: boolean } {
  const servers = triplets.flatMap((t) => t.servers);
  const lines = [`Cluster ${clusterId}: ${triplets.length} triplet${triplets.length === 1 ? '' : 's'}, ${servers.length} servers`];
  triplets.forEach((t, i) => {
    lines.push('', `Triplet ${i + 1} (${t.tripletId}): ${t.inService ? 'in service' : 'NOT in service'}`);
    const rows = [['  ROLE', 'SERVER', 'VERSION', 'STATE', 'RTT', 'DETAIL']];
    for (const s of t.servers) {
      rows.push([`  ${s.roleLabel}`, s.name, s.version ?? '-', s.state, s.rttMs === null ? '-' : `${s.rttMs.toFixed(1)} ms`, s.detail ?? '']);
    }
    lines.push(...table(rows));
  });
  const bad = servers.filter((s) => s.state !== 'ok').length;
  const ok = bad === 0 && triplets.every((t) => t.inService);
  lines.push('', ok ? 'All servers are in service.' : `${bad} of ${servers.length} servers not in service.`);
  return { lines, ok };
}

async function main(): Promise<number> {
  let code = 0;
  const program = new Command('ucl')
    .description('ekm cluster client')
    .option('--server <host:port,...>', 'EP API address(es); default from UCL_SERVERS, client.conf or EKM_HOME')
    .option('--json', 'print JSON for scripts')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `ucl: ${s.slice(7)}` : s) })
    .showSuggestionAfterError(true);
  const client = async (): Promise<EkmClient> => new EkmClient(await resolveClientOptions((program.opts() as GlobalOpts).server));
  const json = (): boolean => (program.opts() as GlobalOpts).json === true;

  program
    .command('version')
    .description('print the ucl release and, when reachable, the EP\'s')
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

  const server = program.command('server').description('servers of the cluster');
  server
    .command('test')
    .description('probe every server of every triplet; exit 0 only when all are in service')
    .action(async () => {
      const res = await (await client()).request<{ clusterId: string; inService: boolean; triplets: TripletHealth[] }>('GET', '/api/v1/servers/test');
      if (res.status !== 200) throw new EkmError('EKM_API', `the EP answered ${res.status}: ${JSON.stringify(res.body)}`);
      const out = formatServerTest(res.body.clusterId, res.body.triplets);
      if (json()) print(JSON.stringify(res.body, null, 2));
      else out.lines.forEach(print);
      code = out.ok ? 0 : 1;
    });
  server
    .command('list')
    .description('list the servers of the cluster as recorded (no probing)')
    .action(async () => {
      const res = await (await client()).request<{ clusterId: string; servers: ServerRow[] }>('GET', '/api/v1/servers');
      if (res.status !== 200) throw new EkmError('EKM_API', `the EP answered ${res.status}`);
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

  // `ucl audit list | head`: a closed pipe ends the output, not with a stack trace.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
  });
  const ctx: UclContext = { client, json, print };
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
