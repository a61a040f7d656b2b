/**
 * Hybrid encryption of a backup to the administrator's RSA public key: a fresh AES-256-GCM key
 * encrypts the contents, RSA-OAEP (SHA-256, MGF1-SHA-256) wraps that key. RSA-OAEP rather than
 * ECIES because it is one FIPS-approved primitive (SP 800-56B) that `openssl pkeyutl` also opens,
 * so an administrator can unwrap a backup without ekm; keys are 3072 bits (128-bit security).
 */
import {
  type KeyObject,
  constants,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import { EkmError } from '../errors.js';

export const KEY_WRAP = 'RSA-OAEP-SHA256';
export const CIPHER = 'AES-256-GCM';
export const MIN_RSA_BITS = 3072;

export interface BackupKeyPair {
  readonly privatePem: string;
  readonly publicPem: string;
  readonly fingerprint: string;
}

/** SHA-256 of the public key's SubjectPublicKeyInfo DER, as colon-separated hex (like certificate fingerprints). */
export function keyFingerprint(key: KeyObject): string {
  const der = (key.type === 'private' ? createPublicKey(key) : key).export({ format: 'der', type: 'spki' });
  return createHash('sha256')
    .update(der)
    .digest('hex')
    .toUpperCase()
    .replace(/(..)(?=.)/g, '$1:');
}

export function generateBackupKeyPair(bits = MIN_RSA_BITS): BackupKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent: 0x10001 });
  return {
    privatePem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
    fingerprint: keyFingerprint(publicKey),
  };
}

/** The administrator's public key, from a PEM (a public key, or a private key whose public half is used). */
export function loadPublicKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch {
    throw new EkmError('EKM_BACKUP_KEY', `${source} is not a PEM public key`, {
      hint: 'give the public key made by `ekm backup-keygen` (*.pub.pem)',
    });
  }
  checkRsa(key, source);
  return key;
}

export function loadPrivateKey(pem: string, source: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e) {
    const encrypted = /passphrase|ENCRYPTED/i.test(`${(e as Error).message} ${pem.slice(0, 64)}`);
    throw new EkmError('EKM_BACKUP_KEY', encrypted ? `${source} is encrypted with a passphrase` : `${source} is not a PEM private key`, {
      hint: encrypted
        ? 'decrypt it to a 0600 file first: openssl pkey -in <key> -out <plain key>'
        : 'give the private key made by `ekm backup-keygen`',
    });
  }
  checkRsa(key, source);
  return key;
}

function checkRsa(key: KeyObject, source: string): void {
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (key.asymmetricKeyType !== 'rsa' || bits < MIN_RSA_BITS) {
    throw new EkmError(
      'EKM_BACKUP_KEY',
      `${source} is not an RSA key of at least ${MIN_RSA_BITS} bits (${key.asymmetricKeyType ?? '?'}${bits ? ` ${bits}` : ''})`,
      { hint: 'make one with `ekm backup-keygen --out <dir>`' },
    );
  }
}

export interface Sealed {
  /** RSA-OAEP(AES key). */
  readonly wrappedKey: Buffer;
  /** nonce(12) ‖ ciphertext ‖ tag(16). */
  readonly payload: Buffer;
}

export function sealTo(publicKey: KeyObject, plaintext: Uint8Array, aad: Uint8Array): Sealed {
  const dek = randomBytes(32);
  const nonce = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', dek, nonce);
  c.setAAD(aad);
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  const payload = Buffer.concat([nonce, ct, c.getAuthTag()]);
  const wrappedKey = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, dek);
  dek.fill(0);
  return { wrappedKey, payload };
}

/** Opens a sealed payload; any failure (wrong key, altered bytes, altered metadata) is one EkmError. */
export function openWith(privateKey: KeyObject, sealed: Sealed, aad: Uint8Array): Buffer {
  let dek: Buffer;
  try {
    dek = privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, sealed.wrappedKey);
  } catch {
    throw new EkmError('EKM_BACKUP_WRONG_KEY', 'this private key does not open the archive', {
      hint: 'give the backup private key whose public key the backup was made to',
    });
  }
  if (dek.length !== 32 || sealed.payload.length < 28)
    throw new EkmError('EKM_BACKUP_CORRUPT', 'the archive is damaged: bad encryption envelope', { hint: 'use another copy of the backup' });
  try {
    const d = createDecipheriv('aes-256-gcm', dek, sealed.payload.subarray(0, 12));
    d.setAAD(aad);
    d.setAuthTag(sealed.payload.subarray(sealed.payload.length - 16));
    return Buffer.concat([d.update(sealed.payload.subarray(12, sealed.payload.length - 16)), d.final()]);
  } catch {
    throw new EkmError('EKM_BACKUP_CORRUPT', 'the archive is damaged: its encrypted contents or metadata fail authentication', {
      hint: 'the archive was altered or corrupted; use another copy of the backup',
    });
  } finally {
    dek.fill(0);
  }
}
