/**
 * The EP's USED mark of a pooled presignature commits while its requests travel
 * (SessionSpec.writesTrailSend, docs/protocols.md §3.4): the helpers' own durable claims are what
 * make a presignature single use, so the EP need not wait for its disk before sending. What must
 * still hold, on a real EP ProtocolHost with real parties: no signature is released before the
 * mark is durable, and a mark that fails (a refresh burnt the presignature meanwhile) releases
 * none at all, whatever the helpers answered.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import pino from 'pino';
import { EkmError } from '../../../src/errors.js';
import type { PeerManager, PeerRole } from '../../../src/net/peers.js';
import { PROTO_ONLINE, createEcdsaOnlineHelper, type EcdsaOutput, type SignedInput } from '../../../src/protocols/ecdsa.js';
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../../src/protocols/types.js';
import { InProcessRunner } from '../../../src/service/party-runner.js';
import { PROTO_TOPIC, ProtocolHost } from '../../../src/service/protocol-host.js';
import type { KeyStore, KeyWrite } from '../../../src/store/key-records.js';
import { dealKey, presigStores, seededRng } from '../../support/ec-test-keys.js';

const TRIPLET = 'triplet-ep-mark';
const settle = (ms = 50): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function pooledSign(
  markOutcome: 'commits' | 'fails',
): Promise<{ sentBeforeMark: number; releasedBeforeMark: boolean; result: Promise<EcdsaOutput> }> {
  const key = dealKey('ecdsa-p256', { keyId: `k-mark-${markOutcome}` });
  const presigs = presigStores(key, 1, `mark-${markOutcome}`);
  const psid = [...presigs[1].shares.values()][0]!.psid;
  const input: SignedInput = { kind: 'message', hash: 'sha256', data: new TextEncoder().encode('pay Alice') };

  let finishMark: (err?: Error) => void = () => {};
  const writes: KeyWrite[][] = [];
  const store = {
    applyKeyWrites: (w: readonly KeyWrite[]) => {
      if (w.length === 0) return Promise.resolve();
      writes.push([...w]);
      return new Promise<void>((resolve, reject) => {
        finishMark = (err) => (err ? reject(err) : resolve());
      });
    },
  } as unknown as KeyStore;
  const sent: { to: PeerRole; env: Envelope }[] = [];
  const link = (to: PeerRole) => ({
    send: (topic: string, bytes: Uint8Array) => {
      if (topic === PROTO_TOPIC) sent.push({ to, env: decodeEnvelope(bytes) });
    },
  });
  const host = new ProtocolHost({
    self: 1,
    peers: Object.assign(new EventEmitter(), { link, allUp: () => true }) as unknown as PeerManager,
    store,
    log: pino({ level: 'silent' }),
    runner: new InProcessRunner(),
    signer: { sign: () => new Uint8Array(64) },
  });
  const result = host.run<EcdsaOutput>({
    recipe: { kind: 'ecdsa-online', share: key.shares[1], tripletId: TRIPLET, presig: presigs[1].shares.values().next().value!, input },
    label: PROTO_ONLINE,
    toWrites: (items) =>
      (items as { psid: Uint8Array }[]).map((it) => ({ op: 'presig-delete', psid: Buffer.from(it.psid).toString('hex') })),
    inline: true,
    writesTrailSend: true,
  });
  let released = false;
  void result.then(
    () => (released = true),
    () => (released = true),
  );
  await settle();
  assert.deepEqual(writes, [[{ op: 'presig-delete', psid: Buffer.from(psid).toString('hex') }]], 'the EP marks the presignature USED');
  const sentBeforeMark = sent.length;

  // Real helpers answer: the P↔A exchange between them, then their shares to the EP.
  const helpers = ([2, 3] as const).map((j) =>
    createEcdsaOnlineHelper({ share: key.shares[j], tripletId: TRIPLET, rng: seededRng(`h${j}`), lookupPresig: (p) => presigs[j].take(p) }),
  );
  const queue = sent.splice(0).map((s) => s.env);
  while (queue.length > 0) {
    const env = queue.shift()!;
    if (env.to === 1) {
      host.deliver(env.from === 2 ? 'partner' : 'aux', encodeEnvelope(env));
      continue;
    }
    queue.push(...helpers[env.to - 2]!.receive(env).send);
  }
  await settle();
  const releasedBeforeMark = released;
  finishMark(
    markOutcome === 'fails'
      ? new EkmError('EKM_PRESIG_USED', `presignature ${Buffer.from(psid).toString('hex')} was used or burnt`)
      : undefined,
  );
  return { sentBeforeMark, releasedBeforeMark, result };
}

describe('pool mode: the EP marks a presignature USED while its requests travel', () => {
  it('the requests leave before the mark commits; the signature only after it', async () => {
    const run = await pooledSign('commits');
    assert.equal(run.sentBeforeMark, 2, 'both requests left while the mark was still committing');
    assert.equal(run.releasedBeforeMark, false, 'no signature before the mark is durable');
    const out = await run.result;
    assert.equal(out.kind, 'signature');
  });

  it('a mark that fails releases no signature, although both helpers answered', async () => {
    const run = await pooledSign('fails');
    assert.equal(run.releasedBeforeMark, false);
    await assert.rejects(run.result, (e: Error) => /used or burnt/.test(e.message));
  });
});
