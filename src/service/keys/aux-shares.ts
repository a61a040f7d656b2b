/**
 * The Aux's shares on demand. In a cluster of several triplets each Aux keeps its own store: a key
 * generated or refreshed through another triplet reaches this Aux the first time this triplet
 * needs it there (§6 re-derivation, without the refresh: this Aux is not a lost one, it never held
 * the share). Every family's EP operations that may involve the Aux run through `withAuxShares`.
 */
import type { Logger } from 'pino';
import { EkmError } from '../../errors.js';
import type { PeerManager } from '../../net/peers.js';
import type { Store } from '../../store/store.js';
import { PeerRefusedError } from '../protocol-host.js';

export interface AuxSharesDeps {
  readonly store: Store;
  readonly log: Logger;
  /** Re-derives this triplet's Aux shares of the keys, without refreshing them (KeyService.rederiveAux). */
  readonly rederive: (keyIds: readonly string[]) => Promise<unknown>;
}

export class AuxShares {
  private readonly rederivations = new Map<string, Promise<void>>();

  constructor(private readonly deps: AuxSharesDeps) {}

  /**
   * Runs `op`, and once more after re-deriving this triplet's Aux shares of `keyIds` if the Aux
   * refused for lack of a share at the key's current epoch.
   */
  async withAuxShares<T>(keyIds: readonly string[], op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (e) {
      if (!(e instanceof PeerRefusedError) || e.peer !== 'aux' || e.refusal !== 'EKM_KEY_EPOCH') throw e;
      // In a single triplet an Aux without a share lost its store: that is POST /servers/aux/rederive,
      // which also refreshes the keys (§6), so that the lost copy of f(3) becomes worthless.
      if (!(await this.clusterHasSeveralTriplets())) throw e;
      this.deps.log.info({ event: 'aux_share_missing', keyIds }, "this triplet's Aux lacks a current share: re-deriving it");
      await this.rederiveOnce(keyIds);
      return op();
    }
  }

  private async clusterHasSeveralTriplets(): Promise<boolean> {
    return new Set((await this.deps.store.listServers()).map((s) => s.tripletId)).size > 1;
  }

  /** One re-derivation per set of keys at a time: concurrent requests for the same keys wait for it. */
  private rederiveOnce(keyIds: readonly string[]): Promise<void> {
    const id = [...keyIds].sort().join(',');
    let p = this.rederivations.get(id);
    if (!p) {
      p = this.deps.rederive(keyIds).then(() => undefined);
      void p.finally(() => this.rederivations.delete(id)).catch(() => undefined);
      this.rederivations.set(id, p);
    }
    return p;
  }
}

/**
 * EP + Partner, or EP + Aux when the Partner is not connected or its session fails (the Aux
 * first gets the key's current share if it never had it: a key of another triplet).
 */
export async function withHelper<T>(
  deps: { readonly peers: PeerManager; readonly log: Logger; readonly auxShares: AuxShares },
  keyId: string,
  run: (helper: 2 | 3) => Promise<T>,
): Promise<T> {
  const withAux = (): Promise<T> => deps.auxShares.withAuxShares([keyId], () => run(3));
  if (!deps.peers.link('partner')) return withAux();
  try {
    return await run(2);
  } catch (e) {
    if (!(e instanceof EkmError) || !deps.peers.link('aux')) throw e;
    deps.log.warn({ err: e.message }, 'the session with the Partner failed; retrying with the Aux');
    return withAux();
  }
}
