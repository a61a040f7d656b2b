/**
 * Passwords given to a command without putting them on its command line, where any local user
 * reads them in /proc/<pid>/cmdline and `ps`: from a file (`--password-file <file>`, `-W <file>`)
 * or from standard input (`-w -`). Either way the password is the first line, its line end
 * removed and nothing else changed (spaces are part of it).
 */
import { readFileSync, readSync } from 'node:fs';
import { EkmError } from '../errors.js';

/** The value of `-w` that means "read the password from standard input". */
export const FROM_STDIN = '-';

/** The first line of `text`, without its line end (`\n` or `\r\n`). */
export function firstLine(text: string): string {
  const end = text.indexOf('\n');
  const line = end < 0 ? text : text.slice(0, end);
  return line.endsWith('\r') ? line.slice(0, -1) : line;
}

/** Why a file could not be read or written, in words; `missing` says what ENOENT means there. */
export function fileErrorReason(e: unknown, missing: string): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return missing;
  if (code === 'EISDIR') return 'it is a folder';
  if (code === 'EACCES') return 'permission denied';
  return code ?? (e as Error).message;
}

/** The password in the first line of the file at `path`; `flag` names where it was given. */
export function readPasswordFile(path: string, flag: string): string {
  try {
    return firstLine(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new EkmError('EKM_INPUT', `${flag}: cannot read ${path}: ${fileErrorReason(e, 'no such file')}`);
  }
}

/**
 * The password in the first line of standard input. Only that line is read (byte by byte), so
 * whatever follows stays for later questions, such as a bootstrap's approval of fingerprints.
 */
export function readPasswordStdin(): string {
  const bytes: number[] = [];
  const one = Buffer.alloc(1);
  for (;;) {
    let n: number;
    try {
      n = readSync(0, one, 0, 1, null);
    } catch (e) {
      // A standard input left non-blocking by the parent: wait for the byte rather than fail.
      if ((e as NodeJS.ErrnoException).code === 'EAGAIN') continue;
      throw new EkmError('EKM_INPUT', `-w -: cannot read standard input: ${(e as Error).message}`);
    }
    if (n === 0 || one[0] === 0x0a) break;
    bytes.push(one[0]!);
  }
  return firstLine(Buffer.from(bytes).toString('utf8'));
}
