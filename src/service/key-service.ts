/**
 * Threshold EC keys as a service (issue 3 §4): generate, sign, verify, export and refresh on the
 * EP; the matching helper sessions on Partner and Aux. Every protocol runs through the
 * ProtocolHost; every stored share is sealed by the barrier; every signature is verified again
 * here, independently of the protocol's own check, before it is returned.
 */
import { type JsonWebKey, createPublicKey, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { decodePoint, getCurve } from '../crypto/curves.js';
import { enc, toHex } from '../crypto/encoding.js';
import { EkmError } from '../errors.js';
import type { PeerManager } from '../net/peers.js';
import { AUX_PROTO, type AuxPersist, createAuxRederiveParty, resumeAuxRederiveParty, type AuxKeyEpoch } from '../protocols/aux-rederive.js';
import { DKG_PROTO, type DkgPersist, createDkgParty, resumeDkgParty } from '../protocols/dkg.js';
import {
  type EcdsaOutput,
  type EcdsaPersist,
  type PresigShare,
  type SignedInput,
  PROTO_ONLINE,
  PROTO_PRESIGN,
  PROTO_SIGN,
  createEcdsaOnlineCoordinator,
  createEcdsaOnlineHelper,
  createEcdsaPresignParty,
  createEcdsaSignCoordinator,
  createEcdsaSignHelper,
  decodePresig,
  ecdsaPublicJwk,
  encodePresig,
  isEcdsaAlg,
  parseEcdsaRequest,
  verifyEcdsa,
} from '../protocols/ecdsa.js';
import { PROTO_FROST, type FrostOutput, createFrostCoordinator, createFrostHelper, isFrostAlg, parseFrostRequest, verifyFrostSignature } from '../protocols/frost.js';
import { ALG_CURVE, EC_ALGS, type EcAlg, type KeyShare } from '../protocols/key-share.js';
import { REFRESH_PROTO, type RefreshKeyEpoch, type RefreshKeyState, type RefreshPersist, createRefreshParty, resumeRefreshParty } from '../protocols/refresh.js';
import { type CommonConfig, type ConfirmCheckpoint, type IdentitySigner, type IdentityVerifier, decodeRequest } from '../protocols/session-kit.js';
import type { Envelope, PartyId, Rng } from '../protocols/types.js';
import type { KeyRow, KeyWrite, StoredShare } from '../store/key-records.js';
import type { Store } from '../store/store.js';
import { ProtocolAbortedError, type ProtocolHost, type SessionSpec } from './protocol-host.js';
import { fromJsonWithBytes, recordToShare, shareToRecord, toJsonWithBytes } from './share-codec.js';
import { PresignPool } from './presign-pool.js';

const rng: Rng = (n) => new Uint8Array(randomBytes(n));

export type PublicKeyFormat = 'pem' | 'der' | 'raw' | 'jwk';
export type SignatureFormat = 'raw' | 'der';

export interface SignRequest {
  /** The whole message, or a digest of `hash`'s length computed by the caller. */
  readonly message?: Uint8Array;
  readonly digest?: Uint8Array;
  /** ECDSA only; default SHA-256 (SHA-384 for P-384). */
  readonly hash?: 'sha256' | 'sha384' | 'sha512';
  /** ECDSA only: raw r‖s (P1363, default) or DER. */
  readonly format?: SignatureFormat;
}

export interface SignResult {
  readonly keyId: string;
  readonly alg: EcAlg;
  readonly epoch: number;
  readonly signature: Uint8Array;
  readonly format: SignatureFormat;
  /** ECDSA: from a pooled presignature (one round online) or on demand. */
  readonly mode: 'pool' | 'on-demand' | 'frost';
}

interface Checkpointed {
  readonly proto: string;
  readonly keyId?: string;
  readonly keys?: readonly (RefreshKeyEpoch | AuxKeyEpoch)[];
  readonly checkpoint: ConfirmCheckpoint;
}

export interface KeyServiceDeps {
  readonly self: PartyId;
  readonly tripletId: string;
  readonly store: Store;
  readonly peers: PeerManager;
  readonly host: ProtocolHost;
  readonly log: Logger;
  readonly signer: IdentitySigner;
  readonly verifier: IdentityVerifier;
  /** Presignatures kept ready per ECDSA key that has signed (EP); 0 disables the pool. */
  readonly poolTarget?: number;
}

export class KeyService {
  private readonly common: CommonConfig;
  readonly pool: PresignPool | undefined;

  constructor(private readonly deps: KeyServiceDeps) {
    this.common = { id: deps.self, tripletId: deps.tripletId, rng, signer: deps.signer, verifier: deps.verifier };
    this.registerHelpers();
    if (deps.self === 1 && (deps.poolTarget ?? 16) > 0) {
      this.pool = new PresignPool({
        target: deps.poolTarget ?? 16,
        store: deps.store,
        peers: deps.peers,
        log: deps.log,
        presign: (keyId) => this.presign(keyId),
      });
    }
  }

  /** Loads the presignature index and resumes sessions that were committing when the server stopped. */
  async start(): Promise<void> {
    await this.pool?.load();
    for (const open of await this.deps.store.openSessions()) {
      try {
        const spec = await this.resumeSpec(open.proto, fromJsonWithBytes<Checkpointed>(open.checkpoint));
        this.deps.host.resume(spec, open.sid);
        this.deps.log.info({ proto: open.proto, sid: open.sid }, 'resumed a committing protocol session');
      } catch (e) {
        this.deps.log.error({ proto: open.proto, sid: open.sid, err: (e as Error).message }, 'could not resume a protocol session');
      }
    }
  }

  stop(): void {
    this.pool?.stop();
  }

  // --- EP operations -----------------------------------------------------------------------

  async generateKey(alg: EcAlg): Promise<{ keyId: string; alg: EcAlg }> {
    this.requireEp();
    if (!EC_ALGS.includes(alg)) throw new EkmError('EKM_BAD_ALG', `unknown key algorithm ${String(alg)}`, `use one of ${EC_ALGS.join(', ')}`);
    const keyId = toHex(randomBytes(8));
    const party = createDkgParty({ ...this.common, request: { keyId, alg, policy: enc('policy/v1') }, authorize: () => true });
    await this.deps.host.run(this.spec(party, DKG_PROTO, (items, sid) => dkgWrites(items as DkgPersist[], sid)));
    return { keyId, alg };
  }

  async getKey(keyId: string): Promise<{ row: KeyRow; current: KeyShare }> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`, undefined, 1, 404);
    const shares = await this.deps.store.getShares(keyId);
    const current = shares.find((s) => s.status === 'current' && s.epoch === row.currentEpoch);
    if (!current) throw new EkmError('EKM_KEY_STATE', `key ${keyId} has no current share on this server`, 'run `ucl server test`; an Aux may need re-derivation', 1, 409);
    return { row, current: recordToShare(current) };
  }

  async sign(keyId: string, req: SignRequest): Promise<SignResult> {
    this.requireEp();
    const { current } = await this.getKey(keyId);
    const alg = current.alg;
    if (isFrostAlg(alg)) {
      if (!req.message) throw new EkmError('EKM_BAD_INPUT', `${alg} signs the whole message (pure ${alg === 'eddsa-ed25519' ? 'Ed25519' : 'BIP340'}): give a message, not a digest`);
      if (req.format === 'der') throw new EkmError('EKM_BAD_INPUT', `${alg} signatures have no DER form`);
      const helper: 2 | 3 = this.deps.peers.link('partner') ? 2 : 3;
      const party = createFrostCoordinator({ share: current, tripletId: this.deps.tripletId, helper, message: req.message, rng });
      const out = (await this.deps.host.run(this.spec(party, PROTO_FROST, () => []))) as FrostOutput;
      if (out.kind !== 'signature' || !verifyFrostSignature(alg, current.Y, req.message, out.signature)) {
        throw this.invalidOutput(keyId, PROTO_FROST);
      }
      return { keyId, alg, epoch: current.epoch, signature: out.signature, format: 'raw', mode: 'frost' };
    }
    if (!isEcdsaAlg(alg)) throw new EkmError('EKM_BAD_ALG', `key ${keyId} cannot sign`);
    const input = signedInput(alg, req);
    const run = (presig: PresigShare | undefined): Promise<EcdsaOutput> => {
      const party = presig
        ? createEcdsaOnlineCoordinator({ share: current, tripletId: this.deps.tripletId, rng, presig, input })
        : createEcdsaSignCoordinator({ share: current, tripletId: this.deps.tripletId, rng, input });
      return this.deps.host.run(this.spec(party, presig ? PROTO_ONLINE : PROTO_SIGN, (items) => ecdsaWrites(items as EcdsaPersist[]))) as Promise<EcdsaOutput>;
    };
    let presig = await this.pool?.take(keyId, current.epoch);
    let out: EcdsaOutput;
    try {
      out = await run(presig);
    } catch (e) {
      if (!presig || !(e instanceof ProtocolAbortedError)) throw e;
      // The presignature is burnt either way; one on-demand attempt serves this request.
      this.deps.log.warn({ keyId, err: e.message }, 'pooled presignature failed; signing on demand');
      presig = undefined;
      out = await run(undefined);
    }
    if (out.kind !== 'signature' || !verifyEcdsa(alg, current.Y, input, out.p1363)) throw this.invalidOutput(keyId, PROTO_SIGN);
    this.pool?.markHot(keyId);
    const der = req.format === 'der';
    return { keyId, alg, epoch: current.epoch, signature: der ? out.der : out.p1363, format: der ? 'der' : 'raw', mode: presig ? 'pool' : 'on-demand' };
  }

  async verify(keyId: string, req: SignRequest, signature: Uint8Array): Promise<boolean> {
    const { current } = await this.getKey(keyId);
    if (isFrostAlg(current.alg)) {
      if (!req.message) throw new EkmError('EKM_BAD_INPUT', `${current.alg} verifies the whole message: give a message`);
      return verifyFrostSignature(current.alg, current.Y, req.message, signature);
    }
    if (!isEcdsaAlg(current.alg)) return false;
    const input = signedInput(current.alg, req);
    const curve = getCurve(ALG_CURVE[current.alg]);
    const raw = req.format === 'der' ? derToP1363(signature, curve.scalarBytes) : signature;
    return raw !== undefined && verifyEcdsa(current.alg, current.Y, input, raw);
  }

  async publicKey(keyId: string, format: PublicKeyFormat): Promise<{ alg: EcAlg; format: PublicKeyFormat; value: string | Uint8Array | object }> {
    const { current } = await this.getKey(keyId);
    return { alg: current.alg, format, value: exportPublicKey(current.alg, current.Y, format) };
  }

  /** Proactive refresh of a batch of keys: new shares, same public keys (§5). */
  async refresh(keyIds: readonly string[]): Promise<{ keys: readonly RefreshKeyEpoch[] }> {
    this.requireEp();
    const states = await this.loadRefreshStates(keyIds);
    for (const k of keyIds) if (!states.has(k)) throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${k}`, undefined, 1, 404);
    const party = createRefreshParty({ ...this.common, lookup: (k) => states.get(k), keyIds });
    const out = await this.deps.host.run(this.spec(party, REFRESH_PROTO, (items, sid) => refreshWrites(items as RefreshPersist[], sid)));
    for (const k of out.keys) this.pool?.burn(k.keyId, k.to);
    return { keys: out.keys };
  }

  /** Gives the Aux its shares of every active key again (after a restore or an Aux loss, §6). */
  async rederiveAux(keyIds?: readonly string[]): Promise<{ keys: readonly AuxKeyEpoch[] }> {
    this.requireEp();
    const ids = keyIds ?? (await this.allKeyIds());
    if (ids.length === 0) return { keys: [] };
    const shares = await this.loadCurrentShares(ids);
    const party = createAuxRederiveParty({ ...this.common, lookup: (k) => shares.get(k), keyIds: ids, attribution: true });
    const out = await this.deps.host.run(this.spec(party, AUX_PROTO, (items, sid) => auxWrites(items as AuxPersist[], sid)));
    // The old Aux's presignature shares are gone: presignatures made with it can never complete.
    for (const k of out.keys) this.pool?.burn(k.keyId, null);
    return { keys: out.keys };
  }

  // --- helpers (Partner, Aux) --------------------------------------------------------------

  private registerHelpers(): void {
    const { host, tripletId } = this.deps;
    host.register(DKG_PROTO, async (env) => {
      const { inputs } = decodeRequest(DKG_PROTO, env, tripletId);
      if (await this.deps.store.getKey(inputs.keyIds[0]!)) throw new EkmError('EKM_KEY_EXISTS', `key ${inputs.keyIds[0]} exists`);
      const party = createDkgParty({ ...this.common, authorize: (req) => EC_ALGS.includes(req.alg) });
      return this.spec(party, DKG_PROTO, (items, sid) => dkgWrites(items as DkgPersist[], sid));
    });
    host.register(REFRESH_PROTO, async (env) => {
      const { inputs } = decodeRequest(REFRESH_PROTO, env, tripletId);
      const states = await this.loadRefreshStates(inputs.keyIds);
      const party = createRefreshParty({ ...this.common, lookup: (k) => states.get(k) });
      return this.spec(party, REFRESH_PROTO, (items, sid) => refreshWrites(items as RefreshPersist[], sid));
    });
    host.register(AUX_PROTO, async (env) => {
      const { inputs } = decodeRequest(AUX_PROTO, env, tripletId);
      const shares = this.deps.self === 3 ? new Map<string, KeyShare>() : await this.loadCurrentShares(inputs.keyIds);
      const party = createAuxRederiveParty({ ...this.common, ...(this.deps.self === 2 ? { lookup: (k: string) => shares.get(k) } : {}) });
      return this.spec(party, AUX_PROTO, (items, sid) => auxWrites(items as AuxPersist[], sid));
    });
    const ecdsaHelper = async (env: Envelope): Promise<SessionSpec<unknown>> => {
      const info = parseEcdsaRequest(env);
      const share = await this.shareAt(info.header.keyId, info.header.epoch);
      const base = { share, tripletId, rng };
      if (info.proto === PROTO_SIGN) return this.spec(createEcdsaSignHelper(base), PROTO_SIGN, () => []);
      if (info.proto === PROTO_PRESIGN) {
        return this.spec(createEcdsaPresignParty(base), PROTO_PRESIGN, () => [], presigOutputWrites);
      }
      const stored = info.psid ? await this.deps.store.getPresig(toHex(info.psid)) : undefined;
      const presig = stored ? decodePresig(stored) : undefined;
      const lookupPresig = (psid: Uint8Array): ReturnType<typeof decodePresig> | undefined =>
        presig && toHex(presig.psid) === toHex(psid) ? presig : undefined;
      return this.spec(createEcdsaOnlineHelper({ ...base, lookupPresig }), PROTO_ONLINE, (items) => ecdsaWrites(items as EcdsaPersist[]));
    };
    for (const proto of [PROTO_SIGN, PROTO_PRESIGN, PROTO_ONLINE]) host.register(proto, ecdsaHelper);
    host.register(PROTO_FROST, async (env) => {
      const info = parseFrostRequest(env);
      const share = await this.shareAt(info.header.keyId, info.header.epoch);
      return this.spec(createFrostHelper({ share, tripletId, rng }), PROTO_FROST, () => []);
    });
  }

  /** EP: one presignature for the pool (all three parties store their share of it). */
  private async presign(keyId: string): Promise<{ psid: string; epoch: number } | undefined> {
    const { current } = await this.getKey(keyId);
    if (!isEcdsaAlg(current.alg)) return undefined;
    const party = createEcdsaPresignParty({ share: current, tripletId: this.deps.tripletId, rng });
    const out = (await this.deps.host.run(this.spec(party, PROTO_PRESIGN, () => [], presigOutputWrites))) as EcdsaOutput;
    if (out.kind !== 'presignature') return undefined;
    return { psid: toHex(out.presig.psid), epoch: out.presig.epoch };
  }

  private spec<Out>(
    party: SessionSpec<Out>['party'],
    label: string,
    toWrites: SessionSpec<Out>['toWrites'],
    outputWrites?: SessionSpec<Out>['outputWrites'],
  ): SessionSpec<Out> {
    return { party, label, toWrites, ...(outputWrites ? { outputWrites } : {}) };
  }

  private async resumeSpec(proto: string, cp: Checkpointed): Promise<SessionSpec<unknown>> {
    if (proto === DKG_PROTO && cp.keyId) {
      const shares = await this.deps.store.getShares(cp.keyId);
      const share = shares.find((s) => s.status === 'current');
      if (!share) throw new Error(`no share of ${cp.keyId} to resume with`);
      const party = resumeDkgParty({ ...this.common, authorize: () => false }, cp.checkpoint, recordToShare(share));
      return this.spec(party, DKG_PROTO, (items, sid) => dkgWrites(items as DkgPersist[], sid));
    }
    if (proto === REFRESH_PROTO && cp.keys) {
      const states = await this.loadRefreshStates(cp.keys.map((k) => k.keyId));
      const party = resumeRefreshParty({ ...this.common, lookup: (k) => states.get(k) }, { keys: cp.keys as RefreshKeyEpoch[], checkpoint: cp.checkpoint });
      return this.spec(party, REFRESH_PROTO, (items, sid) => refreshWrites(items as RefreshPersist[], sid));
    }
    if (proto === AUX_PROTO && cp.keys) {
      const shares = this.deps.self === 3 ? new Map<string, KeyShare>() : await this.loadCurrentShares(cp.keys.map((k) => k.keyId));
      const party = resumeAuxRederiveParty({ ...this.common, lookup: (k) => shares.get(k) }, { keys: cp.keys as AuxKeyEpoch[], checkpoint: cp.checkpoint });
      return this.spec(party, AUX_PROTO, (items, sid) => auxWrites(items as AuxPersist[], sid));
    }
    throw new Error(`cannot resume ${proto}`);
  }

  /** The share of `keyId` at `epoch`, if this server holds that epoch (CURRENT or PREVIOUS). */
  private async shareAt(keyId: string, epoch: number): Promise<KeyShare> {
    const s = (await this.deps.store.getShares(keyId)).find((x) => x.epoch === epoch && x.status !== 'pending');
    if (!s) throw new EkmError('EKM_KEY_EPOCH', `this server holds no share of key ${keyId} at epoch ${epoch}`);
    return recordToShare(s);
  }

  private async loadRefreshStates(keyIds: readonly string[]): Promise<Map<string, RefreshKeyState>> {
    const out = new Map<string, RefreshKeyState>();
    for (const keyId of keyIds) {
      const row = await this.deps.store.getKey(keyId);
      if (!row || row.state !== 'active') continue;
      const shares = await this.deps.store.getShares(keyId);
      const current = shares.find((s) => s.status === 'current');
      if (!current) continue;
      out.set(keyId, {
        current: recordToShare(current),
        pendingEpoch: shares.find((s) => s.status === 'pending')?.epoch ?? null,
        previousEpoch: shares.find((s) => s.status === 'previous')?.epoch ?? null,
      });
    }
    return out;
  }

  private async loadCurrentShares(keyIds: readonly string[]): Promise<Map<string, KeyShare>> {
    const out = new Map<string, KeyShare>();
    for (const keyId of keyIds) {
      const current = (await this.deps.store.getShares(keyId)).find((s: StoredShare) => s.status === 'current');
      if (current) out.set(keyId, recordToShare(current));
    }
    return out;
  }

  private async allKeyIds(): Promise<string[]> {
    const ids: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await this.deps.store.listKeys({ ...(after ? { after } : {}), limit: 1000 });
      ids.push(...page.filter((k) => k.state === 'active').map((k) => k.keyId));
      if (page.length < 1000) return ids;
      after = page[page.length - 1]!.keyId;
    }
  }

  private requireEp(): void {
    if (this.deps.self !== 1) throw new EkmError('EKM_NOT_EP', 'only the EP coordinates key operations');
  }

  private invalidOutput(keyId: string, proto: string): EkmError {
    this.deps.log.error({ event: 'security', kind: 'invalid_output', keyId, proto }, 'a protocol produced a signature that does not verify: not released');
    return new EkmError('EKM_PROTOCOL_ABORTED', 'the signature did not verify and was not released', 'it is safe to retry; the event is logged', 1, 502);
  }
}

