/**
 * Modular exponentiation for RSA shares (docs/protocols.md §12.1): `base^exp mod m` for an odd
 * public modulus m and a *secret* exponent, through OpenSSL's constant-time
 * `BN_mod_exp_mont_consttime` (the DiffieHellman-object trick: `createDiffieHellman(m)`,
 * `setPrivateKey(exp)`, `computeSecret(base)`; OpenSSL's DH code sets BN_FLG_CONSTTIME on the
 * private key, so the ladder's memory accesses and operations do not depend on its bits).
 *
 * What OpenSSL refuses, and how each case is handled without a new secret-dependent branch:
 *
 * - bases 0, 1 and m−1 (DH_check_pub_key wants 1 < base < m−1): handled before OpenSSL from the
 *   public base. 0^x = 0 (x > 0), 1^x = 1, (m−1)^x = ±1 by the parity of x. The branch on x (zero?
 *   parity?) is taken only for these public bases and the result itself states that bit, so the
 *   time reveals nothing the output does not.
 * - results 1 and m−1 (OpenSSL refuses a shared secret of 1 or p−1, `ERR_CRYPTO_INVALID_KEYTYPE`):
 *   the fallback runs only when the result *is* ±1, which the output reveals anyway. It computes
 *   t = base^(x−1) through OpenSSL (x−1 is formed by a constant-time byte decrement) and returns
 *   t·base mod m. t cannot be ±1 again (that would make base = ±1, handled above). x = 0 also
 *   lands here (result 1) and is answered at once: a zero exponent is never a real share.
 * - a result of 0 cannot happen for 1 < base < m−1 with m = pq (it needs pq | base).
 *
 * Remaining leaks, documented rather than hidden: OpenSSL's ladder runs over the exponent's word
 * count (BN_num_words after `BN_bin2bn` strips leading zero bytes), i.e. it leaks the top word
 * position of the share; share sizes are fixed by design (|N| + 128 bits and more, docs/protocols.md §12.1) so this is
 * the same for every share up to a 2⁻⁶⁴-likely word. The exponent is handed over as bytes, never
 * as a JS BigInt (V8's BigInt arithmetic is not constant time); callers keep shares as bytes.
 *
 * Moduli are limited to 512..10000 bits (OpenSSL's DH limits; smaller moduli give wrong results
 * through this interface). One DH object per modulus is cached (creating one runs OpenSSL's
 * DH_check, 6–18 ms); after each use its private key is reset to 1 (OpenSSL frees the old one with
 * BN_clear_free) and the exponent buffer handed to Node is zeroed.
 *
 * The BigInt helpers below are for public values only (moduli, public exponents, messages,
 * signatures, partial results in transit).
 */
import crypto from 'node:crypto';

export class ModexpError extends Error {
  readonly code = 'EKM_MODEXP';
}

const MIN_BITS = 512;
const MAX_BITS = 10_000;
const CACHE_LIMIT = 32;

interface Prepared {
  readonly dh: crypto.DiffieHellman;
  readonly len: number;
}

const cache = new Map<bigint, Prepared>();

function prepare(m: bigint): Prepared {
  const hit = cache.get(m);
  if (hit) {
    // LRU: move to the end.
    cache.delete(m);
    cache.set(m, hit);
    return hit;
  }
  if (m <= 0n || (m & 1n) === 0n) throw new ModexpError('modulus must be odd and positive');
  const bits = bitLength(m);
  if (bits < MIN_BITS || bits > MAX_BITS) throw new ModexpError(`modulus must have ${MIN_BITS}..${MAX_BITS} bits, has ${bits}`);
  const len = Math.ceil(bits / 8);
  const p: Prepared = { dh: crypto.createDiffieHellman(Buffer.from(i2osp(m, len))), len };
  cache.set(m, p);
  if (cache.size > CACHE_LIMIT) cache.delete(cache.keys().next().value!);
  return p;
}

function isRefusedResult(e: unknown): boolean {
  return (e as { code?: string } | null)?.code === 'ERR_CRYPTO_INVALID_KEYTYPE';
}

/** One OpenSSL exponentiation; the exponent buffer is zeroed and the DH key reset afterwards. */
function openssl(p: Prepared, base: bigint, exp: Uint8Array): bigint {
  const e = Buffer.alloc(exp.length);
  e.set(exp);
  try {
    p.dh.setPrivateKey(e);
    const out = p.dh.computeSecret(Buffer.from(i2osp(base, p.len)));
    return os2ip(out);
  } finally {
    e.fill(0);
    p.dh.setPrivateKey(Buffer.of(1));
  }
}

/**
 * `base^exp mod m` with `exp` secret (big-endian bytes, any length) and `base`, `m` public; m odd,
 * 512..10000 bits. Constant time in `exp` (see the module comment for the exact claims).
 */
