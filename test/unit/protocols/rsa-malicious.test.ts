/**
 * Malicious-party tests for threshold RSA (docs/protocols.md §12.1, §13): every tamper case on
 * the request and on the helper's partial ends in a correct result or in an abort — a released
 * signature always verifies under the public key, a released plaintext is always the encrypted
 * one. A wrong partial (or a helper computing with a wrong piece) aborts and names the helper.
 */
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { describe, it } from 'node:test';
import { decodeEnc, enc } from '../../../src/crypto/encoding.js';
import { addBytesCt, i2osp, os2ip } from '../../../src/crypto/modexp.js';
import { hash } from '../../../src/crypto/rsa-padding.js';
import type { RsaKeyShare, RsaOperation, RsaOutput } from '../../../src/protocols/rsa.js';
import type { Envelope } from '../../../src/protocols/types.js';
import type { Interceptor, RunResult } from '../../support/protocol-harness.js';
import { dealtRsaKey, rsaResult, rsaTestKey, runRsa } from '../../support/rsa-test-keys.js';

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);
const NONCE = new Uint8Array(32).fill(9);
const key = dealtRsaKey(2048);
const { publicKey } = rsaTestKey(2048);
const n = key.public.n;
const k = 256;

interface Case {
  readonly name: string;
  readonly intercept: Interceptor;
}

const setField = (body: Uint8Array, i: number, v: Uint8Array): Uint8Array => {
  const f = decodeEnc(body);
  f[i] = v;
  return enc(...f);
};

/** Valid-but-wrong k-byte integers replacing y (the helper's partial). */
function wrongPartials(y: bigint): [string, bigint][] {
  return [
    ['y+1', (y + 1n) % n],
    ['2y', (2n * y) % n],
    ['−y', n - y],
    ['y²', (y * y) % n],
    ['1', 1n],
    ['n−1', n - 1n],
    ['0', 0n],
    ['n', n],
    ['2^2048−1', (1n << 2048n) - 1n],
  ];
}

function cases(transcript: readonly Envelope[], earlier: readonly Envelope[]): Case[] {
  const out: Case[] = [];
  const at = (i: number, name: string, f: (m: Envelope) => Envelope[]): void => {
    out.push({ name: `#${i} r${transcript[i]!.round} ${name}`, intercept: (m, idx) => (idx === i ? f(m) : [m]) });
  };
  transcript.forEach((m, i) => {
    at(i, 'drop', () => []);
    at(i, 'duplicate', (x) => [x, x]);
    at(i, 'wrong-from', (x) => [{ ...x, from: 6 - x.from - x.to } as Envelope]);
    at(i, 'wrong-to', (x) => [{ ...x, to: 6 - x.from - x.to } as Envelope]);
    at(i, 'wrong-sid', (x) => {
      const sid = x.sid.slice();
      sid[3]! ^= 4;
      return [{ ...x, sid }];
    });
    at(i, 'wrong-proto', (x) => [{ ...x, proto: 'frost-sign' }]);
    at(i, 'truncated body', (x) => [{ ...x, body: x.body.subarray(0, x.body.length - 1) }]);
    const old = earlier[i];
    if (old) {
      at(i, 'replay', () => [old]);
      at(i, 'old body', (x) => [{ ...x, body: old.body }]);
    }
    decodeEnc(m.body).forEach((f, j) => {
      if (f.length === 0) return;
      at(i, `flip field ${j}`, (x) => {
        const v = decodeEnc(x.body)[j]!.slice();
        v[v.length - 1]! ^= 1;
        return [{ ...x, body: setField(x.body, j, v) }];
      });
    });
    if (m.round === 1) {
      for (const [name] of wrongPartials(1n)) {
        at(i, `partial := ${name}`, (x) => {
          const y = os2ip(decodeEnc(x.body)[0]!);
          const v = wrongPartials(y).find(([w]) => w === name)![1];
          return [{ ...x, body: enc(i2osp(v, Math.max(k, Math.ceil(v.toString(16).length / 2)))) }];
        });
      }
    }
  });
  return out;
}

function judge(op: RsaOperation, msg: Uint8Array, run: RunResult<RsaOutput, never>, name: string): 'released' | 'aborted' | 'stalled' {
  const r = rsaResult(run);
  if (r instanceof Uint8Array) {
    if (op.kind === 'sign') {
      const vk = op.scheme === 'pss' ? { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 } : publicKey;
      assert.ok(crypto.verify(op.hash, msg, vk, r), `${name}: a released signature verifies`);
    } else {
      assert.deepEqual(r, msg, `${name}: a released plaintext is the encrypted one`);
    }
    return 'released';
  }
  if (r === 'decryption-failed') assert.fail(`${name}: tampering never turns into a padding verdict`);
  return r;
}

