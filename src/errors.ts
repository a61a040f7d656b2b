/**
 * Errors an operator can act on: every failure that reaches a user carries a stable code, a
 * one-line message and, where there is one, what to do about it. CLIs print `message` (and
 * `hint`) and exit with `exitCode`; the API maps `httpStatus`. Never a stack trace.
 */
export class EkmError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly hint?: string,
    readonly exitCode = 1,
    readonly httpStatus = 400,
  ) {
    super(message);
    this.name = 'EkmError';
  }

  /** The one line a CLI prints. */
  oneLine(): string {
    return this.hint ? `${this.message}: ${this.hint}` : this.message;
  }
}

export function usageError(message: string, hint?: string): EkmError {
  return new EkmError('EKM_USAGE', message, hint, 2, 400);
}

/** Turns anything thrown into one printable line (unknown errors keep their message only). */
export function describeError(err: unknown): string {
  if (err instanceof EkmError) return err.oneLine();
  if (err instanceof Error) return err.message;
  return String(err);
}
