/**
 * A real triplet whose EP and Partner keep their stores in PostgreSQL (`-externaldb`):
 * bootstrapped by the boot scripts with EKM_DB_URL, each role on its own database of a throwaway
 * PostgreSQL server; it generates a key and signs, refuses `ekm backup` (PostgreSQL's own tools
 * back up the database), restarts and signs again; an EP whose database is unreachable does not
 * start. Then the refusals at bootstrap: no EKM_DB_URL, an unreachable database, a database
 * another role holds, one already in use, and -externaldb on the Aux (whose re-derivable store
 * always stays local).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { homePaths } from '../../src/config/home.js';
import { apiFor, b64, unb64 } from '../support/api.js';
import {
  BOOT_SCRIPT,
  ROLES,
  type Role,
  type RunResult,
  type Triplet,
  assertOneLineError,
  ekm,
  freePorts,
  makeTriplet,
  run,
  startSeedOrder,
} from '../support/cluster.js';
import { type PgServer, startPostgres } from '../support/postgres.js';
import { verifyIndependently } from '../support/verify-ec.js';

const DB_PASSWORD = 'db-Secret-9';

let server: PgServer;
before(async () => {
  server = await startPostgres();
  for (const db of ['ekm_ep', 'ekm_partner', 'ekm_spare']) await server.createDatabase(db);
});
after(() => server?.stop());

function boot(t: Triplet, role: Role, dbUrl: string | undefined, extra: readonly string[] = []): Promise<RunResult> {
  const args = t.bootArgs(role, ['-f', '--timeout', '60', ...(dbUrl === undefined ? [] : ['-externaldb']), ...extra]);
  return run(BOOT_SCRIPT[role], args, { ...t.env(role), EKM_DB_URL: dbUrl ?? '' });
}

async function keyIdsIn(db: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: server.url(db) });
  await c.connect();
  try {
    return (await c.query<{ key_id: string }>('SELECT key_id FROM keys ORDER BY key_id')).rows.map((r) => r.key_id);
  } finally {
    await c.end();
  }
}

describe('a triplet with EP and Partner on PostgreSQL', () => {
  let t: Triplet;
  before(async () => {
    t = await makeTriplet();
  });
  after(async () => t.cleanup());

  it('bootstraps with -externaldb, keeps the database password sealed, generates and signs, restarts and signs again', async () => {
    const urls: Record<Role, string | undefined> = {
      ep: server.url('ekm_ep', DB_PASSWORD),
      partner: server.url('ekm_partner', DB_PASSWORD),
      aux: undefined,
    };
    const boots = await Promise.all(ROLES.map((r) => boot(t, r, urls[r])));
    for (const [i, r] of boots.entries()) assert.equal(r.code, 0, `${ROLES[i]!} bootstrap: ${r.stderr}`);
    assert.match(
      boots[0]!.stdout,
      /Store: the PostgreSQL database postgres:\/\/postgres@127\.0\.0\.1:\d+\/ekm_ep \(the EP role's; every EP of the cluster shares it\)/,
    );

    for (const role of ['ep', 'partner'] as const) {
      const paths = homePaths(t.homes[role]);
      const text = readFileSync(paths.config, 'utf8');
      const cfg = JSON.parse(text) as { store: { kind: string; url: string; passwordSealed?: string } };
      assert.equal(cfg.store.kind, 'postgres');
      assert.equal(cfg.store.url, server.url(`ekm_${role}`));
      assert.ok(cfg.store.passwordSealed, 'the password is kept, sealed');
      assert.ok(!text.includes(DB_PASSWORD), 'server.json never holds the password in the clear');
      assert.equal(existsSync(paths.sqlite), false, `the ${role} has no embedded store`);
    }
    assert.equal(existsSync(homePaths(t.homes.aux).sqlite), true, 'the Aux keeps its store local');

    await startSeedOrder(t);
    let api = await apiFor(t);
    const made = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg: 'ecdsa-p256' });
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const key = { alg: 'ecdsa-p256' as const, pem: made.body.publicKey };
    const signAndVerify = async (text: string): Promise<void> => {
      const msg = Buffer.from(text);
      const r = await api.call<{ signature: string }>('POST', `/keys/${made.body.keyId}/sign`, { message: b64(msg) });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(verifyIndependently(key, msg, unb64(r.body.signature)), 'the signature verifies');
    };
    await signAndVerify('signed by a triplet on PostgreSQL');
    assert.ok((await keyIdsIn('ekm_ep')).includes(made.body.keyId), "the key's record is in the EP database");
    assert.ok((await keyIdsIn('ekm_partner')).includes(made.body.keyId), "the key's record is in the Partner database");

    // ekm backup reads the role's database as of one moment while the triplet serves.
    assert.equal((await ekm(t, 'ep', 'backup-keygen', '--out', t.dir)).code, 0);
    const archive = join(t.dir, 'ep.tar.gz');
    const backup = await ekm(t, 'ep', 'backup', '--out', archive, '--to', join(t.dir, 'ekm-backup.pub.pem'));
    assert.equal(backup.code, 0, backup.stderr);
    assert.match(
      backup.stdout,
      /Backed up EP .*: 1 keys, .*\n {2}from the EP role's PostgreSQL database postgres:\/\/postgres@.*\/ekm_ep, read as of one moment/,
    );
    const verified = await ekm(t, 'ep', 'backup', 'verify', '--in', archive, '--key', join(t.dir, 'ekm-backup.key'));
    assert.equal(verified.code, 0, verified.stderr);
    assert.match(verified.stdout, /EP \S+ \(from its PostgreSQL database\) of cluster [0-9a-f]{16}, 1 keys/);
    assert.match(verified.stdout, /1 sealed shares open with the archived system key/);

    for (const role of ROLES) assert.equal((await ekm(t, role, 'stop')).code, 0);
    await startSeedOrder(t);
    api = await apiFor(t);
    await signAndVerify('signed again after a restart');
  });

  it('an EP whose database cannot be reached does not start, and says why', async () => {
    assert.equal((await ekm(t, 'ep', 'stop')).code, 0);
    const paths = homePaths(t.homes.ep);
    const cfg = JSON.parse(readFileSync(paths.config, 'utf8')) as { store: { url: string } };
    const [closed] = await freePorts(1);
    cfg.store.url = cfg.store.url.replace(`:${server.port}/`, `:${closed}/`);
    writeFileSync(paths.config, JSON.stringify(cfg));
    const r = await ekm(t, 'ep', 'start');
    assertOneLineError(r);
    assert.match(
      r.stderr,
      new RegExp(`cannot reach the PostgreSQL database postgres://postgres@127.0.0.1:${closed}/ekm_ep: .*ECONNREFUSED`),
    );
  });

  it('refuses a database another role holds, or one already in use, before any trust exchange', async () => {
    const other = await makeTriplet();
    try {
      const partnerOnEpDb = await boot(other, 'partner', server.url('ekm_ep'));
      assertOneLineError(partnerOnEpDb);
      assert.match(partnerOnEpDb.stderr, /holds the store of the EP role; this server is a Partner: give each role its own database/);
      const epOnUsedDb = await boot(other, 'ep', server.url('ekm_ep'));
      assertOneLineError(epOnUsedDb);
      assert.match(epOnUsedDb.stderr, /already holds the EP store of cluster [0-9a-f]{16}: give a new cluster a new, empty database/);
      for (const role of ['ep', 'partner'] as const)
        assert.equal(existsSync(homePaths(other.homes[role]).config), false, `no ${role} was bootstrapped`);
    } finally {
      await other.cleanup();
    }
  });
});

describe('-externaldb: bad input', () => {
  let t: Triplet;
  before(async () => {
    t = await makeTriplet();
  });
  after(async () => t.cleanup());

  it('without EKM_DB_URL', async () => {
    const r = await boot(t, 'ep', undefined, ['-externaldb']);
    assertOneLineError(r);
    assert.match(r.stderr, /-externaldb needs the PostgreSQL database in EKM_DB_URL: set EKM_DB_URL=postgres:\/\//);
  });

  it('with an EKM_DB_URL that is not a PostgreSQL URL', async () => {
    const r = await boot(t, 'partner', 'mysql://u@h/db');
    assertOneLineError(r);
    assert.match(r.stderr, /EKM_DB_URL is not a PostgreSQL URL/);
  });

  it('with an unreachable database', async () => {
    const [port] = await freePorts(1);
    const r = await boot(t, 'ep', `postgres://ekm:${DB_PASSWORD}@127.0.0.1:${port}/ekm`);
    assertOneLineError(r);
    assert.match(r.stderr, new RegExp(`cannot reach the PostgreSQL database postgres://ekm@127.0.0.1:${port}/ekm: .*ECONNREFUSED`));
    assert.ok(!r.stderr.includes(DB_PASSWORD), 'the error never shows the password');
  });

  it('on the Aux, whose store always stays local', async () => {
    const r = await boot(t, 'aux', server.url('ekm_spare'));
    assertOneLineError(r);
    assert.match(r.stderr, /-externaldb is not a flag of the aux bootstrap/);
    for (const role of ROLES) assert.equal(existsSync(homePaths(t.homes[role]).config), false);
  });
});
