/**
 * Malicious-party tests for the DPRF (§7, §8): every tamper case on the request and on the
 * helper's partials ends in the correct keys or an abort; a wrong V_h, a bad proof, a proof from
 * another session or position, or a helper computing with a wrong share aborts and names it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getCurve } from '../../../src/crypto/curves.js';
import { decodeEnc, enc, encList } from '../../../src/crypto/encoding.js';
import { newObjectNonce } from '../../../src/protocols/dprf.js';
import type { Envelope } from '../../../src/protocols/types.js';
import { mutationCases, seededRng } from '../../support/ec-test-keys.js';
import type { Interceptor } from '../../support/protocol-harness.js';
import { dealDprfKey, dprfKeys, runDprf, type DealtDprfKey } from '../../support/rsa-test-keys.js';

const curve = getCurve('p256');
const KEY = dealDprfKey('aes-mal');
const rng = seededRng('dprf-mal');
const NONCES = [newObjectNonce(rng), newObjectNonce(rng)];
const NONCE = new Uint8Array(32).fill(5);

/** Rewrites item `i`'s fields (V_h, proof) of the helper's reply. */
function rewriteItem(i: number, f: (fields: Uint8Array[]) => Uint8Array[]): Interceptor {
  return (m: Envelope) => {
    if (m.round !== 1) return [m];
    const items = decodeEnc(m.body);
    items[i] = enc(...f(decodeEnc(items[i]!)));
    return [{ ...m, body: encList(items) }];
  };
}

function judge(key: DealtDprfKey, expected: readonly Uint8Array[], intercept: Interceptor, name: string, seed = 'mal'): string {
  const out = dprfKeys(runDprf(key, 2, NONCES, { seed, nonce: NONCE, intercept }));
  if (Array.isArray(out)) {
    assert.deepEqual(out, expected, `${name}: released keys are the right ones`);
    return 'released';
  }
  return out as string;
}

describe('DPRF tamper matrix', () => {
  it('every message × mutation × field: correct keys or abort', (t) => {
    for (const helper of [2, 3] as const) {
      const clean = runDprf(KEY, helper, NONCES, { seed: 'mal', nonce: NONCE });
      const expected = dprfKeys(clean) as readonly Uint8Array[];
      assert.ok(Array.isArray(expected));
      const earlier = runDprf(KEY, helper, NONCES, { seed: 'earlier' }).transcript;
      const cases = mutationCases(curve, clean.transcript, earlier);
      const results = cases.map((c) => {
        const out = dprfKeys(runDprf(KEY, helper, NONCES, { seed: 'mal', nonce: NONCE, intercept: c.intercept }));
        if (Array.isArray(out)) {
          assert.deepEqual(out, expected, `${c.name}: released keys are the right ones`);
          return 'released';
        }
        return out;
      });
      const count = (r: string): number => results.filter((x) => x === r).length;
      t.diagnostic(
        `helper ${helper}: ${cases.length} cases, ${count('released')} released (correct), ${count('aborted')} aborted, ${count('stalled')} stalled`,
      );
      assert.ok(count('aborted') > cases.length / 2);
    }
  });

  it('a wrong V_h or a tampered proof aborts with proof-invalid and names the helper', () => {
    const expected = dprfKeys(runDprf(KEY, 2, NONCES, { seed: 'mal', nonce: NONCE })) as readonly Uint8Array[];
    const G = curve.G;
    const cases: [string, Interceptor][] = [
      ['V_h + G', rewriteItem(0, ([V, p]) => [curve.Point.fromBytes(V!).add(G).toBytes(), p!])],
      ['V_h doubled', rewriteItem(1, ([V, p]) => [curve.Point.fromBytes(V!).double().toBytes(), p!])],
      ['proof c + 1', rewriteItem(0, ([V, p]) => [V!, Uint8Array.from(p!, (b, i) => (i === 31 ? b ^ 1 : b))])],
      ['proof z + 1', rewriteItem(1, ([V, p]) => [V!, Uint8Array.from(p!, (b, i) => (i === 63 ? b ^ 1 : b))])],
      [
        'items swapped (proof bound to its position)',
        (m) => {
          if (m.round !== 1) return [m];
          const items = decodeEnc(m.body);
          return [{ ...m, body: encList([items[1]!, items[0]!]) }];
        },
      ],
    ];
    for (const [name, intercept] of cases) {
      const run = runDprf(KEY, 2, NONCES, { seed: 'mal', nonce: NONCE, intercept });
      assert.equal(dprfKeys(run), 'aborted', name);
      assert.equal(run.aborts.get(1)!.suspect, 2, name);
    }
    assert.equal(
      judge(KEY, expected, (m) => [m], 'clean'),
      'released',
    );
  });

  it('a proof replayed from another session (same objects) is refused', () => {
    const other = runDprf(KEY, 2, NONCES, { seed: 'other', nonce: new Uint8Array(32).fill(6) }).transcript[1]!;
    const run = runDprf(KEY, 2, NONCES, {
      seed: 'mal',
      nonce: NONCE,
      intercept: (m) => (m.round === 1 ? [{ ...m, body: other.body }] : [m]),
    });
    assert.equal(dprfKeys(run), 'aborted');
    assert.equal(run.aborts.get(1)!.reason, 'proof-invalid');
  });

  it('a helper computing with a wrong share cannot prove it: abort, suspect the helper', () => {
    const bad: DealtDprfKey = {
      k: KEY.k,
      shares: { ...KEY.shares, 3: { ...KEY.shares[3], share: curve.Fn.add(KEY.shares[3].share, 1n) } },
    };
    const run = runDprf(bad, 3, NONCES);
    assert.equal(dprfKeys(run), 'aborted');
    assert.equal(run.aborts.get(1)!.reason, 'proof-invalid');
    assert.equal(run.aborts.get(1)!.suspect, 3);
  });
});
