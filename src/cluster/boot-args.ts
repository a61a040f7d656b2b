/**
 * The bootstrap scripts' flags, exactly as the seed writes them (`-s`, `-p`, `-x`, `-e`, `-fips`,
 * `-w`, `-restore`, `-f`, `-n`, `-externaldb`), parsed strictly per role: a flag another role
 * takes, a missing value or a repeated flag is a one-line usage error. The root SO password may
 * also come from a file (`-W <file>`, `--password-file <file>`) or standard input (`-w -`), out of
 * the command line that every local user can read (util/secret-input.ts).
 */
import { usageError } from '../errors.js';
import { passwordLength } from '../crypto/password.js';
import { FROM_STDIN, readPasswordFile, readPasswordStdin } from '../util/secret-input.js';
import type { Role } from '../config/roles.js';
import { type ServerAddress, parsePort, parseServerName } from './names.js';

export interface BootArgs {
  readonly role: Role;
  readonly self: ServerAddress;
  readonly selfName: string;
  readonly ep: ServerAddress;
  readonly partner: ServerAddress;
  readonly aux: ServerAddress;
  readonly names: Record<Role, string>;
  readonly fips: true;
  readonly force: boolean;
  readonly restore: boolean;
  /** EP and Partner with -restore: restore only the keys both archives hold at a common epoch. */
  readonly partial: boolean;
  readonly rootSoPassword?: string;
  readonly extraNames: readonly string[];
  readonly certYears: number;
  readonly externalDb: boolean;
  readonly apiPort?: number;
  readonly timeoutSeconds: number;
}

type FlagKind = 'value' | 'switch';
interface FlagSpec {
  readonly key: string;
  readonly kind: FlagKind;
}

const COMMON: Record<string, FlagSpec> = {
  '-s': { key: 'self', kind: 'value' },
  '-fips': { key: 'fips', kind: 'switch' },
  '-f': { key: 'force', kind: 'switch' },
  '--force': { key: 'force', kind: 'switch' },
  '--timeout': { key: 'timeout', kind: 'value' },
};

const BY_ROLE: Record<Role, Record<string, FlagSpec>> = {
  ep: {
    ...COMMON,
    '-p': { key: 'partner', kind: 'value' },
    '-x': { key: 'aux', kind: 'value' },
    '-w': { key: 'password', kind: 'value' },
    '-W': { key: 'passwordFile', kind: 'value' },
    '--password-file': { key: 'passwordFile', kind: 'value' },
    '-restore': { key: 'restore', kind: 'switch' },
    '--partial': { key: 'partial', kind: 'switch' },
    '-n': { key: 'names', kind: 'value' },
    '-e': { key: 'years', kind: 'value' },
    '-externaldb': { key: 'externaldb', kind: 'switch' },
    '--api-port': { key: 'apiPort', kind: 'value' },
  },
  partner: {
    ...COMMON,
    '-p': { key: 'ep', kind: 'value' },
    '-x': { key: 'aux', kind: 'value' },
    '-restore': { key: 'restore', kind: 'switch' },
    '--partial': { key: 'partial', kind: 'switch' },
    '-externaldb': { key: 'externaldb', kind: 'switch' },
  },
  aux: {
    ...COMMON,
    '-e': { key: 'ep', kind: 'value' },
    '-p': { key: 'partner', kind: 'value' },
  },
};

const SCRIPT: Record<Role, string> = { ep: 'ekm_boot_ep.sh', partner: 'ekm_boot_partner.sh', aux: 'ekm_boot_auxiliary.sh' };

export const BOOT_USAGE: Record<Role, string> = {
  ep: 'ekm_boot_ep.sh -s <self>[:port] -p <partner>[:port] -x <aux>[:port] -fips (-w <root SO password> | -w - (from standard input) | -W <file>) [-restore [--partial]] [-f] [-n <csv>] [-e <years>] [-externaldb] [--api-port <port>] [--timeout <s>]',
  partner: 'ekm_boot_partner.sh -s <self>[:port] -p <ep>[:port] -x <aux>[:port] -fips [-restore [--partial]] [-f] [-externaldb] [--timeout <s>]',
  aux: 'ekm_boot_auxiliary.sh -s <self>[:port] -e <ep>[:port] -p <partner>[:port] -fips [-f] [--timeout <s>]',
};

/** What the EP bootstrap's help adds below its usage line. */
export const ROOT_SO_PASSWORD_HELP =
  '-w - reads the root SO password from the first line of standard input, -W <file> (or --password-file <file>) from the first line of a file (keep it mode 0600): either keeps it out of the process list, where -w <password> is visible to every local user.';

export const MIN_PASSWORD_LENGTH = 8;

/** Where a password given as a file or as `-w -` is read (tests give their own). */
export interface SecretReader {
  file(path: string, flag: string): string;
  stdin(): string;
}

const SECRETS: SecretReader = { file: readPasswordFile, stdin: readPasswordStdin };

