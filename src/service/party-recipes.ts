/**
 * A party described as plain data (a "recipe"), so it can be built in a worker thread: every input
 * is structured-clonable (bigints, byte arrays, strings), and the callbacks a protocol needs
 * (randomness, identity signatures, store lookups) are rebuilt from that data where it runs.
 */
import { randomBytes } from 'node:crypto';
import { createAuxRederiveParty, resumeAuxRederiveParty, type AuxKeyEpoch } from '../protocols/aux-rederive.js';
import { createDkgParty, resumeDkgParty, type DkgRequest } from '../protocols/dkg.js';
import {
  createEcdsaOnlineCoordinator,
  createEcdsaOnlineHelper,
  createEcdsaPresignParty,
  createEcdsaSignCoordinator,
  createEcdsaSignHelper,
  type PresigShare,
  type SignedInput,
} from '../protocols/ecdsa.js';
import { createFrostCoordinator, createFrostHelper } from '../protocols/frost.js';
import { createDprfCoordinator, createDprfHelper, type DprfHelpers, type DprfKeyShare, type DprfObject } from '../protocols/dprf.js';
import {
  createRsaCoordinator,
  createRsaHelper,
  createRsaRefreshParty,
  resumeRsaRefreshParty,
  type RsaKeyShare,
  type RsaOperation,
  type RsaRefreshKeyState,
} from '../protocols/rsa.js';
import { EC_ALGS, type KeyShare } from '../protocols/key-share.js';
import { decodeKeyPolicy, signingRefusal } from '../protocols/key-policy.js';
import { createRefreshParty, resumeRefreshParty, type RefreshKeyEpoch, type RefreshKeyState } from '../protocols/refresh.js';
import type { CommonConfig, ConfirmCheckpoint } from '../protocols/session-kit.js';
import type { Party, PartyId, Rng } from '../protocols/types.js';
import { bytesEqual } from '../crypto/encoding.js';
import { identitySignerFromPem, identityVerifierFromPems } from './identity-keys.js';

/** What every state-changing protocol needs: who we are and the identity keys (§11 R4). */
export interface CommonData {
  readonly id: PartyId;
  readonly tripletId: string;
  readonly identityKeyPem: string;
  /** Certificates (PEM) of all three parties, ours included. */
  readonly certs: readonly (readonly [PartyId, string])[];
}

type Resume<T> = { readonly checkpoint: ConfirmCheckpoint } & T;

export type Recipe =
  | { readonly kind: 'dkg'; readonly common: CommonData; readonly request?: DkgRequest; readonly resume?: Resume<{ share: KeyShare }> }
  | {
      readonly kind: 'refresh';
      readonly common: CommonData;
      readonly states: readonly (readonly [string, RefreshKeyState])[];
      readonly keyIds?: readonly string[];
      readonly resume?: Resume<{ keys: readonly RefreshKeyEpoch[] }>;
    }
  | {
      readonly kind: 'aux';
      readonly common: CommonData;
      readonly shares: readonly (readonly [string, KeyShare])[];
      readonly keyIds?: readonly string[];
      readonly attribution?: boolean;
      readonly resume?: Resume<{ keys: readonly AuxKeyEpoch[] }>;
    }
  | { readonly kind: 'ecdsa-sign'; readonly share: KeyShare; readonly tripletId: string; readonly input?: SignedInput }
  | { readonly kind: 'ecdsa-presign'; readonly share: KeyShare; readonly tripletId: string }
  | {
      readonly kind: 'ecdsa-online';
      readonly share: KeyShare;
      readonly tripletId: string;
      readonly presig?: PresigShare;
      readonly input?: SignedInput;
    }
  | {
      readonly kind: 'frost';
      readonly share: KeyShare;
      readonly tripletId: string;
      readonly coordinate?: { helper: 2 | 3; message: Uint8Array };
    }
  | {
      readonly kind: 'rsa';
      readonly share: RsaKeyShare;
      readonly tripletId: string;
      readonly coordinate?: { helper: 2 | 3; operation: RsaOperation };
    }
  | {
      readonly kind: 'rsa-refresh';
      readonly common: CommonData;
      readonly states: readonly (readonly [string, RsaRefreshKeyState])[];
      readonly keyIds?: readonly string[];
      readonly resume?: Resume<{ keys: readonly RefreshKeyEpoch[] }>;
    }
  | {
      readonly kind: 'dprf';
      readonly share: DprfKeyShare;
      readonly tripletId: string;
      /** A helper's mode: the request's (`parseDprfRequest`). */
      readonly proved?: boolean;
      readonly coordinate?: { helper: DprfHelpers; objects: readonly DprfObject[] };
    };

const rng: Rng = (n) => new Uint8Array(randomBytes(n));

function common(c: CommonData): CommonConfig {
  return {
    id: c.id,
    tripletId: c.tripletId,
    rng,
    signer: identitySignerFromPem(c.identityKeyPem),
    verifier: identityVerifierFromPems(c.certs),
  };
}

