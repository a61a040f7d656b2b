/**
 * Key and crypto commands over the key API: `ucl generate|list|show|sign|verify|export`.
 * The key API has no key names yet, so `-n` takes a key's UID (16 hex characters); `generate`
 * accepts `-n`/`--desc` in the original's shape and says that they are not stored.
 */
import { createPublicKey } from 'node:crypto';
import type { Command } from 'commander';
import { EkmError, usageError } from '../errors.js';
import { type CredentialOpts, type UclContext, call, credentials, printJson, readInput, seg, withCredentials, writeOutput } from './ucl-session.js';

type Alg = 'ecdsa-p256' | 'ecdsa-p384' | 'ecdsa-secp256k1' | 'eddsa-ed25519' | 'schnorr-bip340' | 'rsa-2048' | 'rsa-3072' | 'rsa-4096' | 'aes-256-dprf';

const CURVES: Record<string, Alg> = {
  p256: 'ecdsa-p256',
  'p-256': 'ecdsa-p256',
  prime256v1: 'ecdsa-p256',
  secp256r1: 'ecdsa-p256',
  p384: 'ecdsa-p384',
  'p-384': 'ecdsa-p384',
  secp384r1: 'ecdsa-p384',
  secp256k1: 'ecdsa-secp256k1',
  ed25519: 'eddsa-ed25519',
};

/** The original's key type names, by algorithm. */
export function keyType(alg: string): string {
  if (alg.startsWith('ecdsa-')) return 'ECC';
  if (alg.startsWith('eddsa-')) return 'EDDSA';
  if (alg.startsWith('schnorr-')) return 'SCHNORR';
  if (alg.startsWith('rsa')) return 'RSA';
  if (alg.startsWith('aes')) return 'AES';
  return alg.toUpperCase();
}

export function algFor(type: string, curve: string | undefined, size?: string): Alg {
  const t = type.toUpperCase();
  if (size !== undefined && t !== 'RSA' && t !== 'AES') throw usageError(`--size is for RSA and AES keys, not ${t}`);
  if (t === 'RSA') {
    const bits = size ?? '2048';
    if (!['2048', '3072', '4096'].includes(bits)) throw usageError(`--size ${bits} is not an RSA size`, 'use 2048, 3072 or 4096');
    return `rsa-${bits}` as Alg;
  }
  if (t === 'AES') {
    if (size !== undefined && size !== '256') throw usageError(`--size ${size} is not available for AES`, 'AES keys are 256 bits');
    return 'aes-256-dprf';
  }
  if (t === 'ECC') {
    const alg = CURVES[(curve ?? 'p256').toLowerCase()];
    if (!alg) throw usageError(`--curve ${curve} is not available`, 'use p256, p384, secp256k1 or ed25519');
    return alg;
  }
  if (t === 'EDDSA') {
    if (curve && curve.toLowerCase() !== 'ed25519') throw usageError(`EDDSA keys are on ed25519, not ${curve}`);
    return 'eddsa-ed25519';
  }
  if (t === 'SCHNORR' || t === 'BIP340') return 'schnorr-bip340';
  throw usageError(`-t ${type} is not a key type`, 'use ECC, EDDSA, SCHNORR, RSA or AES');
}

const UID = /^[0-9a-f]{16}$/;
function uid(v: string | undefined): string {
  if (!v) throw usageError('-n <key UID> is required');
  const s = v.toLowerCase().replace(/^0x/, '');
  if (!UID.test(s)) throw usageError(`-n ${v} is not a key UID`, 'key names are not available yet: give the 16-hex UID that ucl generate or ucl list printed');
  return s;
}

type Encoding = 'BIN' | 'HEX' | 'BASE64';
function encoding(v: string | undefined, flag: string): Encoding {
  const e = (v ?? 'BIN').toUpperCase();
  if (e !== 'BIN' && e !== 'HEX' && e !== 'BASE64') throw usageError(`${flag} ${v} is not a format`, 'use BIN, HEX or BASE64');
  return e;
}

function encode(b: Buffer, e: Encoding): string | Buffer {
  return e === 'BIN' ? b : e === 'HEX' ? `${b.toString('hex')}\n` : `${b.toString('base64')}\n`;
}

function decode(raw: Buffer, e: Encoding, what: string): Buffer {
  if (e === 'BIN') return raw;
  const text = raw.toString('utf8').replace(/\s+/g, '');
  const ok = e === 'HEX' ? /^([0-9a-fA-F]{2})*$/.test(text) : /^[A-Za-z0-9+/]*={0,2}$/.test(text);
  if (!ok || text.length === 0) throw new EkmError('EKM_INPUT', `${what} is not ${e === 'HEX' ? 'hex' : 'base64'}`, undefined, 1);
  return Buffer.from(text, e === 'HEX' ? 'hex' : 'base64');
}

