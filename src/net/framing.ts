/**
 * Length-prefixed frames on a peer link: `u32be(length) ‖ u8 kind ‖ u32be(id) ‖ payload`, where
 * length counts kind, id and payload. `id` pairs a request with its response (0 for one-way).
 */
export enum FrameKind {
  Hello = 1,
  Ping = 2,
  Pong = 3,
  Request = 4,
  Response = 5,
  Error = 6,
  Message = 7,
  Refused = 8,
}

export interface Frame {
  readonly kind: FrameKind;
  readonly id: number;
  readonly payload: Uint8Array;
}

/** A frame larger than this is a protocol violation (the link is dropped). */
export const MAX_FRAME_BYTES = 64 * 1024 * 1024;
const HEADER = 4 + 1 + 4;

export function encodeFrame(kind: FrameKind, id: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(HEADER + payload.length);
  out.writeUInt32BE(5 + payload.length, 0);
  out.writeUInt8(kind, 4);
  out.writeUInt32BE(id >>> 0, 5);
  out.set(payload, HEADER);
  return out;
}

export class FrameError extends Error {
  readonly code = 'EKM_FRAME';
}

/** Incremental decoder: feed it chunks as they arrive, get whole frames out. */
export class FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const frames: Frame[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readUInt32BE(0);
      if (length < 5 || length > MAX_FRAME_BYTES) throw new FrameError(`bad frame length ${length}`);
      if (this.buffered < 4 + length) break;
      const whole = this.take(4 + length);
      const kind = whole.readUInt8(4) as FrameKind;
      if (!(kind in FrameKind)) throw new FrameError(`unknown frame kind ${kind}`);
      frames.push({ kind, id: whole.readUInt32BE(5), payload: whole.subarray(HEADER) });
    }
    return frames;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length >= n) return this.chunks[0]!;
    const all = Buffer.concat(this.chunks);
    this.chunks = [all];
    return all;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }
}

const utf8 = new TextEncoder();
const utf8d = new TextDecoder('utf-8', { fatal: true });

/** Request and Message payloads: `u16be(len name) ‖ name ‖ body`. */
export function encodeNamed(name: string, body: Uint8Array): Uint8Array {
  const n = utf8.encode(name);
  if (n.length > 0xffff) throw new FrameError('name too long');
  const out = new Uint8Array(2 + n.length + body.length);
  out[0] = n.length >> 8;
  out[1] = n.length & 0xff;
  out.set(n, 2);
  out.set(body, 2 + n.length);
  return out;
}

export function decodeNamed(payload: Uint8Array): { name: string; body: Uint8Array } {
  if (payload.length < 2) throw new FrameError('named payload too short');
  const len = (payload[0]! << 8) | payload[1]!;
  if (payload.length < 2 + len) throw new FrameError('named payload truncated');
  return { name: utf8d.decode(payload.subarray(2, 2 + len)), body: payload.subarray(2 + len) };
}

export function encodeJson(value: unknown): Uint8Array {
  return utf8.encode(JSON.stringify(value));
}

export function decodeJson(bytes: Uint8Array): unknown {
  return JSON.parse(utf8d.decode(bytes));
}
