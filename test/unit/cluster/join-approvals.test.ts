/** The Partner operator's approvals of new servers (src/cluster/join-approvals.ts): one certificate and one purpose each, for an hour. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JOIN_APPROVAL_TTL_MS, approveJoin, isJoinApproved } from '../../../src/cluster/join-approvals.js';
import { homePaths } from '../../../src/config/home.js';
import { EkmError } from '../../../src/errors.js';

const FP = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, '0').toUpperCase()).join(':');

function withHome(fn: (dir: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'ekm-approvals-'));
  try {
    fn(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('join approvals', () => {
  it('approve one certificate for an hour; nothing else is approved', () =>
    withHome((dir) => {
      const paths = homePaths(dir);
      const now = 1_000_000;
      assert.equal(isJoinApproved(paths, FP, 'partner', now), false, 'nothing is approved at first');
      approveJoin(paths, FP.toLowerCase(), 'partner', now);
      assert.equal(isJoinApproved(paths, FP, 'partner', now + 1), true);
      assert.equal(isJoinApproved(paths, FP.replace(/^../, 'FF'), 'partner', now + 1), false, 'another certificate is not');
      assert.equal(isJoinApproved(paths, FP, 'partner', now + JOIN_APPROVAL_TTL_MS + 1), false, 'an hour later it has expired');
      assert.equal(statSync(join(dir, 'join-approvals.json')).mode & 0o777, 0o600);
      assert.throws(
        () => approveJoin(paths, 'not-a-fingerprint', 'partner'),
        (e: unknown) => e instanceof EkmError && e.code === 'EKM_USAGE',
      );
    }));

  it('an approval serves its purpose only: a new Aux never obtains the Partner role secret, a new Partner is never pinned as the Aux', () =>
    withHome((dir) => {
      const paths = homePaths(dir);
      const now = 1_000_000;
      approveJoin(paths, FP, 'aux', now);
      assert.equal(isJoinApproved(paths, FP, 'aux', now + 1), true);
      assert.equal(isJoinApproved(paths, FP, 'partner', now + 1), false);
      approveJoin(paths, FP, 'partner', now + 2);
      assert.equal(isJoinApproved(paths, FP, 'partner', now + 3), true, 'both purposes, when the operator approved both');
      assert.equal(isJoinApproved(paths, FP, 'aux', now + 3), true, 'approving the other purpose keeps the first');
    }));

  it('an approval written before purposes existed stays an approval of a new Partner', () =>
    withHome((dir) => {
      const paths = homePaths(dir);
      writeFileSync(join(dir, 'join-approvals.json'), JSON.stringify([{ fingerprint: FP, expiresAt: 2_000_000 }]));
      assert.equal(isJoinApproved(paths, FP, 'partner', 1_000_000), true);
      assert.equal(isJoinApproved(paths, FP, 'aux', 1_000_000), false);
    }));
});
