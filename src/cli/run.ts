/**
 * Runs a CLI's main: the settings are read and checked first (src/config/settings.ts), so that a
 * bad one stops the command before it does anything; any error becomes one line on stderr and a
 * non-zero exit code, never a stack trace.
 */
import { CommanderError } from 'commander';
import { type Settings, readSettings } from '../config/settings.js';
import { EkmError, describeError } from '../errors.js';
import { armFailpoints } from '../failpoints.js';
import { overrideVersion } from '../version.js';

export function runCli(program: string, main: (settings: Settings) => Promise<number | void>): void {
  let debug = false;
  const started = async (): Promise<number | void> => {
    const settings = readSettings(process.env);
    debug = settings.test.debug;
    armFailpoints(settings.test.failpoints);
    overrideVersion(settings.test.versionOverride);
    return main(settings);
  };
  started().then(
    (code) => {
      process.exitCode = typeof code === 'number' ? code : 0;
    },
    (err: unknown) => {
      if (err instanceof CommanderError) {
        process.exitCode = err.exitCode === 0 ? 0 : 2;
        return;
      }
      process.stderr.write(`${program}: ${describeError(err)}\n`);
      if (!(err instanceof EkmError) && debug) process.stderr.write(`${(err as Error).stack ?? ''}\n`);
      process.exitCode = err instanceof EkmError ? err.exitCode : 1;
    },
  );
}
