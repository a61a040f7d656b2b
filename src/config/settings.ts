/**
 * Every environment variable ekm reads, declared once (in the manner of PostgreSQL's settings
 * table): name, type, allowed values, default, unit, who reads it and what it means. The CLIs call
 * `readSettings(process.env)` once as they start (src/cli/run.ts) and pass the typed values down;
 * no other module reads `process.env.EKM_*` or `process.env.UCL_*` (test/unit/config/settings.test.ts
 * holds every module of src to that). A bad value stops the start with one line naming the
 * variable, the value and what is allowed; a secret's value is never echoed.
 *
 * Three tables: the operators' settings, the settings that only shell scripts read (listed so that
 * one table documents every variable), and the test and debugging switches, kept apart so that
 * no one mistakes them for settings. docs/operations.md's settings section is generated from them
 * (scripts/gen-settings-doc.ts).
 */
import { EkmError } from '../errors.js';
import { parseFailpoints } from '../failpoints.js';

/** Who reads a variable: a server role, a CLI, or a shell script. */
export type SettingReader = 'EP' | 'Partner' | 'Aux' | 'ekm' | 'ucl' | 'init script' | 'ekm-local-triplet';

interface SettingCommon {
  readonly name: string;
  readonly readBy: readonly SettingReader[];
  /** One paragraph: what it changes, and when to set it. */
  readonly meaning: string;
  /** What to do about a bad value, where more can be said than "fix or unset it". */
  readonly hint?: string;
}

export interface IntegerSetting extends SettingCommon {
  readonly type: 'integer';
  readonly min: number;
  readonly max: number;
  readonly default: number;
  readonly unit: string;
}

export interface EnumSetting<T extends string = string> extends SettingCommon {
  readonly type: 'enum';
  readonly values: readonly T[];
  readonly default: T;
}

export interface TextSetting extends SettingCommon {
  readonly type: 'string' | 'path' | 'url';
  /** The value an unset variable stands for, if there is one. */
  readonly default: string | undefined;
  /** What an unset variable means where no single value says it, for the table. */
  readonly unsetMeans?: string;
  /** What a value must look like, for the table (Markdown; the check itself is the reader's). */
  readonly format?: string;
  /** The value may carry a password: errors never show it. */
  readonly secret?: boolean;
}

export interface BooleanSetting extends SettingCommon {
  readonly type: 'boolean';
  readonly default: false;
}

export type Setting = IntegerSetting | EnumSetting | TextSetting | BooleanSetting;

const ALL_SERVERS: readonly SettingReader[] = ['EP', 'Partner', 'Aux'];

export const EKM_HOME: TextSetting = {
  name: 'EKM_HOME',
  type: 'path',
  default: '/var/lib/ekm',
  readBy: [...ALL_SERVERS, 'ekm', 'ucl', 'init script'],
  meaning:
    "The folder of one server: its bootstrap configuration, identity, system key, store, pid file and log (section 8). Every `ekm` command works on the server whose EKM_HOME is set; several servers on one host each get their own. `ucl` run where an EP's EKM_HOME is finds that EP's API and certificate there (section 7). A relative path is taken from the current folder.",
};

export const EKM_DB_URL: TextSetting = {
  name: 'EKM_DB_URL',
  type: 'url',
  default: undefined,
  format: '`postgres://user:password@host:5432/database`',
  secret: true,
  readBy: ['ekm'],
  meaning:
    "The role's PostgreSQL database, read once by a bootstrap with `-externaldb` (section 12), which checks it; other commands ignore it. server.json keeps the URL without its password, and the password sealed by the system key. Its value is never shown in an error.",
};

export const EKM_PROTOCOL_WORKERS: IntegerSetting = {
  name: 'EKM_PROTOCOL_WORKERS',
  type: 'integer',
  min: 0,
  max: 64,
  default: 2,
  unit: 'threads',
  readBy: ALL_SERVERS,
  meaning:
    "Worker threads that run the protocol math of the sessions this server takes part in (one session's party lives in one worker); light sessions run on the main thread whatever this is. 0 runs every session on the main thread.",
};

export const EKM_POOL_TARGET: IntegerSetting = {
  name: 'EKM_POOL_TARGET',
  type: 'integer',
  min: 0,
  max: 10_000,
  default: 16,
  unit: 'presignatures per key',
  readBy: ['EP'],
  meaning:
    'Presignatures the EP keeps ready for each ECDSA key that has signed, made one at a time in the background, so that a signature takes one round instead of the whole protocol (docs/protocols.md). 0 keeps none: every signature runs the whole protocol.',
};

