/**
 * DJNPØ20 preprocessing PS1–PS3 (docs/protocols.md §3.1 with §11 R1): one party's math.
 *
 * Party i deals degree-1 κ_i, α_i and zero-constant degree-2 μ_i, ν_i, η_i; sums its shares
 * k_j, a_j, u_j, v_j, e_j; broadcasts R_j = k_j·G and w_j = a_j·k_j + u_j; then W_j = a_j·R with
 * echo_2; checks both lines in the exponent and w·G == W; keeps c_j = w⁻¹·a_j, v_j, η_j and R.
 */
import { decodeEnc, enc, H, u32be, u8, bytesEqual } from '../crypto/encoding.js';
import { decodePoint, decodeScalar, encodePoint, encodeScalar, type Curve, type Point } from '../crypto/curves.js';
import { mulBase, mulPoint } from '../crypto/ec-mul.js';
import { OTHERS, randomScalar } from './ecdsa-session.js';
import { ProtocolAbort, type PartyId, type Rng } from './types.js';

export interface PresignResult {
  /** R = k·G and its canonical encoding. */
  readonly R: Point;
  readonly Rbytes: Uint8Array;
  /** r = x(R) mod q. */
  readonly r: bigint;
  /** c_j = w⁻¹·a_j, a share of k⁻¹. */
  readonly c: bigint;
  /** v_j, η_j: shares of the two zero-constant degree-2 masks used online. */
  readonly v: bigint;
  readonly eta: bigint;
}

interface Dealt {
  k0: bigint;
  k1: bigint;
  a0: bigint;
  a1: bigint;
  u1: bigint;
  u2: bigint;
  v1: bigint;
  v2: bigint;
  e1: bigint;
  e2: bigint;
}

/** Broadcast echo over the round's bodies `enc(j, body_j)` (§1.5, §11 R6a). */
export function ecdsaEcho(sid: Uint8Array, round: number, bodies: Readonly<Record<PartyId, Uint8Array>>): Uint8Array {
  return H('ecdsa/echo', sid, u32be(round), enc(u8(1), bodies[1]), enc(u8(2), bodies[2]), enc(u8(3), bodies[3]));
}

export class PresignCore {
  private dealt: Dealt | undefined;
  private k = 0n;
  private a = 0n;
  private u = 0n;
  private v = 0n;
  private e = 0n;
  private Rj: Point | undefined;
  private bodies2: Record<PartyId, Uint8Array> | undefined;
  private R: Point | undefined;
  private r = 0n;

  constructor(
    private readonly curve: Curve,
    private readonly me: PartyId,
    private readonly proto: string,
    rng: Rng,
  ) {
    const s = (): bigint => randomScalar(curve, rng);
    this.dealt = { k0: s(), k1: s(), a0: s(), a1: s(), u1: s(), u2: s(), v1: s(), v2: s(), e1: s(), e2: s() };
    const own = this.evaluate(me);
    [this.k, this.a, this.u, this.v, this.e] = own;
  }

  private evaluate(j: PartyId): [bigint, bigint, bigint, bigint, bigint] {
    const d = this.dealt;
    if (!d) throw new Error('polynomials already erased');
    const Fn = this.curve.Fn;
    const x = BigInt(j);
    const lin = (c0: bigint, c1: bigint): bigint => Fn.add(c0, Fn.mul(c1, x));
    const quad = (c1: bigint, c2: bigint): bigint => Fn.add(Fn.mul(c1, x), Fn.mul(c2, x * x));
    return [lin(d.k0, d.k1), lin(d.a0, d.a1), quad(d.u1, d.u2), quad(d.v1, d.v2), quad(d.e1, d.e2)];
  }

  /** PS1: the private body for each other party, each carrying `req` (the echo of round 0). */
  ps1Bodies(req: Uint8Array): Map<PartyId, Uint8Array> {
    const out = new Map<PartyId, Uint8Array>();
    for (const j of OTHERS[this.me]) {
      out.set(j, enc(req, ...this.evaluate(j).map((v) => encodeScalar(this.curve, v))));
    }
    return out;
  }

  /** PS1 receipt: `req` must equal ours (docs/protocols.md §3.5: EP sent different inputs, or the sender lies). */
  absorbPs1(from: PartyId, body: Uint8Array, req: Uint8Array): void {
    const f = decodeEnc(body);
    if (f.length !== 6) throw new ProtocolAbort(this.proto, 1, 'invalid-input: PS1 field count', from);
    if (!bytesEqual(f[0]!, req)) throw new ProtocolAbort(this.proto, 1, 'req-mismatch', from);
    const [k, a, u, v, e] = f.slice(1).map((b) => decodeScalar(this.curve, b)) as [bigint, bigint, bigint, bigint, bigint];
    const Fn = this.curve.Fn;
    this.k = Fn.add(this.k, k);
    this.a = Fn.add(this.a, a);
    this.u = Fn.add(this.u, u);
    this.v = Fn.add(this.v, v);
    this.e = Fn.add(this.e, e);
  }

