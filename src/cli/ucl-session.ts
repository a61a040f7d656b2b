/**
 * What every authenticated `ucl` command shares: `-p <partition>`, `--user <user>` (or
 * `user@partition`), `-w <password>` (`-w -`: the first line of standard input; `-W <file>`: of a
 * file, both out of the process list), the prompt `<user>@<partition> password:` when no password
 * is given on a terminal, HTTP Basic on each request (ucl keeps no login session, as the
 * original), files in and out, and API errors turned into one line and a non-zero exit.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import type { EkmClient } from '../client/client.js';
import { EkmError, usageError } from '../errors.js';
import { FROM_STDIN, fileErrorReason, readPasswordFile, readPasswordStdin } from '../util/secret-input.js';

export interface UclContext {
  client(): Promise<EkmClient>;
  json(): boolean;
  print(line: string): void;
}

export interface Credentials {
  readonly user: string;
  readonly partition: string;
  readonly password: string;
}

export interface CredentialOpts {
  partition?: string;
  user?: string;
  password?: string;
  passwordFile?: string;
}

/** Adds `-p`, `--user`, `-w` (the partition flag is left out where `-p` means something else). */
export function withCredentials(cmd: Command, opts: { partitionFlag?: boolean; defaultUser?: string } = {}): Command {
  if (opts.partitionFlag !== false) cmd.option('-p, --partition <partition>', 'partition (default root)');
  return cmd
    .option('--user <user>', `user, or user@partition (default ${opts.defaultUser ?? 'so'})`)
    .option('-w, --password <password>', 'password; - reads it from standard input (prompted for on a terminal when missing)')
    .option('-W, --password-file <file>', 'read the password from the first line of this file');
}

/** Reads a password from the terminal without echo. */
function promptHidden(question: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stdin = process.stdin;
    process.stderr.write(question);
    stdin.setRawMode(true);
    stdin.resume();
    stdin.setEncoding('utf8');
    let buf = '';
    const done = (): void => {
      stdin.setRawMode(false);
      stdin.pause();
      stdin.off('data', onData);
      process.stderr.write('\n');
    };
    const onData = (chunk: string): void => {
      for (const c of chunk) {
        if (c === '\r' || c === '\n' || c === '\u0004') {
          done();
          resolve(buf);
          return;
        }
        if (c === '\u0003') {
          done();
          reject(new EkmError('EKM_INTERRUPTED', 'cancelled'));
          return;
        }
        if (c === '\u007f' || c === '\b') buf = buf.slice(0, -1);
        else buf += c;
      }
    };
    stdin.on('data', onData);
  });
}

/** The credentials of a command: `--user u@p` wins over `-p`; the password is asked for when missing. */
export async function credentials(o: CredentialOpts, defaults: { user?: string; partition?: string } = {}): Promise<Credentials> {
  let user = o.user ?? defaults.user ?? 'so';
  let partition = o.partition ?? defaults.partition ?? 'root';
  const at = user.lastIndexOf('@');
  if (at > 0) {
    partition = user.slice(at + 1);
    user = user.slice(0, at);
  }
  if (user === '' || partition === '') throw usageError('--user and -p must not be empty');
  let password = givenPassword(o);
  if (password === undefined) {
    if (!process.stdin.isTTY) throw usageError(`no password for ${user}@${partition}`, 'give -w <password> (there is no terminal to ask on)');
    password = await promptHidden(`${user}@${partition} password: `);
  }
  if (password === '') throw usageError(`empty password for ${user}@${partition}`);
  return { user, partition, password };
}

/** The password of `-w`, `-w -` (standard input) or `-W <file>`; undefined when none was given. */
function givenPassword(o: CredentialOpts): string | undefined {
  if (o.password !== undefined && o.passwordFile !== undefined) throw usageError('give -w or -W <file>, not both');
  if (o.passwordFile !== undefined) return readPasswordFile(o.passwordFile, '-W');
  return o.password === FROM_STDIN ? readPasswordStdin() : o.password;
}

interface ApiErrorShape {
  error?: { code?: string; message?: string };
}

/** The HTTP Basic `Authorization` header of `creds`. */
export function basicAuthorization(creds: Credentials): { authorization: string } {
  return { authorization: `Basic ${Buffer.from(`${creds.user}@${creds.partition}:${creds.password}`, 'utf8').toString('base64')}` };
}

/**
 * The credentials of a command that an EP of the cluster may also run without any (`ucl server
 * test|list` in an EP's home shows the EP's identity): Basic when `--user`, `-w` or `-W` is given.
 */
export async function optionalAuthorization(o: CredentialOpts): Promise<Record<string, string>> {
  return o.user === undefined && o.password === undefined && o.passwordFile === undefined ? {} : basicAuthorization(await credentials(o));
}

/** One authenticated request; anything but 2xx becomes an EkmError carrying the API's message. */
export async function call<T>(ctx: UclContext, creds: Credentials, method: string, path: string, body?: unknown): Promise<T> {
  const client = await ctx.client();
  try {
    const res = await client.request<T & ApiErrorShape>(method, path, body, basicAuthorization(creds));
    if (res.status >= 200 && res.status < 300) return res.body;
    const err = (res.body as ApiErrorShape | null)?.error;
    const message = err?.message ?? `the EP answered ${res.status}`;
    throw new EkmError('EKM_API', res.status === 401 ? `${creds.user}@${creds.partition}: ${message}` : message, {
      relayed: { code: err?.code, httpStatus: res.status },
    });
  } finally {
    client.close();
  }
}

/** Path segment: names are validated by the API; encoding keeps odd input from changing the path. */
export const seg = (s: string): string => encodeURIComponent(s);

export function readInput(path: string | undefined, what = '-i <file>'): Buffer {
  if (!path) throw usageError(`${what} is required`);
  try {
    return readFileSync(path);
  } catch (e) {
    throw new EkmError('EKM_INPUT', `cannot read ${path}: ${fileErrorReason(e, 'no such file')}`);
  }
}

export function writeOutput(path: string, data: string | Uint8Array): void {
  try {
    writeFileSync(path, data);
  } catch (e) {
    throw new EkmError('EKM_OUTPUT', `cannot write ${path}: ${fileErrorReason(e, 'its folder does not exist')}`);
  }
}

/** Asks `question [y/N]` on a terminal; without one, `-y` is required. */
export async function confirm(question: string, yes: boolean | undefined): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) throw usageError(`${question}: give -y to confirm (there is no terminal to ask on)`);
  process.stdout.write(`${question} [y/N] `);
  const answer = await new Promise<string>((resolve) => {
    process.stdin.resume();
    process.stdin.setEncoding('utf8');
    process.stdin.once('data', (d: string) => {
      process.stdin.pause();
      resolve(d.trim());
    });
  });
  if (!/^y(es)?$/i.test(answer)) throw new EkmError('EKM_CANCELLED', 'cancelled');
}

export function printJson(ctx: UclContext, value: unknown): void {
  ctx.print(JSON.stringify(value, null, 2));
}
