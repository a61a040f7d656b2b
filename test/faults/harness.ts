/**
 * The fault suite's machinery: a real triplet (test/support/cluster.ts), client operations that
 * write what the EP acknowledged into the ledger, crashes (a failpoint armed on one server through
 * EKM_FAILPOINTS, or a plain kill -9), the restart, and the checks that nothing acknowledged was lost.
 */
import Database from 'better-sqlite3';
import { constants, publicEncrypt, randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { homePaths } from '../../src/config/home.js';
import { processAlive, readPid } from '../../src/config/pidfile.js';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { ROLES, ROOT_SO_PASSWORD, type Role, type RunResult, type Triplet, ekm, run, ucl, waitInService } from '../support/cluster.js';
import { EC_TEST_ALGS, type SignTestAlg, type TestAlg } from '../support/verify-ec.js';
import { Ledger, type Sealed, type SigningKey, reusedNonces } from './ledger.js';
import { FaultProxy } from './proxy.js';

export interface Fixture {
  readonly t: Triplet;
  /** Logged in again whenever the EP restarts (its sessions do not outlive it). */
  api: Api;
  readonly ledger: Ledger;
  /** Why the last request the EP did not acknowledge failed (status and error, or the client's error). */
  lastRefusal?: string;
}

export async function fixture(t: Triplet): Promise<Fixture> {
  return { t, api: await apiFor(t), ledger: new Ledger() };
}

/** Seeded PRNG (mulberry32): a printed seed replays the same choices. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One API call; a refused connection (the EP is down) is an unacknowledged operation, not an error. */
async function call<T>(fx: Fixture, method: string, path: string, body?: unknown): Promise<{ status: number; body: T } | undefined> {
  const r = await fx.api.call<T>(method, path, body).catch((e: unknown) => {
    fx.lastRefusal = `${method} ${path}: no answer (${(e as Error).message})`;
    return undefined;
  });
  if (r && r.status >= 300) {
    const e = (r.body as { error?: { code?: string; message?: string } } | undefined)?.error;
    fx.lastRefusal = `${method} ${path}: ${r.status} ${e?.code ?? ''} ${e?.message ?? JSON.stringify(r.body).slice(0, 200)}`;
  }
  return r;
}

// --- operations: each returns whether the EP acknowledged it, and records what it returned ----

export async function generate(fx: Fixture, alg: TestAlg): Promise<SigningKey | undefined> {
  const r = await call<{ keyId: string; publicKey: string }>(fx, 'POST', '/keys', { alg });
  if (r?.status !== 201) return undefined;
  const key = { keyId: r.body.keyId, alg, pem: r.body.publicKey };
  fx.ledger.signingKeys.push(key);
  fx.ledger.acknowledged();
  return key;
}

/**
 * An RSA-2048 key (made by the EP's dealer, then shared): it signs like the EC keys, and a
 * ciphertext the client makes with its public key (RSA-OAEP SHA-256, no ekm involved) is owed a
 * decryption from then on.
 */
export async function generateRsa(fx: Fixture): Promise<SigningKey | undefined> {
  const r = await call<{ keyId: string; publicKey: string }>(fx, 'POST', '/keys', { alg: 'rsa-2048' });
  if (r?.status !== 201) return undefined;
  const key: SigningKey = { keyId: r.body.keyId, alg: 'rsa-2048', pem: r.body.publicKey };
  fx.ledger.signingKeys.push(key);
  fx.ledger.acknowledged();
  const plaintext = randomBytes(32);
  const ciphertext = publicEncrypt({ key: key.pem, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, plaintext);
  fx.ledger.sealed.push({ keyId: key.keyId, plaintext, ciphertext: b64(ciphertext) });
  return key;
}

export async function generateAes(fx: Fixture): Promise<string | undefined> {
  const r = await call<{ keyId: string }>(fx, 'POST', '/keys', { alg: 'aes-256-dprf' });
  if (r?.status !== 201) return undefined;
  fx.ledger.aesKeys.push(r.body.keyId);
  fx.ledger.acknowledged();
  return r.body.keyId;
}

/**
 * Decrypts one ledger ciphertext through the EP: an answer that is not its plaintext is an invalid
 * output; an error (the EP or a peer is down) is no answer.
 */
export async function decrypt(fx: Fixture, s: Sealed): Promise<boolean> {
  const plaintext = await decrypted(fx, s);
  if (!plaintext) return false;
  fx.ledger.acknowledged();
  if (!plaintext.equals(s.plaintext)) fx.ledger.invalid(`a ciphertext of ${s.keyId} decrypted to another plaintext`);
  return true;
}

/** The plaintext the EP returns for a ledger ciphertext, or undefined when it gives none. */
async function decrypted(fx: Fixture, s: Sealed): Promise<Buffer | undefined> {
  const r = await call<{ plaintext: string }>(fx, 'POST', `/keys/${s.keyId}/decrypt`, { ciphertext: s.ciphertext });
  return r?.status === 200 ? unb64(r.body.plaintext) : undefined;
}

export async function sign(fx: Fixture, key: SigningKey): Promise<boolean> {
  const message = randomBytes(24);
  const r = await call<{ signature: string }>(fx, 'POST', `/keys/${key.keyId}/sign`, { message: b64(message) });
  if (r?.status !== 200) return false;
  fx.ledger.signed({ key, message, signature: unb64(r.body.signature) });
  return true;
}

export async function refresh(fx: Fixture, keyId: string): Promise<boolean> {
  const r = await call(fx, 'POST', `/keys/${keyId}/refresh`);
  if (r?.status !== 200) return false;
  fx.ledger.acknowledged();
  return true;
}

/** The Aux's shares of every key derived again from EP and Partner (root SO), then every key refreshed. */
export async function rederive(fx: Fixture): Promise<boolean> {
  return (await rederiveOrWhy(fx)) === undefined;
}

/** The re-derivation: undefined once acknowledged, else what the EP answered (for a test's message). */
export async function rederiveOrWhy(fx: Fixture): Promise<string | undefined> {
  const r = await fx.api.call('POST', '/servers/aux/rederive').catch((e: unknown) => (e as Error).message);
  if (typeof r === 'string') return `no answer: ${r}`;
  if (r.status !== 200) return `${r.status} ${JSON.stringify(r.body)}`;
  fx.ledger.acknowledged();
  return undefined;
}

export async function encrypt(fx: Fixture, keyId: string): Promise<boolean> {
  const plaintext = randomBytes(40);
  const r = await call<{ ciphertext: string }>(fx, 'POST', `/keys/${keyId}/encrypt`, { plaintext: b64(plaintext) });
  if (r?.status !== 200) return false;
  fx.ledger.sealed.push({ keyId, plaintext, ciphertext: r.body.ciphertext });
  fx.ledger.acknowledged();
  return true;
}

/** One key of every type in the ledger (each EC algorithm, RSA-2048, AES) and one AES ciphertext: what a scenario's checks then owe. */
export async function keysOfEveryType(fx: Fixture): Promise<void> {
  for (const alg of EC_TEST_ALGS) if (!(await generate(fx, alg))) throw new Error(`no ${alg} key was made`);
  if (!(await generateRsa(fx))) throw new Error('no RSA key was made');
  const aes = await generateAes(fx);
  if (!aes || !(await encrypt(fx, aes))) throw new Error('no AES key or ciphertext was made');
}

/** Two clients issue random operations (drawn with `random`) until `stop` says so. */
export function mixedLoad(fx: Fixture, stop: { now: boolean }, random: () => number): Promise<void[]> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
  const op = (): Promise<unknown> =>
    pick([
      () => generate(fx, pick(EC_TEST_ALGS)),
      () => generateAes(fx),
      // RSA keys are dealt (a 2048-bit key generation): fewer of them.
      () => (random() < 0.3 ? generateRsa(fx) : generate(fx, pick(EC_TEST_ALGS))),
      () => sign(fx, pick(fx.ledger.signingKeys)),
      () => sign(fx, pick(fx.ledger.signingKeys)),
      () => encrypt(fx, pick(fx.ledger.aesKeys)),
      () => decrypt(fx, pick(fx.ledger.sealed)),
      () => refresh(fx, pick(fx.ledger.signingKeys).keyId),
    ])();
  const client = async (): Promise<void> => {
    while (!stop.now) if (!(await op())) await sleep(100);
  };
  return Promise.all([client(), client()]);
}

// --- faults ------------------------------------------------------------------------------------

/** Where `role`'s log ends now: `logSince` then reads what the server logged from there on. */
export function logMark(t: Triplet, role: Role): number {
  return statSync(homePaths(t.homes[role]).logFile).size;
}

export function logSince(t: Triplet, role: Role, mark: number): string {
  return readFileSync(homePaths(t.homes[role]).logFile).subarray(mark).toString();
}

function pidOf(t: Triplet, role: Role): number {
  const pid = readPid(homePaths(t.homes[role]));
  if (pid === undefined) throw new Error(`${role} has no pid file`);
  return pid;
}

/** A real kill -9 of the server's process; returns once the process is gone (a start before that would find it still running). */
export async function killHard(t: Triplet, role: Role): Promise<void> {
  const pid = pidOf(t, role);
  process.kill(pid, 'SIGKILL');
  while (processAlive(pid)) await sleep(20);
}

function ekmStart(fx: Fixture, role: Role, env: Record<string, string>): Promise<RunResult> {
  return run('ekm', ['start'], { ...fx.t.env(role), ...env });
}

async function startRole(fx: Fixture, role: Role): Promise<void> {
  const r = await ekmStart(fx, role, {});
  if (r.code !== 0) throw new Error(`ekm start (${role}) failed: ${r.stderr}`);
  await waitInService(fx.t, 60_000);
  if (role === 'ep') fx.api = await apiFor(fx.t);
}

async function stopRole(fx: Fixture, role: Role): Promise<void> {
  const r = await ekm(fx.t, role, 'stop');
  if (r.code !== 0) throw new Error(`ekm stop (${role}) failed: ${r.stderr}`);
}

/** Stops `role` and starts it again without failpoints. */
export async function disarm(fx: Fixture, role: Role): Promise<void> {
  await stopRole(fx, role);
  await startRole(fx, role);
}

/** Until the triplet serves again or `pid` died (an armed server can crash before it serves). */
async function servingOrDead(fx: Fixture, pid: number, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (processAlive(pid) && (await ucl(fx.t, 'server', 'test')).code !== 0) {
    if (Date.now() > end) throw new Error(`the triplet did not serve within ${timeoutMs} ms of an armed start`);
    await sleep(200);
  }
}

/**
 * Restarts `role` with `EKM_FAILPOINTS=spec`; returns the pid that is to die, or undefined when
 * the failpoint already fired while it started (a session resumed from its checkpoint hit it).
 */
export async function arm(fx: Fixture, role: Role, spec: string): Promise<number | undefined> {
  await stopRole(fx, role);
  const r = await ekmStart(fx, role, { EKM_FAILPOINTS: spec });
  if (r.code !== 0 && r.stderr.includes('failpoint')) return undefined;
  if (r.code !== 0) throw new Error(`ekm start (${role}) failed: ${r.stderr}`);
  const pid = pidOf(fx.t, role);
  await servingOrDead(fx, pid);
  // A login fails if the EP crashed already; the load then finds it dead at once.
  if (role === 'ep') fx.api = await apiFor(fx.t).catch(() => fx.api);
  return pid;
}

/**
 * After a power loss: `ekm start` of each server in `order`, without waiting between them (a
 * server serves its port whether or not its peers are up), then until the triplet is in service.
 */
export async function startInOrder(fx: Fixture, order: readonly Role[]): Promise<void> {
  fx.ledger.figures.faults++;
  for (const role of order) {
    const r = await ekmStart(fx, role, {});
    if (r.code !== 0) throw new Error(`ekm start (${role}) failed: ${r.stderr}`);
  }
  await waitInService(fx.t, 60_000);
  fx.api = await apiFor(fx.t);
}

/**
 * Makes `from` reach its peer `to` through a FaultProxy: `from` stopped, the peer's address in its
 * server.json pointed at the proxy, `from` started again. Pinning is unchanged (the certificate is
 * still the peer's); in pass mode the proxy is invisible.
 */
export async function routeThroughProxy(fx: Fixture, from: Role, to: Role): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ host: '127.0.0.1', port: fx.t.ports[to] });
  await stopRole(fx, from);
  const configPath = homePaths(fx.t.homes[from]).config;
  const config = JSON.parse(readFileSync(configPath, 'utf8')) as { peers: { role: Role; address: { host: string; port: number } }[] };
  config.peers.find((p) => p.role === to)!.address = { host: '127.0.0.1', port: proxy.port };
  writeFileSync(configPath, JSON.stringify(config, null, 2));
  await startRole(fx, from);
  return proxy;
}

