/** Runs a CLI's main: any error becomes one line on stderr and a non-zero exit code, never a stack trace. */
import { CommanderError } from 'commander';
import { EkmError, describeError } from '../errors.js';

export function runCli(program: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      process.exitCode = typeof code === 'number' ? code : 0;
    },
    (err: unknown) => {
      if (err instanceof CommanderError) {
        process.exitCode = err.exitCode === 0 ? 0 : 2;
        return;
      }
      process.stderr.write(`${program}: ${describeError(err)}\n`);
      if (!(err instanceof EkmError) && process.env.EKM_DEBUG) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
      process.exitCode = err instanceof EkmError ? err.exitCode : 1;
    },
  );
}
