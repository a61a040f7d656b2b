/** EKM_HOMEs with a store of made-up keys (not DKG keys: random shares and public data), for backup unit tests. */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type HomePaths, homePaths, writeFileAtomic } from '../../../src/config/home.js';
import type { Role } from '../../../src/config/roles.js';
import { saveServerConfig } from '../../../src/config/server-config.js';
import { Barrier } from '../../../src/store/barrier.js';
import type { KeyWrite, ShareRecord } from '../../../src/store/key-records.js';
import { SqliteStore } from '../../../src/store/sqlite.js';

export const CLUSTER = '0123456789abcdef';
const FP = Array.from({ length: 32 }, () => 'AB').join(':');

export function tempDir(prefix = 'ekm-backup-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function share(keyId: string, epoch: number, party: 1 | 2 | 3, pubSeed = keyId): ShareRecord {
  const pub = (tag: string): Uint8Array => new Uint8Array(Buffer.from(`${pubSeed}/${tag}`.padEnd(33, '.')));
  return {
    keyId,
    alg: 'ecdsa-p256',
    epoch,
    partyId: party,
    share: randomBytes(32),
    Y: pub('Y'),
    C1: pub('C1'),
    A1: pub('A1'),
    A2: pub('A2'),
    A3: pub('A3'),
  };
}

/** A bootstrapped-looking home of `role` with `keys` active keys at epoch 0, presignatures and an open session. */
export async function makeHome(
  dir: string,
  role: Role,
  keys: number,
  opts: { clusterId?: string } = {},
): Promise<{ paths: HomePaths; keyIds: string[] }> {
  const paths = homePaths(join(dir, role));
  const systemKey = randomBytes(32);
  writeFileAtomic(paths.systemKey, systemKey, 0o600);
  const store = SqliteStore.open(paths.sqlite, { create: true, barrier: new Barrier(systemKey) });
  const party = role === 'ep' ? 1 : role === 'partner' ? 2 : 3;
  const keyIds: string[] = [];
  try {
    await store.setMeta('cluster_id', opts.clusterId ?? CLUSTER);
    await store.setMeta('role', role);
    await store.upsertServer({
      name: 'old-ep',
      role: 'ep',
      tripletId: 'fedcba9876543210',
      host: '10.0.0.1',
      port: 6603,
      api: null,
      fingerprint: FP,
      addedAt: 'then',
    });
    const writes: KeyWrite[] = [];
    for (let i = 0; i < keys; i++) {
      const keyId = i.toString(16).padStart(16, '0');
      keyIds.push(keyId);
      writes.push({ op: 'key-create', keyId, alg: 'ecdsa-p256', share: share(keyId, 0, party) }, { op: 'key-activate', keyId });
    }
    if (keys > 0) {
      writes.push({ op: 'presig-put', psid: 'aa'.repeat(16), keyId: keyIds[0]!, epoch: 0, secret: randomBytes(64) });
      writes.push(
        { op: 'session-open', sid: 'open-session', proto: 'refresh' },
        { op: 'session-checkpoint', sid: 'open-session', checkpoint: '{"secret":"nonce"}' },
      );
      writes.push({ op: 'session-open', sid: 'done-session', proto: 'dkg' }, { op: 'session-done', sid: 'done-session' });
    }
    for (let i = 0; i < writes.length; i += 2000) await store.applyKeyWrites(writes.slice(i, i + 2000));
  } finally {
    await store.close();
  }
  saveServerConfig(paths, {
    format: 1,
    role,
    name: `127.0.0.1:${6600 + party}`,
    listen: { host: '127.0.0.1', port: 6600 + party },
    ...(role === 'ep' ? { api: { host: '127.0.0.1', port: 8443 } } : {}),
    fips: true,
    clusterId: opts.clusterId ?? CLUSTER,
    tripletId: 'fedcba9876543210',
    fingerprint: FP,
    bootstrappedWith: '0.1.0',
    bootstrappedAt: new Date().toISOString(),
    restored: false,
    peers: [],
    store: { kind: 'sqlite' },
  });
  return { paths, keyIds };
}