/** Builds the party a recipe describes (initiator when the recipe carries the operation's input). */
export function buildParty(r: Recipe): Party<unknown, unknown> {
  switch (r.kind) {
    case 'dkg': {
      // Helpers accept any known alg (the host already refused key ids that exist) with a policy
      // that lets the key sign at all: one that has already expired is a mistake or a trick.
      const cfg = {
        ...common(r.common),
        ...(r.request ? { request: r.request } : {}),
        authorize: (req: DkgRequest) => EC_ALGS.includes(req.alg) && policyAcceptable(req.policy),
      };
      return r.resume ? resumeDkgParty(cfg, r.resume.checkpoint, r.resume.share) : createDkgParty(cfg);
    }
    case 'refresh': {
      const states = new Map(r.states);
      const cfg = { ...common(r.common), lookup: (k: string) => states.get(k), ...(r.keyIds ? { keyIds: r.keyIds } : {}) };
      return r.resume ? resumeRefreshParty(cfg, r.resume) : createRefreshParty(cfg);
    }
    case 'aux': {
      const shares = new Map(r.shares);
      const cfg = {
        ...common(r.common),
        ...(r.common.id !== 3 ? { lookup: (k: string) => shares.get(k) } : {}),
        ...(r.keyIds ? { keyIds: r.keyIds } : {}),
        ...(r.attribution ? { attribution: true } : {}),
      };
      return r.resume ? resumeAuxRederiveParty(cfg, r.resume) : createAuxRederiveParty(cfg);
    }
    case 'ecdsa-sign':
      return r.input
        ? createEcdsaSignCoordinator({ share: r.share, tripletId: r.tripletId, rng, input: r.input })
        : createEcdsaSignHelper({ share: r.share, tripletId: r.tripletId, rng });
    case 'ecdsa-presign':
      return createEcdsaPresignParty({ share: r.share, tripletId: r.tripletId, rng });
    case 'ecdsa-online': {
      if (r.input && r.presig)
        return createEcdsaOnlineCoordinator({ share: r.share, tripletId: r.tripletId, rng, presig: r.presig, input: r.input });
      const presig = r.presig;
      return createEcdsaOnlineHelper({
        share: r.share,
        tripletId: r.tripletId,
        rng,
        lookupPresig: (psid) => (presig && bytesEqual(presig.psid, psid) ? presig : undefined),
      });
    }
    case 'rsa':
      return r.coordinate
        ? createRsaCoordinator({
            share: r.share,
            tripletId: r.tripletId,
            helper: r.coordinate.helper,
            operation: r.coordinate.operation,
            rng,
          })
        : createRsaHelper({ share: r.share, tripletId: r.tripletId });
    case 'rsa-refresh': {
      const states = new Map(r.states);
      const cfg = { ...common(r.common), lookup: (k: string) => states.get(k), ...(r.keyIds ? { keyIds: r.keyIds } : {}) };
      return r.resume ? resumeRsaRefreshParty(cfg, r.resume) : createRsaRefreshParty(cfg);
    }
    case 'dprf':
      return r.coordinate
        ? createDprfCoordinator({
            share: r.share,
            tripletId: r.tripletId,
            helper: r.coordinate.helper,
            objects: r.coordinate.objects,
            rng,
          })
        : createDprfHelper({ share: r.share, tripletId: r.tripletId, proved: r.proved ?? true, rng });
    case 'frost':
      return r.coordinate
        ? createFrostCoordinator({
            share: r.share,
            tripletId: r.tripletId,
            helper: r.coordinate.helper,
            message: r.coordinate.message,
            rng,
          })
        : createFrostHelper({ share: r.share, tripletId: r.tripletId, rng });
  }
}

/**
 * AES (DPRF) sessions on the event loop. A helper evaluates up to 16 objects there (about 0.3 ms
 * each with the cross-check, so at most 5 ms of blocking): a worker's postMessage and wake-ups
 * would cost more than the work. EP's event loop also serves the API and is the busiest thread of
 * the triplet under AES load, so EP keeps only a lone object or two there (the latency of a single
 * request) and hands its batches to a worker: 1,012 against 837 encryptions/s at concurrency 64.
 */
const INLINE_DPRF_EP_OBJECTS = 2;
const INLINE_DPRF_OBJECTS = 16;

/**
 * Whether a party runs on the event loop instead of a worker thread: the sessions whose steps take
 * one to a few milliseconds — single-key ECDSA on P-256 (OpenSSL-backed arithmetic,
 * src/crypto/ec-mul.ts) and secp256k1, FROST signatures, RSA-2048 operations and AES (DPRF)
 * sessions of a few objects (below). A step in a worker costs two thread wake-ups, which on the 2-core
 * host cost more than such a step (P-256 signing on demand: 20 ms in workers, 12 ms inline).
 * RSA-3072/4096, larger batches, key generation, refresh, re-derivation and P-384 stay in workers, so
 * the event loop stays responsive. `objects`: a DPRF helper's batch size (from the request; the
 * EP's is in its recipe).
 */
export function runsInline(recipe: Recipe, objects?: number): boolean {
  switch (recipe.kind) {
    case 'ecdsa-sign':
    case 'ecdsa-presign':
    case 'ecdsa-online':
      // secp256k1: noble's endomorphism keeps its steps at a few milliseconds; P-384's are longer.
      return recipe.share.alg === 'ecdsa-p256' || recipe.share.alg === 'ecdsa-secp256k1';
    case 'frost':
      return true;
    case 'rsa':
      // One 2048-bit modular exponentiation per step (about 3 ms); larger moduli take 8-20 ms.
      return recipe.share.alg === 'rsa-2048';
    case 'dprf':
      if (recipe.coordinate) return recipe.coordinate.objects.length <= INLINE_DPRF_EP_OBJECTS;
      return (objects ?? Infinity) <= INLINE_DPRF_OBJECTS;
    default:
      return false;
  }
}

function policyAcceptable(bytes: Uint8Array): boolean {
  try {
    return signingRefusal(decodeKeyPolicy(bytes), Date.now()) === null;
  } catch {
    return false;
  }
}