// --- persist items → store writes ----------------------------------------------------------

function dkgWrites(items: readonly DkgPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
        return [{ op: 'session-open', sid, proto: it.proto }];
      case 'dkg-key-pending':
        return [{ op: 'key-create', keyId: it.share.keyId, alg: it.share.alg, share: shareToRecord(it.share) }];
      case 'dkg-checkpoint':
        return [{ op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: DKG_PROTO, keyId: it.keyId, checkpoint: it.checkpoint }) }];
      case 'dkg-key-active':
        return [{ op: 'key-activate', keyId: it.keyId }];
      case 'dkg-complete':
        return [{ op: 'session-done', sid }];
    }
  });
}

function refreshWrites(items: readonly RefreshPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
        return [{ op: 'session-open', sid, proto: it.proto }];
      case 'share-pending':
        return [{ op: 'share-put', share: shareToRecord(it.share), status: 'pending' }];
      case 'refresh-checkpoint':
        return [{ op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: REFRESH_PROTO, keys: it.keys, checkpoint: it.checkpoint }) }];
      case 'epoch-activate':
        return it.keys.map((k) => ({ op: 'epoch-activate', keyId: k.keyId, from: k.from, to: k.to }));
      case 'epoch-erase-previous':
        return [...it.keys.map((k): KeyWrite => ({ op: 'epoch-erase', keyId: k.keyId, epoch: k.from })), { op: 'session-done', sid }];
    }
  });
}

