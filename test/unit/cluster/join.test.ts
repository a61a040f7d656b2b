/**
 * The role-group secret of scale-out (src/cluster/join.ts): sealed to the approved certificate, it
 * opens only with that certificate's key, for that cluster and role; anything else is refused.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createIdentity } from '../../../src/cluster/identity.js';
import { openRoleSecret, sealRoleSecret, type RoleSecret } from '../../../src/cluster/join.js';
import { EkmError } from '../../../src/errors.js';

const SECRET: RoleSecret = {
  systemKey: Buffer.alloc(32, 7).toString('base64'),
  store: { kind: 'postgres', url: 'postgres://ekm@db:5432/ekm_partner', passwordSealed: 'c2VhbGVk' },
};
const CLUSTER = '0123456789abcdef';

describe('role-group secret sealing', () => {
  it('opens with the recipient key, for its cluster and role', async () => {
    const to = await createIdentity({ role: 'server', host: '127.0.0.1', years: 1 });
    const sealed = sealRoleSecret(SECRET, { certPem: to.certPem, clusterId: CLUSTER, role: 'partner' });
    assert.deepEqual(
      openRoleSecret(sealed, { keyPem: to.keyPem, fingerprint: to.fingerprint, clusterId: CLUSTER, role: 'partner' }),
      SECRET,
    );
    assert.notEqual(
      sealRoleSecret(SECRET, { certPem: to.certPem, clusterId: CLUSTER, role: 'partner' }),
      sealed,
      'a fresh ephemeral key each time',
    );
  });

  it('is refused by another key, another cluster or role, and when tampered with', async () => {
    const to = await createIdentity({ role: 'server', host: '127.0.0.1', years: 1 });
    const other = await createIdentity({ role: 'server', host: '127.0.0.1', years: 1 });
    const sealed = sealRoleSecret(SECRET, { certPem: to.certPem, clusterId: CLUSTER, role: 'partner' });
    const refused = (f: () => unknown): void => assert.throws(f, (e: unknown) => e instanceof EkmError && e.code === 'EKM_JOIN_REFUSED');
    const mine = { keyPem: to.keyPem, fingerprint: to.fingerprint, clusterId: CLUSTER, role: 'partner' as const };
    refused(() => openRoleSecret(sealed, { ...mine, keyPem: other.keyPem, fingerprint: other.fingerprint }));
    refused(() => openRoleSecret(sealed, { ...mine, clusterId: 'fedcba9876543210' }));
    refused(() => openRoleSecret(sealed, { ...mine, role: 'ep' }));
    const bytes = Buffer.from(sealed, 'base64');
    bytes[bytes.length - 20]! ^= 1;
    refused(() => openRoleSecret(bytes.toString('base64'), mine));
    refused(() => openRoleSecret('AQ==', mine));
  });
});