  /** PS2 (after both PS1): R_j = k_j·G, w_j = a_j·k_j + u_j. Erases the dealt polynomials. */
  ps2Body(): Uint8Array {
    this.dealt = undefined;
    const Fn = this.curve.Fn;
    const Rj = mulBase(this.curve, this.k);
    this.Rj = Rj;
    const w = Fn.add(Fn.mul(this.a, this.k), this.u);
    this.k = 0n;
    this.u = 0n;
    return enc(encodePoint(this.curve, Rj), encodeScalar(this.curve, w));
  }

  /** PS2 receipt (all three bodies, own included): R-line check, R, r; then PS3's W_j and echo_2. */
  ps3Body(sid: Uint8Array, bodies: Readonly<Record<PartyId, Uint8Array>>): Uint8Array {
    const pts = {} as Record<PartyId, Point>;
    for (const j of [1, 2, 3] as const) {
      const f = decodeEnc(bodies[j]);
      if (f.length !== 2) throw new ProtocolAbort(this.proto, 2, 'invalid-input: PS2 field count', j);
      try {
        pts[j] = j === this.me ? this.Rj! : decodePoint(this.curve, f[0]!);
        decodeScalar(this.curve, f[1]!);
      } catch (err) {
        throw new ProtocolAbort(this.proto, 2, `invalid-input: ${(err as Error).message}`, j);
      }
    }
    if (!pts[1].subtract(pts[2].double()).add(pts[3]).is0()) {
      throw new ProtocolAbort(this.proto, 2, 'r-line', null);
    }
    const R = pts[1].double().subtract(pts[2]);
    if (R.is0()) throw new ProtocolAbort(this.proto, 2, 'r-zero', null);
    const r = this.curve.Fn.create(R.toAffine().x);
    if (r === 0n) throw new ProtocolAbort(this.proto, 2, 'r-zero', null);
    this.R = R;
    this.r = r;
    this.bodies2 = { 1: bodies[1], 2: bodies[2], 3: bodies[3] };
    const W = mulPoint(this.curve, R, this.a);
    return enc(encodePoint(this.curve, W), ecdsaEcho(sid, 2, this.bodies2));
  }

  /** PS3 receipt (all three bodies): echo, W-line, w ≠ 0, exponent check w·G == W; the result. */
  finish(sid: Uint8Array, bodies: Readonly<Record<PartyId, Uint8Array>>): PresignResult {
    if (!this.R || !this.bodies2) throw new Error('PS3 before PS2');
    const echo = ecdsaEcho(sid, 2, this.bodies2);
    const pts = {} as Record<PartyId, Point>;
    for (const j of [1, 2, 3] as const) {
      const f = decodeEnc(bodies[j]);
      if (f.length !== 2) throw new ProtocolAbort(this.proto, 3, 'invalid-input: PS3 field count', j);
      if (!bytesEqual(f[1]!, echo)) throw new ProtocolAbort(this.proto, 3, 'equivocation', null);
      try {
        pts[j] = decodePoint(this.curve, f[0]!);
      } catch (err) {
        throw new ProtocolAbort(this.proto, 3, `invalid-input: ${(err as Error).message}`, j);
      }
    }
    if (!pts[1].subtract(pts[2].double()).add(pts[3]).is0()) {
      throw new ProtocolAbort(this.proto, 3, 'w-line', null);
    }
    const W = pts[1].double().subtract(pts[2]);
    const Fn = this.curve.Fn;
    const ws = ([1, 2, 3] as const).map((j) => decodeScalar(this.curve, decodeEnc(this.bodies2![j])[1]!));
    const w = Fn.add(Fn.sub(Fn.mul(3n, ws[0]!), Fn.mul(3n, ws[1]!)), ws[2]!);
    if (w === 0n) throw new ProtocolAbort(this.proto, 3, 'w-zero', null);
    if (!mulBase(this.curve, w).equals(W)) throw new ProtocolAbort(this.proto, 3, 'exponent-check', null);
    const out: PresignResult = {
      R: this.R,
      Rbytes: encodePoint(this.curve, this.R),
      r: this.r,
      c: Fn.mul(Fn.inv(w), this.a),
      v: this.v,
      eta: this.e,
    };
    this.erase();
    return out;
  }

  erase(): void {
    this.dealt = undefined;
    this.k = this.a = this.u = this.v = this.e = 0n;
    this.Rj = undefined;
    this.bodies2 = undefined;
  }
}
