/**
 * How an operator approves a peer's certificate during bootstrap: `-f` approves without asking;
 * otherwise the fingerprint is shown and a "y" on the terminal approves it. Prompts are asked one
 * at a time even when both peers answer at once.
 */
import { createInterface, type Interface } from 'node:readline';
import { EkmError } from '../errors.js';

export interface Approver {
  approve(label: string, fingerprint: string): Promise<void>;
  close(): void;
}

export function autoApprover(print: (line: string) => void): Approver {
  return {
    async approve(label, fingerprint) {
      print(`Approved ${label} certificate SHA256 ${fingerprint} (-f)`);
    },
    close() {},
  };
}

/** Asks on stdin/stdout; EOF or anything but y/yes is a refusal that aborts the bootstrap. */
export function promptApprover(
  input: NodeJS.ReadableStream,
  output: NodeJS.WritableStream,
  /** What a refusal means, and what to run again (the bootstrap's by default). */
  abort = {
    outcome: 'bootstrap aborted, nothing was written',
    retry: 'run the bootstrap again',
    unattended: 'use -f to approve without asking',
  },
): Approver {
  let rl: Interface | undefined;
  const lines: string[] = [];
  const waiters: ((line: string | null) => void)[] = [];
  let ended = false;
  const ensure = (): void => {
    if (rl) return;
    rl = createInterface({ input, terminal: false });
    rl.on('line', (l) => {
      const w = waiters.shift();
      if (w) w(l);
      else lines.push(l);
    });
    rl.on('close', () => {
      ended = true;
      for (const w of waiters.splice(0)) w(null);
    });
  };
  const nextLine = (): Promise<string | null> => {
    ensure();
    if (lines.length > 0) return Promise.resolve(lines.shift()!);
    if (ended) return Promise.resolve(null);
    return new Promise((resolve) => waiters.push(resolve));
  };
  let queue: Promise<void> = Promise.resolve();
  return {
    approve(label, fingerprint) {
      const ask = async (): Promise<void> => {
        output.write(`${label} presents certificate SHA256 fingerprint\n  ${fingerprint}\nApprove this certificate? [y/N] `);
        const answer = await nextLine();
        if (answer === null) {
          output.write('\n');
          throw new EkmError('EKM_NOT_APPROVED', `no answer for ${label}: ${abort.outcome}`, {
            hint: `answer the prompt, or ${abort.unattended}`,
          });
        }
        if (!/^\s*(y|yes)\s*$/i.test(answer)) {
          throw new EkmError('EKM_NOT_APPROVED', `${label} certificate not approved: ${abort.outcome}`, {
            hint: `check the fingerprint on that server and ${abort.retry}`,
          });
        }
      };
      const run = queue.then(ask);
      queue = run.catch(() => undefined);
      return run;
    },
    close() {
      rl?.close();
    },
  };
}
