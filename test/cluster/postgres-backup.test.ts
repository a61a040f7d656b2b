/**
 * The seed's backup and restore for a grown cluster on PostgreSQL, on real processes: two
 * triplets share the EP and the Partner databases; keys of every family are made through both;
 * `ekm backup` of one EP and one Partner (of different triplets: they share the role databases)
 * while the cluster serves; everything stops and both databases are dropped and made again
 * empty; `ekm restore` and the `-restore -externaldb` bootstraps bring EP and Partner back into
 * the databases with a fresh Aux; the second triplet comes back by scale-out; then every key
 * signs through both triplets under its old public key (verified with node:crypto) and an AES
 * ciphertext made before the backup decrypts. Refusals: a database that still holds a store.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { verify } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { homePaths } from '../../src/config/home.js';
import { type Api, b64, createKey, unb64 } from '../support/api.js';
import {
  BOOT_SCRIPT,
  type Role,
  type RunResult,
  type Triplet,
  assertOneLineError,
  ekm,
  makeTriplet,
  run,
  waitInService,
} from '../support/cluster.js';
import { type PgServer, startPostgres } from '../support/postgres.js';
import { addTriplet, apiOf, postgresTriplet } from '../support/scale-out.js';
import { verifyIndependently } from '../support/verify-ec.js';

const DB: Record<'ep' | 'partner', string> = { ep: 'ekm_ep', partner: 'ekm_partner' };
const AES_PLAINTEXT = 'sealed before the backup';
const LONG = { timeoutMs: 240_000 };

type Alg = 'ecdsa-p256' | 'eddsa-ed25519' | 'ecdsa-secp256k1' | 'rsa-2048';
interface Made {
  keyId: string;
  alg: Alg;
  pem: string;
}
const make = (api: Api, alg: Alg): Promise<Made> => createKey(api, alg);

/** Signs through `api`; the signature verifies (node:crypto) under the public key the key had when made. */
async function signsUnderOldKey(api: Api, k: Made, text: string): Promise<void> {
  const msg = Buffer.from(text);
  const r = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { message: b64(msg) });
  assert.equal(r.status, 200, `${JSON.stringify(r.body)} (${k.alg} ${k.keyId})`);
  const sig = unb64(r.body.signature);
  const ok = k.alg === 'rsa-2048' ? verify('sha256', msg, k.pem, sig) : verifyIndependently({ alg: k.alg, pem: k.pem }, msg, sig);
  assert.ok(ok, `${k.alg} ${k.keyId}: the signature verifies under the old public key`);
}

async function decryptsOld(api: Api, aes: { keyId: string; ciphertext: string }): Promise<void> {
  const r = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: aes.ciphertext });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(unb64(r.body.plaintext).toString(), AES_PLAINTEXT);
}

/** The restored EP and Partner with -restore -externaldb into their role databases, and a fresh Aux, all at once. */
async function bootRestoredOnPostgres(
  pgServer: PgServer,
  t: Triplet,
  epEnv: Record<string, string> = {},
  timeout = 120,
): Promise<Record<Role, RunResult>> {
  const restored = (role: 'ep' | 'partner'): Promise<RunResult> =>
    run(
      BOOT_SCRIPT[role],
      t.bootArgs(role, ['-restore', '-f', '-externaldb', '--timeout', String(timeout)]),
      {
        ...t.env(role),
        EKM_DB_URL: pgServer.url(DB[role], `pw-${role}`),
        ...(role === 'ep' ? epEnv : {}),
      },
      LONG,
    );
  const [ep, partner, aux] = await Promise.all([
    restored('ep'),
    restored('partner'),
    run(BOOT_SCRIPT.aux, t.bootArgs('aux', ['-f', '--timeout', String(timeout)]), t.env('aux'), LONG),
  ]);
  return { ep: ep!, partner: partner!, aux: aux! };
}