export const EKM_AES_OBJECT_FORMAT: EnumSetting<'1' | '2'> = {
  name: 'EKM_AES_OBJECT_FORMAT',
  type: 'enum',
  values: ['1', '2'],
  default: '2',
  readBy: ['EP'],
  hint: 'unset it (new AES objects in format 2), or set 1 while older releases still serve this cluster',
  meaning:
    'The format in which the EP seals new AES objects (docs/protocols.md §8.1); objects of either format always open. During a rolling upgrade of a cluster from a release that opens only format 1, set 1 on the upgraded EPs until every triplet runs this release, then restart them without it (section 11.4).',
};

export const EKM_TOKEN_TTL_SECONDS: IntegerSetting = {
  name: 'EKM_TOKEN_TTL_SECONDS',
  type: 'integer',
  min: 1,
  max: 86_400,
  default: 900,
  unit: 'seconds',
  readBy: ['EP'],
  meaning:
    'How long a bearer token from `POST /api/v1/token` is accepted, by every EP sharing the store. Logout (`DELETE /api/v1/token`), a password reset or change, and deleting the user or its partition end it sooner.',
};

export const EKM_LOGIN_FAILURES: IntegerSetting = {
  name: 'EKM_LOGIN_FAILURES',
  type: 'integer',
  min: 1,
  max: 100_000,
  default: 2,
  unit: 'wrong passwords per second per client address',
  readBy: ['EP'],
  meaning:
    'How many wrong passwords (or unknown users) one client address may send per second, with bursts of five times as many; while it is over, every request of that address carrying a password (HTTP Basic, `POST /api/v1/token`) gets 429 `EKM_RATE_LIMITED` with `Retry-After`, before any work. Right passwords and bearer tokens never count. Raise it for a NAT or proxy that many clients share.',
};

export const EKM_PASSWORD_CHECKS: IntegerSetting = {
  name: 'EKM_PASSWORD_CHECKS',
  type: 'integer',
  min: 1,
  max: 64,
  default: 1,
  unit: 'password checks at once',
  readBy: ['EP'],
  meaning:
    'How many password checks (scrypt, about 0.1 s of one core each) the EP runs at once; eight times as many wait, more get 429 `EKM_TOO_MANY_LOGINS` at once. Bounds what logins, known users or not, can take from signing: the rest of the machine stays with the key operations.',
};

export const EKM_RECOVERY_BATCH: IntegerSetting = {
  name: 'EKM_RECOVERY_BATCH',
  type: 'integer',
  min: 1,
  max: 10_000,
  default: 500,
  unit: 'keys',
  readBy: ['EP'],
  meaning:
    "Keys per session when the EP re-derives a new Aux's shares and then refreshes every key, after a restore or a replaced Aux (sections 10.4 and 15).",
};

export const EKM_RECOVERY_PARALLEL: IntegerSetting = {
  name: 'EKM_RECOVERY_PARALLEL',
  type: 'integer',
  min: 1,
  max: 64,
  default: 2,
  unit: 'sessions',
  readBy: ['EP'],
  meaning:
    'Sessions of EKM_RECOVERY_BATCH keys the Aux re-derivation and the refresh after it run at once (each in its own protocol worker): one per core of a small server.',
};

export const UCL_CONF: TextSetting = {
  name: 'UCL_CONF',
  type: 'path',
  default: undefined,
  readBy: ['ucl'],
  meaning:
    "The client configuration file `ucl` reads first; unset or missing, it tries `$EKM_HOME/client.conf`, then the system's (section 7).",
};

export const UCL_SERVERS: TextSetting = {
  name: 'UCL_SERVERS',
  type: 'string',
  default: undefined,
  format: '`host:port[,host:port…]`',
  readBy: ['ucl'],
  meaning: 'The EPs `ucl` talks to when `--server` is not given; it comes before `servers=` of client.conf (section 7).',
};

export const UCL_CLUSTER_CACHE: TextSetting = {
  name: 'UCL_CLUSTER_CACHE',
  type: 'path',
  default: undefined,
  unsetMeans: '`client-cluster.json` beside `$UCL_CONF`, else in `$EKM_HOME`, else in `~/.ekm`',
  readBy: ['ucl'],
  meaning:
    'The file where `ucl` keeps the EPs it learned from the cluster (API addresses and certificate fingerprints), so that it fails over to any EP the next time (section 7). No secret, but whoever can write it chooses EPs ucl trusts: keep it writable by its owner only.',
};

