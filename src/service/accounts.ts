/**
 * Partitions (tenants) and their users: who may create, see, change and delete what, and the
 * login check with lockout. The rules:
 * - The root partition (created at bootstrap, id 1) cannot be deleted. Only the root SO creates
 *   and deletes partitions; a partition that holds keys is deleted only when forced.
 * - Each partition has SOs, crypto users (`user`) and read-only auditors (`auditor`). A partition's
 *   SO manages its users; the root SO manages the users of every partition (so a locked partition
 *   SO can be unlocked). Users and auditors manage nobody; everyone may change their own password.
 * - Outside the root partition nobody sees another partition: it answers as if it did not exist.
 * - Passwords: at least 8 characters, scrypt with a per-user salt, compared in constant time; a
 *   failed login counts, and the user is locked at the partition's limit (default 5) until an SO
 *   resets the password (the root SO is never locked: nobody could unlock it). A failure never
 *   says whether the user or the password was wrong.
 */
import { hashPassword, passwordLength, verifyPassword } from '../crypto/password.js';
import { EkmError } from '../errors.js';
import { BoundedConcurrency } from '../util/rate-limit.js';
import { safeText } from '../util/text.js';
import { MAX_FAILED_LOGINS_LIMIT, type PartitionRow, type Store, type UserRole, type UserRow } from '../store/store.js';
import { ROOT_PARTITION_ID } from './audit.js';

export const ROOT_PARTITION = 'root';
export const ROOT_SO = 'so';
export const ROLES: readonly UserRole[] = ['so', 'user', 'auditor'];
export const MIN_PASSWORD = 8;
export const MAX_PASSWORD = 1024;
export const DEFAULT_MAX_FAILED_LOGINS = 5;
export const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

/** Who is acting (the API's Principal has this shape). */
export interface Actor {
  readonly user: string;
  readonly partition: string;
  readonly partitionId: number;
  readonly role: UserRole;
}

export interface PartitionView {
  /** Stable index (root is 0), as the original's `Partition <index>: <name>`. */
  readonly index: number;
  readonly name: string;
  readonly fipsRequired: boolean;
  readonly maxFailedLogins: number;
  readonly createdAt: string;
  readonly keys: number;
}

export interface UserView {
  readonly name: string;
  readonly partition: string;
  readonly role: UserRole;
  readonly locked: boolean;
  readonly failedLogins: number;
  readonly createdAt: string;
}

const forbidden = (what: string): EkmError => new EkmError('EKM_FORBIDDEN', `not allowed: ${what}`);
const noPartition = (name: string): EkmError => new EkmError('EKM_NOT_FOUND', `no partition ${name}`);
const noUser = (name: string, partition: string): EkmError => new EkmError('EKM_NOT_FOUND', `no user ${name}@${partition}`);
const wrongLogin = (): EkmError => new EkmError('EKM_UNAUTHORIZED', 'wrong user, partition or password');
const lockedUser = (message: string): EkmError => new EkmError('EKM_LOCKED', message, { hint: 'an SO must reset its password (ucl user reset-pwd)' });

export function checkPassword(password: string, what = 'the password'): void {
  // Counted as hashed: code points of the NFKC form (crypto/password.ts).
  if (typeof password !== 'string' || passwordLength(password) < MIN_PASSWORD) {
    throw new EkmError('EKM_WEAK_PASSWORD', `${what} must have at least ${MIN_PASSWORD} characters`);
  }
  if (password.length > MAX_PASSWORD) throw new EkmError('EKM_BAD_REQUEST', `${what} is longer than ${MAX_PASSWORD} characters`);
}

function checkName(name: string, what: string): void {
  if (!NAME_RE.test(name)) {
    throw new EkmError('EKM_BAD_REQUEST', `${what} "${safeText(name, 64)}" is not valid: letters, digits, '_', '.', '-' (up to 64, starting with a letter or digit)`);
  }
}

/** `user@partition` (a bare name means the root partition). */
export function splitUsername(username: string): { user: string; partition: string } {
  const at = username.lastIndexOf('@');
  return at > 0 ? { user: username.slice(0, at), partition: username.slice(at + 1) } : { user: username, partition: ROOT_PARTITION };
}

const isRootSo = (a: Actor): boolean => a.partitionId === ROOT_PARTITION_ID && a.role === 'so';
const isRootReader = (a: Actor): boolean => a.partitionId === ROOT_PARTITION_ID && (a.role === 'so' || a.role === 'auditor');

/** A hash to compare against when the user does not exist, so timing does not tell. */
const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

/**
 * The root SO is never locked (nobody could unlock it). After this many failures in a row each
 * further check waits: 1 s, then twice as long after each failure, at most ROOT_SO_MAX_DELAY_S.
 */
const ROOT_SO_FREE_FAILURES = 5;
const ROOT_SO_MAX_DELAY_S = 300;

