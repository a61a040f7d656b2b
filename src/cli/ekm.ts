/**
 * `ekm`: bootstrap (`ekm boot <role> …`, wrapped by bin/ekm_boot_*.sh) and service control
 * (`ekm start|stop|restart|status|run`). Every command works on the server whose EKM_HOME is set.
 */
import { Command, Option } from 'commander';
import { homePaths, isBootstrapped, isWaitingToJoin } from '../config/home.js';
import { ROLES, type Role } from '../config/roles.js';
import type { Settings } from '../config/settings.js';
import { EkmError, usageError } from '../errors.js';
import { autoApprover, promptApprover } from '../cluster/approval.js';
import { BOOT_USAGE, ROOT_SO_PASSWORD_HELP, parseBootArgs } from '../cluster/boot-args.js';
import { describeRunning, startDaemon, stopDaemon } from '../server/daemon.js';
import { daemonPid, removePid, writePid } from '../config/pidfile.js';
import { VERSION } from '../version.js';
import { runCli } from './run.js';

const print = (line: string): void => void process.stdout.write(`${line}\n`);

async function boot(argv: string[], settings: Settings): Promise<number> {
  const role = argv[0];
  if (role === 'additional') return bootAdditionalServer(argv.slice(1), settings);
  if (!role || !(ROLES as readonly string[]).includes(role)) {
    throw usageError(`ekm boot: unknown role "${role ?? ''}"`, 'the role is one of ep, partner, aux');
  }
  const r = role as Role;
  if (argv.length === 1 || argv.includes('-h') || argv.includes('--help')) {
    print(`usage: ${BOOT_USAGE[r]}`);
    if (r === 'ep') print(ROOT_SO_PASSWORD_HELP);
    return argv.length === 1 ? 2 : 0;
  }
  const args = parseBootArgs(r, argv.slice(1));
  const approver = args.force ? autoApprover(print) : promptApprover(process.stdin, process.stdout);
  // Loaded on demand: certificate and store code are not needed by start/stop/status.
  const { bootstrap } = await import('../cluster/bootstrap.js');
  await bootstrap(args, homePaths(settings.home), approver, print, settings.dbUrl);
  return 0;
}

/** `ekm_boot_additional_server.sh`: the identity, then the service that waits for `ucl server create`. */
async function bootAdditionalServer(argv: string[], settings: Settings): Promise<number> {
  const { ADDITIONAL_USAGE, bootAdditional, parseAdditionalArgs } = await import('../cluster/additional-boot.js');
  if (argv.length === 0 || argv.includes('-h') || argv.includes('--help')) {
    print(`usage: ${ADDITIONAL_USAGE}`);
    return argv.length === 0 ? 2 : 0;
  }
  const paths = homePaths(settings.home);
  const state = await bootAdditional(parseAdditionalArgs(argv), paths, print);
  const r = await startDaemon(paths);
  print(`ekm started (pid ${r.pid}): ${state.name} waits on port ${state.listen.port} to join a cluster.`);
  print(
    `On the main EP, add it with \`ucl server create\` (e.g. ucl server create -e <ep> -p <partner> -a <aux>), then start it with \`service ekm start\`.`,
  );
  return 0;
}

/** The service of a server that waits to join: answers the main EP until it joined (or is stopped). */
async function runWaiting(paths: ReturnType<typeof homePaths>): Promise<number> {
  const { default: pino } = await import('pino');
  const { JoinListener } = await import('../server/join-listener.js');
  const log = pino({ base: undefined, timestamp: pino.stdTimeFunctions.isoTime });
  let listener: Awaited<ReturnType<typeof JoinListener.start>>;
  try {
    listener = await JoinListener.start(paths, log);
  } catch (e) {
    process.stdout.write(`ekm: ${e instanceof EkmError ? e.oneLine() : (e as Error).message}\n`);
    throw e;
  }
  writePid(paths, process.pid);
  await Promise.race([listener.joined, untilSignal()]);
  await listener.stop();
  removePid(paths, process.pid);
  return 0;
}

