/**
 * Which keys a store holds and at which share epochs: public data only (no system key needed).
 * Backups list it in their metadata; at a `-restore` bootstrap the EP and the Partner exchange
 * it and restore every key at the newest epoch both hold (CURRENT or PREVIOUS: docs/protocols.md §6, R9).
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';

export interface HeldEpoch {
  readonly epoch: number;
  readonly status: 'current' | 'previous';
  /** SHA-256 over (alg, Y, C1, A1, A2, A3): equal on EP and Partner for the same key and epoch. */
  readonly pub: string;
}

export interface KeyEpochs {
  readonly keyId: string;
  readonly alg: string;
  /** The CURRENT epoch (keys.current_epoch). */
  readonly epoch: number;
  /** Epochs of which this server holds a usable share (PENDING shares do not count), ascending. */
  readonly held: readonly HeldEpoch[];
}

/** Active keys of the store open in `db`, by key id, with the epochs held. */
export function readKeyEpochs(db: Database.Database): KeyEpochs[] {
  // Imported public keys (EP only, no shares; schema 5) are not shared keys: EP and Partner
  // compare the rest. An archive of an older schema has no such column and no such keys.
  const hasPublicKeys = (db.prepare('PRAGMA table_info(keys)').all() as { name: string }[]).some((c) => c.name === 'public_key');
  const keys = db.prepare(`SELECT key_id, alg, current_epoch FROM keys WHERE state = 'active'${hasPublicKeys ? ' AND public_key IS NULL' : ''} ORDER BY key_id`).all() as {
    key_id: string;
    alg: string;
    current_epoch: number;
  }[];
  const shares = db
    .prepare("SELECT key_id, epoch, status, public_data FROM key_shares WHERE status IN ('current', 'previous') ORDER BY key_id, epoch")
    .all() as { key_id: string; epoch: number; status: 'current' | 'previous'; public_data: string }[];
  const byKey = new Map<string, HeldEpoch[]>();
  for (const s of shares) {
    const list = byKey.get(s.key_id) ?? [];
    list.push({ epoch: s.epoch, status: s.status, pub: publicDigest(s.public_data) });
    byKey.set(s.key_id, list);
  }
  return keys.map((k) => ({ keyId: k.key_id, alg: k.alg, epoch: k.current_epoch, held: byKey.get(k.key_id) ?? [] }));
}

function publicDigest(publicData: string): string {
  const p = JSON.parse(publicData) as Record<string, string>;
  return createHash('sha256')
    // EC shares: the key and the Feldman commitments; RSA shares: the modulus and exponent.
    .update(['alg', 'Y', 'C1', 'A1', 'A2', 'A3', 'n', 'e'].map((f) => `${f}=${p[f] ?? ''}`).join('|'))
    .digest('hex');
}

/** The metadata's list: (keyId, alg, epoch) per key, plus the PREVIOUS epoch where one is held. */
export interface ListedKey {
  readonly keyId: string;
  readonly alg: string;
  readonly epoch: number;
  readonly previous?: number;
}

export function listedKeys(keys: readonly KeyEpochs[]): ListedKey[] {
  return keys.map((k) => {
    const prev = k.held.find((h) => h.status === 'previous');
    return { keyId: k.keyId, alg: k.alg, epoch: k.epoch, ...(prev ? { previous: prev.epoch } : {}) };
  });
}

/** SHA-256 over the sorted list, one `keyId|alg|epoch|previous` line per key. */
export function keysDigest(keys: readonly ListedKey[]): string {
  const h = createHash('sha256');
  for (const k of [...keys].sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0))) {
    h.update(`${k.keyId}|${k.alg}|${k.epoch}|${k.previous ?? ''}\n`);
  }
  return h.digest('hex');
}

export interface KeyProblem {
  readonly keyId: string;
  readonly alg: string;
  readonly why: string;
}

export interface RestorePlan {
  /** Keys both sides hold at a common epoch, and that epoch (the newest one in common). */
  readonly keep: readonly { keyId: string; epoch: number }[];
  /** Keys that cannot be restored from this pair of archives. */
  readonly problems: readonly KeyProblem[];
  /** Keys restored at an older epoch than one side's CURRENT (allowed: R9). */
  readonly rolledBack: number;
}

/** The same result on both sides: it depends only on the EP's and the Partner's lists. */
export function planRestore(ep: readonly KeyEpochs[], partner: readonly KeyEpochs[]): RestorePlan {
  const p = new Map(partner.map((k) => [k.keyId, k]));
  const e = new Map(ep.map((k) => [k.keyId, k]));
  const keep: { keyId: string; epoch: number }[] = [];
  const problems: KeyProblem[] = [];
  let rolledBack = 0;
  const ids = [...new Set([...e.keys(), ...p.keys()])].sort();
  for (const id of ids) {
    const a = e.get(id);
    const b = p.get(id);
    if (!a || !b) {
      const k = (a ?? b)!;
      problems.push({ keyId: id, alg: k.alg, why: a ? 'only in the EP archive' : 'only in the Partner archive' });
      continue;
    }
    let best: number | undefined;
    let pubDiffers = false;
    for (const h of a.held) {
      const other = b.held.find((x) => x.epoch === h.epoch);
      if (!other) continue;
      if (other.pub !== h.pub || a.alg !== b.alg) {
        pubDiffers = true;
        continue;
      }
      if (best === undefined || h.epoch > best) best = h.epoch;
    }
    if (best === undefined) {
      const epochs = (k: KeyEpochs): string => k.held.map((h) => h.epoch).join('+') || 'none';
      problems.push({
        keyId: id,
        alg: a.alg,
        why: pubDiffers
          ? 'EP and Partner hold different public data for it'
          : `no common epoch (EP holds ${epochs(a)}, Partner holds ${epochs(b)})`,
      });
      continue;
    }
    if (best !== a.epoch || best !== b.epoch) rolledBack++;
    keep.push({ keyId: id, epoch: best });
  }
  return { keep, problems, rolledBack };
}