/** How long the root SO's next password check waits after `failures` failures in a row. */
export function rootSoDelaySeconds(failures: number): number {
  if (failures < ROOT_SO_FREE_FAILURES) return 0;
  return Math.min(ROOT_SO_MAX_DELAY_S, 2 ** (failures - ROOT_SO_FREE_FAILURES));
}

/** Whether a login names the root SO (never locked: its checks wait instead). */
const isRootSoLogin = (partition: PartitionRow, user: string): boolean => partition.id === ROOT_PARTITION_ID && user === ROOT_SO;

export class Accounts {
  /** Password checks (scrypt) running or waiting on this EP: logins cannot take the machine from signing. */
  private readonly passwordChecks: BoundedConcurrency;
  /** When the root SO may be checked again (this EP's clock; failures are counted in the store). */
  private rootSoNotBefore = 0;

  constructor(
    private readonly store: Store,
    opts: { passwordChecks?: number } = {},
  ) {
    const concurrent = opts.passwordChecks ?? 1;
    this.passwordChecks = new BoundedConcurrency(concurrent, 8 * concurrent);
  }

  /** The login check behind HTTP Basic and `POST /token`: constant-time, counting failures, locking. */
  async login(username: string, password: string): Promise<Actor> {
    return (await this.verifiedLogin(username, password)).actor;
  }

  /** The login check, with the credential version of the password it checked (a bearer token records it). */
  async verifiedLogin(username: string, password: string): Promise<{ actor: Actor; credentialVersion: number }> {
    const { user, partition: partitionName } = splitUsername(username);
    const partition = await this.store.getPartition(partitionName);
    const row = await this.checkPassword(partition, user, password);
    return { actor: { user, partition: partition!.name, partitionId: partition!.id, role: row.role }, credentialVersion: row.credentialVersion };
  }

  /**
   * One password check, ordered with every other check of the same user on every EP that shares
   * the store: the attempt is counted as a failure before scrypt runs (store.admitLoginAttempt),
   * so a burst of guesses checks at most the partition's limit of passwords; after scrypt the
   * attempt is settled, and a right password still fails if the failures checked beside it
   * locked the user meanwhile. An unknown user costs the same scrypt as a known one.
   */
  private async checkPassword(partition: PartitionRow | undefined, user: string, password: string): Promise<UserRow> {
    // The root SO's wait is checked before the line and again when its turn comes: checks that
    // queued while one was failing must not each get a guess.
    const rootSo = partition !== undefined && isRootSoLogin(partition, user);
    if (rootSo) this.refuseRootSoWhileWaiting();
    const checked = await this.passwordChecks.run(() => {
      if (rootSo) this.refuseRootSoWhileWaiting();
      return this.checkPasswordNow(partition, user, password);
    });
    if (!checked) {
      throw new EkmError('EKM_TOO_MANY_LOGINS', 'this EP is checking as many passwords as it may at once', {
        hint: 'try again in a second; applications should log in once and send the bearer token',
        retryAfterSeconds: 1,
      });
    }
    return checked.value;
  }

  private refuseRootSoWhileWaiting(): void {
    const wait = (this.rootSoNotBefore - performance.now()) / 1000;
    if (wait > 0) {
      throw new EkmError('EKM_LOGIN_DELAYED', `so@root failed too many logins in a row: its next password check waits ${Math.ceil(wait)} s`, {
        hint: 'the root SO is never locked; each further failure doubles the wait, up to 5 minutes',
        retryAfterSeconds: wait,
      });
    }
  }

  private async checkPasswordNow(partition: PartitionRow | undefined, user: string, password: string): Promise<UserRow> {
    const admission = partition ? await this.store.admitLoginAttempt(partition.id, user, this.failureLimit(partition, user)) : undefined;
    if (!partition || !admission || (!admission.admitted && admission.reason === 'unknown')) {
      await verifyPassword(password, DUMMY_HASH);
      throw wrongLogin();
    }
    const who = `${user}@${partition.name}`;
    if (!admission.admitted) {
      if (admission.reason === 'locked') throw lockedUser(`${who} is locked after too many failed logins`);
      throw new EkmError('EKM_LOGIN_BUSY', `${admission.failedLogins} login attempts for ${who} are already being checked or have failed`, {
        hint: 'try again in a second; if they fail, the user is locked',
        retryAfterSeconds: 1,
      });
    }
    const row = await this.store.getUser(partition.id, user);
    const ok = await verifyPassword(password, row?.passwordHash ?? DUMMY_HASH);
    if (!row) throw wrongLogin();
    if (!ok) {
      const r = await this.store.settleLoginFailure(partition.id, user, this.failureLimit(partition, user));
      if (isRootSoLogin(partition, user)) this.rootSoNotBefore = performance.now() + 1000 * rootSoDelaySeconds(r.failedLogins);
      if (r.locked) throw lockedUser(`${who} is now locked after ${r.failedLogins} failed logins`);
      throw wrongLogin();
    }
    if (!(await this.store.settleLoginSuccess(partition.id, user))) throw lockedUser(`${who} was locked by failed logins checked at the same time`);
    if (isRootSoLogin(partition, user)) this.rootSoNotBefore = 0;
    return row;
  }

