/**
 * A key's policy, fixed when the key is generated and checked by every server (docs/protocols.md §2 K0, §3
 * PS0): the EP sends it in the DKG request, every party decodes it strictly, it is bound into
 * PREPARED (so the EP cannot show the Partner and the Aux different policies), and each party
 * stores it with its share (KeyPublic.notAfter), where refresh and Aux re-derivation carry it on.
 * The Partner and the Aux refuse to sign with a key whose policy forbids it, so an EP that is
 * compromised later cannot lift it.
 *
 * v1 holds one rule: `notAfter`, the time after which the key no longer signs (KMIP's Protect
 * Stop Date). Signatures made before it still verify; only new ones are refused.
 *
 * Wire form: enc("policy/v1", notAfter), notAfter as 8 bytes big-endian milliseconds since the
 * Unix epoch, or empty for none.
 */
import { decodeEnc, enc } from '../crypto/encoding.js';
import { readString } from './ecdsa-session.js';

export interface KeyPolicy {
  /** Milliseconds since the Unix epoch after which the key no longer signs; absent: no limit. */
  readonly notAfter?: number;
}

const TAG = 'policy/v1';
/** 9999-12-31T23:59:59.999Z: far enough for any key, and an exact integer in a double. */
export const MAX_NOT_AFTER = 253_402_300_799_999;

export class KeyPolicyError extends Error {}

export function encodeKeyPolicy(p: KeyPolicy): Uint8Array {
  if (p.notAfter === undefined) return enc(TAG, new Uint8Array(0));
  checkNotAfter(p.notAfter);
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(p.notAfter));
  return enc(TAG, b);
}

/** Strict decode: the v1 tag, and a notAfter that is empty or 8 bytes within range. */
export function decodeKeyPolicy(bytes: Uint8Array): KeyPolicy {
  let f: Uint8Array[];
  try {
    f = decodeEnc(bytes);
  } catch {
    throw new KeyPolicyError('key policy: not an encoding');
  }
  if (f.length !== 2 || readString(f[0]!) !== TAG) throw new KeyPolicyError(`key policy: not ${TAG}`);
  const na = f[1]!;
  if (na.length === 0) return {};
  if (na.length !== 8) throw new KeyPolicyError('key policy: notAfter must be 8 bytes');
  const notAfter = Number(new DataView(na.buffer, na.byteOffset, 8).getBigUint64(0));
  checkNotAfter(notAfter);
  return { notAfter };
}

function checkNotAfter(ms: number): void {
  if (!Number.isSafeInteger(ms) || ms <= 0 || ms > MAX_NOT_AFTER) throw new KeyPolicyError('key policy: notAfter out of range');
}

/** Why the policy refuses a signature at `now` (ms), or null if it allows one. */
export function signingRefusal(p: KeyPolicy, now: number): string | null {
  if (p.notAfter !== undefined && now > p.notAfter) return `it expired at ${new Date(p.notAfter).toISOString()}`;
  return null;
}
