/**
 * A presignature signs once, also against a malicious EP (docs/protocols.md §3.6): an EP that
 * sends one psid twice at once, under two session ids and for two messages, would get two online
 * shares of one nonce and with them the key. A real Partner key service (its ProtocolHost and an
 * SQLite store with its writer thread) receives both requests back to back: both sessions read
 * the stored presignature before either deletes it, and the store's delete is the claim that lets
 * only one of them answer.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { toHex } from '../../../src/crypto/encoding.js';
import { createEcdsaOnlineCoordinator, encodePresig } from '../../../src/protocols/ecdsa.js';
import { ABORT_TOPIC, PROTO_TOPIC } from '../../../src/service/protocol-host.js';
import { shareToRecord } from '../../../src/service/share-codec.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import { dealKey, presigStores, seededRng } from '../../support/ec-test-keys.js';
import { partnerUnderTest } from '../../support/partner-under-test.js';

const TRIPLET = 'triplet-claim';
const dir = mkdtempSync(join(tmpdir(), 'ekm-presig-claim-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('pool-mode online signing: one presignature, one answer', () => {
  it('a psid sent twice at once under two sids gets one online message from the Partner, and the other session fails on the claim', async () => {
    const key = dealKey('ecdsa-p256', { keyId: 'k-claim' });
    const presigs = presigStores(key, 1, 'claim');
    const [psid] = [...presigs[2].shares.keys()];
    const store = SqliteStore.open(join(dir, 'partner.db'), { create: true, barrier: new Barrier(randomBytes(32)), writerThread: true });
    try {
      await store.applyKeyWrites([{ op: 'key-create', keyId: key.pub.keyId, alg: key.alg, share: shareToRecord(key.shares[2]) }]);
      await store.applyKeyWrites([{ op: 'key-activate', keyId: key.pub.keyId }]);
      const presig2 = presigs[2].shares.get(psid!)!;
      await store.applyKeyWrites([
        { op: 'presig-put', psid: psid!, keyId: key.pub.keyId, epoch: presig2.epoch, secret: encodePresig(presig2) },
      ]);

      const { sent, log, deliver } = partnerUnderTest(store, TRIPLET);

      // The malicious EP: its own share of the presignature, used for two messages under two sids.
      const requests = ['pay Alice', 'pay Mallory'].map((m, i) => {
        const ep = createEcdsaOnlineCoordinator({
          share: key.shares[1],
          tripletId: TRIPLET,
          rng: seededRng(`ep-${i}`),
          presig: presigs[1].shares.get(psid!)!,
          input: { kind: 'message', hash: 'sha256', data: new TextEncoder().encode(m) },
        });
        return ep.start().send.find((e) => e.to === 2)!;
      });
      assert.notEqual(toHex(requests[0]!.sid), toHex(requests[1]!.sid));
      for (const r of requests) deliver(r);
      await new Promise((r) => setTimeout(r, 500));

      const answered = sent.filter((s) => s.to === 'aux' && s.topic === PROTO_TOPIC);
      assert.equal(answered.length, 1, `the Partner answered ${answered.length} sessions for one presignature`);
      assert.equal(await store.getPresig(psid!), undefined, 'the presignature is gone');
      const refused = log.filter((l) => l.msg === 'presignature requested twice: this session is refused');
      assert.equal(refused.length, 1, 'the second session failed on the claim, logged as a security event');
      assert.equal(refused[0]!.event, 'security');
      assert.ok(
        sent.some((s) => s.to === 'ep' && s.topic === ABORT_TOPIC && s.sid !== answered[0]!.sid),
        'the EP is told that session aborted',
      );
    } finally {
      await store.close();
    }
  });
});
