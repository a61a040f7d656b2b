/**
 * The audit log: every security-relevant request, appended to one table that is hash-chained and
 * signed. Row n's hash is SHA-256(prev_hash ‖ canonical(row n)), so editing a row breaks its own
 * hash and deleting one breaks the next row's link (and leaves a gap in `seq`); each hash is
 * signed with the root partition's Ed25519 integrity key, so re-hashing the chain after an edit
 * does not help without that key.
 *
 * The integrity key is created on first use and kept in the store, sealed by the server's
 * barrier (AES-256-GCM under keys/system.key, AAD `integrity|<id>`), the way key shares are:
 * a copy of the database alone cannot forge rows, the key travels with the store (and so with
 * its backups, where old rows must still verify), and there is no second secret file to
 * protect, back up and restore. Public keys stay readable, so `verify` names the key per row.
 *
 * What goes in: who (`user@partition`), partition (its name, and its id when it exists), operation, key id, result, HTTP status, client
 * address, request id, and at most an error code as detail. Never a body, a password or a token.
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import type { AuditEntry, AuditPartition, AuditRecord, Store } from '../store/store.js';
import { safeText } from '../util/text.js';
import { EkmError } from '../errors.js';

/** Bootstrap creates the root partition first: its id is 1. */
export const ROOT_PARTITION_ID = 1;
const DOMAIN = Buffer.from('ekm-audit-v1\0', 'utf8');
const GENESIS = '0'.repeat(64);

/**
 * Every text field as the store will give it back (util/text.ts): the row is hashed as it is
 * stored, so no input — a lone surrogate, a NUL, a pair cut in half — can make a stored row
 * disagree with its own hash. Callers pass validated values; this is the chain's own guarantee.
 */
function storableEntry(e: AuditEntry): AuditEntry {
  const text = <T extends string | null>(v: T, max: number): T => (v === null ? v : (safeText(v, max) as T));
  return {
    ...e,
    at: text(e.at, 64),
    requestId: text(e.requestId, 64),
    actor: text(e.actor, 129),
    partition: text(e.partition, 64),
    operation: text(e.operation, 128),
    keyId: text(e.keyId, 64),
    client: text(e.client, 64),
    detail: text(e.detail, 256),
  };
}

/**
 * The canonical encoding of a row: a JSON array in a fixed field order (no key-order ambiguity).
 * The partition id (schema 8) is appended only when the row has one: rows written before it
 * existed have none and hash exactly as they were hashed then, so they still verify; a row with
 * an id has a longer array, so no row with an id hashes like one without.
 */
export function canonicalAudit(r: AuditEntry & { seq: number }): string {
  const fields: unknown[] = [r.seq, r.at, r.requestId, r.actor, r.partition, r.operation, r.keyId, r.result, r.status, r.client, r.detail];
  if (r.partitionId !== undefined && r.partitionId !== null) fields.push(r.partitionId);
  return JSON.stringify(fields);
}

export function auditHash(prevHash: string, r: AuditEntry & { seq: number }): string {
  return createHash('sha256').update(Buffer.from(prevHash, 'hex')).update(canonicalAudit(r), 'utf8').digest('hex');
}

export interface AuditProblem {
  readonly seq: number;
  readonly problem: string;
}

/** A row whose content does not match its hash, recorded as such by a later, signed row. */
export interface AuditAcknowledged {
  readonly seq: number;
  readonly problem: string;
  /** The row that acknowledged it, and who did. */
  readonly by: { readonly seq: number; readonly actor: string | null };
}

export interface AuditVerifyResult {
  readonly ok: boolean;
  readonly rows: number;
  readonly head: { seq: number; hash: string } | null;
  /** The first problems found (at most 20), in chain order. */
  readonly problems: AuditProblem[];
  /** Rows that verify once the store's replacement of ill-formed text is undone (not problems). */
  readonly notices: AuditProblem[];
  /** Content mismatches an operator acknowledged (not problems while the row stays as acknowledged). */
  readonly acknowledged: AuditAcknowledged[];
}

/** The operation of an acknowledgement row, and its detail: `row <seq> sha256:<digest of the row as stored>`. */
export const AUDIT_ACKNOWLEDGE = 'audit.acknowledge';
const ACK_DETAIL = /^row (\d+) sha256:([0-9a-f]{64})$/;
export const acknowledgementDetail = (seq: number, digest: string): string => `row ${seq} sha256:${digest}`;