describe('RSA tamper matrix', () => {
  const msg = utf8('tamper me');
  const ops: [string, RsaOperation, Uint8Array][] = [
    ['PKCS#1 sign', { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest: hash('sha256', msg) }, msg],
    ['PSS sign', { kind: 'sign', scheme: 'pss', hash: 'sha256', digest: hash('sha256', msg) }, msg],
    [
      'OAEP decrypt',
      {
        kind: 'decrypt',
        scheme: 'oaep',
        hash: 'sha256',
        ciphertext: new Uint8Array(
          crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, msg),
        ),
      },
      msg,
    ],
  ];
  for (const [label, op, expected] of ops) {
    for (const helper of [2, 3] as const) {
      it(`${label}, helper ${helper}: every case releases a correct result or aborts`, (t) => {
        const clean = runRsa(key.shares, helper, op, { seed: 'mal', nonce: NONCE });
        assert.equal(judge(op, expected, clean, 'clean'), 'released');
        const earlier = runRsa(key.shares, helper, op, { seed: 'earlier' }).transcript;
        const all = cases(clean.transcript, earlier);
        const results = all.map((c) =>
          judge(op, expected, runRsa(key.shares, helper, op, { seed: 'mal', nonce: NONCE, intercept: c.intercept }), c.name),
        );
        const count = (r: string): number => results.filter((x) => x === r).length;
        t.diagnostic(
          `${all.length} cases: ${count('released')} released (correct), ${count('aborted')} aborted, ${count('stalled')} stalled`,
        );
        assert.ok(count('aborted') > all.length / 2);
      });
    }
  }

  it('a wrong partial aborts with reason result-invalid and names the helper', () => {
    const op: RsaOperation = { kind: 'sign', scheme: 'pkcs1v15', hash: 'sha256', digest: hash('sha256', msg) };
    for (const helper of [2, 3] as const) {
      const run = runRsa(key.shares, helper, op, {
        intercept: (m) => (m.round === 1 ? [{ ...m, body: enc(i2osp((os2ip(decodeEnc(m.body)[0]!) * 2n) % n, k)) }] : [m]),
      });
      assert.equal(rsaResult(run), 'aborted');
      assert.equal(run.aborts.get(1)!.reason, 'result-invalid');
      assert.equal(run.aborts.get(1)!.suspect, helper);
    }
  });

  it('a helper computing with a wrong piece c (off by one, or another key’s) is caught: abort, no output', () => {
    const op: RsaOperation = { kind: 'sign', scheme: 'pss', hash: 'sha384', digest: hash('sha384', msg) };
    const other = dealtRsaKey(2048, 'other-dealing');
    const len = key.shares[2].pieces.c!.length;
    const bad: [string, RsaKeyShare][] = [
      ['c + 1', { ...key.shares[2], pieces: { ...key.shares[2].pieces, c: addBytesCt(key.shares[2].pieces.c!, Uint8Array.of(1), len) } }],
      ['c of another dealing', { ...key.shares[2], pieces: { ...key.shares[2].pieces, c: other.shares[2].pieces.c! } }],
    ];
    for (const [name, share] of bad) {
      const run = runRsa({ ...key.shares, 2: share }, 2, op);
      assert.equal(rsaResult(run), 'aborted', name);
      assert.equal(run.aborts.get(1)!.suspect, 2, name);
    }
  });

  it('a malicious EP request for another digest or salt yields no signature on it (EP checks its own EM)', () => {
    const op: RsaOperation = { kind: 'sign', scheme: 'pss', hash: 'sha256', digest: hash('sha256', msg) };
    for (const field of [3, 4]) {
      const run = runRsa(key.shares, 2, op, {
        intercept: (m) => {
          if (m.round !== 0) return [m];
          const f = decodeEnc(m.body);
          const opf = decodeEnc(f[6]!);
          opf[field] = hash('sha256', utf8(`other ${field}`));
          return [{ ...m, body: setField(m.body, 6, enc(...opf)) }];
        },
      });
      assert.equal(rsaResult(run), 'aborted');
    }
  });
});
