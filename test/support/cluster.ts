/**
 * Real triplets for tests: every server is a real `ekm` process (bin/ekm, as operators run it),
 * on loopback, with its own EKM_HOME under a temporary folder, talking mutual TLS.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin');
export type Role = 'ep' | 'partner' | 'aux';
export const ROLES: readonly Role[] = ['ep', 'partner', 'aux'];

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a bin/ script (a path relative to bin/, or an absolute one) to completion, in `cwd` (default: this
 * process's); `input` is written to its standard input at once, `answers` when a `[y/N]` prompt appears. */
export function run(
  cmd: string,
  args: readonly string[],
  env: Record<string, string>,
  opts: { answers?: readonly string[]; input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(isAbsolute(cmd) ? cmd : join(BIN, cmd), args, {
      cwd: opts.cwd,
      env: { ...process.env, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const answers = [...(opts.answers ?? [])];
    let prompts = 0;
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const seen = (stdout.match(/\[y\/N\] /g) ?? []).length;
      while (prompts < seen) {
        prompts++;
        const a = answers.shift();
        if (a === undefined) child.stdin.end();
        else child.stdin.write(`${a}\n`);
      }
    });
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    if (opts.input !== undefined) child.stdin.write(opts.input);
    if (!opts.answers) child.stdin.end();
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} timed out\n${stdout}\n${stderr}`));
    }, opts.timeoutMs ?? 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code: code ?? -1, stdout, stderr });
    });
  });
}

/**
 * Ports no one listens on, for servers a test starts (and may restart). Picked at random BELOW the
 * kernel's ephemeral range: a port the kernel hands out (`listen(0)`, or the local port of any
 * outgoing connection) can be taken by another connection while a server of the test is down
 * between two runs, and its restart then fails to listen (seen as a bootstrap timeout elsewhere).
 */
export async function freePorts(n: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < n) {
    const port = PORT_RANGE.low + Math.floor(Math.random() * (PORT_RANGE.high - PORT_RANGE.low));
    if (!ports.includes(port) && (await canListen(port))) ports.push(port);
  }
  return ports;
}

const PORT_RANGE = { low: 20_000, high: ephemeralLow() };

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 21_000 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolvePort) => {
    const s: Server = createServer();
    s.once('error', () => resolvePort(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolvePort(true)));
  });
}

export interface Triplet {
  dir: string;
  /** The bin/ folder its servers and ucl run from: this checkout's, or an installed package's. */
  bin: string;
  homes: Record<Role, string>;
  ports: Record<Role, number>;
  apiPort: number;
  names: Record<Role, string>;
  env(role: Role): Record<string, string>;
  bootArgs(role: Role, extra?: readonly string[]): string[];
  cleanup(): Promise<void>;
}

export const ROOT_SO_PASSWORD = 'Root-SO-pass-1';

/** A triplet's homes and free ports (`reuse` places some of its servers on given peer ports), run from `bin`. */
export async function makeTriplet(reuse: Partial<Record<Role, number>> = {}, bin = BIN): Promise<Triplet> {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-test-'));
  const [ep, partner, aux, apiPort] = await freePorts(4);
  const ports = { ep: reuse.ep ?? ep!, partner: reuse.partner ?? partner!, aux: reuse.aux ?? aux! };
  const names = { ep: `127.0.0.1:${ports.ep}`, partner: `127.0.0.1:${ports.partner}`, aux: `127.0.0.1:${ports.aux}` };
  const homes = { ep: join(dir, 'ep'), partner: join(dir, 'partner'), aux: join(dir, 'aux') };
  const t: Triplet = {
    dir,
    bin,
    homes,
    ports,
    apiPort: apiPort!,
    names,
    env: (role) => ({ EKM_HOME: homes[role] }),
    bootArgs(role, extra = []) {
      switch (role) {
        case 'ep':
          return ['-s', names.ep, '-p', names.partner, '-x', names.aux, '-fips', '-w', ROOT_SO_PASSWORD, '--api-port', String(apiPort), ...extra];
        case 'partner':
          return ['-s', names.partner, '-p', names.ep, '-x', names.aux, '-fips', ...extra];
        case 'aux':
          return ['-s', names.aux, '-e', names.ep, '-p', names.partner, '-fips', ...extra];
      }
    },
    async cleanup() {
      await Promise.all(ROLES.map((r) => run(join(bin, 'ekm'), ['stop'], t.env(r)).catch(() => undefined)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return t;
}

export const BOOT_SCRIPT: Record<Role, string> = { ep: 'ekm_boot_ep.sh', partner: 'ekm_boot_partner.sh', aux: 'ekm_boot_auxiliary.sh' };

/** Bootstraps all three at once with -f. */
export async function bootAll(t: Triplet, extra: readonly string[] = ['-f', '--timeout', '60']): Promise<Record<Role, RunResult>> {
  const [ep, partner, aux] = await Promise.all(ROLES.map((r) => run(join(t.bin, BOOT_SCRIPT[r]), t.bootArgs(r, extra), t.env(r))));
  return { ep: ep!, partner: partner!, aux: aux! };
}

export function ekm(t: Triplet, role: Role, ...args: string[]): Promise<RunResult> {
  return run(join(t.bin, 'ekm'), args, t.env(role));
}

export function ucl(t: Triplet, ...args: string[]): Promise<RunResult> {
  return run(join(t.bin, 'ucl'), args, t.env('ep'));
}

/** Polls `ucl server test` until it exits 0; returns the time it took (ms) or throws with the last output. */
export async function waitInService(t: Triplet, timeoutMs = 20_000): Promise<number> {
  const t0 = Date.now();
  let last: RunResult | undefined;
  while (Date.now() - t0 < timeoutMs) {
    last = await ucl(t, 'server', 'test');
    if (last.code === 0) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`triplet not in service after ${timeoutMs} ms:\n${last?.stdout}\n${last?.stderr}`);
}

/** A one-line error with no stack trace. */
export function assertOneLineError(r: RunResult): void {
  if (r.code === 0) throw new Error(`expected failure, got exit 0:\n${r.stdout}`);
  const lines = r.stderr.trim().split('\n');
  if (lines.length !== 1 || /\n\s+at /.test(r.stderr) || r.stderr.includes('node:internal')) {
    throw new Error(`expected one error line, got:\n${r.stderr}`);
  }
}

export type { ChildProcess };

/** Starts the three in the seed's order (Partner, Aux, then EP) and waits until `ucl server test` passes. */
export async function startSeedOrder(t: Triplet): Promise<void> {
  for (const role of ['partner', 'aux', 'ep'] as const) {
    const r = await ekm(t, role, 'start');
    if (r.code !== 0) throw new Error(`ekm start (${role}) failed: ${r.stderr}`);
  }
  await waitInService(t);
}

/** A new triplet, bootstrapped with -f and serving. */
export async function servingTriplet(): Promise<Triplet> {
  const t = await makeTriplet();
  const boots = await bootAll(t);
  for (const role of ROLES) if (boots[role].code !== 0) throw new Error(`bootstrap of ${role} failed: ${boots[role].stderr}`);
  await startSeedOrder(t);
  return t;
}

/** Every order of `xs` (start orders of the three roles: 6). */
export function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [xs.slice()];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((p) => [x, ...p]));
}