export function modPowSecret(base: bigint, exp: Uint8Array, m: bigint): bigint {
  const p = prepare(m);
  if (exp.length === 0) return 1n; // an empty exponent is 0 (its length is public)
  const b = mod(base, m);
  if (b === 0n || b === 1n || b === m - 1n) {
    // Public base: the result states the one bit of exp this branch uses (see the module comment).
    const zero = isZeroCt(exp);
    if (b === 1n || zero) return 1n;
    if (b === 0n) return 0n;
    return (exp[exp.length - 1]! & 1) === 1 ? m - 1n : 1n;
  }
  try {
    return openssl(p, b, exp);
  } catch (e) {
    if (!isRefusedResult(e)) throw e;
  }
  // The result is 1 or m−1 (OpenSSL refuses those): reached only when the output is ±1.
  const { value: less, borrow } = decrementCt(exp);
  try {
    if (borrow) return 1n; // exp = 0
    return (openssl(p, b, less) * b) % m;
  } finally {
    less.fill(0);
  }
}

/** Drops cached DH objects (tests; a worker about to exit). */
export function clearModexpCache(): void {
  cache.clear();
}

// ---------------------------------------------------------------------------------------------
// Constant-time byte arithmetic on secret exponents (big-endian, fixed lengths)

/** a + b as `len` big-endian bytes; throws if the sum does not fit (lengths are public). */
export function addBytesCt(a: Uint8Array, b: Uint8Array, len: number): Uint8Array {
  if (a.length > len || b.length > len) throw new RangeError('operand longer than the result');
  const out = new Uint8Array(len);
  let carry = 0;
  for (let i = 0; i < len; i++) {
    const ai = i < a.length ? a[a.length - 1 - i]! : 0;
    const bi = i < b.length ? b[b.length - 1 - i]! : 0;
    const s = ai + bi + carry;
    out[len - 1 - i] = s & 0xff;
    carry = s >>> 8;
  }
  if (carry !== 0) {
    out.fill(0);
    throw new RangeError('sum overflows the result length');
  }
  return out;
}

/** a − b as `len` big-endian bytes and whether it borrowed (a < b). Constant time. */
export function subBytesCt(a: Uint8Array, b: Uint8Array, len: number): { value: Uint8Array; borrow: boolean } {
  if (a.length > len || b.length > len) throw new RangeError('operand longer than the result');
  const out = new Uint8Array(len);
  let borrow = 0;
  for (let i = 0; i < len; i++) {
    const ai = i < a.length ? a[a.length - 1 - i]! : 0;
    const bi = i < b.length ? b[b.length - 1 - i]! : 0;
    const d = ai - bi - borrow;
    out[len - 1 - i] = d & 0xff;
    borrow = (d >>> 31) & 1;
  }
  return { value: out, borrow: borrow === 1 };
}

/** x − 1 over the same length, and whether it borrowed (x was 0). Constant time. */
function decrementCt(x: Uint8Array): { value: Uint8Array; borrow: boolean } {
  return subBytesCt(x, Uint8Array.of(1), x.length);
}

function isZeroCt(x: Uint8Array): boolean {
  let acc = 0;
  for (let i = 0; i < x.length; i++) acc |= x[i]!;
  return acc === 0;
}

// ---------------------------------------------------------------------------------------------
// BigInt helpers: public values only

export function bitLength(x: bigint): number {
  if (x < 0n) throw new RangeError('negative');
  return x === 0n ? 0 : x.toString(2).length;
}

export function byteLength(x: bigint): number {
  return Math.ceil(bitLength(x) / 8);
}

/** I2OSP (RFC 8017 §4.1): x as exactly `len` big-endian bytes. */
export function i2osp(x: bigint, len: number): Uint8Array {
  if (x < 0n) throw new RangeError('I2OSP of a negative integer');
  const hex = x.toString(16);
  if (hex.length > len * 2) throw new RangeError('integer too large');
  return new Uint8Array(Buffer.from(hex.padStart(len * 2, '0'), 'hex'));
}

/** OS2IP (RFC 8017 §4.2). */
export function os2ip(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  return BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex'));
}

export function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

/** base^exp mod m by square-and-multiply (variable time: public exponents only, e.g. RSA e). */
export function modPowPublic(base: bigint, exp: bigint, m: bigint): bigint {
  if (m <= 0n) throw new RangeError('modulus must be positive');
  if (exp < 0n) throw new RangeError('negative exponent');
  if (m === 1n) return 0n;
  let r = 1n;
  let b = mod(base, m);
  let e = exp;
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

/** a⁻¹ mod m (extended Euclid, variable time: public values only); throws if gcd(a, m) ≠ 1. */
export function modInverse(a: bigint, m: bigint): bigint {
  let [r0, r1] = [mod(a, m), m];
  let [s0, s1] = [1n, 0n];
  while (r1 !== 0n) {
    const q = r0 / r1;
    [r0, r1] = [r1, r0 - q * r1];
    [s0, s1] = [s1, s0 - q * s1];
  }
  if (r0 !== 1n) throw new ModexpError('not invertible');
  return mod(s0, m);
}

export function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [a < 0n ? -a : a, b < 0n ? -b : b];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}
