/** Conversions between protocol values (KeyShare, checkpoints) and their stored form. */
import { decodeScalar, encodeScalar, getCurve } from '../crypto/curves.js';
import { ALG_CURVE, type EcAlg, type KeyShare } from '../protocols/key-share.js';
import type { ShareRecord, StoredShare } from '../store/key-records.js';

export function shareToRecord(s: KeyShare): ShareRecord {
  const curve = getCurve(ALG_CURVE[s.alg]);
  return { keyId: s.keyId, alg: s.alg, epoch: s.epoch, partyId: s.partyId, share: encodeScalar(curve, s.share), Y: s.Y, C1: s.C1, A1: s.A[1], A2: s.A[2], A3: s.A[3] };
}

export function recordToShare(r: ShareRecord | StoredShare): KeyShare {
  const alg = r.alg as EcAlg;
  const curve = getCurve(ALG_CURVE[alg]);
  return {
    keyId: r.keyId,
    alg,
    epoch: r.epoch,
    partyId: r.partyId,
    share: decodeScalar(curve, r.share, true),
    Y: r.Y,
    C1: r.C1,
    A: { 1: r.A1, 2: r.A2, 3: r.A3 },
  };
}

/** JSON that keeps byte strings (as `{"$hex": …}`): for checkpoints, which hold public data only. */
export function toJsonWithBytes(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? { $hex: Buffer.from(v).toString('hex') } : v));
}

export function fromJsonWithBytes<T>(text: string): T {
  return JSON.parse(text, (_k, v: unknown) => {
    if (v && typeof v === 'object' && '$hex' in v && typeof (v as { $hex: unknown }).$hex === 'string') {
      return new Uint8Array(Buffer.from((v as { $hex: string }).$hex, 'hex'));
    }
    return v;
  }) as T;
}
