/**
 * A minimal POSIX ustar writer and a strict reader, for backup archives. Only regular files, names
 * under 100 bytes, sizes under 8 GiB. The reader checks every header checksum, that each file's
 * data is complete and that the archive ends with its two zero blocks, so a truncated or altered
 * archive is refused instead of read partially. `tar -tzf` lists what this writes.
 *
 * Hand-written rather than tar-stream or node-tar because both read damaged archives as whole ones.
 * Fed archives written here and then damaged (tar-stream 3.3.0, node-tar 7.5.24 with `strict`;
 * node-tar 8 needs Node 22), both accept an archive cut right after a file (no end-of-archive
 * blocks) or with one zero block of two, and a name that appears twice; node-tar also accepts one
 * cut inside a header or inside the end marker, silently dropping what follows, and tar-stream
 * accepts empty input. This reader refuses all of these. Both libraries refuse a cut inside file
 * data and a header whose checksum does not match, as this one does. They would also make reading
 * a stream of events (an async reader over bytes already in memory) and add dependencies, for
 * three or two regular files whose format this module fixes.
 */
import { EkmError } from '../errors.js';

export interface TarEntry {
  readonly name: string;
  readonly data: Uint8Array;
  /** Unix permission bits, default 0o600. */
  readonly mode?: number;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function header(name: string, size: number, mode: number, mtime: number): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  if (nameBytes.length === 0 || nameBytes.length >= 100) throw new Error(`tar: bad entry name ${name}`);
  if (size >= 8 ** 11) throw new Error(`tar: ${name} is too large`);
  const h = Buffer.alloc(BLOCK);
  nameBytes.copy(h, 0);
  h.write(octal(mode, 8), 100, 'ascii');
  h.write(octal(0, 8), 108, 'ascii');
  h.write(octal(0, 8), 116, 'ascii');
  h.write(octal(size, 12), 124, 'ascii');
  h.write(octal(mtime, 12), 136, 'ascii');
  h.fill(0x20, 148, 156); // checksum field counts as spaces while summing
  h.write('0', 156, 'ascii');
  h.write('ustar\0', 257, 'ascii');
  h.write('00', 263, 'ascii');
  h.write('ekm', 265, 'ascii');
  h.write('ekm', 297, 'ascii');
  let sum = 0;
  for (const b of h) sum += b;
  h.write(octal(sum, 7) + ' ', 148, 'ascii');
  return h;
}

/** The archive bytes (uncompressed) of `entries`, in order. */
export function writeTar(entries: readonly TarEntry[], mtime = Math.floor(Date.now() / 1000)): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(header(e.name, e.data.length, e.mode ?? 0o600, mtime));
    parts.push(Buffer.from(e.data.buffer, e.data.byteOffset, e.data.length));
    const pad = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
    if (pad) parts.push(Buffer.alloc(pad));
  }
  parts.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(parts);
}

function corrupt(what: string): EkmError {
  return new EkmError('EKM_BACKUP_CORRUPT', `the archive is damaged: ${what}`, { hint: 'use another copy of the backup' });
}

function readOctal(h: Buffer, off: number, len: number, what: string): number {
  const text = h
    .subarray(off, off + len)
    .toString('ascii')
    .replace(/[\0 ]+$/g, '')
    .replace(/^ +/, '');
  if (!/^[0-7]+$/.test(text)) throw corrupt(`bad ${what} field in a tar header`);
  return parseInt(text, 8);
}

/** Every regular file of a ustar archive, by name; anything malformed or missing is refused. */
export function readTar(buf: Uint8Array): Map<string, Buffer> {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
  const out = new Map<string, Buffer>();
  let off = 0;
  for (;;) {
    if (off + BLOCK > b.length) throw corrupt('it ends in the middle of a tar header (truncated?)');
    const h = b.subarray(off, off + BLOCK);
    if (h.every((x) => x === 0)) {
      if (off + 2 * BLOCK > b.length || !b.subarray(off + BLOCK, off + 2 * BLOCK).every((x) => x === 0)) {
        throw corrupt('the end-of-archive marker is incomplete (truncated?)');
      }
      return out;
    }
    const stored = readOctal(h, 148, 8, 'checksum');
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
    if (sum !== stored) throw corrupt('a tar header checksum does not match');
    const nameEnd = h.indexOf(0);
    const name = h.subarray(0, nameEnd < 0 || nameEnd > 100 ? 100 : nameEnd).toString('utf8');
    const size = readOctal(h, 124, 12, 'size');
    const type = String.fromCharCode(h[156]!);
    off += BLOCK;
    if (off + size > b.length) throw corrupt(`${name} is cut short (truncated?)`);
    if (type === '0' || type === '\0') {
      if (out.has(name)) throw corrupt(`${name} appears twice`);
      out.set(name, Buffer.from(b.subarray(off, off + size)));
    }
    off += size + ((BLOCK - (size % BLOCK)) % BLOCK);
  }
}