const HASHES = ['sha256', 'sha384', 'sha512'];
function hashFor(alg: string, h: string | undefined): string | undefined {
  if (!alg.startsWith('ecdsa-') && !alg.startsWith('rsa-')) {
    if (h && h.toLowerCase() !== 'none') throw usageError(`${keyType(alg)} signs the message itself: leave out --hash (or give --hash none)`);
    return undefined;
  }
  const v = (h ?? 'sha256').toLowerCase();
  if (!HASHES.includes(v)) throw usageError(`--hash ${h} is not available`, `use ${HASHES.join(', ')}`);
  return v;
}

interface KeyShow {
  keyId: string;
  alg: string;
  epoch: number;
  createdAt: string;
  publicKey: string | null;
  presignaturesReady: number;
}

interface KeyList {
  partition: string;
  index: number;
  total: number;
  keys: { keyId: string; alg: string; epoch: number; createdAt: string }[];
  next: string | null;
}

export function registerKeyCommands(program: Command, ctx: UclContext): void {
  withCredentials(
    program
      .command('generate')
      .description('generate a threshold key in the partition')
      .requiredOption('-t, --type <type>', 'ECC, EDDSA, SCHNORR, RSA or AES')
      .option('--curve <curve>', 'ECC: p256 (default), p384, secp256k1, ed25519')
      .option('--size <bits>', 'RSA: 2048 (default), 3072, 4096; AES: 256')
      .option('-n, --name <name>', 'key name (not stored yet: keys are known by UID)')
      .option('--desc <text>', 'description (not stored yet)')
      .option('-o, --out <file>', 'write the public key (PEM) here'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { type: string; curve?: string; size?: string; name?: string; desc?: string; out?: string }) => {
    const alg = algFor(o.type, o.curve, o.size);
    const creds = await credentials(o);
    if (o.out && alg === 'aes-256-dprf') throw usageError('-o writes a public key: AES keys have none');
    const k = await call<{ keyId: string; alg: string; publicKey: string | null }>(ctx, creds, 'POST', '/api/v1/keys', { alg });
    if (o.out && k.publicKey) writeOutput(o.out, k.publicKey);
    if (ctx.json()) printJson(ctx, { ...k, partition: creds.partition });
    else ctx.print(`Generated ${keyType(k.alg)} key (${k.alg}) UID=${k.keyId} in partition ${creds.partition}${o.out ? `; public key in ${o.out}` : ''}`);
    if (o.name !== undefined || o.desc !== undefined) process.stderr.write('ucl: note: key names and descriptions are not stored yet; use the UID\n');
  });

  withCredentials(
    program
      .command('list')
      .description('list the keys of the partition')
      .option('-n, --name <uid>', 'only this key')
      .option('-t, --type <type>', 'only this type (ECC, EDDSA, SCHNORR)'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name?: string; type?: string }) => {
    const creds = await credentials(o);
    const only = o.name ? uid(o.name) : undefined;
    const type = o.type?.toUpperCase();
    if (type && !['ECC', 'EDDSA', 'SCHNORR', 'RSA', 'AES'].includes(type)) throw usageError(`-t ${o.type} is not a key type`, 'use ECC, EDDSA, SCHNORR, RSA or AES');
    let after: string | null = '';
    const keys: KeyList['keys'] = [];
    let head: KeyList | undefined;
    while (after !== null) {
      const page: KeyList = await call<KeyList>(ctx, creds, 'GET', `/api/v1/partitions/${seg(creds.partition)}/keys?limit=1000${after ? `&after=${after}` : ''}`);
      head ??= page;
      keys.push(...page.keys);
      after = page.next;
    }
    const shown = keys.filter((k) => (!only || k.keyId === only) && (!type || keyType(k.alg) === type));
    if (ctx.json()) {
      printJson(ctx, { partition: head!.partition, index: head!.index, keys: shown });
      return;
    }
    ctx.print(`Partition ${head!.index} ${head!.partition}: ${shown.length} object${shown.length === 1 ? '' : 's'} found`);
    for (const k of shown) ctx.print(`${k.alg.startsWith('aes') ? 'Secret' : 'Private'} ${keyType(k.alg)} key : UID=${k.keyId} Name="" Description="" Alg=${k.alg}`);
  });

  withCredentials(program.command('show').description('show a key').requiredOption('-n, --name <uid>', 'key UID'), { defaultUser: 'so' }).action(
    async (o: CredentialOpts & { name: string }) => {
      const id = uid(o.name);
      const k = await call<KeyShow>(ctx, await credentials(o), 'GET', `/api/v1/keys/${id}`);
      if (ctx.json()) {
        printJson(ctx, k);
        return;
      }
      const pub = k.publicKey ? createPublicKey(k.publicKey) : undefined;
      ctx.print(`${pub ? 'Private' : 'Secret'} ${keyType(k.alg)} key : UID=${k.keyId}`);
      ctx.print(`  Algorithm      : ${k.alg}`);
      ctx.print(`  Created        : ${k.createdAt}`);
      ctx.print(`  Epoch          : ${k.epoch}`);
      ctx.print(`  Presignatures  : ${k.presignaturesReady}`);
      if (!pub || !k.publicKey) return;
      const d = pub.asymmetricKeyDetails;
      ctx.print(`  Public key     : ${pub.asymmetricKeyType}${d?.namedCurve ? ` ${d.namedCurve}` : d?.modulusLength ? ` ${d.modulusLength} bits` : ''}`);
      for (const line of k.publicKey.trim().split('\n')) ctx.print(`    ${line}`);
    },
  );

  withCredentials(
    program
      .command('sign')
      .description('sign a file (ECDSA signatures are DER)')
      .requiredOption('-n, --name <uid>', 'key UID')
      .option('--hash <hash>', 'ECDSA: sha256 (default), sha384, sha512; none for EdDSA/Schnorr')
      .requiredOption('-i, --in <file>', 'data to sign')
      .requiredOption('-o, --out <file>', 'where the signature goes')
      .option('--out-format <format>', 'BIN (default), HEX or BASE64'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; hash?: string; in: string; out: string; outFormat?: string }) => {
    const id = uid(o.name);
    const fmt = encoding(o.outFormat, '--out-format');
    const data = readInput(o.in);
    const creds = await credentials(o);
    const k = await call<KeyShow>(ctx, creds, 'GET', `/api/v1/keys/${id}`);
    const hash = hashFor(k.alg, o.hash);
    const r = await call<{ signature: string; alg: string; epoch: number }>(ctx, creds, 'POST', `/api/v1/keys/${id}/sign`, {
      message: data.toString('base64'),
      ...(hash ? { hash } : {}),
      ...(k.alg.startsWith('ecdsa-') ? { format: 'der' } : {}),
    });
    const sig = Buffer.from(r.signature, 'base64');
    writeOutput(o.out, encode(sig, fmt));
    if (ctx.json()) printJson(ctx, { keyId: id, alg: r.alg, signature: r.signature, out: o.out });
    else ctx.print(`Signed ${data.length} bytes with ${keyType(k.alg)} key UID=${id}: ${sig.length}-byte signature in ${o.out}`);
  });

  withCredentials(
    program
      .command('verify')
      .description('verify a signature; exit 1 when it does not verify')
      .requiredOption('-n, --name <uid>', 'key UID')
      .option('--hash <hash>', 'ECDSA: sha256 (default), sha384, sha512')
      .requiredOption('-i, --in <file>', 'the signed data')
      .requiredOption('-s, --signature <file>', 'the signature (ECDSA: DER or r‖s)')
      .option('--in-format <format>', 'of the signature file: BIN (default), HEX or BASE64'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; hash?: string; in: string; signature: string; inFormat?: string }) => {
    const id = uid(o.name);
    const fmt = encoding(o.inFormat, '--in-format');
    const data = readInput(o.in);
    const sig = decode(readInput(o.signature, '-s <signature file>'), fmt, o.signature);
    const creds = await credentials(o);
    const k = await call<KeyShow>(ctx, creds, 'GET', `/api/v1/keys/${id}`);
    const hash = hashFor(k.alg, o.hash);
    const format = k.alg.startsWith('ecdsa-') ? (sig[0] === 0x30 && sig.length !== (k.alg === 'ecdsa-p384' ? 96 : 64) ? 'der' : 'raw') : undefined;
    const r = await call<{ valid: boolean }>(ctx, creds, 'POST', `/api/v1/keys/${id}/verify`, {
      message: data.toString('base64'),
      signature: sig.toString('base64'),
      ...(hash ? { hash, format } : {}),
    });
    if (ctx.json()) printJson(ctx, { keyId: id, valid: r.valid });
    else if (r.valid) ctx.print(`Signature is valid (key UID=${id})`);
    if (!r.valid) throw new EkmError('EKM_BAD_SIGNATURE', `the signature in ${o.signature} does not verify with key ${id}`, undefined, 1);
  });

  withCredentials(
    program
      .command('export')
      .description('export the public key (MPC keys have no private part to export)')
      .requiredOption('-n, --name <uid>', 'key UID')
      .requiredOption('-o, --out <file>', 'where the public key goes')
      .option('--format <format>', 'PEM (default) or DER'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; out: string; format?: string }) => {
    const id = uid(o.name);
    const f = (o.format ?? 'PEM').toLowerCase();
    if (f !== 'pem' && f !== 'der') throw usageError(`--format ${o.format} is not available`, 'use PEM or DER');
    const r = await call<{ alg: string; value: string }>(ctx, await credentials(o), 'GET', `/api/v1/keys/${id}/public?format=${f}`);
    const data = f === 'pem' ? r.value : Buffer.from(r.value, 'base64');
    writeOutput(o.out, data);
    if (ctx.json()) printJson(ctx, { keyId: id, alg: r.alg, format: f, out: o.out });
    else ctx.print(`Public key of ${keyType(r.alg)} key UID=${id} written to ${o.out} (${f.toUpperCase()})`);
  });
}
