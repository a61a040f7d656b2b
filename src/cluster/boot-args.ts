/**
 * The bootstrap scripts' flags, exactly as the seed writes them (`-s`, `-p`, `-x`, `-e`, `-fips`,
 * `-w`, `-restore`, `-f`, `-n`, `-externaldb`), parsed strictly per role: a flag another role
 * takes, a missing value or a repeated flag is a one-line usage error.
 */
import { usageError } from '../errors.js';
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
  ep: 'ekm_boot_ep.sh -s <self>[:port] -p <partner>[:port] -x <aux>[:port] -fips -w <root SO password> [-restore [--partial]] [-f] [-n <csv>] [-e <years>] [-externaldb] [--api-port <port>] [--timeout <s>]',
  partner: 'ekm_boot_partner.sh -s <self>[:port] -p <ep>[:port] -x <aux>[:port] -fips [-restore [--partial]] [-f] [-externaldb] [--timeout <s>]',
  aux: 'ekm_boot_auxiliary.sh -s <self>[:port] -e <ep>[:port] -p <partner>[:port] -fips [-f] [--timeout <s>]',
};

export const MIN_PASSWORD_LENGTH = 8;

export function parseBootArgs(role: Role, argv: readonly string[]): BootArgs {
  const specs = BY_ROLE[role];
  const seen: Record<string, string | true> = {};
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
    password = str('password');
    if (password === undefined) throw usageError(`${SCRIPT[role]}: -w <root SO password> is required`);
    if (password.length < MIN_PASSWORD_LENGTH) {
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