function untilSignal(): Promise<void> {
  return new Promise<void>((resolve) => {
    const onSignal = (): void => {
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      resolve();
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
}

/** Runs the server in the foreground until SIGTERM/SIGINT; the daemon is this, detached. */
async function run(settings: Settings): Promise<number> {
  const paths = homePaths(settings.home);
  const other = daemonPid(paths);
  if (other !== undefined && other !== process.pid) {
    throw new EkmError('EKM_RUNNING', `ekm is already running in ${paths.home} (pid ${other})`, { hint: 'stop it first: ekm stop' });
  }
  if (isWaitingToJoin(paths)) return runWaiting(paths);
  const { EkmServer } = await import('../server/server.js');
  let server: Awaited<ReturnType<typeof EkmServer.start>>;
  try {
    server = await EkmServer.start(paths, settings);
  } catch (e) {
    // `ekm start` reads this line from the log to say why the daemon did not start.
    process.stdout.write(`ekm: ${e instanceof EkmError ? e.oneLine() : (e as Error).message}\n`);
    throw e;
  }
  writePid(paths, process.pid);
  await untilSignal();
  await server.stop();
  removePid(paths, process.pid);
  return 0;
}

async function main(settings: Settings): Promise<number | void> {
  const argv = process.argv.slice(2);
  // The bootstrap flags (-fips, -restore, -externaldb) are not POSIX-style, so boot parses its own.
  if (argv[0] === 'boot') return boot(argv.slice(1), settings);

  const program = new Command('ekm')
    .description('ekm server: bootstrap and service control (the server is chosen by EKM_HOME)')
    .version(VERSION, '-V, --version')
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s.startsWith('error:') ? `ekm: ${s.slice(7)}` : s) })
    .showSuggestionAfterError(true);

  let code = 0;
  program.command('boot').description('bootstrap this server: ekm boot ep|partner|aux <flags> (see ekm_boot_*.sh)');
  program
    .command('start')
    .description('start the ekm service in the background')
    .action(async () => {
      const paths = homePaths(settings.home);
      const r = await startDaemon(paths);
      print(r.alreadyRunning ? `ekm is already running (pid ${r.pid})` : describeRunning(paths, r.pid).replace('is running', 'started'));
    });
  program
    .command('stop')
    .description('stop the ekm service gracefully (in-flight requests finish first)')
    .action(async () => {
      const r = await stopDaemon(homePaths(settings.home));
      print(
        r.pid === undefined
          ? 'ekm is not running'
          : r.killed
            ? `ekm (pid ${r.pid}) did not stop in time and was killed`
            : `ekm stopped (pid ${r.pid})`,
      );
    });
  program
    .command('restart')
    .description('stop, then start the ekm service')
    .action(async () => {
      const paths = homePaths(settings.home);
      await stopDaemon(paths);
      const r = await startDaemon(paths);
      print(describeRunning(paths, r.pid).replace('is running', 'restarted'));
    });
  program
    .command('status')
    .description('say whether the ekm service runs (exit 0) or not (exit 3)')
    .action(() => {
      const paths = homePaths(settings.home);
      const pid = daemonPid(paths);
      if (pid === undefined) {
        print(isBootstrapped(paths) ? 'ekm is not running' : `ekm is not running (no server is bootstrapped in ${paths.home})`);
        code = 3;
        return;
      }
      print(describeRunning(paths, pid));
    });
  // Backup and restore (src/backup/), loaded on demand.
  const backupCmd = program
    .command('backup')
    .description('back up this EP or Partner (works while it serves): ekm backup --out <file.tar.gz> --to <backup public key PEM>')
    .option('--out <file>', 'archive to write (.tar.gz)')
    .option('--to <pem>', "the administrator's backup public key (ekm backup-keygen)")
    .action(async (o: { out?: string; to?: string }) => {
      if (!o.out || !o.to) throw usageError('backup: --out <file.tar.gz> and --to <backup public key PEM> are required');
      const { backup } = await import('../backup/commands.js');
      await backup({ out: o.out, to: o.to }, homePaths(settings.home), print);
    });
  backupCmd
    .command('verify')
    .description('check an archive without restoring it (with --key, also decrypt and check the contents)')
    .requiredOption('--in <file>', 'the archive')
    .option('--key <pem>', 'the backup private key')
    .action(async (o: { in: string; key?: string }) => {
      const { verify } = await import('../backup/commands.js');
      verify({ in: o.in, ...(o.key ? { key: o.key } : {}) }, print);
    });
  program
    .command('backup-keygen')
    .description('make an RSA-3072 backup key pair for the administrator')
    .requiredOption('--out <dir>', 'folder for <name>.key (0600) and <name>.pub.pem')
    .option('--name <name>', 'file name stem', 'ekm-backup')
    .action(async (o: { out: string; name: string }) => {
      const { backupKeygen } = await import('../backup/commands.js');
      backupKeygen(o, print);
    });
  program
    .command('restore')
    .description("place a backup's store and system key in this new server's EKM_HOME (then bootstrap it with -restore)")
    .requiredOption('--in <file>', 'the archive')
    .requiredOption('--key <pem>', 'the backup private key')
    .option('--force', 'replace a store or server already in EKM_HOME')
    .action(async (o: { in: string; key: string; force?: boolean }) => {
      const { restore } = await import('../backup/commands.js');
      restore({ in: o.in, key: o.key, force: o.force === true }, homePaths(settings.home), print);
    });
  program
    .command('approve-join <fingerprint>')
    .description(
      "on a Partner: approve a new server's certificate (as its ekm_boot_additional_server.sh printed it) for 1 h: as the new Partner of a triplet that ucl server create adds, or (--as aux) as this triplet's new Aux for ucl server create -a",
    )
    .addOption(new Option('--as <purpose>', 'what the server joins as').choices(['partner', 'aux']).default('partner'))
    .action(async (fingerprint: string, o: { as: 'partner' | 'aux' }) => {
      const paths = homePaths(settings.home);
      const { loadServerConfig } = await import('../config/server-config.js');
      const config = loadServerConfig(paths);
      if (config.role !== 'partner') {
        throw new EkmError('EKM_USAGE', `this server is the ${config.role}, not a Partner`, { hint: 'run it on the Partner of the triplet whose EP runs ucl server create' });
      }
      const { approveJoin } = await import('../cluster/join-approvals.js');
      const { expiresAt } = approveJoin(paths, fingerprint, o.as);
      const fp = fingerprint.trim().toUpperCase();
      const until = new Date(expiresAt).toISOString();
      print(
        o.as === 'partner'
          ? `Approved the new Partner certificate ${fp} until ${until}: this Partner will seal its role secret to it for ucl server create.`
          : `Approved the new Aux certificate ${fp} until ${until}: this Partner will pin it as its triplet's Aux for ucl server create -a.`,
      );
    });
  program
    .command('run')
    .description('run the server in the foreground (what the service runs)')
    .action(async () => {
      code = await run(settings);
    });

  try {
    await program.parseAsync(process.argv);
  } catch (e) {
    if (e instanceof Error && 'code' in e && (e as { code: string }).code === 'commander.helpDisplayed') return 0;
    if (e instanceof Error && 'code' in e && (e as { code: string }).code === 'commander.version') return 0;
    throw e;
  }
  return code;
}

runCli('ekm', main);
