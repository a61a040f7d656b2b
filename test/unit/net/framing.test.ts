/** Peer-link framing: `u32be(length) ‖ u8 kind ‖ u32be(id) ‖ payload`, decoded incrementally. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  FrameDecoder,
  FrameError,
  FrameKind,
  MAX_FRAME_BYTES,
  decodeJson,
  decodeNamed,
  encodeFrame,
  encodeJson,
  encodeNamed,
  type Frame,
} from '../../../src/net/framing.js';

const bytes = (...xs: number[]): Uint8Array => Uint8Array.from(xs);
const plain = (f: Frame): { kind: FrameKind; id: number; payload: number[] } => ({ kind: f.kind, id: f.id, payload: [...f.payload] });

describe('encodeFrame', () => {
  it('writes length (kind + id + payload), kind, big-endian id, payload', () => {
    const f = encodeFrame(FrameKind.Request, 0x01020304, bytes(0xaa, 0xbb));
    assert.deepEqual([...f], [0, 0, 0, 7, FrameKind.Request, 1, 2, 3, 4, 0xaa, 0xbb]);
  });

  it('takes ids as unsigned 32-bit', () => {
    assert.deepEqual([...encodeFrame(FrameKind.Ping, 0xffffffff, bytes()).subarray(5)], [0xff, 0xff, 0xff, 0xff]);
    assert.deepEqual([...encodeFrame(FrameKind.Ping, -1, bytes()).subarray(5)], [0xff, 0xff, 0xff, 0xff]);
  });
});

describe('FrameDecoder', () => {
  const frames: [FrameKind, number, Uint8Array][] = [
    [FrameKind.Hello, 0, encodeJson({ hello: 'world' })],
    [FrameKind.Request, 1, encodeNamed('status', bytes())],
    [FrameKind.Ping, 2, bytes()],
    [FrameKind.Response, 1, Uint8Array.from({ length: 300 }, (_, i) => i & 0xff)],
    [FrameKind.Error, 0xfffffffe, encodeJson({ code: 'X', message: 'y' })],
    [FrameKind.Message, 0, encodeNamed('proto', bytes(9, 8, 7))],
  ];
  const wire = Buffer.concat(frames.map(([k, id, p]) => encodeFrame(k, id, p)));
  const expected = frames.map(([kind, id, p]) => ({ kind, id, payload: [...p] }));

  it('decodes several frames from one chunk', () => {
    assert.deepEqual(new FrameDecoder().push(wire).map(plain), expected);
  });

  it('decodes the same frames whatever byte the stream is split at', () => {
    for (let cut = 0; cut <= wire.length; cut++) {
      const d = new FrameDecoder();
      const out = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))].map(plain);
      assert.deepEqual(out, expected, `split at ${cut}`);
    }
  });

  it('decodes a stream delivered one byte at a time, and split at every pair of points', () => {
    const d = new FrameDecoder();
    const out: Frame[] = [];
    for (let i = 0; i < wire.length; i++) out.push(...d.push(wire.subarray(i, i + 1)));
    assert.deepEqual(out.map(plain), expected);
    const small = wire.subarray(0, 60);
    const smallExpected = new FrameDecoder().push(small).map(plain);
    for (let a = 0; a <= small.length; a++) {
      for (let b = a; b <= small.length; b++) {
        const d2 = new FrameDecoder();
        const got = [...d2.push(small.subarray(0, a)), ...d2.push(small.subarray(a, b)), ...d2.push(small.subarray(b))].map(plain);
        assert.deepEqual(got, smallExpected, `split at ${a} and ${b}`);
      }
    }
  });

  it('holds back an incomplete frame until the rest arrives', () => {
    const d = new FrameDecoder();
    const f = encodeFrame(FrameKind.Response, 7, bytes(1, 2, 3));
    assert.deepEqual(d.push(f.subarray(0, f.length - 1)), []);
    assert.deepEqual(d.push(f.subarray(f.length - 1)).map(plain), [{ kind: FrameKind.Response, id: 7, payload: [1, 2, 3] }]);
  });

  it('rejects a length above MAX_FRAME_BYTES before buffering it', () => {
    const head = Buffer.alloc(4);
    head.writeUInt32BE(MAX_FRAME_BYTES + 1);
    assert.throws(
      () => new FrameDecoder().push(head),
      (e: unknown) => e instanceof FrameError && /bad frame length/.test(e.message),
    );
    const at = Buffer.alloc(9);
    at.writeUInt32BE(MAX_FRAME_BYTES);
    at.writeUInt8(FrameKind.Ping, 4);
    assert.deepEqual(new FrameDecoder().push(at), [], 'exactly the maximum is allowed (and waits for its bytes)');
  });

  it('rejects a length too short to hold kind and id', () => {
    for (const len of [0, 1, 4]) {
      const f = Buffer.alloc(4 + 5);
      f.writeUInt32BE(len);
      assert.throws(() => new FrameDecoder().push(f), FrameError, `length ${len}`);
    }
  });

  it('rejects an unknown kind', () => {
    for (const kind of [0, 9, 255]) {
      const f = encodeFrame(FrameKind.Ping, 1, bytes());
      f.writeUInt8(kind, 4);
      assert.throws(
        () => new FrameDecoder().push(f),
        (e: unknown) => e instanceof FrameError && e.message === `unknown frame kind ${kind}`,
      );
    }
  });
});

describe('named payloads and JSON', () => {
  it('round-trip name and body, including UTF-8 names and empty bodies', () => {
    for (const [name, body] of [
      ['status', bytes()],
      ['dkg.round1', bytes(0, 1, 2, 255)],
      ['clé', bytes(5)],
      ['', bytes(1)],
    ] as const) {
      const d = decodeNamed(encodeNamed(name, body));
      assert.equal(d.name, name);
      assert.deepEqual([...d.body], [...body]);
    }
  });

  it('refuse a name over 65535 bytes, short or truncated payloads, and invalid UTF-8', () => {
    assert.throws(() => encodeNamed('x'.repeat(0x10000), bytes()), FrameError);
    assert.equal(decodeNamed(encodeNamed('x'.repeat(0xffff), bytes(1))).name.length, 0xffff);
    assert.throws(() => decodeNamed(bytes(0)), /too short/);
    assert.throws(() => decodeNamed(bytes(0, 5, 0x61)), /truncated/);
    assert.throws(() => decodeNamed(bytes(0, 1, 0xff)), TypeError);
  });

  it('JSON round-trips, and invalid JSON throws', () => {
    assert.deepEqual(decodeJson(encodeJson({ a: [1, 'two', null] })), { a: [1, 'two', null] });
    assert.throws(() => decodeJson(bytes(0x7b)), SyntaxError);
  });
});
