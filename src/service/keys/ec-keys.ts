/**
 * Threshold EC signing keys (ECDSA on secp256k1, P-256, P-384; EdDSA Ed25519; BIP340 Schnorr):
 * Shamir shares made by DKG (threshold-shares.ts); ECDSA signs with a pooled presignature (one
 * round online) or on demand, EdDSA and Schnorr with FROST. Every signature is verified again
 * here, independently of the protocol's own check, before it is returned; the key's policy
 * (notAfter) is checked by the EP for the caller and by each helper whatever the EP asks.
 */
import { toHex } from '../../crypto/encoding.js';
import { EkmError } from '../../errors.js';
import {
  type EcdsaAlg,
  type EcdsaOutput,
  type EcdsaPersist,
  type PresigShare,
  PROTO_ONLINE,
  PROTO_PRESIGN,
  PROTO_SIGN,
  decodePresig,
  encodePresig,
  isEcdsaAlg,
  parseEcdsaRequest,
  verifyEcdsa,
} from '../../protocols/ecdsa.js';
import {
  PROTO_FROST,
  type FrostAlg,
  type FrostOutput,
  isFrostAlg,
  parseFrostRequest,
  verifyFrostSignature,
} from '../../protocols/frost.js';
import { type KeyPolicy, signingRefusal } from '../../protocols/key-policy.js';
import { DPRF_ALG } from '../../protocols/dprf.js';
import { EC_ALGS, type EcAlg, type KeyShare } from '../../protocols/key-share.js';
import type { Envelope } from '../../protocols/types.js';
import type { KeyRow, KeyWrite } from '../../store/key-records.js';
import type { Recipe } from '../party-recipes.js';
import { PeerRefusedError, ProtocolAbortedError, type SessionSpec } from '../protocol-host.js';
import type { SignRequest, SignResult } from './algorithms.js';
import type { FamilyDeps, KeyFamily, KeyOperation } from './family.js';
import type { PublicMaterial } from './public-material.js';
import { sessionSpec, noWrites } from './session-spec.js';
import { signedInput } from './signatures.js';
import type { ThresholdShares } from './threshold-shares.js';

export class EcKeys implements KeyFamily {
  readonly name = 'ec';
  readonly algs: readonly EcAlg[] = EC_ALGS.filter((a) => a !== DPRF_ALG);
  readonly takesPolicy = true;

  constructor(
    private readonly deps: FamilyDeps,
    readonly shares: ThresholdShares,
  ) {}

  owns(row: KeyRow): boolean {
    return (this.algs as readonly string[]).includes(row.alg);
  }

  generate(alg: EcAlg, policy: Uint8Array): Promise<{ keyId: string; alg: EcAlg }> {
    return this.shares.generate(alg, policy);
  }

  policyOf(row: KeyRow): Promise<KeyPolicy> {
    return this.shares.policyOf(row);
  }

  async publicMaterial(row: KeyRow): Promise<PublicMaterial> {
    return { kind: 'ec', Y: (await this.shares.current(row.keyId)).current.Y };
  }

  refusal(keyId: string, op: KeyOperation): EkmError {
    return new EkmError('EKM_BAD_ALG', `key ${keyId} cannot ${op}`);
  }

  async sign(row: KeyRow, req: SignRequest): Promise<SignResult> {
    const keyId = row.keyId;
    const { current } = await this.shares.current(keyId);
    requireSigningAllowed(current);
    if (isFrostAlg(current.alg)) return this.signFrost(current, current.alg, req);
    if (!isEcdsaAlg(current.alg)) throw new EkmError('EKM_BAD_ALG', `key ${keyId} cannot sign`);
    return this.signEcdsa(current, current.alg, req);
  }

