/**
 * The Partner operator's own approval of a new server (`ekm approve-join [--as aux] <fingerprint>`
 * on the Partner), for one purpose:
 * - `partner`: the Partner seals its role secret to that certificate (`ucl server create -e -p -a`).
 *   Without it a compromised EP alone could ask for the secret, sealed to a certificate of its own,
 *   and with the Partner database hold both roles' shares, i.e. every key;
 * - `aux`: the Partner pins that certificate as its triplet's new Aux (`ucl server create -a`).
 *   Without it an EP could give the third share to a server it controls.
 * An approval names one certificate and one purpose, so that approving a server as the new Aux
 * never lets an EP obtain the Partner role secret for it (nor the other way round). It expires
 * after an hour and lives in the Partner's EKM_HOME (`join-approvals.json`, 0600).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { type HomePaths, writeFileAtomic } from '../config/home.js';
import { usageError } from '../errors.js';

export const JOIN_APPROVAL_TTL_MS = 60 * 60 * 1000;
const FINGERPRINT = /^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/;
export const JOIN_PURPOSES = ['partner', 'aux'] as const;
export type JoinPurpose = (typeof JOIN_PURPOSES)[number];
// An approval written before purposes existed was for a new Partner: that is what it stays.
const Approvals = z.array(
  z.object({ fingerprint: z.string().regex(FINGERPRINT), purpose: z.enum(JOIN_PURPOSES).default('partner'), expiresAt: z.number() }),
);

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

/** Records the approval of the certificate `fingerprint` (as the additional bootstrap printed it) for `purpose`. */
export function approveJoin(paths: HomePaths, fingerprint: string, purpose: JoinPurpose, now = Date.now()): { expiresAt: number } {
  const fp = fingerprint.trim().toUpperCase();
  if (!FINGERPRINT.test(fp))
    throw usageError(
      `"${fingerprint}" is not a SHA-256 certificate fingerprint`,
      'give it as ekm_boot_additional_server.sh printed it: 32 hex pairs joined by colons',
    );
  const kept = load(paths).filter((a) => a.expiresAt > now && !(a.fingerprint === fp && a.purpose === purpose));
  const expiresAt = now + JOIN_APPROVAL_TTL_MS;
  writeFileAtomic(approvalsFile(paths), JSON.stringify([...kept, { fingerprint: fp, purpose, expiresAt }], null, 2) + '\n', 0o600);
  return { expiresAt };
}

export function isJoinApproved(paths: HomePaths, fingerprint: string, purpose: JoinPurpose, now = Date.now()): boolean {
  return load(paths).some((a) => a.fingerprint === fingerprint.toUpperCase() && a.purpose === purpose && a.expiresAt > now);
}
