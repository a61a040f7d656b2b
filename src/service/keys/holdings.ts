/**
 * What the EP asks Partner and Aux about their stores, whatever the key's family: erase the
 * shares of a destroyed key, list every key held with its epoch (KeyCatalog's Aux sweep), erase a
 * share older than the key's settled epoch.
 */
import { decodeEnc, enc, encList, u32be } from '../../crypto/encoding.js';
import { EkmError } from '../../errors.js';
import { KEY_UID_RE, type KeyRow } from '../../store/key-records.js';
import type { Store } from '../../store/store.js';
import type { ServiceDeps } from '../service-deps.js';

/** Peer method by which the EP has Partner and Aux erase their shares of a destroyed key. */
export const KEY_PURGE_METHOD = 'key.purge';
/** EP → Aux: every key this store holds anything of, with its current epoch (KeyCatalog's Aux sweep). */
export const KEY_HOLDINGS_METHOD = 'key.holdings';
/** EP → Aux: erase a key whose share here is older than the key's settled epoch (`key-purge-stale`). */
export const KEY_PURGE_STALE_METHOD = 'key.purge-stale';

/** One entry of a `key.holdings` answer. */
export function encodeHolding(keyId: string, epoch: number): Uint8Array {
  return enc(keyId, u32be(epoch));
}

export function decodeHolding(item: Uint8Array): { keyId: string; epoch: number } {
  const f = decodeEnc(item);
  if (f.length !== 2 || f[1]!.length !== 4) throw new EkmError('EKM_PEER_PROTOCOL', 'malformed key holding');
  return { keyId: new TextDecoder().decode(f[0]!), epoch: Buffer.from(f[1]!).readUInt32BE(0) };
}

export function decodeHoldings(body: Uint8Array): { keyId: string; epoch: number }[] {
  return decodeEnc(body).map(decodeHolding);
}

/** Every key record of this store, a page at a time. */
export async function* keyPages(store: Store): AsyncGenerator<KeyRow[]> {
  let after: string | undefined;
  for (;;) {
    const page = await store.listKeys({ ...(after ? { after } : {}), limit: 1000 });
    yield page;
    if (page.length < 1000) return;
    after = page[page.length - 1]!.keyId;
  }
}

/** Partner and Aux: the answers to the EP's three holdings methods. */
export function registerHoldingMethods(deps: ServiceDeps): void {
  deps.registerPeerMethod(KEY_PURGE_METHOD, async (body, from) => {
    // Only the EP destroys keys: a Partner or Aux asking would be a compromised peer erasing shares.
    if (from !== 'ep') throw new EkmError('EKM_PEER_PROTOCOL', `only the EP destroys keys, not the ${from ?? 'unknown peer'}`);
    const keyId = new TextDecoder().decode(body);
    if (!KEY_UID_RE.test(keyId)) throw new EkmError('EKM_PEER_PROTOCOL', 'a key purge names a key UID');
    await deps.store.applyKeyWrites([{ op: 'key-purge', keyId }]);
    deps.log.warn({ event: 'key_purged', keyId }, 'share of a destroyed key erased');
    return new Uint8Array(0);
  });
  deps.registerPeerMethod(KEY_HOLDINGS_METHOD, async (_body, from) => {
    if (from !== 'ep') throw new EkmError('EKM_PEER_PROTOCOL', `only the EP lists this server's keys, not the ${from ?? 'unknown peer'}`);
    const held: Uint8Array[] = [];
    for await (const page of keyPages(deps.store)) held.push(...page.map((k) => encodeHolding(k.keyId, k.currentEpoch)));
    return encList(held);
  });
  deps.registerPeerMethod(KEY_PURGE_STALE_METHOD, async (body, from) => {
    if (from !== 'ep' || deps.self !== 3)
      throw new EkmError('EKM_PEER_PROTOCOL', `only the EP erases an Aux's stale shares, not the ${from ?? 'unknown peer'}`);
    const { keyId, epoch } = decodeHolding(body);
    if (!KEY_UID_RE.test(keyId)) throw new EkmError('EKM_PEER_PROTOCOL', 'a stale-share purge names a key UID');
    const before = await deps.store.getKey(keyId);
    await deps.store.applyKeyWrites([{ op: 'key-purge-stale', keyId, below: epoch }]);
    if (before && !(await deps.store.getKey(keyId))) {
      deps.log.warn(
        { event: 'stale_share_purged', keyId, epoch: before.currentEpoch, newer: epoch },
        'share of an older epoch erased (the key was refreshed through another triplet)',
      );
    }
    return new Uint8Array(0);
  });
}
