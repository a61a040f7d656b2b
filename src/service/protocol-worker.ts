/**
 * Worker-thread entry: holds the parties of the sessions pinned to this thread and runs their
 * steps, so the server's event loop only routes messages and writes the store.
 */
import { parentPort } from 'node:worker_threads';
import type { Party } from '../protocols/types.js';
import { type Call, executeStep } from './party-runner.js';
import { buildParty, type Recipe } from './party-recipes.js';

interface Request {
  seq: number;
  id: number;
  call?: Call;
  recipe?: Recipe;
  label?: string;
  dispose?: boolean;
}

const parties = new Map<number, { party: Party<unknown, unknown>; label: string }>();

parentPort!.on('message', (m: Request) => {
  if (m.dispose) {
    parties.delete(m.id);
    return;
  }
  try {
    if (m.recipe) parties.set(m.id, { party: buildParty(m.recipe), label: m.label ?? 'protocol' });
    const entry = parties.get(m.id);
    if (!entry || !m.call) throw new Error(`no party ${m.id} in this worker`);
    const result = executeStep(entry.party, m.call, entry.label);
    if (result.finished && result.failure === null && !result.committing) parties.delete(m.id);
    parentPort!.postMessage({ seq: m.seq, result });
  } catch (e) {
    parentPort!.postMessage({ seq: m.seq, error: e instanceof Error ? e.message : String(e) });
  }
});