export function parseBootArgs(role: Role, argv: readonly string[], secrets: SecretReader = SECRETS): BootArgs {
  const specs = BY_ROLE[role];
  const seen: Record<string, string | true> = {};
  /** The flag each value was given with, for messages (`-W` or `--password-file`). */
  const flagOf: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    const spec = specs[flag];
    if (!spec) {
      const other = (Object.keys(BY_ROLE) as Role[]).find((r) => r !== role && BY_ROLE[r][flag]);
      throw usageError(
        other ? `${SCRIPT[role]}: ${flag} is not a flag of the ${role} bootstrap` : `${SCRIPT[role]}: unknown argument "${flag}"`,
        `usage: ${BOOT_USAGE[role]}`,
      );
    }
    if (seen[spec.key] !== undefined) throw usageError(`${SCRIPT[role]}: ${flag} given twice`);
    flagOf[spec.key] = flag;
    if (spec.kind === 'switch') {
      seen[spec.key] = true;
      continue;
    }
    const value = argv[i + 1];
    if (value === undefined || (value.startsWith('-') && value.length > 1 && spec.key !== 'password')) {
      throw usageError(`${SCRIPT[role]}: ${flag} needs a value`, `usage: ${BOOT_USAGE[role]}`);
    }
    seen[spec.key] = value;
    i++;
  }
  const str = (k: string): string | undefined => (typeof seen[k] === 'string' ? (seen[k] as string) : undefined);

  const selfText = str('self');
  if (!selfText) throw usageError(`${SCRIPT[role]}: -s <self> is required`, `usage: ${BOOT_USAGE[role]}`);
  const self = parseServerName(selfText, '-s');
  const peerFlag: Record<Role, Partial<Record<Role, string>>> = {
    ep: { partner: '-p', aux: '-x' },
    partner: { ep: '-p', aux: '-x' },
    aux: { ep: '-e', partner: '-p' },
  };
  const addr: Partial<Record<Role, ServerAddress>> = { [role]: self };
  const names: Partial<Record<Role, string>> = { [role]: selfText.trim() };
  if (!seen.fips) {
    throw usageError(
      `${SCRIPT[role]}: -fips is required`,
      'this release runs FIPS triplets (EP, Partner, Aux); EP + Partner pairs are not supported yet',
    );
  }
  for (const [peer, flag] of Object.entries(peerFlag[role]) as [Role, string][]) {
    const text = str(peer);
    if (!text) {
      throw usageError(
        peer === 'aux' ? `${SCRIPT[role]}: -fips needs the Aux server: give ${flag} <aux>[:port]` : `${SCRIPT[role]}: ${flag} <${peer}> is required`,
        `usage: ${BOOT_USAGE[role]}`,
      );
    }
    addr[peer] = parseServerName(text, flag);
    names[peer] = text.trim();
  }
  const all = addr as Record<Role, ServerAddress>;
  const keys = (['ep', 'partner', 'aux'] as Role[]).map((r) => `${all[r].host}:${all[r].port}`);
  if (new Set(keys).size !== 3) throw usageError(`${SCRIPT[role]}: EP, Partner and Aux must be three different host:port addresses`);

  let password: string | undefined;
  if (role === 'ep') {
    password = rootSoPassword(str('password'), str('passwordFile'), flagOf.passwordFile ?? '-W', secrets);
    if (passwordLength(password) < MIN_PASSWORD_LENGTH) {
      throw usageError(`${SCRIPT[role]}: the root SO password must have at least ${MIN_PASSWORD_LENGTH} characters`);
    }
  }
  const yearsText = str('years');
  let certYears = 8;
  if (yearsText !== undefined) {
    if (!/^\d{1,2}$/.test(yearsText) || Number(yearsText) < 1 || Number(yearsText) > 30) {
      throw usageError(`${SCRIPT[role]}: -e takes the certificate lifetime in whole years (1-30), not "${yearsText}"`);
    }
    certYears = Number(yearsText);
  }
  const extraNames = (str('names') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const n of extraNames) parseServerName(n, '-n');
  const timeoutText = str('timeout');
  let timeoutSeconds = 300;
  if (timeoutText !== undefined) {
    if (!/^\d{1,5}$/.test(timeoutText) || Number(timeoutText) < 1) throw usageError(`${SCRIPT[role]}: --timeout takes seconds (1-99999)`);
    timeoutSeconds = Number(timeoutText);
  }
  if (seen.partial && !seen.restore) throw usageError(`${SCRIPT[role]}: --partial only applies with -restore`);
  const apiText = str('apiPort');
  return {
    role,
    self,
    selfName: selfText.trim(),
    ep: all.ep,
    partner: all.partner,
    aux: all.aux,
    names: names as Record<Role, string>,
    fips: true,
    force: seen.force === true,
    restore: seen.restore === true,
    partial: seen.partial === true,
    ...(password !== undefined ? { rootSoPassword: password } : {}),
    extraNames,
    certYears,
    externalDb: seen.externaldb === true,
    ...(apiText !== undefined ? { apiPort: parsePort(apiText, '--api-port') } : {}),
    timeoutSeconds,
  };
}

/** The root SO password from `-w <password>`, `-w -` (standard input) or `-W <file>`: exactly one of them. */
function rootSoPassword(given: string | undefined, file: string | undefined, fileFlag: string, secrets: SecretReader): string {
  const script = SCRIPT.ep;
  if (given !== undefined && file !== undefined) throw usageError(`${script}: give -w or ${fileFlag}, not both`);
  if (file !== undefined) return secrets.file(file, fileFlag);
  if (given === FROM_STDIN) return secrets.stdin();
  if (given !== undefined) return given;
  throw usageError(`${script}: -w <root SO password> is required`, 'or -W <file> to read it from a file, or -w - from standard input (either keeps it out of the process list)');
}