/** The operators' settings that ekm's own processes read and check at start. */
export const SETTINGS: readonly Setting[] = [
  EKM_HOME,
  EKM_DB_URL,
  EKM_PROTOCOL_WORKERS,
  EKM_POOL_TARGET,
  EKM_AES_OBJECT_FORMAT,
  EKM_TOKEN_TTL_SECONDS,
  EKM_LOGIN_FAILURES,
  EKM_PASSWORD_CHECKS,
  EKM_RECOVERY_BATCH,
  EKM_RECOVERY_PARALLEL,
  UCL_CONF,
  UCL_SERVERS,
  UCL_CLUSTER_CACHE,
];

/** Read only by shell scripts (packaging/init.d/ekm, bin/ekm-local-triplet), which check them themselves. */
export const SCRIPT_SETTINGS: readonly Setting[] = [
  { name: 'EKM_ROOT', type: 'path', default: '/opt/ekm', readBy: ['init script'], meaning: 'The install root holding bin/ekm.' },
  {
    name: 'EKM_USER',
    type: 'string',
    default: 'ekm',
    readBy: ['init script'],
    meaning: 'The user the server runs as when the init script is run by root.',
  },
  {
    name: 'EKM_DEFAULTS',
    type: 'path',
    default: undefined,
    unsetMeans: '`/etc/default/ekm`, else `/etc/sysconfig/ekm`',
    readBy: ['init script'],
    meaning: 'The settings file (shell syntax) the init script reads; its values override the environment.',
  },
  {
    name: 'EKM_LOCAL_DIR',
    type: 'path',
    default: undefined,
    unsetMeans: '`.ekm-local` in the checkout',
    readBy: ['ekm-local-triplet'],
    meaning: 'Where `bin/ekm-local-triplet` (`npm start`) keeps the homes of its local triplet (section 1).',
  },
  {
    name: 'EKM_LOCAL_PORT_BASE',
    type: 'integer',
    min: 1024,
    max: 65_400,
    default: 16_600,
    unit: 'port',
    readBy: ['ekm-local-triplet'],
    meaning: "The local triplet's ports: peers on base+1..3, the EP API on base+43 (section 1).",
  },
];

export const EKM_FAILPOINTS: TextSetting = {
  name: 'EKM_FAILPOINTS',
  type: 'string',
  default: undefined,
  format: '`name[@count],…`',
  readBy: ALL_SERVERS,
  meaning:
    'Fault suite only (test/faults/, src/failpoints.ts): the count-th time a listed failpoint is hit, the server kills itself with SIGKILL, a real crash.',
};

export const EKM_TEST_VERSION_OVERRIDE: TextSetting = {
  name: 'EKM_TEST_VERSION_OVERRIDE',
  type: 'string',
  default: undefined,
  format: 'a release string, e.g. `9.9.9`',
  readBy: [...ALL_SERVERS, 'ekm', 'ucl'],
  meaning:
    'Tests of rolling upgrades only: the process reports this release instead of its own (section 11.4). Never set it in production.',
};

export const EKM_DEBUG: BooleanSetting = {
  name: 'EKM_DEBUG',
  type: 'boolean',
  default: false,
  readBy: ['ekm', 'ucl'],
  meaning: 'Debugging: an unexpected error (one that is not an ekm error with a code) also prints its stack trace after the one line.',
};

export const EKM_AUX_SWEEP_MS: IntegerSetting = {
  name: 'EKM_AUX_SWEEP_MS',
  type: 'integer',
  min: 100,
  max: 86_400_000,
  default: 60_000,
  unit: 'ms',
  readBy: ['EP'],
  meaning:
    'Tests only: how often the EP sweeps its Aux for the shares of destroyed keys (src/service/key-catalog.ts), shortened so that a test sees the sweep.',
};

export const EKM_DAEMON: BooleanSetting = {
  name: 'EKM_DAEMON',
  type: 'boolean',
  default: false,
  readBy: ALL_SERVERS,
  meaning:
    'Internal: set to 1 by `ekm start` in the environment of the server it starts in the background, which marks the daemon for whoever inspects its environment; nothing else depends on it.',
};

/** Test, debugging and internal switches: not settings, and never to be set in production. */
export const TEST_SWITCHES: readonly Setting[] = [EKM_FAILPOINTS, EKM_TEST_VERSION_OVERRIDE, EKM_DEBUG, EKM_AUX_SWEEP_MS, EKM_DAEMON];

export interface TestSwitches {
  /** Failpoints and how many hits each lets pass before the crash (empty: none armed). */
  readonly failpoints: ReadonlyMap<string, number>;
  readonly versionOverride: string | undefined;
  readonly debug: boolean;
  readonly auxSweepMs: number;
  /** Whether this process is the server `ekm start` started in the background. */
  readonly daemon: boolean;
}

