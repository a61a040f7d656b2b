/**
 * Shamir shares of a curve secret (docs/protocols.md §2, §5, §6): the share scheme of EC
 * signing keys and of threshold-PRF AES keys. Made by a DKG, refreshed in batches by the
 * two-phase, epoch-based commit, given back to a new Aux by re-derivation; every stored share is
 * sealed by the barrier.
 */
import { randomBytes } from 'node:crypto';
import { toHex } from '../../crypto/encoding.js';
import { EkmError } from '../../errors.js';
import { AUX_PROTO, type AuxKeyEpoch, type AuxOutput, type AuxPersist } from '../../protocols/aux-rederive.js';
import { DKG_PROTO, type DkgPersist } from '../../protocols/dkg.js';
import { type KeyPolicy } from '../../protocols/key-policy.js';
import { EC_ALGS, type EcAlg, type KeyShare } from '../../protocols/key-share.js';
import { REFRESH_PROTO, type RefreshKeyEpoch, type RefreshKeyState, type RefreshOutput } from '../../protocols/refresh.js';
import { decodeRequest } from '../../protocols/session-kit.js';
import type { KeyRow, KeyWrite, StoredShare } from '../../store/key-records.js';
import type { SessionSpec } from '../protocol-host.js';
import { type RefreshStateOf, refreshStateOf, refreshWritesFor, requireRefreshEpochs, settledRefreshStates } from '../refresh-writes.js';
import { sessionItemWrites } from '../session-writes.js';
import { recordToShare, shareToRecord, toJsonWithBytes } from '../share-codec.js';
import type { Checkpointed, FamilyDeps, ShareScheme } from './family.js';
import { sessionSpec } from './session-spec.js';

export class ThresholdShares implements ShareScheme {
  readonly name = 'threshold';

  constructor(private readonly deps: FamilyDeps) {}

  holds(alg: string): boolean {
    return EC_ALGS.includes(alg as EcAlg);
  }

  /** EP: a new key by DKG with all three servers. */
  async generate(alg: EcAlg, policy: Uint8Array): Promise<{ keyId: string; alg: EcAlg }> {
    const keyId = toHex(randomBytes(8));
    const request = { keyId, alg, policy };
    await this.deps.host.run(sessionSpec({ kind: 'dkg', common: this.deps.identity, request }, DKG_PROTO, dkgWrites));
    return { keyId, alg };
  }

