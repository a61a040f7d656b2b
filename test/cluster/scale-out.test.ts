/**
 * Scale-out, the seed's "FIPS Cluster Scale-out" Quickstart on loopback: a triplet whose EP and
 * Partner keep their stores on PostgreSQL (one database per role), three more servers bootstrapped
 * with `ekm_boot_additional_server.sh -s <name> -fips`, `ucl server create -e -p -a` on the main
 * EP, Partner2 and Aux2 started, then EP2 last, and `ucl server test` showing both triplets in
 * service. Then every key type made through EP1 is used through EP2 at once (and the other way
 * round), the new triplet's Aux getting its shares on first use; and the refusals: an unreachable
 * server, a server of the cluster, another release, a refused certificate, a SQLite cluster.
 */
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import { constants, createPublicKey, publicEncrypt, verify as nodeVerify } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EkmClient } from '../../src/client/client.js';
import { homePaths } from '../../src/config/home.js';
import { b64, unb64 } from '../support/api.js';
import {
  ROLES,
  ROOT_SO_PASSWORD,
  type RunResult,
  type Triplet,
  assertOneLineError,
  ekm,
  freePorts,
  makeTriplet,
  run,
  servingTriplet,
  ucl,
} from '../support/cluster.js';
import { type PgServer, startPostgres } from '../support/postgres.js';
import {
  apiOf,
  bootAdditional,
  certFingerprintOf,
  postgresTriplet,
  serverCreate,
  waitClusterInService,
  waitStopped,
} from '../support/scale-out.js';
import { verifyIndependently } from '../support/verify-ec.js';
import { VERSION } from '../../src/version.js';

const [major, minor] = VERSION.split('.').map(Number) as [number, number];
/** The release a rolling upgrade moves to: the next minor (releases one minor apart interoperate). */
const NEXT = `${major}.${minor + 1}.0`;
const esc = (s: string): string => s.replace(/[.]/g, '\\.');

/** What an Aux's own store holds of `keyId`, read with SQLite directly (an Aux keeps its store local). */
function auxKey(t: Triplet, keyId: string): { current_epoch: number } | undefined {
  const db = new Database(homePaths(t.homes.aux).sqlite, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT current_epoch FROM keys WHERE key_id = ?').get(keyId) as { current_epoch: number } | undefined;
  } finally {
    db.close();
  }
}
const auxKeyRows = (t: Triplet, keyId: string): number => (auxKey(t, keyId) ? 1 : 0);
const auxKeyEpoch = (t: Triplet, keyId: string): number | undefined => auxKey(t, keyId)?.current_epoch;

/** Waits (at most 15 s) until `done()`: an EP sweeps its Aux on a timer. The caller asserts afterwards. */
async function sweptWithin15s(done: () => boolean): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!done() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
}

let pgServer: PgServer;
let t1: Triplet;
/** The new servers' homes and ports (a Triplet's layout, bootstrapped as additional servers). */
let t2: Triplet;

before(async () => {
  pgServer = await startPostgres();
  t1 = await postgresTriplet(pgServer);
  t2 = await makeTriplet();
});
after(async () => {
  await t2?.cleanup();
  await t1?.cleanup();
  pgServer?.stop();
});

