/**
 * secp256k1 group operations through libsecp256k1 (Bitcoin Core's library, the `secp256k1`
 * package's native binding), for where noble's BigInt arithmetic is the cost: k·P in 0.07 ms
 * against noble's 2.2 ms, k·G in 0.03 ms against 0.35 ms. Both are constant time in k:
 * `secp256k1_ecdh` multiplies with `secp256k1_ecmult_const`, and `secp256k1_ec_pubkey_create`
 * with the constant-time generator multiplication. The ECDH hash callback hands back the whole
 * product point (x and y) instead of a hash of it.
 *
 * Only the native binding is used, never the package's JavaScript fallback (elliptic): when the
 * binding does not load on a platform, `libsecp256k1` is undefined and callers stay on noble.
 */
import { createRequire } from 'node:module';

interface Binding {
  ecdh(
    pubkey: Uint8Array,
    seckey: Uint8Array,
    options: { hashfn: (x: Uint8Array, y: Uint8Array) => Uint8Array; xbuf: Uint8Array; ybuf: Uint8Array },
    output: Uint8Array,
  ): Uint8Array;
  publicKeyCreate(seckey: Uint8Array, compressed: boolean): Uint8Array;
}

function load(): Binding | undefined {
  try {
    return createRequire(import.meta.url)('secp256k1/bindings') as Binding;
  } catch {
    return undefined;
  }
}

const binding = load();

export interface Libsecp256k1 {
  /** k·P for 0 < k < n and a valid point P (SEC1 bytes), as the uncompressed encoding. */
  mul(scalar: Uint8Array, point: Uint8Array): Uint8Array;
  /** k·G for 0 < k < n, as the uncompressed encoding. */
  mulBase(scalar: Uint8Array): Uint8Array;
}

const uncompressed = (x: Uint8Array, y: Uint8Array): Uint8Array => {
  const out = new Uint8Array(65);
  out[0] = 4;
  out.set(x, 1);
  out.set(y, 33);
  return out;
};

export const libsecp256k1: Libsecp256k1 | undefined = binding && {
  mul: (scalar, point) =>
    binding.ecdh(point, scalar, { hashfn: uncompressed, xbuf: new Uint8Array(32), ybuf: new Uint8Array(32) }, new Uint8Array(65)),
  mulBase: (scalar) => binding.publicKeyCreate(scalar, false),
};