  /** The root SO is never locked (its checks wait instead, rootSoDelaySeconds); its failures are counted and audited. */
  private failureLimit(partition: PartitionRow, user: string): number {
    return isRootSoLogin(partition, user) ? MAX_FAILED_LOGINS_LIMIT : partition.maxFailedLogins;
  }

  /** The partition as `actor` may see it (outside root, only its own). */
  async partitionFor(actor: Actor, name: string): Promise<PartitionRow> {
    const p = await this.store.getPartition(name);
    if (!p || (actor.partitionId !== ROOT_PARTITION_ID && p.id !== actor.partitionId)) throw noPartition(name);
    return p;
  }

  private async view(p: PartitionRow): Promise<PartitionView> {
    return {
      index: p.id - 1,
      name: p.name,
      fipsRequired: p.fipsRequired,
      maxFailedLogins: p.maxFailedLogins,
      createdAt: p.createdAt,
      keys: await this.store.countPartitionKeys(p.id),
    };
  }

  async listPartitions(actor: Actor): Promise<PartitionView[]> {
    const all = await this.store.listPartitions();
    const visible = isRootReader(actor) ? all : all.filter((p) => p.id === actor.partitionId);
    return Promise.all(visible.map((p) => this.view(p)));
  }

  async showPartition(actor: Actor, name: string): Promise<PartitionView> {
    return this.view(await this.partitionFor(actor, name));
  }

  async createPartition(
    actor: Actor,
    req: { name: string; soPassword: string; fipsRequired?: boolean; maxFailedLogins?: number },
  ): Promise<PartitionView> {
    if (!isRootSo(actor)) throw forbidden('only the root partition SO creates partitions');
    checkName(req.name, 'the partition name');
    checkPassword(req.soPassword, 'the partition SO password');
    if (await this.store.getPartition(req.name)) throw new EkmError('EKM_EXISTS', `partition ${req.name} already exists`);
    const hash = await hashPassword(req.soPassword);
    const p = await this.store.createPartition({ name: req.name, fipsRequired: req.fipsRequired === true });
    if (req.maxFailedLogins !== undefined && req.maxFailedLogins !== DEFAULT_MAX_FAILED_LOGINS) await this.store.setPartitionMaxFailedLogins(p.id, req.maxFailedLogins);
    await this.store.createUser({ partitionId: p.id, name: 'so', role: 'so', passwordHash: hash });
    return this.view((await this.store.getPartitionById(p.id))!);
  }

  async updatePartition(actor: Actor, name: string, req: { maxFailedLogins: number }): Promise<PartitionView> {
    const p = await this.partitionFor(actor, name);
    if (actor.role !== 'so') throw forbidden(`a ${actor.role} does not change partition settings`);
    await this.store.setPartitionMaxFailedLogins(p.id, req.maxFailedLogins);
    return this.view((await this.store.getPartitionById(p.id))!);
  }

  /**
   * Returns how many keys went with it (only when forced). `destroyKeys` destroys the partition's
   * keys on all three servers first (the key catalogue), so that no share outlives its partition.
   */
  async deletePartition(actor: Actor, name: string, force: boolean, destroyKeys: (partitionId: number) => Promise<void>): Promise<{ keysDeleted: number }> {
    if (!isRootSo(actor)) throw forbidden('only the root partition SO deletes partitions');
    const p = await this.partitionFor(actor, name);
    if (p.id === ROOT_PARTITION_ID) throw new EkmError('EKM_FORBIDDEN', 'the root partition cannot be deleted');
    const keys = await this.store.countPartitionKeys(p.id);
    if (keys > 0 && !force) {
      throw new EkmError('EKM_PARTITION_NOT_EMPTY', `partition ${name} holds ${keys} key${keys === 1 ? '' : 's'}`, { hint: 'delete them first, or force (ucl partition delete --force)' });
    }
    if (force && keys > 0) await destroyKeys(p.id);
    await this.store.deletePartition(p.id, { withKeys: force });
    return { keysDeleted: force ? keys : 0 };
  }

  /** Actors who manage the users of partition `p`: its SOs and the root SO. */
  private mayManage(actor: Actor, p: PartitionRow): boolean {
    return isRootSo(actor) || (actor.role === 'so' && actor.partitionId === p.id);
  }

