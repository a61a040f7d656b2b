/**
 * The barrier between the store and everything secret in it: AES-256-GCM under the server's
 * system key, with a caller-supplied AAD (e.g. key id and epoch) so a sealed value cannot be
 * moved to another row undetected. Sealed format: `0x01 ‖ nonce(12) ‖ ciphertext ‖ tag(16)`.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { EkmError } from '../errors.js';

const FORMAT = 1;

export class Barrier {
  private readonly key: Buffer;

  constructor(systemKey: Uint8Array) {
    if (systemKey.length !== 32) throw new EkmError('EKM_SYSTEM_KEY', 'the system key must be 32 bytes', { hint: 'restore keys/system.key from a backup' });
    this.key = Buffer.from(systemKey);
  }

  seal(plaintext: Uint8Array, aad: string): Buffer {
    const nonce = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', this.key, nonce);
    c.setAAD(Buffer.from(aad, 'utf8'));
    const body = Buffer.concat([c.update(plaintext), c.final()]);
    return Buffer.concat([Buffer.of(FORMAT), nonce, body, c.getAuthTag()]);
  }

  open(sealed: Uint8Array, aad: string): Buffer {
    if (sealed.length < 1 + 12 + 16 || sealed[0] !== FORMAT) {
      throw new EkmError('EKM_SEALED_CORRUPT', 'a sealed store value is malformed', { hint: 'the store is damaged: restore from a backup' });
    }
    const buf = Buffer.from(sealed);
    const d = createDecipheriv('aes-256-gcm', this.key, buf.subarray(1, 13));
    d.setAAD(Buffer.from(aad, 'utf8'));
    d.setAuthTag(buf.subarray(buf.length - 16));
    try {
      return Buffer.concat([d.update(buf.subarray(13, buf.length - 16)), d.final()]);
    } catch {
      throw new EkmError(
        'EKM_SEALED_CORRUPT',
        'a sealed store value failed authentication (wrong system key, or the row was altered or moved)',
        { hint: 'check keys/system.key belongs to this store' },
      );
    }
  }
}