/** Digest of a row's content as stored (what an acknowledgement pins). */
export function storedRowDigest(r: AuditRecord): string {
  return createHash('sha256').update(canonicalAudit(r), 'utf8').digest('hex');
}

const CONTENT_MISMATCH = 'its content does not match its hash';

/**
 * A row written before rows were made storable (storableEntry) may hold a lone surrogate that was
 * hashed as sent and stored in its place as U+FFFD: one (UTF-8 encoders that replace, as
 * PostgreSQL's client does) or three (SQLite keeps the surrogate's three bytes, which decode as
 * three). With one such place in the row, the 2,048 surrogates are tried in it: the one that
 * matches the hash is what was sent, and the row is not altered. With more, the search would be
 * 2,048ⁿ: undefined, and the row is reported for acknowledgement.
 */
function restoredSurrogate(r: AuditRecord): string | undefined {
  const canonical = canonicalAudit(r);
  const runs = [...canonical.matchAll(/\uFFFD+/g)];
  if (runs.length !== 1 || (runs[0]![0].length !== 1 && runs[0]![0].length !== 3)) return undefined;
  const before = canonical.slice(0, runs[0]!.index);
  const after = canonical.slice(runs[0]!.index! + runs[0]![0].length);
  for (let unit = 0xd800; unit <= 0xdfff; unit++) {
    // JSON.stringify writes a lone surrogate as a \uXXXX escape: the canonical form it was hashed in.
    const escape = `\\u${unit.toString(16)}`;
    const hash = createHash('sha256').update(Buffer.from(r.prevHash, 'hex')).update(before + escape + after, 'utf8').digest('hex');
    if (hash === r.hash) return `U+${unit.toString(16).toUpperCase()}`;
  }
  return undefined;
}

/** Why a row's content does not match its hash, for the operator. */
function contentProblem(r: AuditRecord): string {
  const replaced = canonicalAudit(r).split('\uFFFD').length - 1;
  if (replaced === 0) return `${CONTENT_MISMATCH} (the row was altered)`;
  return (
    `${CONTENT_MISMATCH}; it holds ${replaced} replacement character${replaced === 1 ? '' : 's'} (U+FFFD), as a row of ill-formed text ` +
    'written before ekm made rows storable would, and its link and signature hold: if that is what it is, acknowledge it (ucl audit acknowledge)'
  );
}

export type AuditInput = Omit<AuditEntry, 'at'> & { at?: string };

/** How long an audit row may wait for others to share its commit (one transaction, one fsync). */
const GROUP_COMMIT_MS = 2;
/** Rows per transaction at most. */
const MAX_BATCH = 256;

interface PendingRow {
  readonly entry: AuditEntry;
  resolve(rec: AuditRecord): void;
  reject(e: unknown): void;
}

export class AuditLog {
  private key: Promise<{ id: string; privateKey: KeyObject }> | undefined;
  /** The newest seq this process appended: rows cut off the end while it runs are detected. */
  private lastSeq = 0;
  /** Rows waiting for their group commit, in arrival order. */
  private pending: PendingRow[] = [];
  private flushTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;

  constructor(private readonly store: Store) {}

  private signingKey(): Promise<{ id: string; privateKey: KeyObject }> {
    this.key ??= (async () => {
      const existing = await this.store.getIntegrityKey(ROOT_PARTITION_ID);
      if (existing) {
        return { id: existing.id, privateKey: createPrivateKey({ key: Buffer.from(existing.privateKeyDer), format: 'der', type: 'pkcs8' }) };
      }
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const spki = publicKey.export({ format: 'der', type: 'spki' });
      const id = createHash('sha256').update(spki).digest('hex').slice(0, 16);
      await this.store.putIntegrityKey({
        id,
        partitionId: ROOT_PARTITION_ID,
        publicKeyPem: publicKey.export({ format: 'pem', type: 'spki' }).toString(),
        privateKeyDer: new Uint8Array(privateKey.export({ format: 'der', type: 'pkcs8' })),
      });
      return { id, privateKey };
    })().catch((e: unknown) => {
      this.key = undefined;
      throw e;
    });
    return this.key;
  }

