/**
 * The Partner keeps a key's policy whatever the EP asks (docs/protocols.md §3 PS0): a real Partner key service
 * (ProtocolHost, SQLite store with its writer thread) receives signing requests that a
 * compromised EP built itself, with its own share, for a key past its notAfter. It refuses them
 * before any work, and tells the EP; the same requests for a key still in its time are answered.
 * In the store the policy is bound to the sealed share, so editing it in the database makes the
 * share fail to open instead of lifting the policy.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { toHex } from '../../../src/crypto/encoding.js';
import { createEcdsaPresignParty, createEcdsaSignCoordinator } from '../../../src/protocols/ecdsa.js';
import { createFrostCoordinator } from '../../../src/protocols/frost.js';
import type { KeyShare } from '../../../src/protocols/key-share.js';
import type { Envelope } from '../../../src/protocols/types.js';
import { ABORT_TOPIC, PROTO_TOPIC } from '../../../src/service/protocol-host.js';
import { shareToRecord } from '../../../src/service/share-codec.js';
import { Barrier } from '../../../src/store/barrier.js';
import { SqliteStore } from '../../../src/store/sqlite.js';
import { dealKey, seededRng } from '../../support/ec-test-keys.js';
import { type PartnerUnderTest, partnerUnderTest } from '../../support/partner-under-test.js';

const TRIPLET = 'triplet-policy';
const dir = mkdtempSync(join(tmpdir(), 'ekm-policy-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 300));

async function partner(path: string, barrier: Barrier): Promise<{ store: SqliteStore } & PartnerUnderTest> {
  const store = SqliteStore.open(path, { create: true, barrier, writerThread: true });
  return { store, ...partnerUnderTest(store, TRIPLET) };
}

async function holdKey(store: SqliteStore, share: KeyShare): Promise<void> {
  await store.applyKeyWrites([{ op: 'key-create', keyId: share.keyId, alg: share.alg, share: shareToRecord(share) }]);
  await store.applyKeyWrites([{ op: 'key-activate', keyId: share.keyId }]);
}

/** What a compromised EP sends the Partner to sign `m` with the key: its own round-0 request. */
function requests(ep: KeyShare): Envelope[] {
  const data = new TextEncoder().encode('pay Mallory');
  const parties = ep.alg.startsWith('ecdsa-')
    ? [
        createEcdsaSignCoordinator({
          share: ep,
          tripletId: TRIPLET,
          rng: seededRng(`e-${ep.keyId}`),
          input: { kind: 'message', hash: 'sha256', data },
        }),
        // A presignature made now could sign later: the pool's sessions are refused as well.
        createEcdsaPresignParty({ share: ep, tripletId: TRIPLET, rng: seededRng(`p-${ep.keyId}`) }),
      ]
    : [createFrostCoordinator({ share: ep, tripletId: TRIPLET, helper: 2, message: data, rng: seededRng(`f-${ep.keyId}`) })];
  return parties.flatMap((party) => party.start().send.filter((e) => e.to === 2 && e.round === 0));
}

describe('key policy at the Partner', () => {
  it('a signing request for a key past its notAfter is refused before any work, whatever the EP; one in time is answered', async () => {
    const p = await partner(join(dir, 'partner.db'), new Barrier(randomBytes(32)));
    try {
      for (const alg of ['eddsa-ed25519', 'ecdsa-p256'] as const) {
        const expired = dealKey(alg, { keyId: `expired-${alg}` });
        const inTime = dealKey(alg, { keyId: `in-time-${alg}` });
        await holdKey(p.store, { ...expired.shares[2], notAfter: Date.now() - 1000 });
        await holdKey(p.store, { ...inTime.shares[2], notAfter: Date.now() + 3_600_000 });

        const refused = requests({ ...expired.shares[1], notAfter: Date.now() + 3_600_000 }); // the EP claims otherwise: irrelevant
        const answered = requests(inTime.shares[1]);
        p.sent.length = 0;
        for (const r of [...refused, ...answered]) p.deliver(r);
        await settle();
        for (const r of refused) {
          const sid = toHex(r.sid);
          assert.ok(!p.sent.some((s) => s.topic === PROTO_TOPIC && s.sid === sid), `${alg}: the Partner sent nothing for the expired key`);
          assert.ok(
            p.sent.some((s) => s.to === 'ep' && s.topic === ABORT_TOPIC && s.sid === sid),
            `${alg}: the EP is told`,
          );
        }
        for (const r of answered) {
          assert.ok(
            p.sent.some((s) => s.topic === PROTO_TOPIC && s.sid === toHex(r.sid)),
            `${alg}: the key in its time signs`,
          );
        }
      }
    } finally {
      await p.store.close();
    }
  });

  it('the policy is bound to the sealed share: a notAfter edited in the database makes the share fail to open', async () => {
    const path = join(dir, 'edited.db');
    const barrier = new Barrier(randomBytes(32));
    const key = dealKey('ecdsa-p256', { keyId: 'edited' });
    let store = SqliteStore.open(path, { create: true, barrier });
    await holdKey(store, { ...key.shares[2], notAfter: Date.now() - 1000 });
    assert.equal((await store.getShares('edited'))[0]!.notAfter! < Date.now(), true);
    await store.close();

    const db = new Database(path);
    const row = db.prepare("SELECT public_data FROM key_shares WHERE key_id = 'edited'").get() as { public_data: string };
    const pub = JSON.parse(row.public_data) as Record<string, string>;
    for (const edit of [
      { ...pub, notAfter: String(Date.now() + 3_600_000) },
      Object.fromEntries(Object.entries(pub).filter(([k]) => k !== 'notAfter')),
    ]) {
      db.prepare("UPDATE key_shares SET public_data = ? WHERE key_id = 'edited'").run(JSON.stringify(edit));
      store = SqliteStore.open(path, { create: false, barrier });
      await assert.rejects(store.getShares('edited'), /failed authentication/);
      await store.close();
    }
    db.close();
  });
});
