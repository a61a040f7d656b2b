/**
 * Password hashes: scrypt (node:crypto) with a per-password random salt, stored as
 * `scrypt$N$r$p$salt$hash` (base64) so the cost can be raised later without a migration.
 * A password is hashed in its NFKC form (and has been since the first release, so every stored
 * hash verifies as before): the same password typed as precomposed or combining characters, or
 * with compatibility forms (full-width letters, ligatures), is one password, and its length is
 * counted on that form (`passwordLength`).
 */
import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

const N = 1 << 15;
const R = 8;
const P = 1;
const KEY_LEN = 32;
const MAXMEM = 128 * N * R * 2;

/** The form of a password that is hashed and whose length counts. */
export function normalizePassword(password: string): string {
  return password.normalize('NFKC');
}

/**
 * A password's length as a minimum-length rule should see it: code points of its NFKC form, so
 * that eight combining sequences that compose into four characters count as four.
 */
export function passwordLength(password: string): number {
  return [...normalizePassword(password)].length;
}

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(normalizePassword(password), salt, KEY_LEN, { N: n, r, p, maxmem: Math.max(MAXMEM, 128 * n * r * 2) }, (err, key) =>
      err ? reject(err) : resolve(key),
    ),
  );
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time check; a malformed stored hash never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [n, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![n, r, p].every((v) => Number.isInteger(v) && v > 0) || n > 1 << 20) return false;
  const salt = Buffer.from(parts[4]!, 'base64');
  const expected = Buffer.from(parts[5]!, 'base64');
  if (expected.length !== KEY_LEN) return false;
  const got = await derive(password, salt, n, r, p);
  return timingSafeEqual(got, expected);
}