  /**
   * Appends a row; resolves once it is committed. Rows arriving within GROUP_COMMIT_MS of each
   * other share one transaction: under load one fsync serves many requests, and the work happens
   * after the responses that caused it have left, not while their clients wait.
   */
  record(input: AuditInput): Promise<AuditRecord> {
    const entry = storableEntry({ ...input, at: input.at ?? new Date().toISOString() });
    return new Promise((resolve, reject) => {
      this.pending.push({ entry, resolve, reject });
      this.scheduleFlush();
    });
  }

  /** Commits every row recorded so far (before the server stops). */
  async drain(): Promise<void> {
    while (this.pending.length > 0 || this.flushing) {
      if (this.flushTimer) {
        clearTimeout(this.flushTimer);
        this.flushTimer = undefined;
        this.flushing ??= this.flush();
      }
      await this.flushing;
    }
  }

  private scheduleFlush(): void {
    if (this.flushTimer || this.flushing) return;
    this.flushTimer = setTimeout(() => {
      this.flushTimer = undefined;
      this.flushing = this.flush();
    }, GROUP_COMMIT_MS);
  }

  private async flush(): Promise<void> {
    const batch = this.pending.splice(0, MAX_BATCH);
    try {
      const { id, privateKey } = await this.signingKey();
      const recs = await this.store.appendAudit(
        batch.map((p) => p.entry),
        (prev, entry) => {
          const hash = auditHash(prev.hash, { ...entry, seq: prev.seq + 1 });
          const sig = sign(null, Buffer.concat([DOMAIN, Buffer.from(hash, 'hex')]), privateKey).toString('base64');
          return { hash, sig, keyRef: id };
        },
      );
      this.lastSeq = Math.max(this.lastSeq, recs[recs.length - 1]!.seq);
      batch.forEach((p, i) => p.resolve(recs[i]!));
    } catch (e) {
      for (const p of batch) p.reject(e);
    } finally {
      this.flushing = undefined;
      if (this.pending.length > 0) this.scheduleFlush();
    }
  }

  list(opts: { after?: number; limit: number; partition?: AuditPartition }): Promise<AuditRecord[]> {
    return this.store.listAudit(opts);
  }

  /**
   * Row `seq` may be acknowledged: its content does not match its hash (and no surrogate search
   * explains it), and it is not acknowledged already. Returns the digest of the row as stored,
   * which the acknowledgement row pins: a row changed after it is a problem again.
   */
  async acknowledgeable(seq: number): Promise<{ digest: string }> {
    const [row] = await this.store.listAudit({ after: seq - 1, limit: 1 });
    if (!row || row.seq !== seq) throw new EkmError('EKM_NOT_FOUND', `the audit log has no row ${seq}`);
    // Only what an older release could have written: a row whose content does not match its hash
    // and holds replacement characters where it stored ill-formed text, with no surrogate search
    // explaining it. A row edited otherwise is tampering, and stays a problem.
    const mismatch = auditHash(row.prevHash, row) !== row.hash;
    if (!mismatch || !canonicalAudit(row).includes('\uFFFD') || restoredSurrogate(row) !== undefined) {
      throw new EkmError('EKM_AUDIT_NOT_ACKNOWLEDGEABLE', `row ${seq} is not a row of ill-formed text stored unlike it was hashed`, {
        hint: 'only rows `ucl audit verify` reports as holding replacement characters are acknowledged; any other mismatch, a broken link, a bad signature or a missing row is tampering',
      });
    }
    if ((await this.verify()).acknowledged.some((a) => a.seq === seq)) throw new EkmError('EKM_AUDIT_NOT_ACKNOWLEDGEABLE', `row ${seq} is acknowledged already`);
    return { digest: storedRowDigest(row) };
  }

  /** Whether `k` is a root integrity key whose private half this store sealed and matches its public half. */
  private async sealedByThisStore(k: { id: string; partitionId: number; publicKeyPem: string }): Promise<boolean> {
    if (k.partitionId !== ROOT_PARTITION_ID) return false;
    const der = await this.store.openIntegrityKey(k.id);
    if (!der) return false;
    try {
      const fromPrivate = createPublicKey(createPrivateKey({ key: Buffer.from(der), format: 'der', type: 'pkcs8' })).export({ format: 'der', type: 'spki' });
      return fromPrivate.equals(createPublicKey(k.publicKeyPem).export({ format: 'der', type: 'spki' }));
    } catch {
      return false;
    } finally {
      der.fill(0);
    }
  }