  /** EP: one presignature for the pool (all three parties store their share of it). */
  async presign(keyId: string): Promise<{ psid: string; epoch: number } | undefined> {
    const { current } = await this.shares.current(keyId);
    if (!isEcdsaAlg(current.alg) || signingRefusal(current, Date.now())) return undefined;
    const out = await this.deps.host.run<EcdsaOutput>(
      sessionSpec({ kind: 'ecdsa-presign', share: current, tripletId: this.deps.tripletId }, PROTO_PRESIGN, noWrites, {
        outputWrites: presigOutputWrites,
      }),
    );
    if (out.kind !== 'presignature') return undefined;
    return { psid: toHex(out.presig.psid), epoch: out.presig.epoch };
  }

  registerHelpers(): void {
    const { host, tripletId } = this.deps;
    const ecdsaHelper = async (env: Envelope): Promise<SessionSpec> => {
      const info = parseEcdsaRequest(env);
      const share = await this.shares.shareAt(info.header.keyId, info.header.epoch);
      requireSigningAllowed(share); // whatever the EP asks: the policy is this server's to keep
      if (info.proto === PROTO_SIGN) return sessionSpec({ kind: 'ecdsa-sign', share, tripletId }, PROTO_SIGN, noWrites);
      if (info.proto === PROTO_PRESIGN)
        return sessionSpec({ kind: 'ecdsa-presign', share, tripletId }, PROTO_PRESIGN, noWrites, { outputWrites: presigOutputWrites });
      const stored = info.psid ? await this.deps.store.getPresig(toHex(info.psid)) : undefined;
      const recipe: Recipe = { kind: 'ecdsa-online', share, tripletId, ...(stored ? { presig: decodePresig(stored) } : {}) };
      return sessionSpec(recipe, PROTO_ONLINE, ecdsaWrites);
    };
    for (const proto of [PROTO_SIGN, PROTO_PRESIGN, PROTO_ONLINE]) host.register(proto, ecdsaHelper);
    host.register(PROTO_FROST, async (env) => {
      const info = parseFrostRequest(env);
      const share = await this.shares.shareAt(info.header.keyId, info.header.epoch);
      requireSigningAllowed(share);
      return sessionSpec({ kind: 'frost', share, tripletId }, PROTO_FROST, noWrites);
    });
  }

  /** EdDSA and Schnorr: FROST with the Partner, or with the Aux when the Partner is down or fails. */
  private async signFrost(current: KeyShare, alg: FrostAlg, req: SignRequest): Promise<SignResult> {
    const keyId = current.keyId;
    if (!req.message)
      throw new EkmError(
        'EKM_BAD_INPUT',
        `${alg} signs the whole message (pure ${alg === 'eddsa-ed25519' ? 'Ed25519' : 'BIP340'}): give a message, not a digest`,
      );
    if (req.format === 'der') throw new EkmError('EKM_BAD_INPUT', `${alg} signatures have no DER form`);
    const message = req.message;
    const frost = (helper: 2 | 3): Promise<FrostOutput> =>
      helperPolicy(
        keyId,
        this.deps.host.run<FrostOutput>(
          sessionSpec(
            { kind: 'frost', share: current, tripletId: this.deps.tripletId, coordinate: { helper, message } },
            PROTO_FROST,
            noWrites,
          ),
        ),
      );
    const withAux = (): Promise<FrostOutput> => this.deps.auxShares.withAuxShares([keyId], () => frost(3));
    let out: FrostOutput;
    if (!this.deps.peers.link('partner')) out = await withAux();
    else {
      try {
        out = await frost(2);
      } catch (e) {
        // Partner did not answer or aborted: EP + Aux hold enough shares too (fresh nonces, new session).
        if (!(e instanceof EkmError) || e.code === 'EKM_KEY_EXPIRED' || !this.deps.peers.link('aux')) throw e;
        this.deps.log.warn({ keyId, err: e.message }, 'FROST with the Partner failed; signing with the Aux');
        out = await withAux();
      }
    }
    if (out.kind !== 'signature' || !verifyFrostSignature(alg, current.Y, message, out.signature)) {
      throw this.invalidOutput(keyId, PROTO_FROST);
    }
    return { keyId, alg, epoch: current.epoch, signature: out.signature, format: 'raw', mode: 'frost' };
  }