describe('scale-out: the seed Quickstart', () => {
  it('boots three additional servers, adds them with ucl server create, and both triplets serve', async () => {
    const boots = await Promise.all(ROLES.map((r) => bootAdditional(t2, r)));
    for (const [i, b] of boots.entries()) {
      assert.equal(b.code, 0, `additional bootstrap of ${ROLES[i]}: ${b.stderr}`);
      assert.match(b.stdout, /waiting to join a cluster; its certificate SHA256 fingerprint:\n {2}([0-9A-F]{2}:){31}[0-9A-F]{2}/);
      assert.match(b.stdout, /ekm started \(pid \d+\)/);
    }
    assert.match((await ekm(t2, 'partner', 'status')).stdout, /waiting to join a cluster/);
    // The Partner's operator approves the new Partner too: only then does the Partner hand on its role secret.
    const approved = await ekm(t1, 'partner', 'approve-join', certFingerprintOf(t2, 'partner'));
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /^Approved the new Partner certificate ([0-9A-F]{2}:){31}[0-9A-F]{2} until /);
    assertOneLineError(await ekm(t1, 'ep', 'approve-join', certFingerprintOf(t2, 'partner')));

    const created = await serverCreate(t1, t2, '-f');
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^Triplet [0-9a-f]{16} added to the cluster:/m);
    assert.match(created.stdout, /start .* then 127\.0\.0\.1:\d+ last/);
    for (const role of ROLES) await waitStopped(t2, role);

    // The seed: start Partner2 and Aux2, then EP2 last.
    for (const role of ['partner', 'aux', 'ep'] as const) {
      const r = await ekm(t2, role, 'start');
      assert.equal(r.code, 0, `ekm start (${role}2): ${r.stderr}`);
    }
    const test = await waitClusterInService(t1, 2);
    assert.match(test.stdout, /Triplet 1 \([0-9a-f]{16}\): in service/);
    assert.match(test.stdout, /Triplet 2 \([0-9a-f]{16}\): in service/);
    assert.match(test.stdout, /All servers are in service\./);
    const fromEp2 = await waitClusterInService(t2, 2);
    assert.match(fromEp2.stdout, /2 triplets, 6 servers/);

    const list = await ucl(t1, 'server', 'list');
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /Cluster [0-9a-f]{16}: 6 servers/);
  });

  it('any EP serves any key: keys made through EP1 sign, decrypt and encrypt through EP2 at once, and the other way round', async () => {
    const ep1 = await apiOf(t1);
    const ep2 = await apiOf(t2);
    try {
      for (const [maker, user] of [
        [ep1, ep2],
        [ep2, ep1],
      ] as const) {
        for (const alg of ['ecdsa-p256', 'eddsa-ed25519', 'ecdsa-secp256k1'] as const) {
          const made = await maker.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg });
          assert.equal(made.status, 201, JSON.stringify(made.body));
          const msg = Buffer.from(`${alg} through the other EP`);
          const sig = await user.call<{ signature: string }>('POST', `/keys/${made.body.keyId}/sign`, { message: b64(msg) });
          assert.equal(sig.status, 200, `${alg}: ${JSON.stringify(sig.body)}`);
          assert.ok(verifyIndependently({ alg, pem: made.body.publicKey }, msg, unb64(sig.body.signature)), `${alg} signature verifies`);
        }
        const rsa = await maker.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg: 'rsa-2048' });
        assert.equal(rsa.status, 201, JSON.stringify(rsa.body));
        const msg = Buffer.from('RSA through the other EP');
        const rsaSig = await user.call<{ signature: string }>('POST', `/keys/${rsa.body.keyId}/sign`, { message: b64(msg) });
        assert.equal(rsaSig.status, 200, JSON.stringify(rsaSig.body));
        assert.ok(nodeVerify('sha256', msg, createPublicKey(rsa.body.publicKey), unb64(rsaSig.body.signature)));
        const secret = Buffer.from('sealed for the other EP');
        const ct = publicEncrypt({ key: rsa.body.publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, secret);
        const dec = await user.call<{ plaintext: string }>('POST', `/keys/${rsa.body.keyId}/decrypt`, {
          ciphertext: b64(ct),
          scheme: 'oaep',
          hash: 'sha256',
        });
        assert.equal(dec.status, 200, JSON.stringify(dec.body));
        assert.deepEqual(unb64(dec.body.plaintext), secret);

        const aes = await maker.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' });
        assert.equal(aes.status, 201, JSON.stringify(aes.body));
        const enc = await maker.call<{ ciphertext: string }>('POST', `/keys/${aes.body.keyId}/encrypt`, {
          plaintext: b64('across triplets'),
        });
        assert.equal(enc.status, 200, JSON.stringify(enc.body));
        const back = await user.call<{ plaintext: string }>('POST', `/keys/${aes.body.keyId}/decrypt`, { ciphertext: enc.body.ciphertext });
        assert.equal(back.status, 200, JSON.stringify(back.body));
        assert.equal(unb64(back.body.plaintext).toString(), 'across triplets');
      }
    } finally {
      ep1.close();
      ep2.close();
    }
  });

  it('a key refreshed through one triplet works through the other, and refreshes there (that Aux gets its share on first use): EC, RSA and AES', async () => {
    const ep1 = await apiOf(t1);
    const ep2 = await apiOf(t2);
    try {
      for (const alg of ['ecdsa-p384', 'rsa-2048', 'aes-256-dprf'] as const) {
        // A new key each time: made through EP1, so that triplet 2's Aux has never held it.
        const made = await ep1.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        const keyId = made.body.keyId;
        for (const [refresher, user] of [
          [ep1, ep2],
          [ep2, ep1],
        ] as const) {
          const r = await refresher.call('POST', `/keys/${keyId}/refresh`);
          assert.equal(r.status, 200, `${alg}: refresh through EP${refresher === ep1 ? 1 : 2}: ${JSON.stringify(r.body)}`);
          const msg = Buffer.from(`${alg} after a refresh through the other triplet`);
          if (alg === 'aes-256-dprf') {
            const sealed = await user.call<{ ciphertext: string }>('POST', `/keys/${keyId}/encrypt`, { plaintext: b64(msg) });
            assert.equal(sealed.status, 200, JSON.stringify(sealed.body));
            const back = await refresher.call<{ plaintext: string }>('POST', `/keys/${keyId}/decrypt`, { ciphertext: sealed.body.ciphertext });
            assert.equal(back.status, 200, JSON.stringify(back.body));
            assert.equal(unb64(back.body.plaintext).toString(), msg.toString());
          } else {
            const sig = await user.call<{ signature: string }>('POST', `/keys/${keyId}/sign`, { message: b64(msg) });
            assert.equal(sig.status, 200, JSON.stringify(sig.body));
            assert.ok(verifyIndependently({ alg, pem: made.body.publicKey }, msg, unb64(sig.body.signature)), `${alg}: verified outside ekm`);
          }
        }
      }
    } finally {
      ep1.close();
      ep2.close();
    }
  });
  it("what an Aux should no longer hold is erased from the other triplet's Aux too, which the acting EP cannot reach: a destroyed key, and an epoch a refresh replaced", async () => {
    // EP2 sweeps its Aux every 300 ms instead of every minute, so that the test need not wait.
    assert.equal((await ekm(t2, 'ep', 'stop')).code, 0);
    const started = await run('ekm', ['start'], { ...t2.env('ep'), EKM_AUX_SWEEP_MS: '300' });
    assert.equal(started.code, 0, started.stderr);
    await waitClusterInService(t1, 2);
    const ep1 = await apiOf(t1);
    const ep2 = await apiOf(t2);
    try {
      const ids: string[] = [];
      for (const [alg, use] of [
        ['ecdsa-p256', 'sign'],
        ['rsa-2048', 'refresh'],
      ] as const) {
        const made = await ep1.call<{ keyId: string }>('POST', '/keys', { alg });
        assert.equal(made.status, 201, JSON.stringify(made.body));
        // Through EP2 (an ECDSA signature needs all three; a refresh too): Aux2 re-derives its share.
        const used = await ep2.call('POST', `/keys/${made.body.keyId}/${use}`, use === 'sign' ? { message: b64('x') } : undefined);
        assert.equal(used.status, 200, JSON.stringify(used.body));
        assert.equal(auxKeyRows(t2, made.body.keyId), 1, `${alg}: Aux2 holds the key`);
        ids.push(made.body.keyId);
      }
      for (const keyId of ids) {
        const destroyed = await ep1.call<{ pendingPurge: string[] }>('DELETE', `/keys/${keyId}`);
        assert.equal(destroyed.status, 200, JSON.stringify(destroyed.body));
        assert.deepEqual(destroyed.body.pendingPurge, [], 'Partner and Aux1 erased theirs at once');
        assert.equal(auxKeyRows(t1, keyId), 0);
      }
      await sweptWithin15s(() => ids.every((k) => auxKeyRows(t2, k) === 0));
      for (const keyId of ids) assert.equal(auxKeyRows(t2, keyId), 0, `Aux2 erased its share of ${keyId}`);
      const log = readFileSync(homePaths(t2.homes.ep).logFile, 'utf8');
      for (const keyId of ids) assert.match(log, new RegExp(`"event":"aux_leftover_purged","keyId":"${keyId}"`));

      // A refresh through triplet 1 leaves Aux2 at the old epoch: EP2's sweep has Aux2 erase it.
      const key = await ep1.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg: 'ecdsa-p256' });
      assert.equal(key.status, 201, JSON.stringify(key.body));
      const keyId = key.body.keyId;
      assert.equal((await ep2.call('POST', `/keys/${keyId}/sign`, { message: b64('x') })).status, 200);
      const first = auxKeyEpoch(t2, keyId);
      assert.equal(first, auxKeyEpoch(t1, keyId), 'Aux2 holds the key at its epoch');
      assert.equal((await ep1.call('POST', `/keys/${keyId}/refresh`)).status, 200);
      await sweptWithin15s(() => auxKeyEpoch(t2, keyId) === undefined);
      assert.equal(auxKeyEpoch(t2, keyId), undefined, 'Aux2 no longer holds the share of the old epoch');
      assert.match(
        readFileSync(homePaths(t2.homes.aux).logFile, 'utf8'),
        new RegExp(`"event":"stale_share_purged","keyId":"${keyId}","epoch":${first!},"newer":${first! + 1}`),
      );
      assert.equal(auxKeyEpoch(t1, keyId), first! + 1, 'Aux1 took part in the refresh');
      // Used through EP2 again: Aux2 re-derives its share at the new epoch.
      const msg = Buffer.from('after the sweep');
      const sig = await ep2.call<{ signature: string }>('POST', `/keys/${keyId}/sign`, { message: b64(msg) });
      assert.equal(sig.status, 200, JSON.stringify(sig.body));
      assert.ok(verifyIndependently({ alg: 'ecdsa-p256', pem: key.body.publicKey }, msg, unb64(sig.body.signature)));
      assert.equal(auxKeyEpoch(t2, keyId), first! + 1);
    } finally {
      ep1.close();
      ep2.close();
    }
  });
});