function auxWrites(items: readonly AuxPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
        return [{ op: 'session-open', sid, proto: it.proto }];
      case 'aux-share-pending':
        return [{ op: 'aux-share-pending', share: shareToRecord(it.share) }];
      case 'aux-checkpoint':
        return [{ op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: AUX_PROTO, keys: it.keys, checkpoint: it.checkpoint }) }];
      case 'aux-share-activate':
        return it.keys.map((k) => ({ op: 'aux-share-activate', keyId: k.keyId, epoch: k.epoch }));
      case 'aux-present':
        return it.keys.map((k) => ({ op: 'aux-present', keyId: k.keyId }));
      case 'aux-complete':
        return [{ op: 'session-done', sid }];
    }
  });
}

/** A presignature is deleted (burnt) before this party's online message leaves (§3.4). */
function ecdsaWrites(items: readonly EcdsaPersist[]): KeyWrite[] {
  return items.map((it) => ({ op: 'presig-delete', psid: toHex(it.psid) }));
}

function presigOutputWrites(out: unknown): KeyWrite[] {
  const o = out as EcdsaOutput;
  if (o.kind !== 'presignature') return [];
  return [{ op: 'presig-put', psid: toHex(o.presig.psid), keyId: o.presig.keyId, epoch: o.presig.epoch, secret: encodePresig(o.presig) }];
}

