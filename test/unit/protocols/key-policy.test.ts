/**
 * A key's policy (src/protocols/key-policy.ts): its strict wire form, and that the DKG gives it
 * to every party's share, refresh keeps it, and Aux re-derivation hands it to the new Aux, so
 * each of the three servers can refuse on its own what the policy forbids.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeEnc, enc } from '../../../src/crypto/encoding.js';
import { decodeKeyPolicy, encodeKeyPolicy, KeyPolicyError, MAX_NOT_AFTER, signingRefusal } from '../../../src/protocols/key-policy.js';
import type { Envelope, PartyId } from '../../../src/protocols/types.js';
import { ALL, applyPersisted, auxParties, KeyStore, refreshParties, runDkg, storesFromDkg } from '../../support/threshold-runs.js';
import { runLocal } from '../../support/protocol-harness.js';

const NOT_AFTER = Date.parse('2031-05-01T12:00:00Z');

describe('key policy: wire form', () => {
  it('round-trips with and without notAfter', () => {
    assert.deepEqual(decodeKeyPolicy(encodeKeyPolicy({})), {});
    assert.deepEqual(decodeKeyPolicy(encodeKeyPolicy({ notAfter: NOT_AFTER })), { notAfter: NOT_AFTER });
    assert.deepEqual(decodeKeyPolicy(encodeKeyPolicy({ notAfter: MAX_NOT_AFTER })), { notAfter: MAX_NOT_AFTER });
  });

  it('refuses anything else', () => {
    const eight = (n: bigint): Uint8Array => {
      const b = new Uint8Array(8);
      new DataView(b.buffer).setBigUint64(0, n);
      return b;
    };
    for (const bad of [
      new Uint8Array([1, 2]),
      enc('policy/v1'),
      enc('policy/v2', new Uint8Array(0)),
      enc('policy/v1', new Uint8Array(7)),
      enc('policy/v1', eight(0n)),
      enc('policy/v1', eight(BigInt(MAX_NOT_AFTER) + 1n)),
      enc('policy/v1', new Uint8Array(0), new Uint8Array(0)),
    ]) {
      assert.throws(() => decodeKeyPolicy(bad), KeyPolicyError);
    }
    assert.throws(() => encodeKeyPolicy({ notAfter: 1.5 }), KeyPolicyError);
  });

  it('refuses to sign only after notAfter', () => {
    assert.equal(signingRefusal({}, Date.now()), null);
    assert.equal(signingRefusal({ notAfter: NOT_AFTER }, NOT_AFTER), null);
    assert.match(signingRefusal({ notAfter: NOT_AFTER }, NOT_AFTER + 1) ?? '', /expired at 2031-05-01T12:00:00.000Z/);
  });
});

describe('key policy: every server holds it', () => {
  it('the DKG gives notAfter to all three shares; refresh keeps it; a re-derived Aux gets it', () => {
    const policy = encodeKeyPolicy({ notAfter: NOT_AFTER });
    const dkg = runDkg('ecdsa-p256', 'kp1', 'policy-dkg', undefined, policy).run;
    assert.equal(dkg.aborts.size, 0);
    for (const id of ALL) assert.equal(dkg.outputs.get(id)!.notAfter, NOT_AFTER, `party ${id}`);

    const stores = storesFromDkg([dkg.outputs]);
    const refresh = runLocal(refreshParties(stores, ['kp1'], 'policy-refresh'));
    assert.equal(refresh.aborts.size, 0);
    applyPersisted(stores, refresh.persisted);
    for (const id of ALL) {
      const s = stores[id].current.get('kp1')!;
      assert.equal(s.epoch, 1);
      assert.equal(s.notAfter, NOT_AFTER, `party ${id} after refresh`);
    }

    // A new, empty Aux: it learns the policy with its share, from EP and Partner.
    const fresh = { 1: stores[1], 2: stores[2], 3: new KeyStore(3) } as Record<PartyId, KeyStore>;
    const aux = runLocal(auxParties(fresh, ['kp1'], 'policy-aux', false));
    assert.equal(aux.aborts.size, 0, [...aux.aborts.values()].map((e) => e.message).join('; '));
    applyPersisted(fresh, aux.persisted);
    assert.equal(fresh[3].current.get('kp1')!.notAfter, NOT_AFTER);
  });

  it('a key without a policy has none anywhere', () => {
    const dkg = runDkg('eddsa-ed25519', 'kp2', 'policy-none').run;
    for (const id of ALL) assert.equal(dkg.outputs.get(id)!.notAfter, undefined);
  });

  it('a malformed policy: the EP refuses to send it; a helper that receives one aborts, naming the EP', () => {
    const bad = enc('policy/v1', new Uint8Array(3));
    const own = runDkg('ecdsa-p256', 'kp3', 'policy-bad-ep', undefined, bad).run;
    assert.ok(/policy/.test(own.aborts.get(1)?.reason ?? ''), own.aborts.get(1)?.reason);
    assert.equal(own.transcript.length, 0, 'nothing left the EP');

    // An EP that sends one anyway: its round-0 requests carry the malformed policy instead.
    const swap = (m: Envelope): Envelope[] => {
      if (m.round !== 0 || m.from !== 1) return [m];
      const f = decodeEnc(m.body);
      return [{ ...m, body: enc(...f.slice(0, 7), enc(bad)) }];
    };
    const dkg = runDkg('ecdsa-p256', 'kp4', 'policy-bad-helpers', swap).run;
    for (const id of [2, 3] as const) {
      const a = dkg.aborts.get(id);
      assert.ok(a && a.suspect === 1 && /policy/.test(a.reason), `party ${id}: ${a?.reason}`);
    }
    assert.equal(dkg.outputs.size, 0);
  });
});
