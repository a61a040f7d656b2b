/**
 * The client ledger of the fault suite: every operation the EP acknowledged (a key and its public
 * key, a signature, an AES ciphertext and its plaintext), and the figures the suite reports. What
 * it holds is what a client could rely on; the checks after each fault replay it against the triplet.
 */
import { type SignTestAlg, verifyIndependently } from '../support/verify-ec.js';

export interface SigningKey {
  readonly keyId: string;
  readonly alg: SignTestAlg;
  readonly pem: string;
}

export interface Signature {
  readonly key: SigningKey;
  readonly message: Buffer;
  readonly signature: Buffer;
}

/** A ciphertext owed a decryption: AES (made by the EP) or RSA-OAEP (made by the client with the public key). */
export interface Sealed {
  readonly keyId: string;
  readonly plaintext: Buffer;
  readonly ciphertext: string;
}

/** The fault suite's figures: goal lost = 0 and invalid = 0. */
export interface Figures {
  scenarios: number;
  faults: number;
  acknowledged: number;
  lost: number;
  invalid: number;
}

export class Ledger {
  readonly signingKeys: SigningKey[] = [];
  readonly aesKeys: string[] = [];
  readonly signatures: Signature[] = [];
  readonly sealed: Sealed[] = [];
  readonly figures: Figures = { scenarios: 0, faults: 0, acknowledged: 0, lost: 0, invalid: 0 };
  /** Every lost or invalid output, one line each, for the failure message. */
  readonly problems: string[] = [];

  acknowledged(): void {
    this.figures.acknowledged++;
  }

  lost(what: string): void {
    this.figures.lost++;
    this.problems.push(`lost: ${what}`);
  }

  invalid(what: string): void {
    this.figures.invalid++;
    this.problems.push(`invalid: ${what}`);
  }

  /** A signature the EP returned: recorded if it verifies under the key's public key, else counted invalid. */
  signed(s: Signature): void {
    this.acknowledged();
    if (verifyIndependently(s.key, s.message, s.signature)) this.signatures.push(s);
    else this.invalid(`signature returned by ${s.key.keyId} (${s.key.alg}) does not verify`);
  }

  summary(scope: string, seed?: number): string {
    const f = this.figures;
    return `fault suite (scope ${scope}${seed === undefined ? '' : `, seed ${seed}`}): ${f.scenarios} scenarios, ${f.faults} faults injected, ${f.acknowledged} operations acknowledged, ${f.lost} lost, ${f.invalid} invalid outputs`;
  }
}

/** ECDSA keys whose ledger signatures share an r: a presignature (nonce) was used twice. */
export function reusedNonces(signatures: readonly Signature[]): string[] {
  const seen = new Map<string, string>();
  const reused: string[] = [];
  for (const s of signatures) {
    if (!s.key.alg.startsWith('ecdsa-')) continue;
    const r = `${s.key.keyId}:${s.signature.subarray(0, s.signature.length / 2).toString('hex')}`;
    if (seen.has(r)) reused.push(s.key.keyId);
    seen.set(r, s.key.keyId);
  }
  return reused;
}