/** Whether this process may mount a tmpfs (root with CAP_SYS_ADMIN): the disk-full scenario needs it. */
export function canMountTmpfs(): boolean {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-mount-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', dir], { stdio: 'ignore' });
    execFileSync('umount', [dir], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Puts `role`'s data folder (its SQLite store) on a 16 MiB tmpfs and fills it up to `freeBytes`
 * left: a real disk-full (ENOSPC, SQLITE_FULL) for that server's store. Returns `free()`, which
 * gives the space back (deletes the filler), and `unmount()`, which moves the store back onto the
 * real disk (server stopped and started again).
 */
export async function diskAlmostFull(
  fx: Fixture,
  role: Role,
  freeBytes: number,
): Promise<{ free: () => void; unmount: () => Promise<void> }> {
  const data = dirname(homePaths(fx.t.homes[role]).sqlite);
  const saved = `${data}.disk`;
  await stopRole(fx, role);
  renameSync(data, saved);
  mkdirSync(data, { mode: 0o700 });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=16m,mode=0700', 'tmpfs', data]);
  for (const f of readdirSync(saved)) copyFileSync(join(saved, f), join(data, f));
  const filler = join(data, 'filler');
  const avail = Number(execFileSync('df', ['--output=avail', '-B1', data]).toString().split('\n')[1]);
  execFileSync('fallocate', ['-l', String(Math.max(0, avail - freeBytes)), filler]);
  await startRole(fx, role);
  return {
    free: () => rmSync(filler, { force: true }),
    unmount: async () => {
      await stopRole(fx, role);
      rmSync(filler, { force: true });
      // The store's files as they are now, and only those: a stale WAL left beside them would be replayed.
      for (const f of readdirSync(saved)) rmSync(join(saved, f), { force: true });
      for (const f of readdirSync(data)) copyFileSync(join(data, f), join(saved, f));
      execFileSync('umount', [data]);
      rmSync(data, { recursive: true, force: true });
      renameSync(saved, data);
      await startRole(fx, role);
    },
  };
}

/** The Aux's disk is lost: kill -9, its store (SQLite file, WAL and shared memory) deleted, started again empty. */
export async function loseAuxDisk(fx: Fixture): Promise<void> {
  await killHard(fx.t, 'aux');
  const db = homePaths(fx.t.homes.aux).sqlite;
  for (const f of [db, `${db}-wal`, `${db}-shm`]) rmSync(f, { force: true });
  await restart(fx, 'aux');
}

/** After the crash: the role starts again without failpoints (the other two kept running). */
export async function restart(fx: Fixture, role: Role): Promise<void> {
  fx.ledger.figures.faults++;
  await startRole(fx, role);
}

/**
 * Runs `op` again and again (each awaited, or cut short when the process dies) until `pid` is dead
 * or `deadlineMs` passes; returns the operations still in flight (they may yet be acknowledged
 * once the peer is back) and whether the process died.
 */
export async function loadUntilDeath(
  pid: number,
  op: () => Promise<unknown>,
  deadlineMs = 60_000,
): Promise<{ died: boolean; inFlight: Promise<unknown>[] }> {
  const inFlight: Promise<unknown>[] = [];
  const end = Date.now() + deadlineMs;
  const death = (async () => {
    while (processAlive(pid) && Date.now() < end) await sleep(50);
  })();
  while (processAlive(pid) && Date.now() < end) {
    const p = op();
    inFlight.push(p);
    await Promise.race([p, death]);
  }
  return { died: !processAlive(pid), inFlight };
}

// --- checks ------------------------------------------------------------------------------------

/** Retries an operation that may wait for a session the restart resumes (R4: it completes, never aborts). */
async function eventually(op: () => Promise<boolean>, attempts = 12): Promise<boolean> {
  for (let i = 0; i < attempts; i++) {
    if (await op()) return true;
    await sleep(1000);
  }
  return false;
}

async function decrypts(fx: Fixture, s: Sealed): Promise<boolean> {
  return (await decrypted(fx, s))?.equals(s.plaintext) === true;
}

/** Every active key the EP lists that the ledger does not know: a failed operation made it. */
async function unacknowledgedKeys(fx: Fixture): Promise<{ keyId: string; alg: string }[]> {
  const r = await call<{ keys: { keyId: string; alg: string; state: string }[] }>(fx, 'GET', '/keys?limit=1000');
  if (r?.status !== 200) throw new Error(`listing keys failed: ${JSON.stringify(r?.body)}`);
  const known = new Set([...fx.ledger.signingKeys.map((k) => k.keyId), ...fx.ledger.aesKeys]);
  return r.body.keys.filter((k) => k.state === 'active' && !known.has(k.keyId));
}

/** A key nobody was told about is not owed to anyone, but it must not be stuck: it signs or encrypts. */
async function usable(fx: Fixture, k: { keyId: string; alg: string }): Promise<boolean> {
  if (k.alg === 'aes-256-dprf') return encrypt(fx, k.keyId);
  const r = await call<{ publicKey: string }>(fx, 'GET', `/keys/${k.keyId}`);
  return r?.status === 200 && sign(fx, { keyId: k.keyId, alg: k.alg as SignTestAlg, pem: r.body.publicKey });
}

/**
 * The scenario's verdict on the ledger: every acknowledged key signs (verified under its recorded
 * public key) or encrypts, every ciphertext decrypts to its plaintext, every returned signature
 * verifies, no ECDSA nonce repeats, keys left by failed operations are usable, the audit chain
 * verifies. Losses and invalid outputs are counted in the figures; returns this check's problems.
 *
 * `twoServers`: one server is down on purpose, so only what two servers can do is owed: FROST,
 * RSA and AES (ECDSA needs all three: docs/security-model.md §9), and the keys of failed
 * operations are left for the next full check.
 */
export async function checkLedger(fx: Fixture, opts: { twoServers?: boolean } = {}): Promise<string[]> {
  const { ledger } = fx;
  const before = ledger.problems.length;
  const owed = (k: { alg: string }): boolean => !opts.twoServers || !k.alg.startsWith('ecdsa-');
  for (const key of ledger.signingKeys.filter(owed)) {
    if (!(await eventually(() => sign(fx, key)))) ledger.lost(`key ${key.keyId} (${key.alg}) no longer signs`);
  }
  for (const keyId of ledger.aesKeys) {
    if (!(await eventually(() => encrypt(fx, keyId)))) ledger.lost(`AES key ${keyId} no longer encrypts`);
  }
  for (const s of ledger.sealed) {
    if (!(await eventually(() => decrypts(fx, s)))) ledger.lost(`a ciphertext of ${s.keyId} no longer decrypts`);
  }
  for (const keyId of reusedNonces(ledger.signatures))
    ledger.invalid(`two ECDSA signatures of ${keyId} share r: a presignature was used twice`);
  if (!opts.twoServers) {
    // First: the sessions the fault interrupted settle (activate, or end on NEVER) ...
    const stuck = await sessionsLeftCommitting(fx);
    if (stuck.length > 0) ledger.problems.push(`sessions left committing after the scenario: ${stuck.join(', ')}`);
    // ... then every key they left must be usable.
    for (const k of await unacknowledgedKeys(fx)) {
      if (!(await eventually(() => usable(fx, k), 3)))
        ledger.problems.push(`unusable: key ${k.keyId} (${k.alg}) left by a failed operation`);
    }
  }
  const audit = await ucl(fx.t, 'audit', 'verify', '-w', ROOT_SO_PASSWORD);
  if (audit.code !== 0) ledger.problems.push(`audit chain: ${audit.stderr.trim() || audit.stdout.trim()}`);
  return ledger.problems.slice(before);
}

/**
 * Sessions some server still holds in its confirm phase (PENDING persisted, not finished), read from
 * the stores. With all three servers up, each ends within seconds (activated, or dropped on a
 * NEVER): one left after `deadlineMs` is stuck, and it blocks its keys' refreshes (I3).
 */
async function sessionsLeftCommitting(fx: Fixture, deadlineMs = 30_000): Promise<string[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    // The servers whose store is the embedded one (on PostgreSQL, in a scale-out suite, the Aux only).
    const open = ROLES.filter((role) => existsSync(homePaths(fx.t.homes[role]).sqlite)).flatMap((role) => {
      const db = new Database(homePaths(fx.t.homes[role]).sqlite, { readonly: true, fileMustExist: true });
      try {
        const rows = db.prepare("SELECT proto, sid FROM protocol_sessions WHERE state = 'open' AND checkpoint IS NOT NULL").all() as {
          proto: string;
          sid: string;
        }[];
        return rows.map((r) => `${role} ${r.proto} ${r.sid.slice(0, 12)}`);
      } finally {
        db.close();
      }
    });
    if (open.length === 0 || Date.now() > end) return open;
    await sleep(500);
  }
}
