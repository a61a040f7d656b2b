/**
 * The fault suite's machinery: a real triplet (test/support/cluster.ts), client operations that
 * write what the EP acknowledged into the ledger, crashes (a failpoint armed on one server through
 * EKM_FAILPOINTS, or a plain kill -9), the restart, and the checks that nothing acknowledged was lost.
 */
import { randomBytes } from 'node:crypto';
import { homePaths } from '../../src/config/home.js';
import { processAlive, readPid } from '../../src/server/pidfile.js';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { ROOT_SO_PASSWORD, type Role, type RunResult, type Triplet, ekm, run, ucl, waitInService } from '../support/cluster.js';
import type { TestAlg } from '../support/verify-ec.js';
import { Ledger, type SigningKey, reusedNonces } from './ledger.js';

export interface Fixture {
  readonly t: Triplet;
  /** Logged in again whenever the EP restarts (its sessions do not outlive it). */
  api: Api;
  readonly ledger: Ledger;
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
  return fx.api.call<T>(method, path, body).catch(() => undefined);
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

export async function generateAes(fx: Fixture): Promise<string | undefined> {
  const r = await call<{ keyId: string }>(fx, 'POST', '/keys', { alg: 'aes-256-dprf' });
  if (r?.status !== 201) return undefined;
  fx.ledger.aesKeys.push(r.body.keyId);
  fx.ledger.acknowledged();
  return r.body.keyId;
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

export async function encrypt(fx: Fixture, keyId: string): Promise<boolean> {
  const plaintext = randomBytes(40);
  const r = await call<{ ciphertext: string }>(fx, 'POST', `/keys/${keyId}/encrypt`, { plaintext: b64(plaintext) });
  if (r?.status !== 200) return false;
  fx.ledger.sealed.push({ keyId, plaintext, ciphertext: r.body.ciphertext });
  fx.ledger.acknowledged();
  return true;
}

// --- faults ------------------------------------------------------------------------------------

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

async function decrypts(fx: Fixture, keyId: string, ciphertext: string, plaintext: Buffer): Promise<boolean> {
  const r = await call<{ plaintext: string }>(fx, 'POST', `/keys/${keyId}/decrypt`, { ciphertext });
  return r?.status === 200 && unb64(r.body.plaintext).equals(plaintext);
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
  return r?.status === 200 && sign(fx, { keyId: k.keyId, alg: k.alg as TestAlg, pem: r.body.publicKey });
}

/**
 * The scenario's verdict on the ledger: every acknowledged key signs (verified under its recorded
 * public key) or encrypts, every ciphertext decrypts to its plaintext, every returned signature
 * verifies, no ECDSA nonce repeats, keys left by failed operations are usable, the audit chain
 * verifies. Losses and invalid outputs are counted in the figures; returns this check's problems.
 */
export async function checkLedger(fx: Fixture): Promise<string[]> {
  const { ledger } = fx;
  const before = ledger.problems.length;
  for (const key of [...ledger.signingKeys]) {
    if (!(await eventually(() => sign(fx, key)))) ledger.lost(`key ${key.keyId} (${key.alg}) no longer signs`);
  }
  for (const keyId of ledger.aesKeys) {
    if (!(await eventually(() => encrypt(fx, keyId)))) ledger.lost(`AES key ${keyId} no longer encrypts`);
  }
  for (const s of ledger.sealed) {
    if (!(await eventually(() => decrypts(fx, s.keyId, s.ciphertext, s.plaintext))))
      ledger.lost(`a ciphertext of ${s.keyId} no longer decrypts`);
  }
  for (const keyId of reusedNonces(ledger.signatures))
    ledger.invalid(`two ECDSA signatures of ${keyId} share r: a presignature was used twice`);
  for (const k of await unacknowledgedKeys(fx)) {
    if (!(await eventually(() => usable(fx, k), 3))) ledger.problems.push(`unusable: key ${k.keyId} (${k.alg}) left by a failed operation`);
  }
  const audit = await ucl(fx.t, 'audit', 'verify', '-w', ROOT_SO_PASSWORD);
  if (audit.code !== 0) ledger.problems.push(`audit chain: ${audit.stderr.trim() || audit.stdout.trim()}`);
  return ledger.problems.slice(before);
}