describe('scale-out: what is refused', () => {
  it('the additional bootstrap refuses peers, passwords and a missing -fips, with one line each', async () => {
    const [port] = await freePorts(1);
    const t = await makeTriplet();
    try {
      for (const args of [['-s', `127.0.0.1:${port}`], ['-s', `127.0.0.1:${port}`, '-fips', '-p', '127.0.0.1:1'], ['-fips']]) {
        const r = await run('ekm_boot_additional_server.sh', args, t.env('ep'));
        assertOneLineError(r);
      }
      const again = await bootAdditional(t, 'aux');
      assert.equal(again.code, 0, again.stderr);
      const twice = await bootAdditional(t, 'aux');
      assertOneLineError(twice);
      assert.match(twice.stderr, /already bootstrapped as .* and waits to join/);
    } finally {
      await t.cleanup();
    }
  });

  it('refuses an unreachable server, a server of the cluster, another release, a refused certificate; the cluster is unchanged', async () => {
    const t3 = await makeTriplet();
    try {
      const before = (await ucl(t1, 'server', 'list')).stdout;
      // Nothing listens on t3's ports yet.
      const unreachable = await serverCreate(t1, t3, '-f');
      assertOneLineError(unreachable);
      assert.match(unreachable.stderr, /connection refused: bootstrap it with ekm_boot_additional_server\.sh/);

      const clash = await ucl(
        t1,
        'server',
        'create',
        '-e',
        t1.names.ep,
        '-p',
        t3.names.partner,
        '-a',
        t3.names.aux,
        '-w',
        ROOT_SO_PASSWORD,
        '-f',
      );
      assertOneLineError(clash);
      assert.match(clash.stderr, /is already the EP .* of triplet [0-9a-f]{16}/);

      await bootAdditional(t3, 'ep', { EKM_TEST_VERSION_OVERRIDE: '9.9.9' });
      await bootAdditional(t3, 'partner');
      await bootAdditional(t3, 'aux');
      const version = await serverCreate(t1, t3, '-f');
      assertOneLineError(version);
      assert.match(version.stderr, /runs ekm 9\.9\.9, the cluster runs/);

      await ekm(t3, 'ep', 'stop');
      assert.equal((await ekm(t3, 'ep', 'start')).code, 0);
      const refused = await run(
        'ucl',
        ['server', 'create', '-e', t3.names.ep, '-p', t3.names.partner, '-a', t3.names.aux, '-w', ROOT_SO_PASSWORD],
        t1.env('ep'),
        {
          answers: ['y', 'n'],
        },
      );
      assertOneLineError(refused);
      assert.match(refused.stdout, /presents certificate SHA256 fingerprint/);
      assert.match(refused.stderr, /certificate not approved: no server was added/);

      // Everything approved on the EP, but not by the Partner's operator: the Partner keeps its secret.
      const partnerSays = await serverCreate(t1, t3, '-f');
      assertOneLineError(partnerSays);
      assert.match(partnerSays.stderr, /has not approved the new Partner ([0-9A-F]{2}:){31}[0-9A-F]{2}: on .* run `ekm approve-join /);

      assert.equal((await ucl(t1, 'server', 'list')).stdout, before, 'the cluster is unchanged');
      assert.match((await ekm(t3, 'partner', 'status')).stdout, /waiting to join/, 'the new servers still wait');
    } finally {
      await t3.cleanup();
    }
  });

  it('a cluster whose stores are in SQLite cannot grow: it says so', async () => {
    const plain = await servingTriplet();
    const t4 = await makeTriplet();
    try {
      for (const role of ROLES) assert.equal((await bootAdditional(t4, role)).code, 0);
      const r = await serverCreate(plain, t4, '-f');
      assertOneLineError(r);
      assert.match(
        r.stderr,
        /keeps its EP store in SQLite: triplets can only be added to a cluster whose EP and Partner stores are on PostgreSQL/,
      );
    } finally {
      await t4.cleanup();
      await plain.cleanup();
    }
  });
});

describe('scale-out: clients trust the cluster, not one EP', () => {
  it("ucl with UCL_SERVERS=ep1,ep2 and only EP1's EKM_HOME (no client.conf), and an EkmClient pinned to EP1 alone, go on through EP2 once EP1 stops", async () => {
    const ucl12 = (...args: string[]): Promise<RunResult> =>
      run(join(t1.bin, 'ucl'), args, { ...t1.env('ep'), UCL_SERVERS: `127.0.0.1:${t1.apiPort},127.0.0.1:${t2.apiPort}` });
    assert.equal(existsSync(homePaths(t1.homes.ep).clientConf), false, 'nothing written by hand');
    const first = await ucl12('server', 'list');
    assert.equal(first.code, 0, first.stderr);
    const learned = JSON.parse(readFileSync(join(t1.homes.ep, 'client-cluster.json'), 'utf8')) as { eps: { fingerprint: string }[] };
    assert.deepEqual(learned.eps.map((e) => e.fingerprint).sort(), [certFingerprintOf(t1, 'ep'), certFingerprintOf(t2, 'ep')].sort());

    // The TypeScript client: EP1's address and certificate only; it learns EP2 in memory.
    const client = new EkmClient({ servers: [{ host: '127.0.0.1', port: t1.apiPort }], trustedCertsPem: [readFileSync(homePaths(t1.homes.ep).tlsCert, 'utf8')], timeoutMs: 60_000 });
    const auth = { authorization: `Basic ${Buffer.from(`so@root:${ROOT_SO_PASSWORD}`).toString('base64')}` };
    const made = await client.request<{ keyId: string; publicKey: string }>('POST', '/api/v1/keys', { alg: 'ecdsa-p256' }, auth);
    assert.equal(made.status, 201, JSON.stringify(made.body));
    assert.equal(made.server, `127.0.0.1:${t1.apiPort}`);

    assert.equal((await ekm(t1, 'ep', 'stop')).code, 0);
    try {
      const failedOver = await ucl12('server', 'list');
      assert.equal(failedOver.code, 0, `ucl through EP2: ${failedOver.stderr}`);
      assert.match(failedOver.stdout, /Cluster [0-9a-f]{16}: 6 servers/);
      const msg = Buffer.from('through EP2, learned from EP1');
      const sig = await client.request<{ signature: string }>('POST', `/api/v1/keys/${made.body.keyId}/sign`, { message: b64(msg) }, auth);
      assert.equal(sig.status, 200, JSON.stringify(sig.body));
      assert.equal(sig.server, `127.0.0.1:${t2.apiPort}`);
      assert.ok(verifyIndependently({ alg: 'ecdsa-p256', pem: made.body.publicKey }, msg, unb64(sig.body.signature)));
    } finally {
      client.close();
      assert.equal((await ekm(t1, 'ep', 'start')).code, 0);
    }
    await waitClusterInService(t1, 2);
  });
});

describe('scale-out: bearer tokens hold on every EP, and so does their revocation', () => {
  it('a token from EP1 works on EP2; a password reset on EP1 ends it on EP2 at the next request; a logout on EP2 ends a token on EP1', async () => {
    const pinned = (t: Triplet): EkmClient =>
      new EkmClient({ servers: [{ host: '127.0.0.1', port: t.apiPort }], trustedCertsPem: [readFileSync(homePaths(t.homes.ep).tlsCert, 'utf8')], timeoutMs: 60_000 });
    const [ep1, ep2] = [pinned(t1), pinned(t2)];
    const root = await apiOf(t1);
    const bearer = async (client: EkmClient, username: string, password: string): Promise<Record<string, string>> => {
      const r = await client.request<{ access_token: string }>('POST', '/api/v1/token', { username, password });
      assert.equal(r.status, 200, JSON.stringify(r.body));
      return { authorization: `Bearer ${r.body.access_token}` };
    };
    const me = async (client: EkmClient, auth: Record<string, string>): Promise<{ status: number; server: string }> => {
      const r = await client.request('GET', '/api/v1/me', undefined, auth);
      return { status: r.status, server: r.server };
    };
    try {
      for (const name of ['tokalice', 'tokbob']) {
        const made = await root.call('POST', '/partitions/root/users', { name, password: `${name}-pass-1`, role: 'user' });
        assert.equal(made.status, 201, JSON.stringify(made.body));
      }
      const alice = await bearer(ep1, 'tokalice@root', 'tokalice-pass-1');
      const bob = await bearer(ep1, 'tokbob@root', 'tokbob-pass-1');
      assert.deepEqual(await me(ep2, alice), { status: 200, server: `127.0.0.1:${t2.apiPort}` }, 'a token issued by EP1 is accepted by EP2');

      const reset = await root.call('POST', '/partitions/root/users/tokalice/reset-password', { password: 'tokalice-pass-2' });
      assert.equal(reset.status, 200, JSON.stringify(reset.body));
      assert.deepEqual(await me(ep2, alice), { status: 401, server: `127.0.0.1:${t2.apiPort}` }, 'revoked on EP1, refused by EP2 at once');
      assert.equal((await me(ep1, alice)).status, 401);
      assert.equal((await me(ep2, bob)).status, 200, "another user's token is untouched");

      const out = await ep2.request('DELETE', '/api/v1/token', undefined, bob);
      assert.equal(out.status, 200, JSON.stringify(out.body));
      assert.equal((await me(ep1, bob)).status, 401, 'logged out on EP2, refused by EP1');
    } finally {
      ep1.close();
      ep2.close();
      root.close();
    }
  });
});

describe('scale-out: rolling upgrade', () => {
  it(`restarting triplet 1, then triplet 2, each as release ${NEXT} (the seed's upgrade, one triplet at a time), under a load through a client that knows both EPs: zero failed requests`, async () => {
    const setup = await apiOf(t1);
    const keys: { keyId: string; alg: 'eddsa-ed25519' | 'ecdsa-p256' | 'rsa-2048' | 'aes-256-dprf'; pem: string }[] = [];
    for (const alg of ['eddsa-ed25519', 'ecdsa-p256', 'rsa-2048', 'aes-256-dprf'] as const) {
      const made = await setup.call<{ keyId: string; publicKey: string | null }>('POST', '/keys', { alg });
      assert.equal(made.status, 201, JSON.stringify(made.body));
      keys.push({ keyId: made.body.keyId, alg, pem: made.body.publicKey ?? '' });
    }
    setup.close();
    // Warm-up, not counted: each key once through each EP, so that the second triplet's Aux has
    // re-derived its shares (first use) before the restarts; what is measured is the restarts.
    for (const t of [t1, t2]) {
      const one = await apiOf(t);
      try {
        for (const key of keys) {
          const path = key.alg === 'aes-256-dprf' ? 'encrypt' : 'sign';
          const body = key.alg === 'aes-256-dprf' ? { plaintext: b64('warm-up') } : { message: b64('warm-up') };
          let status = 0;
          for (let attempt = 0; attempt < 3 && status !== 200; attempt++)
            status = (await one.call('POST', `/keys/${key.keyId}/${path}`, body)).status;
          assert.equal(status, 200, `warm-up of ${key.alg} through ${t === t1 ? 'EP1' : 'EP2'}`);
        }
      } finally {
        one.close();
      }
    }
    const client = await apiOf(t1, t2);
    const stop = { now: false };
    const done = { ok: 0, failed: [] as string[] };
    const once = async (i: number): Promise<void> => {
      const key = keys[i % keys.length]!;
      const msg = Buffer.from(`rolling ${i}`);
      try {
        if (key.alg === 'aes-256-dprf') {
          const r = await client.call<{ ciphertext: string }>('POST', `/keys/${key.keyId}/encrypt`, { plaintext: b64(msg) });
          if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
        } else {
          const r = await client.call<{ signature: string }>('POST', `/keys/${key.keyId}/sign`, { message: b64(msg) });
          if (r.status !== 200) throw new Error(`${r.status} ${JSON.stringify(r.body)}`);
          const sig = unb64(r.body.signature);
          const ok =
            key.alg === 'rsa-2048'
              ? nodeVerify('sha256', msg, createPublicKey(key.pem), sig)
              : verifyIndependently({ alg: key.alg, pem: key.pem }, msg, sig);
          if (!ok) throw new Error('the signature does not verify');
        }
        done.ok++;
      } catch (e) {
        done.failed.push(`${key.alg}: ${(e as Error).message}`);
      }
    };
    let n = 0;
    const worker = async (): Promise<void> => {
      while (!stop.now) await once(n++);
    };
    const load = Promise.all([worker(), worker()]);
    try {
      for (const [t, other] of [
        [t1, t2],
        [t2, t1],
      ] as const) {
        // The seed's upgrade of a triplet: stop it, upgrade, start Partner and Aux, then the EP
        // last; the upgrade is the test-only override that makes the same build report N+1.
        for (const role of ROLES) assert.equal((await ekm(t, role, 'stop')).code, 0);
        const during = await ucl(other, 'server', 'test');
        assert.equal(during.code, 1, 'ucl server test says a triplet is out');
        assert.match(during.stdout, /NOT in service/);
        for (const role of ['partner', 'aux', 'ep'] as const) {
          const started = await run(join(t.bin, 'ekm'), ['start'], { ...t.env(role), EKM_TEST_VERSION_OVERRIDE: NEXT });
          assert.equal(started.code, 0, started.stderr);
        }
        const mixed = await waitClusterInService(other, 2);
        // The upgraded triplet shows its release (through the other triplet's EP as well).
        for (const role of ROLES) assert.match(mixed.stdout, new RegExp(`${esc(t.names[role])}\\s+${esc(NEXT)}\\s+ok`));
        if (t === t1) for (const role of ROLES) assert.match(mixed.stdout, new RegExp(`${esc(t2.names[role])}\\s+${esc(VERSION)}\\s+ok`));
      }
    } finally {
      stop.now = true;
      await load;
      client.close();
    }
    console.log(`rolling upgrade of 2 triplets to ${NEXT}: ${done.ok} requests served, ${done.failed.length} failed`);
    if (done.failed.length > 0) {
      for (const [name, t] of [
        ['1', t1],
        ['2', t2],
      ] as const) {
        for (const role of ROLES) {
          const lines = readFileSync(homePaths(t.homes[role]).logFile, 'utf8').split('\n');
          console.log(
            `--- ${role}${name}:\n${lines
              .filter((l) => /abort|refused|"level":[45]0/.test(l))
              .slice(-8)
              .join('\n')}`,
          );
        }
      }
    }
    assert.deepEqual(done.failed, []);
    assert.ok(done.ok >= 20, `only ${done.ok} requests were made`);
  });
});

describe('scale-out: removing a triplet', () => {
  it('ucl server delete refuses a running triplet, the own triplet and unknown names; removes a stopped triplet, and the cluster is one triplet again', async () => {
    const del = (name: string, ...extra: string[]): Promise<RunResult> =>
      ucl(t1, 'server', 'delete', name, '-w', ROOT_SO_PASSWORD, ...extra);
    const own = await del(t1.names.partner);
    assertOneLineError(own);
    assert.match(own.stderr, /belongs to the triplet of this EP: run ucl server delete through an EP of another triplet/);
    const running = await del(t2.names.ep);
    if (running.code === 0)
      assert.fail(`deleted a server of a running triplet; ucl server test:\n${(await ucl(t1, 'server', 'test')).stdout}`);
    assertOneLineError(running);
    assert.match(running.stderr, /still runs \(.*listening.*\): stop its three servers first/);
    const unknown = await del('127.0.0.1:1');
    assertOneLineError(unknown);
    assert.match(unknown.stderr, /no server 127\.0\.0\.1:1 in this cluster/);

    for (const role of ROLES) assert.equal((await ekm(t2, role, 'stop')).code, 0);
    for (const role of ROLES) {
      const r = await del(t2.names[role]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Removed (EP|Partner|Aux) 127\.0\.0\.1:\d+ \(triplet [0-9a-f]{16}\) from the cluster list\.$/m);
    }
    const test = await ucl(t1, 'server', 'test');
    assert.equal(test.code, 0, test.stdout);
    assert.match(test.stdout, /1 triplet, 3 servers/);
    // ucl read the membership again on that command: the deleted EP is no longer trusted.
    const learned = JSON.parse(readFileSync(join(t1.homes.ep, 'client-cluster.json'), 'utf8')) as { eps: { fingerprint: string }[] };
    assert.deepEqual(learned.eps.map((e) => e.fingerprint), [certFingerprintOf(t1, 'ep')]);
    const last = await del(t1.names.aux);
    assertOneLineError(last);
    assert.match(last.stderr, /belongs to the cluster's only triplet: a cluster keeps at least one triplet/);
  });
});