  /** ECDSA: with a pooled presignature when there is one, else (or when it fails) on demand. */
  private async signEcdsa(current: KeyShare, alg: EcdsaAlg, req: SignRequest): Promise<SignResult> {
    const keyId = current.keyId;
    const input = signedInput(alg, req);
    const tripletId = this.deps.tripletId;
    const run = (presig: PresigShare | undefined): Promise<EcdsaOutput> =>
      helperPolicy(
        keyId,
        this.deps.host.run<EcdsaOutput>(
          presig
            ? {
                ...sessionSpec({ kind: 'ecdsa-online', share: current, tripletId, presig, input }, PROTO_ONLINE, ecdsaWrites),
                writesTrailSend: true,
              }
            : sessionSpec({ kind: 'ecdsa-sign', share: current, tripletId, input }, PROTO_SIGN, ecdsaWrites),
        ),
      );
    const pool = this.deps.presigs;
    let presig = await pool?.take(keyId, current.epoch);
    const onDemand = (): Promise<EcdsaOutput> => this.deps.auxShares.withAuxShares([keyId], () => run(undefined));
    let out: EcdsaOutput;
    try {
      out = presig ? await run(presig) : await onDemand();
    } catch (e) {
      if (!presig || !(e instanceof ProtocolAbortedError)) throw e;
      // The presignature is burnt either way; one on-demand attempt serves this request.
      this.deps.log.warn({ keyId, err: e.message }, 'pooled presignature failed; signing on demand');
      presig = undefined;
      out = await onDemand();
    }
    if (out.kind !== 'signature' || !verifyEcdsa(alg, current.Y, input, out.p1363)) throw this.invalidOutput(keyId, PROTO_SIGN);
    pool?.markHot(keyId);
    const der = req.format === 'der';
    return {
      keyId,
      alg,
      epoch: current.epoch,
      signature: der ? out.der : out.p1363,
      format: der ? 'der' : 'raw',
      mode: presig ? 'pool' : 'on-demand',
    };
  }

  private invalidOutput(keyId: string, proto: string): EkmError {
    this.deps.log.error(
      { event: 'security', kind: 'invalid_output', keyId, proto },
      'a protocol produced a signature that does not verify: not released',
    );
    return new EkmError('EKM_PROTOCOL_ABORTED', 'the signature did not verify and was not released', {
      hint: 'it is safe to retry; the event is logged',
    });
  }
}

/** A presignature is deleted (burnt) before this party's online message leaves (docs/protocols.md §3.6). */
function ecdsaWrites(items: readonly EcdsaPersist[]): KeyWrite[] {
  return items.map((it) => ({ op: 'presig-delete', psid: toHex(it.psid) }));
}

function presigOutputWrites(out: unknown): KeyWrite[] {
  const o = out as EcdsaOutput;
  if (o.kind !== 'presignature') return [];
  return [{ op: 'presig-put', psid: toHex(o.presig.psid), keyId: o.presig.keyId, epoch: o.presig.epoch, secret: encodePresig(o.presig) }];
}

/**
 * A helper refused because the key's policy forbids signing by its clock (ahead of this one's):
 * the caller gets the same 409 as from the EP's own check, and no other helper is tried.
 */
async function helperPolicy<T>(keyId: string, session: Promise<T>): Promise<T> {
  try {
    return await session;
  } catch (e) {
    if (e instanceof PeerRefusedError && e.refusal === 'EKM_KEY_EXPIRED') {
      throw new EkmError('EKM_KEY_EXPIRED', `key ${keyId} no longer signs: the ${e.peer} refuses, it expired by that server's clock`, {
        hint: 'use another key; signatures made before still verify',
      });
    }
    throw e;
  }
}

/** Refuses a signature the key's policy forbids now: at the EP for the caller, at the helpers whatever the EP asks. */
function requireSigningAllowed(share: KeyShare): void {
  const why = signingRefusal(share, Date.now());
  if (why)
    throw new EkmError('EKM_KEY_EXPIRED', `key ${share.keyId} no longer signs: ${why}`, {
      hint: 'use another key; signatures made before still verify',
    });
}
