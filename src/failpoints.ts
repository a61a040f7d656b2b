/**
 * Deterministic crash points for the fault suite (test/faults/, docs/reliability.md). Test-only:
 * `EKM_FAILPOINTS=name[@count],…` is read once when the process starts (src/config/settings.ts,
 * which arms them through `armFailpoints`); the count-th time (1 by
 * default) a listed failpoint is hit, the process SIGKILLs itself: a real crash, with no cleanup,
 * no flush and no goodbye to its peers. Unset, every call returns at its first test.
 *
 * The names, all set by ProtocolHost (src/service/protocol-host.ts) around one step of a session,
 * `proto:<protocol>:<step>:<site>`:
 * - `<protocol>` is the session's protocol name (`dkg`, `ecdsa-sign`, `ecdsa-presign`,
 *   `ecdsa-online`, `frost-sign`, `refresh`, `aux-rederive`, `rsa-op`, `rsa-refresh`, `dprf-eval`,
 *   `dprf-cross`);
 * - `<step>` is the highest round the step sends (the EP sends rounds 0 and 1 together: `1`), or
 *   `end` for the step that finishes the session (its writes are the final commit);
 * - `<site>` is `before-persist` (computed, nothing stored), `after-persist` (the step's writes are
 *   durable, none of its messages left) or `after-send` (its messages were handed to the links).
 * A step that neither sends nor finishes has no failpoint: it only buffers a message.
 *
 * Outside the sessions, on the EP in src/cluster/scale-out.ts: `scale:aux-replace:<step>` during
 * `ucl server create -a` (`before-apply`, `joined`, `partner-pinned`), and
 * `scale:triplet-add:applied-<role>` during `ucl server create -e -p -a`. In a `-restore
 * -externaldb` bootstrap (src/cluster/bootstrap.ts): `restore:externaldb:loaded` (the restored
 * store is in the database, server.json not written) and `restore:externaldb:configured`
 * (server.json written, data/ekm.db not removed yet).
 */
import { writeSync } from 'node:fs';
import { EkmError } from './errors.js';

export type FailpointSite = 'before-persist' | 'after-persist' | 'after-send';

/** Parses `name[@count],…` into how many hits each name still lets pass before the crash. */
export function parseFailpoints(spec: string | undefined): Map<string, number> {
  const armed = new Map<string, number>();
  for (const item of (spec ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    const m = /^([\w:.-]+)(?:@([1-9]\d*))?$/.exec(item);
    if (!m)
      throw new EkmError('EKM_FAILPOINTS', `EKM_FAILPOINTS: "${item}" is not name[@count]`, {
        hint: 'count is a positive integer, e.g. proto:dkg:4:after-persist@2',
      });
    armed.set(m[1]!, Number(m[2] ?? 1));
  }
  return armed;
}

let armed = new Map<string, number>();

/** Arms the failpoints the process was started with (EKM_FAILPOINTS, parsed by `parseFailpoints`). */
export function armFailpoints(spec: ReadonlyMap<string, number>): void {
  armed = new Map(spec);
}

/** Crashes this process if `name` is armed and this is its count-th hit. */
export function failpoint(name: string): void {
  if (armed.size === 0) return;
  const left = armed.get(name);
  if (left === undefined) return;
  if (left > 1) {
    armed.set(name, left - 1);
    return;
  }
  // The log line is how a run shows which failpoint fired; writeSync so it lands before the kill.
  writeSync(2, `ekm: failpoint ${name} hit: SIGKILL\n`);
  process.kill(process.pid, 'SIGKILL');
}

/** What names a protocol step: whether it finishes its session, and the rounds it sends. */
export interface FailpointStep {
  readonly finished: boolean;
  readonly send: readonly { readonly round: number }[];
}

/** `end`, the highest round sent, or undefined (no failpoint) for a step that only buffers. */
export function stepName(step: FailpointStep): string | undefined {
  if (step.finished) return 'end';
  return step.send.length > 0 ? String(Math.max(...step.send.map((e) => e.round))) : undefined;
}

/** The protocol host's failpoint; the name is only built when some failpoint is armed. */
export function protocolFailpoint(protocol: string, step: FailpointStep, site: FailpointSite): void {
  if (armed.size === 0) return;
  const name = stepName(step);
  if (name !== undefined) failpoint(`proto:${protocol}:${name}:${site}`);
}
