/**
 * Parties computing in worker threads behave exactly like parties in-process: a full ECDSA
 * signing session routed between three RunningParty objects verifies; a worker that dies fails
 * its sessions cleanly (never hangs) and is replaced for new sessions.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { verifyEcdsa, type EcdsaOutput, type SignedInput } from '../../../src/protocols/ecdsa.js';
import type { Envelope, PartyId } from '../../../src/protocols/types.js';
import { InProcessRunner, type PartyRunner, type RunningParty, WorkerRunner } from '../../../src/service/party-runner.js';
import { dealKey } from '../../support/ec-test-keys.js';

async function signOver(runner: PartyRunner): Promise<{ output: EcdsaOutput; input: SignedInput; Y: Uint8Array }> {
  const key = dealKey('ecdsa-p256');
  const input: SignedInput = { kind: 'message', hash: 'sha256', data: new TextEncoder().encode('worker thread signing') };
  const parties: Record<PartyId, RunningParty> = {
    1: runner.create({ kind: 'ecdsa-sign', share: key.shares[1], tripletId: 'test', input }, 'ecdsa-sign'),
    2: runner.create({ kind: 'ecdsa-sign', share: key.shares[2], tripletId: 'test' }, 'ecdsa-sign'),
    3: runner.create({ kind: 'ecdsa-sign', share: key.shares[3], tripletId: 'test' }, 'ecdsa-sign'),
  };
  const queue: Envelope[] = [];
  let output: EcdsaOutput | undefined;
  const first = await parties[1].call({ op: 'start' });
  queue.push(...first.send);
  while (queue.length > 0) {
    const env = queue.shift()!;
    const r = await parties[env.to].call({ op: 'receive', env });
    assert.equal(r.thrown, undefined, r.thrown?.reason);
    queue.push(...r.send);
    if (env.to === 1 && r.output !== undefined) output = r.output as EcdsaOutput;
  }
  for (const p of Object.values(parties)) p.dispose();
  assert.ok(output);
  return { output, input, Y: key.pub.Y };
}

describe('party runners', () => {
  const workers = new WorkerRunner(2);
  after(() => workers.close());

  for (const [name, runner] of [
    ['in-process', new InProcessRunner()],
    ['worker threads', workers],
  ] as const) {
    it(`${name}: a three-party ECDSA session signs and the signature verifies`, async () => {
      const { output, input, Y } = await signOver(runner);
      assert.equal(output.kind, 'signature');
      if (output.kind === 'signature') assert.ok(verifyEcdsa('ecdsa-p256', Y, input, output.p1363));
    });
  }

  it('a worker that dies fails its sessions instead of hanging, and is replaced', async () => {
    const key = dealKey('ecdsa-p256');
    const runner = new WorkerRunner(1);
    try {
      const party = runner.create({ kind: 'ecdsa-sign', share: key.shares[2], tripletId: 'test' }, 'ecdsa-sign');
      await party.call({ op: 'start' });
      await (runner as unknown as { slots: { worker: { terminate(): Promise<number> } }[] }).slots[0]!.worker.terminate();
      await assert.rejects(party.call({ op: 'start' }), /restarted|exited/);
      const { output } = await signOver(runner);
      assert.equal(output.kind, 'signature');
    } finally {
      await runner.close();
    }
  });
});
