/**
 * Runs the parties of one protocol session in one process, with an interceptor on every edge:
 * the malicious-party tests rewrite, drop, duplicate or reorder messages through it.
 */
import type { Envelope, Party, PartyId, Step } from '../../src/protocols/types.js';
import { ProtocolAbort } from '../../src/protocols/types.js';

/** Returns the envelopes to deliver instead of `msg` (empty: dropped). */
export type Interceptor = (msg: Envelope, index: number) => Envelope[];

export interface RunResult<Out, Persist> {
  outputs: Map<PartyId, Out>;
  aborts: Map<PartyId, ProtocolAbort>;
  persisted: Map<PartyId, Persist[]>;
  /** Every envelope that was sent (before interception), in order. */
  transcript: Envelope[];
}

export function runLocal<Out, Persist>(
  parties: readonly Party<Out, Persist>[],
  intercept: Interceptor = (m) => [m],
  maxMessages = 10_000,
): RunResult<Out, Persist> {
  const byId = new Map<PartyId, Party<Out, Persist>>(parties.map((p) => [p.id, p]));
  const outputs = new Map<PartyId, Out>();
  const aborts = new Map<PartyId, ProtocolAbort>();
  const persisted = new Map<PartyId, Persist[]>(parties.map((p) => [p.id, []]));
  const transcript: Envelope[] = [];
  const queue: Envelope[] = [];

  const absorb = (id: PartyId, step: Step<Out, Persist>): void => {
    persisted.get(id)!.push(...step.persist);
    if (step.output !== undefined) outputs.set(id, step.output);
    for (const m of step.send) {
      transcript.push(m);
      queue.push(...intercept(m, transcript.length - 1));
    }
  };
  const guarded = (id: PartyId, fn: () => Step<Out, Persist>): void => {
    if (aborts.has(id)) return;
    try {
      const step = fn();
      absorb(id, step);
      // As the host does: the local work a step announced runs once its messages are out.
      const party = byId.get(id)!;
      if (step.more && party.resume) guarded(id, () => party.resume!());
    } catch (e) {
      if (e instanceof ProtocolAbort) aborts.set(id, e);
      else throw e;
    }
  };

  for (const p of parties) guarded(p.id, () => p.start());
  let delivered = 0;
  while (queue.length > 0) {
    if (++delivered > maxMessages) throw new Error('protocol did not terminate');
    const m = queue.shift()!;
    const to = byId.get(m.to);
    if (!to) continue;
    guarded(m.to, () => to.receive(m));
  }
  return { outputs, aborts, persisted, transcript };
}