// --- formats -------------------------------------------------------------------------------

function signedInput(alg: string, req: SignRequest): SignedInput {
  const hash = req.hash ?? (alg === 'ecdsa-p384' ? 'sha384' : 'sha256');
  if ((req.message === undefined) === (req.digest === undefined)) {
    throw new EkmError('EKM_BAD_INPUT', 'give exactly one of a message or a digest');
  }
  if (req.digest) {
    const len = { sha256: 32, sha384: 48, sha512: 64 }[hash];
    if (req.digest.length !== len) throw new EkmError('EKM_BAD_INPUT', `a ${hash} digest has ${len} bytes, not ${req.digest.length}`);
    return { kind: 'digest', hash, data: req.digest };
  }
  return { kind: 'message', hash, data: req.message! };
}

function derToP1363(der: Uint8Array, n: number): Uint8Array | undefined {
  try {
    const buf = Buffer.from(der);
    if (buf[0] !== 0x30 || buf[1] !== buf.length - 2) return undefined;
    let at = 2;
    const ints: Buffer[] = [];
    for (let i = 0; i < 2; i++) {
      if (buf[at] !== 0x02) return undefined;
      const len = buf[at + 1]!;
      let v = buf.subarray(at + 2, at + 2 + len);
      at += 2 + len;
      while (v.length > n && v[0] === 0) v = v.subarray(1);
      if (v.length > n) return undefined;
      ints.push(Buffer.concat([Buffer.alloc(n - v.length), v]));
    }
    return at === buf.length ? new Uint8Array(Buffer.concat(ints)) : undefined;
  } catch {
    return undefined;
  }
}

export function exportPublicKey(alg: EcAlg, Y: Uint8Array, format: PublicKeyFormat): string | Uint8Array | object {
  let jwk: object;
  if (alg === 'eddsa-ed25519') {
    if (format === 'raw') return Y;
    jwk = { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(Y).toString('base64url') };
  } else {
    const ecdsaAlg = alg === 'schnorr-bip340' ? 'ecdsa-secp256k1' : alg;
    if (format === 'raw') return alg === 'schnorr-bip340' ? Y.subarray(1) : (decodePoint(getCurve(ALG_CURVE[alg]), Y) as unknown as { toBytes(compressed: boolean): Uint8Array }).toBytes(false);
    jwk = ecdsaPublicJwk(ecdsaAlg as Parameters<typeof ecdsaPublicJwk>[0], Y);
  }
  if (format === 'jwk') return jwk;
  const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' });
  return format === 'pem' ? (key.export({ type: 'spki', format: 'pem' }) as string) : new Uint8Array(key.export({ type: 'spki', format: 'der' }));
}

