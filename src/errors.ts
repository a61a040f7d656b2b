import { ERROR_CODES, type ErrorCode } from './error-codes.js';

export { type ErrorCode, isErrorCode } from './error-codes.js';

export interface EkmErrorOptions {
  /** What to do about it: a CLI prints it after the message. */
  readonly hint?: string;
  /** The error this one explains (kept for logs and debugging, never shown to a user). */
  readonly cause?: unknown;
  /**
   * A code that arrived from another party (a peer over the wire, the EP over HTTP): this release
   * may not know it, and its status is the one it arrived with. The code given to the constructor
   * stands in when the other party sent none.
   */
  readonly relayed?: { readonly code?: string; readonly httpStatus: number };
  /** A refusal that passes with time (HTTP 429, 503): when to try again, sent as `Retry-After`. */
  readonly retryAfterSeconds?: number;
}

/**
 * Errors an operator can act on: every failure that reaches a user carries a stable code, a
 * one-line message and, where there is one, what to do about it. CLIs print `message` (and
 * `hint`) and exit with `exitCode`; the API maps `httpStatus`. Never a stack trace. The status
 * and the exit code come from the code's line in the error table (error-codes.ts).
 */
export class EkmError extends Error {
  readonly code: string;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly httpStatus: number;
  readonly retryAfterSeconds: number | undefined;

  constructor(code: ErrorCode, message: string, options: EkmErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'EkmError';
    const spec = ERROR_CODES[code];
    this.code = options.relayed?.code ?? code;
    this.hint = options.hint;
    this.exitCode = spec.exitCode;
    this.httpStatus = options.relayed?.httpStatus ?? spec.httpStatus;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }

  /** The one line a CLI prints. */
  oneLine(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }
}

export function usageError(message: string, hint?: string): EkmError {
  return new EkmError('EKM_USAGE', message, { hint });
}

/** Turns anything thrown into one printable line (unknown errors keep their message only). */
export function describeError(err: unknown): string {
  if (err instanceof EkmError) return err.oneLine();
  if (err instanceof Error) return err.message;
  return String(err);
}
