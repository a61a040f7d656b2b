/**
 * node:crypto key objects of public keys, built once per key: building one from a JWK costs more
 * than the verification it serves (ECDSA and Ed25519 checks before release, and the verify API).
 */
import { type JsonWebKey, type KeyObject, createPublicKey } from 'node:crypto';
import { BoundedCache } from '../util/bounded-cache.js';

const keyObjects = new BoundedCache<string, KeyObject>(1024);

/** The key object for `id` (algorithm and public key, as the caller names them), built from `jwk()` the first time. */
export function cachedPublicKey(id: string, jwk: () => JsonWebKey): KeyObject {
  let key = keyObjects.get(id);
  if (!key) keyObjects.set(id, (key = createPublicKey({ key: jwk(), format: 'jwk' })));
  return key;
}