  /** The key's record and this server's share at its current epoch. */
  async current(keyId: string): Promise<{ row: KeyRow; current: KeyShare }> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${keyId}`);
    if (!this.holds(row.alg)) throw new EkmError('EKM_WRONG_KEY_TYPE', `key ${keyId} is an RSA key`);
    const shares = await this.deps.store.getShares(keyId);
    const current = shares.find((s) => s.status === 'current' && s.epoch === row.currentEpoch);
    if (!current)
      throw new EkmError('EKM_KEY_STATE', `key ${keyId} has no current share on this server`, {
        hint: 'run `ucl server test`; an Aux may need re-derivation',
      });
    return { row, current: recordToShare(current) };
  }

  /** The key's policy as this server holds it with its share. */
  async policyOf(row: KeyRow): Promise<KeyPolicy> {
    const { notAfter } = (await this.current(row.keyId)).current;
    return notAfter !== undefined ? { notAfter } : {};
  }

  /** The share of `keyId` at `epoch`, if this server holds that epoch (CURRENT or PREVIOUS). */
  async shareAt(keyId: string, epoch: number): Promise<KeyShare> {
    const s = (await this.deps.store.getShares(keyId)).find((x) => x.epoch === epoch && x.status !== 'pending');
    if (!s) throw new EkmError('EKM_KEY_EPOCH', `this server holds no share of key ${keyId} at epoch ${epoch}`);
    return recordToShare(s);
  }

  /** Proactive refresh of a batch of keys: new shares, same public keys (§5). */
  async refresh(keyIds: readonly string[]): Promise<readonly RefreshKeyEpoch[]> {
    const states = await this.settledRefreshStates(keyIds);
    for (const k of keyIds) if (!states.has(k)) throw new EkmError('EKM_KEY_NOT_FOUND', `no key ${k}`);
    const out = await this.deps.auxShares.withAuxShares(keyIds, () =>
      this.deps.host.run<RefreshOutput>(
        sessionSpec({ kind: 'refresh', common: this.deps.identity, states: [...states], keyIds }, REFRESH_PROTO, refreshWrites),
      ),
    );
    for (const k of out.keys) this.deps.presigs?.burn(k.keyId, k.to);
    return out.keys;
  }

  /** Gives the Aux its shares of `keyIds` again, computed by EP and Partner (§6), with attribution of a cheat. */
  async rederiveAux(keyIds: readonly string[]): Promise<readonly AuxKeyEpoch[]> {
    const shares = await this.loadCurrentShares(keyIds);
    const out = await this.deps.host.run<AuxOutput>(
      sessionSpec({ kind: 'aux', common: this.deps.identity, shares: [...shares], keyIds, attribution: true }, AUX_PROTO, auxWrites),
    );
    // The old Aux's presignature shares are gone: presignatures made with it can never complete.
    for (const k of out.keys) this.deps.presigs?.burn(k.keyId, null);
    return out.keys;
  }

  resume(proto: string, cp: Checkpointed): Promise<SessionSpec> | undefined {
    if (proto === DKG_PROTO && cp.keyId) return this.resumeDkg(cp.keyId, cp);
    if (proto === REFRESH_PROTO && cp.keys) return this.resumeRefresh(cp.keys as RefreshKeyEpoch[], cp);
    if (proto === AUX_PROTO && cp.keys) return this.resumeAux(cp.keys as AuxKeyEpoch[], cp);
    return undefined;
  }

  registerHelpers(): void {
    const { host, tripletId, identity: common } = this.deps;
    host.register(DKG_PROTO, async (env) => {
      const { inputs } = decodeRequest(DKG_PROTO, env, tripletId);
      if (await this.deps.store.getKey(inputs.keyIds[0]!)) throw new EkmError('EKM_KEY_EXISTS', `key ${inputs.keyIds[0]} exists`);
      return sessionSpec({ kind: 'dkg', common }, DKG_PROTO, dkgWrites);
    });
    host.register(REFRESH_PROTO, async (env) => {
      const { inputs } = decodeRequest(REFRESH_PROTO, env, tripletId);
      const states = await this.settledRefreshStates(inputs.keyIds);
      requireRefreshEpochs(inputs, states, 'key');
      return sessionSpec({ kind: 'refresh', common, states: [...states] }, REFRESH_PROTO, refreshWrites);
    });
    host.register(AUX_PROTO, async (env) => {
      const { inputs } = decodeRequest(AUX_PROTO, env, tripletId);
      const shares = this.deps.self === 3 ? new Map<string, KeyShare>() : await this.loadCurrentShares(inputs.keyIds);
      return sessionSpec({ kind: 'aux', common, shares: [...shares] }, AUX_PROTO, auxWrites);
    });
  }

  private async resumeDkg(keyId: string, cp: Checkpointed): Promise<SessionSpec> {
    const share = (await this.deps.store.getShares(keyId)).find((s) => s.status === 'current');
    if (!share) throw new Error(`no share of ${keyId} to resume with`);
    const resume = { checkpoint: cp.checkpoint, share: recordToShare(share) };
    return sessionSpec({ kind: 'dkg', common: this.deps.identity, resume }, DKG_PROTO, dkgWrites);
  }

  private async resumeRefresh(keys: RefreshKeyEpoch[], cp: Checkpointed): Promise<SessionSpec> {
    const states = await this.settledRefreshStates(
      keys.map((k) => k.keyId),
      0,
    );
    const resume = { keys, checkpoint: cp.checkpoint };
    return sessionSpec({ kind: 'refresh', common: this.deps.identity, states: [...states], resume }, REFRESH_PROTO, refreshWrites);
  }

  private async resumeAux(keys: AuxKeyEpoch[], cp: Checkpointed): Promise<SessionSpec> {
    const ids = keys.map((k) => k.keyId);
    const shares = this.deps.self === 3 ? new Map<string, KeyShare>() : await this.loadCurrentShares(ids);
    const resume = { keys, checkpoint: cp.checkpoint };
    return sessionSpec({ kind: 'aux', common: this.deps.identity, shares: [...shares], resume }, AUX_PROTO, auxWrites);
  }

  /** The keys' refresh states now (a resumed session: no waiting), or once settled (§5, I3). */
  private settledRefreshStates(keyIds: readonly string[], waitMs = 3000): Promise<Map<string, RefreshKeyState>> {
    return settledRefreshStates(keyIds, (keyId) => this.refreshState(keyId), waitMs);
  }

  private async refreshState(keyId: string): Promise<RefreshStateOf<KeyShare> | undefined> {
    const row = await this.deps.store.getKey(keyId);
    if (!row || row.state !== 'active') return undefined;
    return refreshStateOf(await this.deps.store.getShares(keyId), recordToShare);
  }

  private async loadCurrentShares(keyIds: readonly string[]): Promise<Map<string, KeyShare>> {
    const out = new Map<string, KeyShare>();
    for (const keyId of keyIds) {
      const current = (await this.deps.store.getShares(keyId)).find((s: StoredShare) => s.status === 'current');
      if (current) out.set(keyId, recordToShare(current));
    }
    return out;
  }
}

// --- persist items → store writes ----------------------------------------------------------

function dkgWrites(items: readonly DkgPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
      case 'session-abandon':
        return sessionItemWrites(it, sid);
      case 'dkg-key-pending':
        return [{ op: 'key-create', keyId: it.share.keyId, alg: it.share.alg, share: shareToRecord(it.share) }];
      case 'dkg-checkpoint':
        return [
          { op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: DKG_PROTO, keyId: it.keyId, checkpoint: it.checkpoint }) },
        ];
      case 'dkg-key-active':
        return [{ op: 'key-activate', keyId: it.keyId }];
      case 'dkg-complete':
        return [{ op: 'session-done', sid }];
    }
  });
}

const refreshWrites = refreshWritesFor<KeyShare>(REFRESH_PROTO, (share) => ({
  op: 'share-put',
  share: shareToRecord(share),
  status: 'pending',
}));

function auxWrites(items: readonly AuxPersist[], sid: string): KeyWrite[] {
  return items.flatMap((it): KeyWrite[] => {
    switch (it.kind) {
      case 'session-open':
      case 'session-abandon':
        return sessionItemWrites(it, sid);
      case 'aux-share-pending':
        return [{ op: 'aux-share-pending', share: shareToRecord(it.share) }];
      case 'aux-checkpoint':
        return [
          { op: 'session-checkpoint', sid, checkpoint: toJsonWithBytes({ proto: AUX_PROTO, keys: it.keys, checkpoint: it.checkpoint }) },
        ];
      case 'aux-share-activate':
        return it.keys.map((k) => ({ op: 'aux-share-activate', keyId: k.keyId, epoch: k.epoch }));
      case 'aux-present':
        return it.keys.map((k) => ({ op: 'aux-present', keyId: k.keyId }));
      case 'aux-complete':
        return [{ op: 'session-done', sid }];
    }
  });
}
