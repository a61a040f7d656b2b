/**
 * Key and crypto commands over the key API, in the original's shapes: `ucl generate|import|list|
 * show|update|delete|sign|verify|encrypt|decrypt|export`. `-n` names a key by its name or its
 * UID (16 hex characters), always within the partition of the credentials.
 */
import { createPublicKey } from 'node:crypto';
import type { Command } from 'commander';
import { EkmError, usageError } from '../errors.js';
import { type CredentialOpts, type UclContext, call, confirm, credentials, printJson, readInput, seg, withCredentials, writeOutput } from './ucl-session.js';

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

const UID = /^(0x)?[0-9a-fA-F]{16}$/;
/** `-n` names a key by its UID (16 hex characters, as ucl generate and ucl list print) or by its name. */
function keyRef(v: string | undefined): string {
  if (!v) throw usageError('-n <key name or UID> is required');
  return UID.test(v) ? v.toLowerCase().replace(/^0x/, '') : v;
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
  if (!ok || text.length === 0) throw new EkmError('EKM_INPUT', `${what} is not ${e === 'HEX' ? 'hex' : 'base64'}`);
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

interface KeyView {
  keyId: string;
  alg: string;
  name: string | null;
  description: string | null;
  state: 'active' | 'deactivated' | 'destroyed';
  stateChangedAt: string | null;
  createdAt: string;
  epoch: number | null;
  imported: 'public' | null;
}

interface KeyShow extends KeyView {
  publicKey: string | null;
  presignaturesReady: number;
  notAfter: string | null;
}

interface KeyList {
  partition: string;
  index: number;
  total: number;
  keys: KeyView[];
  next: string | null;
}

/** The original's list line: `Private RSA key : UID=… Name="…" Description="…"`. */
function listLine(k: KeyView): string {
  const q = (s: string | null): string => JSON.stringify(s ?? '');
  const state = k.state === 'active' ? '' : ` State=${k.state}`;
  return `${k.alg.startsWith('aes') ? 'Secret' : k.imported === 'public' ? 'Public' : 'Private'} ${keyType(k.alg)} key : UID=${k.keyId} Name=${q(k.name)} Description=${q(k.description)} Alg=${k.alg}${state}`;
}

/** RSA encryption options (OAEP with SHA-256 by default); AES ignores them, so they are sent only when given. */
function rsaScheme(scheme: string | undefined, hash: string | undefined): { scheme?: 'oaep' | 'pkcs1v15'; hash?: 'sha1' | 'sha256' } {
  const sc = scheme?.toUpperCase();
  if (sc !== undefined && sc !== 'OAEP' && sc !== 'PKCS1') throw usageError(`--scheme ${scheme} is not available`, 'use OAEP or PKCS1');
  const h = hash?.toLowerCase();
  if (h !== undefined && h !== 'sha1' && h !== 'sha256') throw usageError(`--hash ${hash} is not available for OAEP`, 'use sha256 or sha1');
  if (sc === 'PKCS1' && h !== undefined) throw usageError('--hash is for OAEP; PKCS#1 v1.5 encryption has none');
  return { ...(sc ? { scheme: sc === 'OAEP' ? 'oaep' : 'pkcs1v15' } : {}), ...(h ? { hash: h as 'sha1' | 'sha256' } : {}) };
}

/** The key UID an AES object names in its header. */
async function objectKeyId(ct: Buffer, file: string): Promise<string> {
  // Loaded on demand: the protocol module brings the curve code that no other command needs.
  const { parseObjectHeader } = await import('../protocols/dprf.js');
  try {
    return parseObjectHeader(new Uint8Array(ct)).keyId;
  } catch {
    throw usageError(`${file} is not an ekm AES object, so it does not name its key`, 'give the key with -n (RSA ciphertexts always need -n)');
  }
}

export function registerKeyCommands(program: Command, ctx: UclContext): void {
  const created = (verb: string, k: KeyView, partition: string, out?: string): string =>
    `${verb} ${keyType(k.alg)} key (${k.alg}) UID=${k.keyId}${k.name ? ` Name=${JSON.stringify(k.name)}` : ''} in partition ${partition}${out ? `; public key in ${out}` : ''}`;

  withCredentials(
    program
      .command('generate')
      .description('generate a threshold key in the partition')
      .requiredOption('-t, --type <type>', 'ECC, EDDSA, SCHNORR, RSA or AES')
      .option('--curve <curve>', 'ECC: p256 (default), p384, secp256k1, ed25519')
      .option('--size <bits>', 'RSA: 2048 (default), 3072, 4096; AES: 256')
      .option('-n, --name <name>', 'key name, unique in the partition')
      .option('--desc <text>', 'description')
      .option('--not-after <time>', 'ECC, EDDSA, SCHNORR: when the key stops signing, for good (ISO 8601, e.g. 2027-12-31T23:59:59Z)')
      .option('-o, --out <file>', 'write the public key (PEM) here'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { type: string; curve?: string; size?: string; name?: string; desc?: string; notAfter?: string; out?: string }) => {
    const alg = algFor(o.type, o.curve, o.size);
    const creds = await credentials(o);
    if (o.out && alg === 'aes-256-dprf') throw usageError('-o writes a public key: AES keys have none');
    const k = await call<KeyView & { publicKey: string | null }>(ctx, creds, 'POST', '/api/v1/keys', {
      alg,
      ...(o.name !== undefined ? { name: o.name } : {}),
      ...(o.desc !== undefined ? { description: o.desc } : {}),
      ...(o.notAfter !== undefined ? { notAfter: o.notAfter } : {}),
    });
    if (o.out && k.publicKey) writeOutput(o.out, k.publicKey);
    if (ctx.json()) printJson(ctx, { ...k, partition: creds.partition });
    else ctx.print(created('Generated', k, creds.partition, o.out));
  });

  withCredentials(
    program
      .command('import')
      .description('import an RSA private key (split into shares at once, not kept whole) or a public key (to verify; RSA: to encrypt)')
      .requiredOption('-i, --in <file>', 'a PEM file: RSA private key (PKCS#8 or PKCS#1), or a public key (SPKI)')
      .option('-n, --name <name>', 'key name, unique in the partition')
      .option('--desc <text>', 'description')
      .option('-o, --out <file>', 'write the public key (PEM) here'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { in: string; name?: string; desc?: string; out?: string }) => {
    const pem = readInput(o.in).toString('utf8');
    if (!pem.includes('-----BEGIN')) throw new EkmError('EKM_INPUT', `${o.in} is not a PEM file`, { hint: 'export a private key as PKCS#8 PEM (openssl pkcs8 -topk8 -nocrypt), a public key as SPKI PEM (openssl pkey -pubout)' });
    const creds = await credentials(o);
    const isPublic = pem.includes('-----BEGIN PUBLIC KEY-----');
    const k = await call<KeyView & { publicKey: string }>(ctx, creds, 'POST', '/api/v1/keys/import', {
      [isPublic ? 'publicKeyPem' : 'privateKeyPem']: pem,
      ...(o.name !== undefined ? { name: o.name } : {}),
      ...(o.desc !== undefined ? { description: o.desc } : {}),
    });
    if (o.out) writeOutput(o.out, k.publicKey);
    if (ctx.json()) printJson(ctx, { ...k, partition: creds.partition });
    else ctx.print(created(isPublic ? 'Imported the public' : 'Imported', k, creds.partition, o.out));
  });

  withCredentials(
    program
      .command('list')
      .description('list the keys of the partition')
      .option('-n, --name <name>', 'only this key (name or UID)')
      .option('-t, --type <type>', 'only this type (ECC, EDDSA, SCHNORR, RSA, AES)')
      .option('--state <state>', 'active, deactivated or destroyed (default: active and deactivated)'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name?: string; type?: string; state?: string }) => {
    const creds = await credentials(o);
    const type = o.type?.toUpperCase();
    if (type && !['ECC', 'EDDSA', 'SCHNORR', 'RSA', 'AES'].includes(type)) throw usageError(`-t ${o.type} is not a key type`, 'use ECC, EDDSA, SCHNORR, RSA or AES');
    const state = o.state?.toLowerCase();
    if (state && !['active', 'deactivated', 'destroyed'].includes(state)) throw usageError(`--state ${o.state} is not a key state`, 'use active, deactivated or destroyed');
    const ref = o.name === undefined ? undefined : keyRef(o.name);
    const filter = [ref && !UID.test(ref) ? `name=${seg(ref)}` : '', state ? `state=${state}` : ''].filter(Boolean).join('&');
    let after: string | null = '';
    const keys: KeyView[] = [];
    let head: KeyList | undefined;
    while (after !== null) {
      const page: KeyList = await call<KeyList>(ctx, creds, 'GET', `/api/v1/keys?limit=1000${after ? `&after=${after}` : ''}${filter ? `&${filter}` : ''}`);
      head ??= page;
      keys.push(...page.keys);
      after = page.next;
    }
    const shown = keys.filter((k) => (!ref || !UID.test(ref) || k.keyId === ref) && (!type || keyType(k.alg) === type));
    if (ctx.json()) {
      printJson(ctx, { partition: head!.partition, index: head!.index, keys: shown });
      return;
    }
    ctx.print(`Partition ${head!.index} ${head!.partition}: ${shown.length} object${shown.length === 1 ? '' : 's'} found`);
    for (const k of shown) ctx.print(listLine(k));
  });

  withCredentials(program.command('show').description('show a key').requiredOption('-n, --name <name>', 'key name or UID'), { defaultUser: 'so' }).action(
    async (o: CredentialOpts & { name: string }) => {
      const k = await call<KeyShow>(ctx, await credentials(o), 'GET', `/api/v1/keys/${seg(keyRef(o.name))}`);
      if (ctx.json()) {
        printJson(ctx, k);
        return;
      }
      const pub = k.publicKey ? createPublicKey(k.publicKey) : undefined;
      ctx.print(`${k.alg.startsWith('aes') ? 'Secret' : k.imported === 'public' ? 'Public' : 'Private'} ${keyType(k.alg)} key : UID=${k.keyId}`);
      ctx.print(`  Name           : ${k.name ?? ''}`);
      ctx.print(`  Description    : ${k.description ?? ''}`);
      ctx.print(`  Algorithm      : ${k.alg}`);
      ctx.print(`  State          : ${k.state}${k.stateChangedAt ? ` (since ${k.stateChangedAt})` : ''}`);
      ctx.print(`  Created        : ${k.createdAt}`);
      if (k.epoch !== null) ctx.print(`  Epoch          : ${k.epoch}`);
      if (k.notAfter) ctx.print(`  Signs until    : ${k.notAfter}`);
      if (k.alg.startsWith('ecdsa-')) ctx.print(`  Presignatures  : ${k.presignaturesReady}`);
      if (!pub || !k.publicKey) return;
      const d = pub.asymmetricKeyDetails;
      ctx.print(`  Public key     : ${pub.asymmetricKeyType}${d?.namedCurve ? ` ${d.namedCurve}` : d?.modulusLength ? ` ${d.modulusLength} bits` : ''}`);
      for (const line of k.publicKey.trim().split('\n')) ctx.print(`    ${line}`);
    },
  );

  withCredentials(
    program
      .command('update')
      .description('rename, describe, deactivate or reactivate a key')
      .requiredOption('-n, --name <name>', 'key name or UID')
      .option('--new-name <name>', 'the new name ("" removes it)')
      .option('--desc <text>', 'the new description ("" removes it)')
      .option('--state <state>', 'active or deactivated (a deactivated key verifies and decrypts, it does not sign or encrypt)'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; newName?: string; desc?: string; state?: string }) => {
    const state = o.state?.toLowerCase();
    if (state !== undefined && state !== 'active' && state !== 'deactivated') throw usageError(`--state ${o.state} is not available`, 'use active or deactivated; ucl delete destroys a key');
    if (o.newName === undefined && o.desc === undefined && state === undefined) throw usageError('nothing to change', 'give --new-name, --desc or --state');
    const body = {
      ...(o.newName !== undefined ? { name: o.newName === '' ? null : o.newName } : {}),
      ...(o.desc !== undefined ? { description: o.desc === '' ? null : o.desc } : {}),
      ...(state !== undefined ? { state } : {}),
    };
    const k = await call<KeyView>(ctx, await credentials(o), 'PATCH', `/api/v1/keys/${seg(keyRef(o.name))}`, body);
    if (ctx.json()) printJson(ctx, k);
    else ctx.print(listLine(k));
  });

  withCredentials(
    program
      .command('delete')
      .description("destroy a key on all three servers (irreversible; the partition's SO only)")
      .requiredOption('-n, --name <name>', 'key name or UID')
      .option('-y, --yes', 'do not ask for confirmation'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; yes?: boolean }) => {
    const ref = keyRef(o.name);
    const creds = await credentials(o);
    const k = await call<KeyShow>(ctx, creds, 'GET', `/api/v1/keys/${seg(ref)}`);
    if (k.state === 'destroyed') throw new EkmError('EKM_KEY_DESTROYED', `key ${k.keyId} was already destroyed at ${k.stateChangedAt ?? '?'}`);
    await confirm(`Destroy ${keyType(k.alg)} key UID=${k.keyId}${k.name ? ` Name=${JSON.stringify(k.name)}` : ''}? This cannot be undone`, o.yes);
    const r = await call<KeyView & { pendingPurge: string[] }>(ctx, creds, 'DELETE', `/api/v1/keys/${k.keyId}`);
    if (ctx.json()) printJson(ctx, r);
    else {
      ctx.print(`Destroyed ${keyType(r.alg)} key UID=${r.keyId}: its shares are erased`);
      if (r.pendingPurge.length) process.stderr.write(`ucl: note: ${r.pendingPurge.join(' and ')} unreachable: the EP keeps asking it to erase its share (the key is already unusable)\n`);
    }
  });

  withCredentials(
    program
      .command('encrypt')
      .description('encrypt a file (AES: self-describing AES-256-GCM object; RSA: OAEP with the public key)')
      .requiredOption('-n, --name <name>', 'key name or UID')
      .requiredOption('-i, --in <file>', 'the plaintext')
      .requiredOption('-o, --out <file>', 'where the ciphertext goes')
      .option('--aad <file>', 'AES: additional authenticated data (encryption context) that decrypt must be given again')
      .option('--scheme <scheme>', 'RSA: OAEP (default) or PKCS1')
      .option('--hash <hash>', 'RSA OAEP: sha256 (default) or sha1')
      .option('--out-format <format>', 'BIN (default), HEX or BASE64'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; in: string; out: string; aad?: string; scheme?: string; hash?: string; outFormat?: string }) => {
    const fmt = encoding(o.outFormat, '--out-format');
    const data = readInput(o.in);
    const aad = o.aad === undefined ? undefined : readInput(o.aad, '--aad <file>');
    const creds = await credentials(o);
    const r = await call<{ keyId: string; ciphertext: string }>(ctx, creds, 'POST', `/api/v1/keys/${seg(keyRef(o.name))}/encrypt`, {
      plaintext: data.toString('base64'),
      ...(aad ? { aad: aad.toString('base64') } : {}),
      ...rsaScheme(o.scheme, o.hash),
    });
    const ct = Buffer.from(r.ciphertext, 'base64');
    writeOutput(o.out, encode(ct, fmt));
    if (ctx.json()) printJson(ctx, { keyId: r.keyId, bytes: ct.length, out: o.out });
    else ctx.print(`Encrypted ${data.length} bytes with key UID=${r.keyId}: ${ct.length} bytes in ${o.out}`);
  });

  withCredentials(
    program
      .command('decrypt')
      .description('decrypt a file (an AES object names its key; RSA needs -n)')
      .option('-n, --name <name>', 'key name or UID (default: the key the AES object names)')
      .requiredOption('-i, --in <file>', 'the ciphertext')
      .requiredOption('-o, --out <file>', 'where the plaintext goes')
      .option('--aad <file>', 'AES: the additional authenticated data given at encryption')
      .option('--scheme <scheme>', 'RSA: OAEP (default) or PKCS1')
      .option('--hash <hash>', 'RSA OAEP: sha256 (default) or sha1')
      .option('--in-format <format>', 'of the ciphertext file: BIN (default), HEX or BASE64'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name?: string; in: string; out: string; aad?: string; scheme?: string; hash?: string; inFormat?: string }) => {
    const ct = decode(readInput(o.in), encoding(o.inFormat, '--in-format'), o.in);
    const aad = o.aad === undefined ? undefined : readInput(o.aad, '--aad <file>');
    const ref = o.name !== undefined ? keyRef(o.name) : await objectKeyId(ct, o.in);
    const creds = await credentials(o);
    const r = await call<{ keyId: string; plaintext: string }>(ctx, creds, 'POST', `/api/v1/keys/${seg(ref)}/decrypt`, {
      ciphertext: ct.toString('base64'),
      ...(aad ? { aad: aad.toString('base64') } : {}),
      ...rsaScheme(o.scheme, o.hash),
    });
    const pt = Buffer.from(r.plaintext, 'base64');
    writeOutput(o.out, pt);
    if (ctx.json()) printJson(ctx, { keyId: r.keyId, bytes: pt.length, out: o.out });
    else ctx.print(`Decrypted ${pt.length} bytes with key UID=${r.keyId} into ${o.out}`);
  });

  withCredentials(
    program
      .command('sign')
      .description('sign a file (ECDSA signatures are DER)')
      .requiredOption('-n, --name <name>', 'key name or UID')
      .option('--hash <hash>', 'ECDSA: sha256 (default), sha384, sha512; none for EdDSA/Schnorr')
      .requiredOption('-i, --in <file>', 'data to sign')
      .requiredOption('-o, --out <file>', 'where the signature goes')
      .option('--out-format <format>', 'BIN (default), HEX or BASE64'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; hash?: string; in: string; out: string; outFormat?: string }) => {
    const id = keyRef(o.name);
    const fmt = encoding(o.outFormat, '--out-format');
    const data = readInput(o.in);
    const creds = await credentials(o);
    const k = await call<KeyShow>(ctx, creds, 'GET', `/api/v1/keys/${seg(id)}`);
    const hash = hashFor(k.alg, o.hash);
    const r = await call<{ signature: string; alg: string; epoch: number }>(ctx, creds, 'POST', `/api/v1/keys/${k.keyId}/sign`, {
      message: data.toString('base64'),
      ...(hash ? { hash } : {}),
      ...(k.alg.startsWith('ecdsa-') ? { format: 'der' } : {}),
    });
    const sig = Buffer.from(r.signature, 'base64');
    writeOutput(o.out, encode(sig, fmt));
    if (ctx.json()) printJson(ctx, { keyId: k.keyId, alg: r.alg, signature: r.signature, out: o.out });
    else ctx.print(`Signed ${data.length} bytes with ${keyType(k.alg)} key UID=${k.keyId}: ${sig.length}-byte signature in ${o.out}`);
  });

  withCredentials(
    program
      .command('verify')
      .description('verify a signature; exit 1 when it does not verify')
      .requiredOption('-n, --name <name>', 'key name or UID')
      .option('--hash <hash>', 'ECDSA: sha256 (default), sha384, sha512')
      .requiredOption('-i, --in <file>', 'the signed data')
      .requiredOption('-s, --signature <file>', 'the signature (ECDSA: DER or r‖s)')
      .option('--in-format <format>', 'of the signature file: BIN (default), HEX or BASE64'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; hash?: string; in: string; signature: string; inFormat?: string }) => {
    const id = keyRef(o.name);
    const fmt = encoding(o.inFormat, '--in-format');
    const data = readInput(o.in);
    const sig = decode(readInput(o.signature, '-s <signature file>'), fmt, o.signature);
    const creds = await credentials(o);
    const k = await call<KeyShow>(ctx, creds, 'GET', `/api/v1/keys/${seg(id)}`);
    const hash = hashFor(k.alg, o.hash);
    const format = k.alg.startsWith('ecdsa-') ? (sig[0] === 0x30 && sig.length !== (k.alg === 'ecdsa-p384' ? 96 : 64) ? 'der' : 'raw') : undefined;
    const r = await call<{ valid: boolean }>(ctx, creds, 'POST', `/api/v1/keys/${k.keyId}/verify`, {
      message: data.toString('base64'),
      signature: sig.toString('base64'),
      ...(hash ? { hash, format } : {}),
    });
    if (ctx.json()) printJson(ctx, { keyId: k.keyId, valid: r.valid });
    else if (r.valid) ctx.print(`Signature is valid (key UID=${k.keyId})`);
    if (!r.valid) throw new EkmError('EKM_BAD_SIGNATURE', `the signature in ${o.signature} does not verify with key ${id}`);
  });

  withCredentials(
    program
      .command('export')
      .description('export the public key (MPC keys have no private part to export)')
      .requiredOption('-n, --name <name>', 'key name or UID')
      .requiredOption('-o, --out <file>', 'where the public key goes')
      .option('--format <format>', 'PEM (default) or DER'),
    { defaultUser: 'so' },
  ).action(async (o: CredentialOpts & { name: string; out: string; format?: string }) => {
    const id = keyRef(o.name);
    const f = (o.format ?? 'PEM').toLowerCase();
    if (f !== 'pem' && f !== 'der') throw usageError(`--format ${o.format} is not available`, 'use PEM or DER');
    const r = await call<{ keyId: string; alg: string; value: string }>(ctx, await credentials(o), 'GET', `/api/v1/keys/${seg(id)}/public?format=${f}`);
    const data = f === 'pem' ? r.value : Buffer.from(r.value, 'base64');
    writeOutput(o.out, data);
    if (ctx.json()) printJson(ctx, { keyId: r.keyId, alg: r.alg, format: f, out: o.out });
    else ctx.print(`Public key of ${keyType(r.alg)} key UID=${r.keyId} written to ${o.out} (${f.toUpperCase()})`);
  });
}
