/**
 * `ekm_boot_additional_server.sh -s <name> -fips`: the seed's first step of "FIPS Cluster
 * Scale-out" on each new server. It makes the server's identity (key + self-signed certificate)
 * and records that the server waits to join (`joining.json`); it has no role, cluster or store yet.
 * Its service then listens on its peer port for the main EP's `ucl server create`
 * (src/server/join-listener.ts), which gives it its role, its triplet and its role's secret.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { type HomePaths, ensureWritableHome, isBootstrapped, isWaitingToJoin, writeFileAtomic } from '../config/home.js';
import { EkmError, usageError } from '../errors.js';
import { VERSION } from '../version.js';
import { createIdentity } from './identity.js';
import { DEFAULT_API_PORT, formatAddress, parsePort, parseServerName } from './names.js';

export const ADDITIONAL_USAGE = 'ekm_boot_additional_server.sh -s <self>[:port] -fips [-n <csv>] [-e <years>] [--api-port <port>]';
const SCRIPT = 'ekm_boot_additional_server.sh';

const Address = z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) });

/** `joining.json`: what a waiting server knows about itself. */
export const JoiningState = z.object({
  format: z.literal(1),
  name: z.string().min(1),
  listen: Address,
  /** The API port it will serve if it joins as an EP. */
  apiPort: z.number().int().min(1).max(65535),
  fips: z.literal(true),
  fingerprint: z.string(),
  bootstrappedWith: z.string(),
  bootstrappedAt: z.string(),
});
export type JoiningState = z.infer<typeof JoiningState>;

export interface AdditionalArgs {
  readonly name: string;
  readonly self: { host: string; port: number };
  readonly extraNames: readonly string[];
  readonly certYears: number;
  readonly apiPort: number;
}

export function parseAdditionalArgs(argv: readonly string[]): AdditionalArgs {
  const values = new Map<string, string>();
  let fips = false;
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '-fips') {
      if (fips) throw usageError(`${SCRIPT}: -fips given twice`);
      fips = true;
      continue;
    }
    if (!['-s', '-n', '-e', '--api-port'].includes(flag)) {
      const hint = ['-p', '-x', '-w', '-restore', '-externaldb'].includes(flag)
        ? 'a new server takes no peers, password or store flags: its role, triplet and store come from `ucl server create` on the main EP'
        : `usage: ${ADDITIONAL_USAGE}`;
      throw usageError(
        `${SCRIPT}: ${['-p', '-x', '-w', '-restore', '-externaldb'].includes(flag) ? `${flag} is not a flag of the additional-server bootstrap` : `unknown argument "${flag}"`}`,
        hint,
      );
    }
    if (values.has(flag)) throw usageError(`${SCRIPT}: ${flag} given twice`);
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('-')) throw usageError(`${SCRIPT}: ${flag} needs a value`, `usage: ${ADDITIONAL_USAGE}`);
    values.set(flag, v);
    i++;
  }
  const selfText = values.get('-s');
  if (!selfText) throw usageError(`${SCRIPT}: -s <self> is required`, `usage: ${ADDITIONAL_USAGE}`);
  if (!fips) throw usageError(`${SCRIPT}: -fips is required`, 'this release runs FIPS triplets (EP, Partner, Aux)');
  const self = parseServerName(selfText, '-s');
  const extraNames = (values.get('-n') ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  for (const n of extraNames) parseServerName(n, '-n');
  const years = values.get('-e');
  if (years !== undefined && (!/^\d{1,2}$/.test(years) || Number(years) < 1 || Number(years) > 30)) {
    throw usageError(`${SCRIPT}: -e takes the certificate lifetime in whole years (1-30), not "${years}"`);
  }
  const api = values.get('--api-port');
  return {
    name: selfText.trim(),
    self,
    extraNames,
    certYears: years === undefined ? 8 : Number(years),
    apiPort: api === undefined ? DEFAULT_API_PORT : parsePort(api, '--api-port'),
  };
}

/** Makes the identity and `joining.json`; the caller starts the service. */
export async function bootAdditional(args: AdditionalArgs, paths: HomePaths, print: (line: string) => void): Promise<JoiningState> {
  ensureWritableHome(paths);
  if (isBootstrapped(paths)) {
    throw new EkmError('EKM_ALREADY_BOOTSTRAPPED', `this server is already bootstrapped (${paths.config} exists)`, {
      hint: 'a server joins a cluster once; to start over, stop it and remove its EKM_HOME',
    });
  }
  if (isWaitingToJoin(paths)) {
    const state = loadJoiningState(paths);
    throw new EkmError(
      'EKM_ALREADY_BOOTSTRAPPED',
      `this server was already bootstrapped as ${state.name} and waits to join (certificate ${state.fingerprint})`,
      { hint: 'start it with `ekm start` and run `ucl server create` on the main EP; to start over, remove its EKM_HOME' },
    );
  }
  const identity = await createIdentity({ role: 'server', host: args.self.host, extraNames: args.extraNames, years: args.certYears });
  writeFileAtomic(paths.tlsKey, identity.keyPem, 0o600);
  writeFileAtomic(paths.tlsCert, identity.certPem, 0o644);
  const state: JoiningState = {
    format: 1,
    name: args.name,
    listen: args.self,
    apiPort: args.apiPort,
    fips: true,
    fingerprint: identity.fingerprint,
    bootstrappedWith: VERSION,
    bootstrappedAt: new Date().toISOString(),
  };
  writeFileAtomic(paths.joining, JSON.stringify(state, null, 2) + '\n', 0o600);
  print(
    `Bootstrapped ${formatAddress(args.self)} (ekm ${VERSION}) as a server waiting to join a cluster; its certificate SHA256 fingerprint:`,
  );
  print(`  ${identity.fingerprint}`);
  return state;
}

export function loadJoiningState(paths: HomePaths): JoiningState {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(paths.joining, 'utf8'));
  } catch {
    throw new EkmError('EKM_CONFIG_CORRUPT', `${paths.joining} cannot be read as JSON`, {
      hint: 'remove EKM_HOME and run ekm_boot_additional_server.sh again',
    });
  }
  const parsed = JoiningState.safeParse(json);
  if (!parsed.success)
    throw new EkmError('EKM_CONFIG_CORRUPT', `${paths.joining} is invalid`, {
      hint: 'remove EKM_HOME and run ekm_boot_additional_server.sh again',
    });
  return parsed.data;
}
