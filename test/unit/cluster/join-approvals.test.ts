/** The Partner operator's approvals of new Partners (src/cluster/join-approvals.ts): one certificate each, for an hour. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { JOIN_APPROVAL_TTL_MS, approveJoin, isJoinApproved } from '../../../src/cluster/join-approvals.js';
import { homePaths } from '../../../src/config/home.js';
import { EkmError } from '../../../src/errors.js';

const FP = Array.from({ length: 32 }, (_, i) => (i * 7).toString(16).padStart(2, '0').toUpperCase()).join(':');

describe('join approvals', () => {
  it('approve one certificate for an hour; nothing else is approved', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekm-approvals-'));
    try {
      const paths = homePaths(dir);
      const now = 1_000_000;
      assert.equal(isJoinApproved(paths, FP, now), false, 'nothing is approved at first');
      approveJoin(paths, FP.toLowerCase(), now);
      assert.equal(isJoinApproved(paths, FP, now + 1), true);
      assert.equal(isJoinApproved(paths, FP.replace(/^../, 'FF'), now + 1), false, 'another certificate is not');
      assert.equal(isJoinApproved(paths, FP, now + JOIN_APPROVAL_TTL_MS + 1), false, 'an hour later it has expired');
      assert.equal(statSync(join(dir, 'join-approvals.json')).mode & 0o777, 0o600);
      assert.throws(() => approveJoin(paths, 'not-a-fingerprint'), (e: unknown) => e instanceof EkmError && e.code === 'EKM_USAGE');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