describe('backup and restore of a grown cluster on PostgreSQL (two triplets, real processes)', { timeout: 1_200_000 }, () => {
  let pgServer: PgServer;
  let t1: Triplet;
  let t2: Triplet;
  const dirs: Triplet[] = [];
  const keys: Made[] = [];
  let aes: { keyId: string; ciphertext: string };
  let admin: string;
  const file = (name: string): string => join(admin, name);

  before(async () => {
    pgServer = await startPostgres();
    t1 = await postgresTriplet(pgServer);
    dirs.push(t1);
    t2 = await makeTriplet();
    dirs.push(t2);
    await addTriplet(t1, t2, 2);
    admin = join(t1.dir, 'admin');
    const ep1 = await apiOf(t1);
    const ep2 = await apiOf(t2);
    try {
      keys.push(
        await make(ep1, 'ecdsa-p256'),
        await make(ep1, 'eddsa-ed25519'),
        await make(ep2, 'ecdsa-secp256k1'),
        await make(ep2, 'rsa-2048'),
      );
      const a = await ep2.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' });
      assert.equal(a.status, 201, JSON.stringify(a.body));
      const sealed = await ep1.call<{ ciphertext: string }>('POST', `/keys/${a.body.keyId}/encrypt`, { plaintext: b64(AES_PLAINTEXT) });
      assert.equal(sealed.status, 200, JSON.stringify(sealed.body));
      aes = { keyId: a.body.keyId, ciphertext: sealed.body.ciphertext };
      for (const k of keys) for (const api of [ep1, ep2]) await signsUnderOldKey(api, k, `before the backup ${k.alg}`);
    } finally {
      ep1.close();
      ep2.close();
    }
    assert.equal((await run('ekm', ['backup-keygen', '--out', admin], {})).code, 0);
  });
  after(async () => {
    for (const d of dirs) await d.cleanup();
    pgServer?.stop();
  });

  it('backs up the EP database (through EP1, under a load of signatures through EP2) and the Partner database (through Partner2); both verify with the key', async () => {
    const ep2 = await apiOf(t2);
    let stop = false;
    let signed = 0;
    const load = (async () => {
      while (!stop) {
        const r = await ep2.call('POST', `/keys/${keys[0]!.keyId}/sign`, { message: b64(`load ${signed}`) });
        assert.equal(r.status, 200);
        signed++;
      }
    })();
    try {
      await new Promise((r) => setTimeout(r, 300));
      const ep = await ekm(t1, 'ep', 'backup', '--out', file('ep.tar.gz'), '--to', file('ekm-backup.pub.pem'));
      assert.ok(signed > 0, 'signatures ran during the backup');
      assert.equal(ep.code, 0, ep.stderr);
      assert.match(ep.stdout, /Backed up EP .*: 5 keys/);
      assert.match(ep.stdout, /from the EP role's PostgreSQL database postgres:\/\/postgres@127\.0\.0\.1:\d+\/ekm_ep/);
    } finally {
      stop = true;
      await load;
      ep2.close();
    }
    const partner = await ekm(t2, 'partner', 'backup', '--out', file('partner.tar.gz'), '--to', file('ekm-backup.pub.pem'));
    assert.equal(partner.code, 0, partner.stderr);
    assert.match(partner.stdout, /Backed up Partner .*: 5 keys/);
    for (const role of ['ep', 'partner']) {
      const v = await run('ekm', ['backup', 'verify', '--in', file(`${role}.tar.gz`), '--key', file('ekm-backup.key')], {});
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, /\(from its PostgreSQL database\) of cluster [0-9a-f]{16}, 5 keys/);
      assert.match(v.stdout, /5 sealed shares open with the archived system key/);
    }
  });

  it('restores EP and Partner into empty databases, a fresh Aux, the second triplet by scale-out: every key serves through both', async () => {
    for (const t of [t2, t1]) for (const role of ['ep', 'aux', 'partner'] as const) assert.equal((await ekm(t, role, 'stop')).code, 0);

    const n1 = await makeTriplet();
    dirs.push(n1);
    for (const role of ['ep', 'partner'] as const) {
      const r = await ekm(n1, role, 'restore', '--in', file(`${role}.tar.gz`), '--key', file('ekm-backup.key'));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /EKM_DB_URL=<the empty (EP|Partner) database's URL> ekm_boot_\w+\.sh .* -externaldb -restore \[-f\]/);
    }
    // The databases still hold the cluster: refused at once, before any peer is contacted.
    const inUse = await run(BOOT_SCRIPT.ep, n1.bootArgs('ep', ['-restore', '-f', '-externaldb', '--timeout', '30']), {
      ...n1.env('ep'),
      EKM_DB_URL: pgServer.url(DB.ep),
    });
    assertOneLineError(inUse);
    assert.match(
      inUse.stderr,
      /the PostgreSQL database postgres:\/\/postgres@127\.0\.0\.1:\d+\/ekm_ep already holds the EP store of cluster [0-9a-f]{16}/,
    );

    for (const db of Object.values(DB)) {
      await pgServer.dropDatabase(db);
      await pgServer.createDatabase(db);
    }
    // The EP killed once the restored store is in its database, before server.json: the Partner
    // most likely finished (its data/ekm.db gone). Rerunning the three bootstraps (the Aux's home
    // wiped, as for any Aux bootstrap again) restores all the same.
    const killed = await bootRestoredOnPostgres(pgServer, n1, { EKM_FAILPOINTS: 'restore:externaldb:loaded' });
    assert.notEqual(killed.ep.code, 0);
    assert.match(killed.ep.stderr, /failpoint restore:externaldb:loaded hit/);
    assert.ok(!existsSync(homePaths(n1.homes.ep).config), 'the killed EP wrote no server.json');
    const partnerFinished = killed.partner.code === 0;
    process.stderr.write(
      `# first restore attempt: EP killed after the load, Partner ${partnerFinished ? 'finished' : `exited ${killed.partner.code}`}\n`,
    );
    await ekm(n1, 'aux', 'stop');
    rmSync(n1.homes.aux, { recursive: true, force: true });

    const boots = await bootRestoredOnPostgres(pgServer, n1);
    const outputs = (['ep', 'partner', 'aux'] as Role[])
      .map((r) => `--- ${r} (exit ${boots[r].code}):\n${boots[r].stdout}${boots[r].stderr}`)
      .join('\n');
    for (const r of ['ep', 'partner', 'aux'] as Role[]) assert.equal(boots[r].code, 0, `${r} failed\n${outputs}`);
    assert.match(boots.ep.stdout, /archives match: 5 keys/);
    if (partnerFinished) assert.match(boots.partner.stdout, /The restored store is copied back from this server's PostgreSQL database/);
    for (const role of ['ep', 'partner'] as const) {
      assert.match(
        boots[role].stdout,
        new RegExp(`The restored store is in the PostgreSQL database postgres://postgres@127\\.0\\.0\\.1:\\d+/${DB[role]}: 5 keys`),
      );
      const paths = homePaths(n1.homes[role]);
      assert.ok(!existsSync(paths.sqlite), `the restored SQLite file of the ${role} is removed`);
      const cfg = JSON.parse(readFileSync(paths.config, 'utf8')) as { store: { kind: string; url: string } };
      assert.equal(cfg.store.kind, 'postgres');
    }
    for (const role of ['partner', 'aux', 'ep'] as const) assert.equal((await ekm(n1, role, 'start')).code, 0, `start ${role}`);
    // In service once the EP has re-derived the fresh Aux's shares and refreshed every key.
    await waitInService(n1, 180_000);

    const n2 = await makeTriplet();
    dirs.push(n2);
    await addTriplet(n1, n2, 2);

    const ep1 = await apiOf(n1);
    const ep2 = await apiOf(n2);
    try {
      for (const k of keys)
        for (const [name, api] of [
          ['EP1', ep1],
          ['EP2', ep2],
        ] as const)
          await signsUnderOldKey(api, k, `after the restore through ${name} ${k.alg}`);
      await decryptsOld(ep1, aes);
      await decryptsOld(ep2, aes);
    } finally {
      ep1.close();
      ep2.close();
    }
  });
});
