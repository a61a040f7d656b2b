/**
 * The EPs of a cluster as a client learns them: read from `GET /api/v1/servers` of an EP the client
 * already trusts (pinned by the operator, or learned the same way before), and kept in a small
 * file so that the next run can fail over to an EP other than the one first pinned. Trust is by
 * certificate fingerprint; the file holds no secret, but whoever can write it can add an EP the
 * client trusts, so it is written atomically, never group- or world-writable, and read strictly.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { EkmError } from '../errors.js';
import { DEFAULT_API_PORT, type ServerAddress, parseServerName } from '../cluster/names.js';

/** One EP of the cluster: where its API answers and the SHA-256 fingerprint of its certificate. */
export interface LearnedEp {
  readonly name: string;
  /** host:port of its HTTPS API. */
  readonly api: string;
  readonly fingerprint: string;
}

export interface ClusterMembership {
  readonly clusterId: string;
  readonly eps: readonly LearnedEp[];
}

const CLUSTER_ID = /^[0-9a-f]{16}$/;
/** As node:crypto's X509Certificate.fingerprint256 spells it. */
const FINGERPRINT = /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/;

/** Where a learned EP's API answers. */
export function learnedAddress(ep: LearnedEp): ServerAddress {
  return parseServerName(ep.api, 'a learned EP', DEFAULT_API_PORT);
}

function isApiAddress(text: string): boolean {
  try {
    learnedAddress({ name: '', api: text, fingerprint: '' });
    return true;
  } catch {
    return false;
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function asLearnedEp(row: unknown): LearnedEp | undefined {
  if (!isRecord(row)) return undefined;
  const { name, role, api, fingerprint } = row;
  if (role !== undefined && role !== 'ep') return undefined;
  if (typeof name !== 'string' || name.length === 0) return undefined;
  if (typeof api !== 'string' || !isApiAddress(api)) return undefined;
  if (typeof fingerprint !== 'string' || !FINGERPRINT.test(fingerprint)) return undefined;
  return { name, api, fingerprint };
}

/**
 * The EPs in the body of `GET /api/v1/servers` (Partners and Auxes are not the client's business);
 * undefined when the body is not such a list (an EP of an older release, a proxy's error page).
 */
export function membershipFromServerList(body: unknown): ClusterMembership | undefined {
  if (!isRecord(body) || typeof body.clusterId !== 'string' || !CLUSTER_ID.test(body.clusterId)) return undefined;
  if (!Array.isArray(body.servers)) return undefined;
  const eps = body.servers.map(asLearnedEp).filter((e): e is LearnedEp => e !== undefined);
  return { clusterId: body.clusterId, eps };
}

/**
 * Refuses a membership of another cluster than the one the client already knows: the lists of two
 * clusters are never merged, whatever the operator pointed the client at.
 */
export function assertSameCluster(expected: { clusterId: string; source: string } | undefined, learned: ClusterMembership, from: string): void {
  if (expected === undefined || expected.clusterId === learned.clusterId) return;
  throw new EkmError(
    'EKM_CLUSTER_MISMATCH',
    `${from} belongs to cluster ${learned.clusterId}, but ${expected.source} is of cluster ${expected.clusterId}`,
    { hint: 'point the client at an EP of its own cluster; if that cluster was rebuilt, delete the learned cluster file (ucl learns it again)' },
  );
}

/** Whether two memberships name the same EPs at the same places with the same certificates. */
export function sameMembership(a: ClusterMembership | undefined, b: ClusterMembership): boolean {
  if (a === undefined || a.clusterId !== b.clusterId || a.eps.length !== b.eps.length) return false;
  const key = (e: LearnedEp): string => `${e.name}|${e.api}|${e.fingerprint}`;
  const theirs = new Set(b.eps.map(key));
  return a.eps.every((e) => theirs.has(key(e)));
}

function garbled(path: string, why: string): EkmError {
  return new EkmError('EKM_CLUSTER_CACHE', `${path}: ${why}`, { hint: 'delete the file: the client learns the cluster again from a pinned EP' });
}

/** The membership kept at `path`; undefined when there is no such file yet. */
export function readClusterCache(path: string): ClusterMembership | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw garbled(path, `cannot be read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw garbled(path, 'is not JSON');
  }
  if (!isRecord(parsed) || typeof parsed.clusterId !== 'string' || !CLUSTER_ID.test(parsed.clusterId) || !Array.isArray(parsed.eps))
    throw garbled(path, 'is not a learned cluster (clusterId, eps)');
  const eps = parsed.eps.map(asLearnedEp);
  if (eps.some((e) => e === undefined)) throw garbled(path, 'holds an EP without a name, an API address or a SHA-256 fingerprint');
  return { clusterId: parsed.clusterId, eps: eps as LearnedEp[] };
}

/** One level only: Node 20's recursive mkdir spins where a parent cannot be made (src/config/home.ts). */
function makeFolder(path: string): void {
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
}

/**
 * Keeps `m` at `path`: written to a file beside it and renamed over it, so that a reader sees the
 * old list or the new one, never half of one. Mode 0644: no secret, but no one else may write it.
 * Returns false when the place cannot be written (the client then learns in memory only).
 */
export function writeClusterCache(path: string, m: ClusterMembership, now: Date = new Date()): boolean {
  const temp = `${path}.${process.pid}.tmp`;
  const body = { clusterId: m.clusterId, learnedAt: now.toISOString(), eps: m.eps.map((e) => ({ name: e.name, api: e.api, fingerprint: e.fingerprint })) };
  try {
    makeFolder(dirname(path));
    // Created new (O_EXCL), never through whatever sits at the temporary name: a symlink left
    // there by someone else is removed, and one made again in between makes the write fail.
    rmSync(temp, { force: true });
    writeFileSync(temp, `${JSON.stringify(body, null, 2)}\n`, { mode: 0o644, flag: 'wx', flush: true });
    renameSync(temp, path);
    return true;
  } catch {
    rmSync(temp, { force: true });
    return false;
  }
}