  private mayRead(actor: Actor, p: PartitionRow): boolean {
    return isRootReader(actor) || ((actor.role === 'so' || actor.role === 'auditor') && actor.partitionId === p.id);
  }

  async createUser(actor: Actor, partition: string, req: { name: string; password: string; role: UserRole }): Promise<UserView> {
    const p = await this.partitionFor(actor, partition);
    if (!this.mayManage(actor, p)) throw forbidden(`a ${actor.role} does not create users`);
    checkName(req.name, 'the user name');
    if (!ROLES.includes(req.role)) throw new EkmError('EKM_BAD_REQUEST', `unknown role ${req.role}: one of ${ROLES.join(', ')}`);
    checkPassword(req.password);
    if (await this.store.getUser(p.id, req.name)) throw new EkmError('EKM_EXISTS', `user ${req.name}@${p.name} already exists`);
    await this.store.createUser({ partitionId: p.id, name: req.name, role: req.role, passwordHash: await hashPassword(req.password) });
    return userView((await this.store.getUser(p.id, req.name))!, p);
  }

  async listUsers(actor: Actor, partition: string): Promise<UserView[]> {
    const p = await this.partitionFor(actor, partition);
    if (!this.mayRead(actor, p)) throw forbidden(`a ${actor.role} does not list users`);
    return (await this.store.listUsers(p.id)).map((u) => userView(u, p));
  }

  async showUser(actor: Actor, partition: string, name: string): Promise<UserView> {
    const p = await this.partitionFor(actor, partition);
    const self = actor.partitionId === p.id && actor.user === name;
    if (!self && !this.mayRead(actor, p)) throw forbidden(`a ${actor.role} sees only itself`);
    const u = await this.store.getUser(p.id, name);
    if (!u) throw noUser(name, p.name);
    return userView(u, p);
  }

  async deleteUser(actor: Actor, partition: string, name: string): Promise<void> {
    const p = await this.partitionFor(actor, partition);
    if (!this.mayManage(actor, p)) throw forbidden(`a ${actor.role} does not delete users`);
    const u = await this.store.getUser(p.id, name);
    if (!u) throw noUser(name, p.name);
    if (actor.partitionId === p.id && actor.user === name) throw forbidden('deleting yourself');
    if (u.role === 'so' && (await this.store.listUsers(p.id)).filter((x) => x.role === 'so').length === 1) {
      throw forbidden(`${name} is the last SO of partition ${p.name}`);
    }
    await this.store.deleteUser(p.id, name);
  }

  /** An SO sets a user's password; this also unlocks the user. */
  async resetPassword(actor: Actor, partition: string, name: string, password: string): Promise<void> {
    const p = await this.partitionFor(actor, partition);
    if (!this.mayManage(actor, p)) throw forbidden(`a ${actor.role} does not reset passwords`);
    checkPassword(password, 'the new password');
    if (!(await this.store.getUser(p.id, name))) throw noUser(name, p.name);
    await this.store.setUserPassword(p.id, name, await hashPassword(password));
  }

  /** Anyone changes their own password, giving the old one again. */
  async changePassword(actor: Actor, oldPassword: string, newPassword: string): Promise<void> {
    try {
      await this.checkPassword(await this.store.getPartitionById(actor.partitionId), actor.user, oldPassword);
    } catch (e) {
      if (e instanceof EkmError && e.code === 'EKM_UNAUTHORIZED') throw new EkmError('EKM_UNAUTHORIZED', 'the old password is wrong');
      throw e;
    }
    checkPassword(newPassword, 'the new password');
    await this.store.setUserPassword(actor.partitionId, actor.user, await hashPassword(newPassword));
  }

  /** Key generation in a FIPS-only partition: only FIPS-approved algorithms. */
  async checkKeyAlg(actor: Actor, alg: string): Promise<void> {
    const p = await this.store.getPartitionById(actor.partitionId);
    if (p?.fipsRequired && !FIPS_ALGS.has(alg)) {
      throw new EkmError('EKM_NOT_FIPS', `partition ${p.name} allows only FIPS-approved algorithms; ${alg} is not one`, { hint: `use one of ${[...FIPS_ALGS].join(', ')}` });
    }
  }
}

/**
 * FIPS 186-5: ECDSA on P-256/P-384, EdDSA on Ed25519 and RSA of 2048 bits or more; secp256k1 and
 * BIP340 are not approved, nor is `aes-256-dprf` (a threshold PRF, not a validated AES mode).
 */
export const FIPS_ALGS: ReadonlySet<string> = new Set(['ecdsa-p256', 'ecdsa-p384', 'eddsa-ed25519', 'rsa-2048', 'rsa-3072', 'rsa-4096']);

function userView(u: UserRow, p: PartitionRow): UserView {
  return { name: u.name, partition: p.name, role: u.role, locked: u.locked, failedLogins: u.failedLogins, createdAt: u.createdAt };
}
