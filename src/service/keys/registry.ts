/**
 * Every key family and share scheme of the service, built once per KeyService. A new family is a
 * module implementing KeyFamily (family.ts) and one line in `all` below (with a field here if it
 * has operations of its own beyond the contract's, as RSA and AES have encryption).
 */
import { EkmError } from '../../errors.js';
import type { KeyRow } from '../../store/key-records.js';
import { AesKeys } from './aes-keys.js';
import { EcKeys } from './ec-keys.js';
import type { FamilyDeps, KeyFamily, ShareScheme } from './family.js';
import { ImportedPublicKeys } from './imported-public-keys.js';
import { RsaKeys } from './rsa-keys.js';
import { RsaShares } from './rsa-shares.js';
import { ThresholdShares } from './threshold-shares.js';

export class KeyFamilies {
  readonly threshold: ThresholdShares;
  readonly ec: EcKeys;
  readonly rsa: RsaKeys;
  readonly aes: AesKeys;
  readonly imported: ImportedPublicKeys;
  /** In the order a stored key is matched: imported public keys first (their algorithms name other families too). */
  readonly all: readonly KeyFamily[];
  /** Every scheme once, in the order their batches run. */
  readonly schemes: readonly ShareScheme[];

  constructor(deps: FamilyDeps) {
    this.threshold = new ThresholdShares(deps);
    const rsaShares = new RsaShares(deps);
    this.imported = new ImportedPublicKeys(deps);
    this.ec = new EcKeys(deps, this.threshold);
    this.rsa = new RsaKeys(deps, rsaShares);
    this.aes = new AesKeys(deps, this.threshold);
    this.all = [this.imported, this.ec, this.rsa, this.aes];
    this.schemes = [this.threshold, rsaShares];
  }

  /** The family of a stored key. */
  of(row: KeyRow): KeyFamily {
    const family = this.all.find((f) => f.owns(row));
    if (!family) throw new EkmError('EKM_BAD_ALG', `key ${row.keyId} has an unknown algorithm ${row.alg}`);
    return family;
  }

  /** The family that generates keys of `alg`, if any. */
  generating(alg: string): KeyFamily | undefined {
    return this.all.find((f) => (f.algs as readonly string[]).includes(alg));
  }

  /**
   * The scheme holding keys of `alg`. A key whose record is gone by now (destroyed meanwhile) goes
   * with the threshold batch, which skips a key it holds no share of.
   */
  schemeOf(alg: string): ShareScheme {
    return this.schemes.find((s) => s.holds(alg)) ?? this.threshold;
  }

  /** Every family's and scheme's answers on the helpers (Partner, Aux). */
  registerHelpers(): void {
    for (const scheme of this.schemes) scheme.registerHelpers();
    for (const family of this.all) family.registerHelpers();
  }
}