  /** Walks the whole chain: links, hashes, signatures, gaps, and the tail this process wrote. */
  async verify(): Promise<AuditVerifyResult> {
    // Only keys this store sealed count: a row added to integrity_keys by someone with write access
    // to the database (their own public key, junk in place of the sealed private key) would
    // otherwise let them re-hash and re-sign the chain from any row on.
    const keys = new Map<string, KeyObject>();
    const forged = new Set<string>();
    for (const k of await this.store.listIntegrityKeys()) {
      if (await this.sealedByThisStore(k)) keys.set(k.id, createPublicKey(k.publicKeyPem));
      else forged.add(k.id);
    }
    const problems: AuditProblem[] = [];
    const note = (seq: number, problem: string): void => {
      if (problems.length < 20) problems.push({ seq, problem });
    };
    const notices: AuditProblem[] = [];
    const mismatches = new Map<number, { problem: string; digest: string }>();
    const acks = new Map<number, { digest: string; by: AuditAcknowledged['by'] }>();
    let prevHash = GENESIS;
    let expected = 1;
    let rows = 0;
    let head: { seq: number; hash: string } | null = null;
    for (;;) {
      const page = await this.store.listAudit({ after: expected - 1, limit: 1000 });
      if (page.length === 0) break;
      for (const r of page) {
        rows++;
        if (r.seq !== expected) note(expected, r.seq - expected === 1 ? `row ${expected} is missing (deleted)` : `rows ${expected}..${r.seq - 1} are missing (deleted)`);
        if (r.prevHash !== prevHash) note(r.seq, 'its link to the previous row is broken (a row before it was deleted or altered)');
        if (auditHash(r.prevHash, r) !== r.hash) {
          const sent = restoredSurrogate(r);
          if (sent) notices.push({ seq: r.seq, problem: `it held a lone surrogate (${sent}) that the store keeps as U+FFFD; restored, the row matches its hash: not altered` });
          else mismatches.set(r.seq, { problem: contentProblem(r), digest: storedRowDigest(r) });
        }
        const ack = r.operation === AUDIT_ACKNOWLEDGE && r.result === 'ok' ? ACK_DETAIL.exec(r.detail ?? '') : null;
        if (ack) acks.set(Number(ack[1]), { digest: ack[2]!, by: { seq: r.seq, actor: r.actor } });
        const key = keys.get(r.keyRef);
        if (!key)
          note(
            r.seq,
            forged.has(r.keyRef)
              ? `it is signed by integrity key ${r.keyRef}, which the store lists but this server's system key did not seal (a key added to the database: the rows it signs are forged)`
              : `it is signed by an unknown integrity key ${r.keyRef}`,
          );
        else if (!/^[0-9a-f]{64}$/.test(r.hash) || !verify(null, Buffer.concat([DOMAIN, Buffer.from(r.hash, 'hex')]), key, Buffer.from(r.sig, 'base64'))) {
          note(r.seq, 'its signature does not verify (the row was re-hashed or forged)');
        }
        prevHash = r.hash;
        expected = r.seq + 1;
        head = { seq: r.seq, hash: r.hash };
      }
    }
    if ((head?.seq ?? 0) < this.lastSeq) note((head?.seq ?? 0) + 1, `rows after ${head?.seq ?? 0} up to ${this.lastSeq} were written by this server and are gone (deleted)`);
    // A mismatch stays a problem unless a later signed row acknowledged this row exactly as it is stored now.
    const acknowledged: AuditAcknowledged[] = [];
    for (const [seq, m] of mismatches) {
      const ack = acks.get(seq);
      // Only rows of replacement characters are ever acknowledged (acknowledgeable); an
      // acknowledgement of any other row, written into the chain by hand, counts for nothing.
      const replaced = !m.problem.endsWith('(the row was altered)');
      if (ack && replaced && ack.digest === m.digest && ack.by.seq > seq) acknowledged.push({ seq, problem: m.problem, by: ack.by });
      else note(seq, m.problem);
    }
    problems.sort((a, b) => a.seq - b.seq);
    return { ok: problems.length === 0, rows, head, problems, notices: notices.slice(0, 20), acknowledged };
  }
}
