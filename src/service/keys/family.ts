/**
 * The contract every key family implements, and the share scheme a family's keys live in.
 *
 * A *share scheme* is how a key's secret is held across the triplet: made (a DKG, or a dealing at
 * the EP), refreshed to a new epoch, given back to a new Aux, resumed after a restart, and how its
 * protocols' persist items become store writes. A *key family* is what a key does for its caller
 * (sign, export a public key, encrypt…) on top of one scheme. Two families can share one scheme:
 * EC signing keys and threshold-PRF AES keys are both Shamir shares of a curve secret, so they
 * refresh and re-derive together, in one batch.
 *
 * KeyService dispatches by the key's algorithm to the family, and by the family to its scheme.
 */
import { EkmError } from '../../errors.js';
import type { AuxKeyEpoch } from '../../protocols/aux-rederive.js';
import type { ObjectFormat } from '../../protocols/dprf.js';
import type { KeyPolicy } from '../../protocols/key-policy.js';
import type { RefreshKeyEpoch } from '../../protocols/refresh.js';
import type { ConfirmCheckpoint } from '../../protocols/session-kit.js';
import type { KeyRow } from '../../store/key-records.js';
import type { PresignPool } from '../presign-pool.js';
import type { SessionSpec } from '../protocol-host.js';
import type { ServiceDeps } from '../service-deps.js';
import type { KeyAlg, SignRequest, SignResult } from './algorithms.js';
import type { AuxShares } from './aux-shares.js';
import type { PublicMaterial } from './public-material.js';

/** A committing session's stored checkpoint: what a scheme needs to resume it after a restart. */
export interface Checkpointed {
  readonly proto: string;
  readonly keyId?: string;
  readonly keys?: readonly (RefreshKeyEpoch | AuxKeyEpoch)[];
  readonly checkpoint: ConfirmCheckpoint;
}

/** What a family or scheme is built from: the service's parts, and the Aux's on-demand shares. */
export interface FamilyDeps extends ServiceDeps {
  /** Runs an operation, re-deriving this triplet's Aux shares first if the Aux lacks them. */
  readonly auxShares: AuxShares;
  /** The EP's presignatures (undefined on helpers or when disabled); burnt when an epoch ends. */
  readonly presigs: PresignPool | undefined;
  /** The format new AES objects are sealed in (EKM_AES_OBJECT_FORMAT). */
  readonly aesObjectFormat: ObjectFormat;
}

export interface ShareScheme {
  readonly name: string;
  /** Whether keys of `alg` are held in this scheme. */
  holds(alg: string): boolean;
  /** Helper side (Partner, Aux): answers to the scheme's protocol requests and peer methods. */
  registerHelpers(): void;
  /** EP: a new epoch of every key of `keyIds` (all of this scheme), the public keys unchanged. */
  refresh(keyIds: readonly string[]): Promise<readonly RefreshKeyEpoch[]>;
  /** EP: gives the Aux its shares of `keyIds` again (after a restore, an Aux loss, or a key of another triplet). */
  rederiveAux(keyIds: readonly string[]): Promise<readonly AuxKeyEpoch[]>;
  /** The session of a stored checkpoint of one of this scheme's protocols; undefined if not one of them. */
  resume(proto: string, checkpoint: Checkpointed): Promise<SessionSpec> | undefined;
}

/** The operations a key can be refused, in the words of the refusal. */
export type KeyOperation = 'sign' | 'export a public key' | 'be refreshed';

export interface KeyFamily {
  readonly name: string;
  /** The algorithms this family generates (KeyService.generateKey). */
  readonly algs: readonly KeyAlg[];
  /** Whether a stored key is this family's; the registry asks the families in order. */
  owns(row: KeyRow): boolean;
  /** The scheme its keys' shares live in; undefined for keys without shares (imported public keys). */
  readonly shares: ShareScheme | undefined;
  /** Whether its keys carry a policy (notAfter); the others refuse one at generation. */
  readonly takesPolicy: boolean;
  /** Helper side (Partner, Aux): answers to the family's own protocol requests (signing, derivation). */
  registerHelpers(): void;
  /** EP: a new key of `alg` with the encoded policy, acknowledged once every server holds its share. */
  generate?(alg: KeyAlg, policy: Uint8Array): Promise<{ keyId: string; alg: KeyAlg }>;
  /** EP: a signature, checked against the public key before it is returned. */
  sign?(row: KeyRow, req: SignRequest): Promise<SignResult>;
  /** The public key, for verification and export (read once per key: KeyService caches it). */
  publicMaterial?(row: KeyRow): Promise<PublicMaterial>;
  /** The key's policy as this server holds it with its share. */
  policyOf?(row: KeyRow): Promise<KeyPolicy>;
  /** Why a key of this family cannot do `op`: the error its caller gets. */
  refusal(keyId: string, op: KeyOperation): EkmError;
}

/** Key operations are coordinated by the EP; a Partner or Aux asked to would be misconfigured. */
export function requireEp(self: number): void {
  if (self !== 1) throw new EkmError('EKM_NOT_EP', 'only the EP coordinates key operations');
}
