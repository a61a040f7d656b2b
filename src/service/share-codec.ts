/** Conversions between protocol values (KeyShare, checkpoints) and their stored form. */
import { decodeScalar, encodeScalar, getCurve } from '../crypto/curves.js';
import { ALG_CURVE, type EcAlg, type KeyShare } from '../protocols/key-share.js';
import type { RsaShareRecord, ShareRecord, StoredShare } from '../store/key-records.js';
import { decodeEnc, enc } from '../crypto/encoding.js';
import { byteLength, i2osp, os2ip } from '../crypto/modexp.js';
import { isRsaAlg, type RsaKeyShare, type RsaPiece } from '../protocols/rsa.js';

export function shareToRecord(s: KeyShare): ShareRecord {
  const curve = getCurve(ALG_CURVE[s.alg]);
  return {
    keyId: s.keyId,
    alg: s.alg,
    epoch: s.epoch,
    partyId: s.partyId,
    share: encodeScalar(curve, s.share),
    Y: s.Y,
    C1: s.C1,
    A1: s.A[1],
    A2: s.A[2],
    A3: s.A[3],
    ...(s.notAfter !== undefined ? { notAfter: s.notAfter } : {}),
  };
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
    ...(r.notAfter !== undefined ? { notAfter: r.notAfter } : {}),
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

/** RSA shares: n and e in the clear, the two pieces of d sealed as `enc(name, bytes, name, bytes)`. */
export function rsaShareToRecord(s: RsaKeyShare): RsaShareRecord {
  const fields: (string | Uint8Array)[] = [];
  for (const [name, bytes] of Object.entries(s.pieces) as [RsaPiece, Uint8Array][]) fields.push(name, bytes);
  return { keyId: s.keyId, alg: s.alg, epoch: s.epoch, partyId: s.partyId, n: i2osp(s.n, byteLength(s.n)), e: i2osp(s.e, byteLength(s.e)), pieces: enc(...fields) };
}

export function recordToRsaShare(r: RsaShareRecord): RsaKeyShare {
  if (!isRsaAlg(r.alg)) throw new Error(`not an RSA alg: ${r.alg}`);
  const f = decodeEnc(r.pieces);
  const pieces: Partial<Record<RsaPiece, Uint8Array>> = {};
  for (let i = 0; i + 1 < f.length; i += 2) pieces[new TextDecoder().decode(f[i]!) as RsaPiece] = f[i + 1]!;
  return { keyId: r.keyId, alg: r.alg, epoch: r.epoch, partyId: r.partyId, n: os2ip(r.n), e: os2ip(r.e), pieces };
}
