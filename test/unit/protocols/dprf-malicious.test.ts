/**
 * Malicious-party tests for the DPRF (docs/protocols.md §8.1, §13): every tamper case on the request and on the
 * helper's partials ends in the correct keys or an abort; a wrong V_h, a bad proof, a proof from
 * another session or position, or a helper computing with a wrong share aborts and names it.
 * Cross-checked mode (both helpers, no proofs): the same matrix, and any wrong partial from either
 * helper aborts with `partials-inconsistent` (no suspect: a proved session with that helper names it).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { getCurve, type Point } from '../../../src/crypto/curves.js';
import { bytesEqual, decodeEnc, enc, encList } from '../../../src/crypto/encoding.js';
import { dprfInput, dprfPoint, newObjectNonce } from '../../../src/protocols/dprf.js';
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

describe('DPRF cross-checked mode (both helpers, no proofs)', () => {
  const CROSS_NONCES = [newObjectNonce(rng), newObjectNonce(rng), newObjectNonce(rng)];
  const expected = dprfKeys(runDprf(KEY, 2, CROSS_NONCES, { seed: 'cross', nonce: NONCE })) as readonly Uint8Array[];

  /** Rewrites helper `h`'s partial of object `i`. */
  function rewritePartial(h: 2 | 3, i: number, f: (V: Uint8Array) => Uint8Array): Interceptor {
    return (m: Envelope) => {
      if (m.round !== 1 || m.from !== h) return [m];
      const items = decodeEnc(m.body);
      items[i] = f(items[i]!);
      return [{ ...m, body: encList(items) }];
    };
  }

  /** Replaces helper `h`'s partial of every object i with `f(i)`. */
  function rewritePartialAt(h: 2 | 3, f: (i: number) => Uint8Array): Interceptor {
    return (m: Envelope) => (m.round !== 1 || m.from !== h ? [m] : [{ ...m, body: encList(decodeEnc(m.body).map((_, i) => f(i))) }]);
  }

  /** Whether some P-256 point has x-coordinate x. */
  function validX(x: bigint): boolean {
    try {
      curve.Point.fromBytes(Uint8Array.of(0x02, ...curve.Point.Fp.toBytes(x)));
      return true;
    } catch {
      return false;
    }
  }

  it('releases the keys of proved mode', () => {
    assert.ok(Array.isArray(expected));
    assert.deepEqual(dprfKeys(runDprf(KEY, 'both', CROSS_NONCES, { seed: 'cross', nonce: NONCE })), expected);
  });

  it('every message × mutation × field: correct keys or abort', (t) => {
    const clean = runDprf(KEY, 'both', CROSS_NONCES, { seed: 'cross', nonce: NONCE });
    const earlier = runDprf(KEY, 'both', CROSS_NONCES, { seed: 'earlier' }).transcript;
    const cases = mutationCases(curve, clean.transcript, earlier);
    let released = 0;
    for (const c of cases) {
      const out = dprfKeys(runDprf(KEY, 'both', CROSS_NONCES, { seed: 'cross', nonce: NONCE, intercept: c.intercept }));
      if (Array.isArray(out)) {
        assert.deepEqual(out, expected, `${c.name}: released keys are the right ones`);
        released++;
      }
    }
    t.diagnostic(`${cases.length} cases, ${released} released (correct), ${cases.length - released} aborted or stalled`);
    assert.ok(cases.length - released > cases.length / 2);
  });

  it('a wrong partial from either helper, in any position, aborts with partials-inconsistent', () => {
    const Fp = curve.Point.Fp;
    /** The x-coordinate of f(P), P being the point with x-coordinate x (either sign: f must not care). */
    const onPoint = (f: (P: Point) => Point) => (x: Uint8Array) =>
      Fp.toBytes(f(curve.Point.fromBytes(Uint8Array.of(0x02, ...x))).toAffine().x);
    const cases: [string, Interceptor][] = [];
    for (const h of [2, 3] as const) {
      cases.push([
        `helper ${h}: x(V + G)`,
        rewritePartial(
          h,
          0,
          onPoint((P) => P.add(curve.G)),
        ),
      ]);
      cases.push([
        `helper ${h}: x(V − G)`,
        rewritePartial(
          h,
          1,
          onPoint((P) => P.subtract(curve.G)),
        ),
      ]);
      cases.push([
        `helper ${h}: x(2·V)`,
        rewritePartial(
          h,
          2,
          onPoint((P) => P.double()),
        ),
      ]);
      cases.push([
        `helper ${h}: partials swapped`,
        (m) => {
          if (m.round !== 1 || m.from !== h) return [m];
          const items = decodeEnc(m.body);
          return [{ ...m, body: encList([items[1]!, items[0]!, items[2]!]) }];
        },
      ]);
    }
    for (const [name, intercept] of cases) {
      const run = runDprf(KEY, 'both', CROSS_NONCES, { seed: 'cross', nonce: NONCE, intercept });
      assert.equal(dprfKeys(run), 'aborted', name);
      assert.equal(run.aborts.get(1)!.reason, 'partials-inconsistent', name);
      assert.equal(run.aborts.get(1)!.suspect, null, name);
    }
  });

  it('the check rests on CDH: a Partner that knew c·U (here from the dealer) would pass, one that does not, cannot', () => {
    // Documents the module comment's argument: the one wrong x the check accepts from the Partner
    // is x(c·U), and computing c·U from c·G and the hashed U is a CDH instance. The test knows c
    // (it dealt the key); no server does.
    const c = curve.Fn.sub(KEY.shares[2].share, KEY.shares[1].share);
    const U = (i: number): Point => dprfPoint(dprfInput(KEY.shares[1].keyId, CROSS_NONCES[i]!));
    const xOf = (P: Point): Uint8Array => curve.Point.Fp.toBytes(P.toAffine().x);
    const withC = runDprf(KEY, 'both', CROSS_NONCES, {
      seed: 'cross',
      nonce: NONCE,
      intercept: rewritePartialAt(2, (i) => xOf(U(i).multiply(c))),
    });
    const keys = dprfKeys(withC);
    assert.ok(Array.isArray(keys) && keys.every((k, i) => !bytesEqual(k, expected[i]!)), 'knowing c, a wrong key would pass');
    const guessed = runDprf(KEY, 'both', CROSS_NONCES, {
      seed: 'cross',
      nonce: NONCE,
      intercept: rewritePartialAt(2, (i) => xOf(U(i).multiply(curve.Fn.add(c, 1n)))),
    });
    assert.equal(dprfKeys(guessed), 'aborted');
  });

  it('a helper computing with a wrong share is caught by the check; proved mode then names it', () => {
    for (const h of [2, 3] as const) {
      const bad: DealtDprfKey = {
        k: KEY.k,
        shares: { ...KEY.shares, [h]: { ...KEY.shares[h], share: curve.Fn.add(KEY.shares[h].share, 1n) } },
      };
      const cross = runDprf(bad, 'both', CROSS_NONCES);
      assert.equal(dprfKeys(cross), 'aborted');
      assert.equal(cross.aborts.get(1)!.reason, 'partials-inconsistent');
      const proved = runDprf(bad, h, CROSS_NONCES);
      assert.equal(proved.aborts.get(1)!.suspect, h);
      assert.deepEqual(
        dprfKeys(runDprf(bad, h === 2 ? 3 : 2, CROSS_NONCES, { seed: 'cross', nonce: NONCE })),
        expected,
        'the honest helper still serves',
      );
    }
  });

  it('a partial that is not an x-coordinate (≥ p, wrong length; no point: the Partner) or a short list aborts and names its sender', () => {
    let noPoint = 1n;
    while (validX(noPoint)) noPoint++;
    for (const h of [2, 3] as const) {
      const cases: [Uint8Array, boolean][] = [
        // [partial, whether EP can tell it is malformed]: EP lifts the Partner's x to a point; the
        // Aux's x is only compared with x-coordinates of points, so one with no point just fails
        // the check (no suspect: a proved session with the Aux names it).
        [curve.Point.Fp.toBytes(noPoint), h === 2],
        [new Uint8Array(32).fill(0xff), true],
        [new Uint8Array(33).fill(1), true],
        [new Uint8Array(31).fill(1), true],
      ];
      for (const [bad, named] of cases) {
        const notX = runDprf(KEY, 'both', CROSS_NONCES, { intercept: rewritePartial(h, 1, () => bad) });
        assert.equal(dprfKeys(notX), 'aborted');
        if (named) assert.equal(notX.aborts.get(1)!.suspect, h);
        else assert.equal(notX.aborts.get(1)!.reason, 'partials-inconsistent');
      }
      const short = runDprf(KEY, 'both', CROSS_NONCES, {
        intercept: (m) => (m.round === 1 && m.from === h ? [{ ...m, body: encList(decodeEnc(m.body).slice(1)) }] : [m]),
      });
      assert.equal(short.aborts.get(1)!.suspect, h);
      assert.match(short.aborts.get(1)!.reason, /one partial per object/);
    }
  });
});
