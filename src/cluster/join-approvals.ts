/**
 * The Partner operator's own approval of a new Partner (`ekm approve-join <fingerprint>` on the
 * Partner). Without it the Partner never seals its role secret to anyone: otherwise a compromised
 * EP alone could ask for it, sealed to a certificate of its own, and with the Partner database
 * hold both roles' shares, i.e. every key. An approval names one certificate and expires after an
 * hour; it lives in the Partner's EKM_HOME (`join-approvals.json`, 0600).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { type HomePaths, writeFileAtomic } from '../config/home.js';
import { usageError } from '../errors.js';

export const JOIN_APPROVAL_TTL_MS = 60 * 60 * 1000;
const FINGERPRINT = /^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/;
const Approvals = z.array(z.object({ fingerprint: z.string().regex(FINGERPRINT), expiresAt: z.number() }));

function approvalsFile(paths: HomePaths): string {
  return join(paths.home, 'join-approvals.json');
}

function load(paths: HomePaths): z.infer<typeof Approvals> {
  try {
    const parsed = Approvals.safeParse(JSON.parse(readFileSync(approvalsFile(paths), 'utf8')));
    return parsed.success ? parsed.data : [];
  } catch {
    return [];
  }
}

/** Records the approval of the certificate `fingerprint` (as the additional bootstrap printed it). */
export function approveJoin(paths: HomePaths, fingerprint: string, now = Date.now()): { expiresAt: number } {
  const fp = fingerprint.trim().toUpperCase();
  if (!FINGERPRINT.test(fp)) throw usageError(`"${fingerprint}" is not a SHA-256 certificate fingerprint`, 'give it as ekm_boot_additional_server.sh printed it: 32 hex pairs joined by colons');
  const kept = load(paths).filter((a) => a.expiresAt > now && a.fingerprint !== fp);
  const expiresAt = now + JOIN_APPROVAL_TTL_MS;
  writeFileAtomic(approvalsFile(paths), JSON.stringify([...kept, { fingerprint: fp, expiresAt }], null, 2) + '\n', 0o600);
  return { expiresAt };
}

export function isJoinApproved(paths: HomePaths, fingerprint: string, now = Date.now()): boolean {
  return load(paths).some((a) => a.fingerprint === fingerprint.toUpperCase() && a.expiresAt > now);
}
