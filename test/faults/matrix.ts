/**
 * The fault matrix (docs/reliability.md): which failpoint (src/failpoints.ts) is armed on which
 * server, and which client load drives the protocol into it. `ci` marks the subset test/run.sh runs.
 *
 * Not every (role, step) pair exists: the EP sends rounds 0 and 1 together; FROST and AES use one
 * helper, the Partner, and the Aux only when the Partner is down, so the Aux has no failpoint there.
 */
import type { Role } from '../support/cluster.js';

/** What the client does until the armed server dies. */
export type Load =
  | 'generate' // POST /keys, EC algorithms in turn: DKG
  | 'sign-ecdsa-first' // each time a new ecdsa-p256 key and its first signature, which is on demand (its pool is empty)
  | 'sign-ecdsa-pool' // a new ecdsa-p256 key signs repeatedly: after the first signature its pool presigns, later ones sign online
  | 'sign-frost' // an eddsa-ed25519 key signs repeatedly: FROST
  | 'refresh' // POST /keys/<id>/refresh of the ledger's keys in turn
  | 'encrypt' // AES-256 (DPRF) encryption
  | 'sign-rsa' // an RSA-2048 key signs repeatedly (EP + Partner)
  | 'rederive'; // POST /servers/aux/rederive: the Aux's shares of every key again, then a refresh of every key

export interface FailpointScenario {
  readonly role: Role;
  readonly failpoint: string;
  readonly load: Load;
  readonly ci: boolean;
}

type Sites = Partial<Record<Role, readonly string[]>>;

const ALL = (sites: readonly string[]): Sites => ({ ep: sites, partner: sites, aux: sites });

const TABLE: readonly { proto: string; load: Load; sites: Sites; ci: readonly string[] }[] = [
  {
    proto: 'dkg',
    load: 'generate',
    sites: ALL(['1:after-send', '4:before-persist', '4:after-persist', '5:after-persist', 'end:after-persist']),
    ci: ['partner 4:after-persist', 'ep 4:before-persist', 'ep end:after-persist'],
  },
  {
    proto: 'ecdsa-sign',
    load: 'sign-ecdsa-first',
    sites: {
      ep: ['1:after-send', 'end:before-persist'],
      partner: ['3:after-send', 'end:after-send'],
      aux: ['3:after-send', 'end:after-send'],
    },
    ci: ['aux 3:after-send'],
  },
  { proto: 'ecdsa-presign', load: 'sign-ecdsa-pool', sites: ALL(['3:after-send', 'end:after-persist']), ci: [] },
  {
    proto: 'ecdsa-online',
    load: 'sign-ecdsa-pool',
    sites: { ep: ['0:after-send'], partner: ['1:after-send', 'end:after-send'], aux: ['end:after-send'] },
    ci: [],
  },
  {
    proto: 'frost-sign',
    load: 'sign-frost',
    sites: { ep: ['0:after-send', 'end:before-persist'], partner: ['end:after-send'] },
    ci: ['partner end:after-send'],
  },
  {
    proto: 'refresh',
    load: 'refresh',
    sites: ALL(['1:after-send', '3:before-persist', '3:after-persist', '4:after-persist', 'end:after-persist']),
    ci: ['aux 3:before-persist', 'aux 3:after-persist'],
  },
  // With all three up an encryption is cross-checked (dprf-cross); dprf-eval (proved) is its fallback when a helper is down.
  {
    proto: 'dprf-cross',
    load: 'encrypt',
    sites: { ep: ['0:after-send', 'end:before-persist'], partner: ['end:after-send'], aux: ['end:after-send'] },
    ci: [],
  },
  { proto: 'rsa-op', load: 'sign-rsa', sites: { ep: ['0:after-send', 'end:before-persist'], partner: ['end:after-send'] }, ci: [] },
  {
    proto: 'aux-rederive',
    load: 'rederive',
    sites: {
      ep: ['2:after-send', '3:after-persist', 'end:after-persist'],
      partner: ['2:after-persist', '3:after-persist', 'end:after-persist'],
      aux: ['2:before-persist', '2:after-persist', '3:after-persist', 'end:after-persist'],
    },
    ci: ['aux 2:after-persist'],
  },
];

export const FULL_MATRIX: readonly FailpointScenario[] = TABLE.flatMap(({ proto, load, sites, ci }) =>
  (Object.entries(sites) as [Role, readonly string[]][]).flatMap(([role, steps]) =>
    steps.map((step) => ({ role, failpoint: `proto:${proto}:${step}`, load, ci: ci.includes(`${role} ${step}`) })),
  ),
);

export type Scope = 'ci' | 'full';

export function scopeFrom(value: string | undefined): Scope {
  if (value === undefined || value === 'ci') return 'ci';
  if (value === 'full') return 'full';
  throw new Error(`EKM_FAULTS_SCOPE is ci or full, not "${value}"`);
}

export function scenarios(scope: Scope): readonly FailpointScenario[] {
  return scope === 'full' ? FULL_MATRIX : FULL_MATRIX.filter((s) => s.ci);
}

/** How many random kill -9 rounds under mixed load each scope runs. */
export const SIGKILL_ROUNDS: Record<Scope, number> = { ci: 1, full: 3 };

/** Start orders after a power loss (all three killed): `all` of the six, or one drawn from the seed. */
export const RESTART_ORDERS: Record<Scope, 'all' | 'one'> = { ci: 'one', full: 'all' };

/**
 * The bounded soak: a mixed load for at most `ms` and `operations` acknowledged operations, with
 * a kill -9 of a random server every `faultEveryMs` (± half, from the seed).
 */
export const SOAK: Record<Scope, { ms: number; operations: number; faultEveryMs: number }> = {
  ci: { ms: 30_000, operations: 600, faultEveryMs: 8_000 },
  full: { ms: 180_000, operations: 5_000, faultEveryMs: 10_000 },
};

/** How many `ekm backup` runs are killed at a random moment (each drawn from the seed). */
export const BACKUP_KILLS: Record<Scope, number> = { ci: 3, full: 10 };