/** The typed values of every variable ekm's processes read, checked once at start. */
export interface Settings {
  readonly home: string;
  readonly dbUrl: string | undefined;
  readonly protocolWorkers: number;
  readonly poolTarget: number;
  readonly aesObjectFormat: 1 | 2;
  readonly tokenTtlSeconds: number;
  readonly loginFailures: number;
  readonly passwordChecks: number;
  readonly recoveryBatch: number;
  readonly recoveryParallel: number;
  readonly uclConf: string | undefined;
  readonly uclServers: string | undefined;
  readonly uclClusterCache: string | undefined;
  readonly test: TestSwitches;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Checks every variable of `env` ekm reads; the first bad one throws one line naming it. */
export function readSettings(env: Env): Settings {
  return {
    home: readText(env, EKM_HOME) ?? EKM_HOME.default!,
    dbUrl: readText(env, EKM_DB_URL),
    protocolWorkers: readInteger(env, EKM_PROTOCOL_WORKERS),
    poolTarget: readInteger(env, EKM_POOL_TARGET),
    aesObjectFormat: Number(readEnum(env, EKM_AES_OBJECT_FORMAT)) as 1 | 2,
    tokenTtlSeconds: readInteger(env, EKM_TOKEN_TTL_SECONDS),
    loginFailures: readInteger(env, EKM_LOGIN_FAILURES),
    passwordChecks: readInteger(env, EKM_PASSWORD_CHECKS),
    recoveryBatch: readInteger(env, EKM_RECOVERY_BATCH),
    recoveryParallel: readInteger(env, EKM_RECOVERY_PARALLEL),
    uclConf: readText(env, UCL_CONF),
    uclServers: readText(env, UCL_SERVERS),
    uclClusterCache: readText(env, UCL_CLUSTER_CACHE),
    test: {
      failpoints: parseFailpoints(valueOf(env, EKM_FAILPOINTS)),
      versionOverride: readText(env, EKM_TEST_VERSION_OVERRIDE),
      debug: readBoolean(env, EKM_DEBUG),
      auxSweepMs: readInteger(env, EKM_AUX_SWEEP_MS),
      daemon: readBoolean(env, EKM_DAEMON),
    },
  };
}

/** The variable's value; an empty one counts as unset, as in the shell's `VAR=`. */
function valueOf(env: Env, s: Setting): string | undefined {
  const v = env[s.name];
  return v === undefined || v === '' ? undefined : v;
}

function badSetting(s: Setting, value: string, allowed: string): EkmError {
  const shown =
    'secret' in s && s.secret ? '(its value is not shown: it may hold a password)' : `got ${JSON.stringify(value.slice(0, 40))}`;
  return new EkmError('EKM_BAD_SETTING', `${s.name} must be ${allowed}, ${shown}`, {
    hint: s.hint ?? `fix or unset ${s.name} (docs/operations.md, Settings)`,
  });
}

const DECIMAL = /^\d{1,16}$/;

export function readInteger(env: Env, s: IntegerSetting): number {
  const v = valueOf(env, s);
  if (v === undefined) return s.default;
  const n = DECIMAL.test(v) ? Number(v) : NaN;
  if (!(n >= s.min && n <= s.max)) throw badSetting(s, v, `an integer from ${s.min} to ${s.max}`);
  return n;
}

export function readEnum<T extends string>(env: Env, s: EnumSetting<T>): T {
  const v = valueOf(env, s);
  if (v === undefined) return s.default;
  if (!(s.values as readonly string[]).includes(v)) throw badSetting(s, v, oneOf(s.values));
  return v as T;
}

const TRUE = ['1', 'true', 'yes', 'on'];
const FALSE = ['0', 'false', 'no', 'off'];

export function readBoolean(env: Env, s: BooleanSetting): boolean {
  const v = valueOf(env, s);
  if (v === undefined) return s.default;
  if (TRUE.includes(v.toLowerCase())) return true;
  if (FALSE.includes(v.toLowerCase())) return false;
  throw badSetting(s, v, `one of ${[...TRUE, ...FALSE].join(', ')}`);
}

/**
 * Text, path or URL: one line (a newline would break a log line or a path). What a URL
 * must name is checked by its one reader where it is read (EKM_DB_URL: the bootstrap with
 * `-externaldb`, src/store/postgres.ts), so other commands keep ignoring it as they always did.
 */
export function readText(env: Env, s: TextSetting): string | undefined {
  const v = valueOf(env, s);
  if (v === undefined) return undefined;
  if (/[\n\r]/.test(v)) throw badSetting(s, v, s.format ? `one line (${s.format.replaceAll('`', '')})` : 'one line');
  return v;
}

function oneOf(values: readonly string[]): string {
  return values.length === 2 ? `${values[0]} or ${values[1]}` : `one of ${values.join(', ')}`;
}
