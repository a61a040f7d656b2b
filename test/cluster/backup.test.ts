/**
 * Backup and restore on real processes: a triplet with a key of every EC algorithm is
 * backed up (the EP under a load of signatures), all three homes are destroyed, three new servers
 * on other ports are restored with `ekm restore` and the seed's `-restore` bootstraps (the Partner
 * answering prompts), started in the seed's order; `ucl server test` passes once the EP has
 * re-derived the Aux and refreshed every key, and every key signs under its old public key (EC
 * and RSA), an AES ciphertext made before the backup decrypts, and a partition's user logs in.
 * Refusals: Aux backup, damaged / truncated archives, wrong private key, occupied EKM_HOME, an
 * archive of another role, a mismatched EP/Partner pair (and its `--partial` restore).
 */
import assert from 'node:assert/strict';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { EC_TEST_ALGS, verifyIndependently } from '../support/verify-ec.js';
import { verify } from 'node:crypto';
import { type Api, apiFor, b64, basicCaller, createKey, unb64 } from '../support/api.js';
import {
  BOOT_SCRIPT,
  type Role,
  type RunResult,
  type Triplet,
  assertOneLineError,
  bootAll,
  ekm,
  makeTriplet,
  run,
  ucl,
  waitInService,
} from '../support/cluster.js';
import { readTar, writeTar } from '../../src/backup/tar.js';

const ALGS = EC_TEST_ALGS;
type Alg = (typeof ALGS)[number];
interface Made {
  keyId: string;
  alg: Alg;
  pem: string;
}
const generate = (api: Api, alg: Alg): Promise<Made> => createKey(api, alg);

async function signsUnderOldKey(api: Api, k: Made, text: string): Promise<void> {
  const msg = Buffer.from(text);
  const r = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { message: b64(msg) });
  assert.equal(r.status, 200, `${k.alg} ${k.keyId}: ${JSON.stringify(r.body)}`);
  assert.ok(verifyIndependently(k, msg, unb64(r.body.signature)), `${k.alg} ${k.keyId} signature verifies under the old public key`);
  const show = await api.call<{ publicKey: string }>('GET', `/keys/${k.keyId}`);
  assert.equal(show.body.publicKey, k.pem);
}

const LONG = { timeoutMs: 240_000 };
const AES_PLAINTEXT = 'encrypted before the backup';

/** Bootstraps a restored triplet (EP and Partner with -restore) and a fresh Aux, all at once. */
async function bootRestored(t: Triplet, opts: { partnerPrompts?: boolean; extra?: readonly string[]; timeout?: number } = {}) {
  const base = ['--timeout', String(opts.timeout ?? 120)];
  const extra = opts.extra ?? [];
  const [ep, partner, aux] = await Promise.all([
    run(BOOT_SCRIPT.ep, t.bootArgs('ep', ['-restore', '-f', ...extra, ...base]), t.env('ep'), LONG),
    opts.partnerPrompts
      ? run(BOOT_SCRIPT.partner, t.bootArgs('partner', ['-restore', ...extra, ...base]), t.env('partner'), { ...LONG, answers: ['y', 'y'] })
      : run(BOOT_SCRIPT.partner, t.bootArgs('partner', ['-restore', '-f', ...extra, ...base]), t.env('partner'), LONG),
    run(BOOT_SCRIPT.aux, t.bootArgs('aux', ['-f', ...base]), t.env('aux'), LONG),
  ]);
  return { ep: ep!, partner: partner!, aux: aux! };
}

async function startInSeedOrder(t: Triplet): Promise<void> {
  for (const role of ['partner', 'aux', 'ep'] as const) assert.equal((await ekm(t, role, 'start')).code, 0, `start ${role}`);
}

describe('backup and restore of a triplet (real processes)', { timeout: 1_200_000 }, () => {
  let t: Triplet;
  let api: Api;
  const made: Made[] = [];
  let later: Made;
  let rsaKey: { keyId: string; pem: string };
  let aesKey: { keyId: string; ciphertext: string };
  let refreshedLater: Made;
  const dirs: Triplet[] = [];
  let keysDir: string;
  const file = (name: string): string => join(keysDir, name);

  before(async () => {
    t = await makeTriplet();
    dirs.push(t);
    keysDir = join(t.dir, 'admin');
    const boot = await bootAll(t);
    for (const r of ['ep', 'partner', 'aux'] as Role[]) assert.equal(boot[r].code, 0, boot[r].stderr);
    await startInSeedOrder(t);
    await waitInService(t, 60_000);
    api = await apiFor(t);
    for (const alg of ALGS) {
      const k = await generate(api, alg);
      made.push(k);
      await signsUnderOldKey(api, k, `before the backup ${alg}`);
    }
    // RSA and AES keys, an AES ciphertext, a partition and its user: all must come back.
    const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg: 'rsa-2048' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    rsaKey = { keyId: r.body.keyId, pem: r.body.publicKey };
    const a = await api.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' });
    assert.equal(a.status, 201, JSON.stringify(a.body));
    const sealed = await api.call<{ ciphertext: string }>('POST', `/keys/${a.body.keyId}/encrypt`, { plaintext: b64(AES_PLAINTEXT) });
    assert.equal(sealed.status, 200, JSON.stringify(sealed.body));
    aesKey = { keyId: a.body.keyId, ciphertext: sealed.body.ciphertext };
    assert.equal((await api.call('POST', '/partitions', { name: 'restored', soPassword: 'Restored-so-1' })).status, 201);
    assert.equal((await api.call('POST', '/partitions/restored/users', { name: 'alice', password: 'Alice-pass-1', role: 'user' })).status, 201);
    // One key at epoch 1: backups carry per-key epochs.
    assert.equal((await api.call('POST', `/keys/${made[0]!.keyId}/refresh`)).status, 200);
    for (const name of ['ep', 'partner', 'other']) {
      const r = await run('ekm', ['backup-keygen', '--out', keysDir, '--name', name], {});
      assert.equal(r.code, 0, r.stderr);
    }
    assert.equal(statSync(file('ep.key')).mode & 0o777, 0o600);
  });
  after(async () => {
    for (const d of dirs) await d.cleanup();
  });

  it('the Aux has no backup: refused with an explanation', async () => {
    const r = await ekm(t, 'aux', 'backup', '--out', file('aux.tar.gz'), '--to', file('ep.pub.pem'));
    assertOneLineError(r);
    assert.match(r.stderr, /the Aux has no backup: its shares are re-derived/);
  });

  it('backs up the EP under a load of signatures, then the Partner; both verify', async () => {
    let stop = false;
    let signed = 0;
    const load = async (k: Made): Promise<void> => {
      while (!stop) {
        const r = await api.call('POST', `/keys/${k.keyId}/sign`, { message: b64(`load ${signed}`) });
        assert.equal(r.status, 200);
        signed++;
      }
    };
    const loads = [load(made[0]!), load(made[1]!), load(made[3]!)];
    await new Promise((r) => setTimeout(r, 500));
    const ep = await ekm(t, 'ep', 'backup', '--out', file('ep.tar.gz'), '--to', file('ep.pub.pem'));
    const during = signed;
    stop = true;
    await Promise.all(loads);
    assert.equal(ep.code, 0, ep.stderr);
    assert.ok(during > 0, 'signatures ran during the backup');
    assert.match(ep.stdout, /Backed up EP .*: 7 keys/);
    const partner = await ekm(t, 'partner', 'backup', '--out', file('partner.tar.gz'), '--to', file('partner.pub.pem'));
    assert.equal(partner.code, 0, partner.stderr);
    for (const role of ['ep', 'partner']) {
      const m = JSON.parse(
        gunzipTar(file(`${role}.tar.gz`))
          .get('metadata.json')!
          .toString(),
      ) as { role: string; keyCount: number; keys: { epoch: number }[] };
      assert.equal(m.role, role);
      assert.equal(m.keyCount, 7);
      assert.deepEqual(m.keys.map((k) => k.epoch).sort(), [0, 0, 0, 0, 0, 0, 1]);
      const v = await run('ekm', ['backup', 'verify', '--in', file(`${role}.tar.gz`), '--key', file(`${role}.key`)], {});
      assert.equal(v.code, 0, v.stderr);
      assert.match(v.stdout, /sealed shares open with the archived system key/);
      const noKey = await run('ekm', ['backup', 'verify', '--in', file(`${role}.tar.gz`)], {});
      assert.equal(noKey.code, 0, noKey.stderr);
    }
    // A second EP backup after a new key and a refresh: with the first Partner backup, a mismatched pair.
    later = await generate(api, 'ecdsa-p256');
    refreshedLater = made[2]!;
    assert.equal((await api.call('POST', `/keys/${refreshedLater.keyId}/refresh`)).status, 200);
    const ep2 = await ekm(t, 'ep', 'backup', '--out', file('ep-later.tar.gz'), '--to', file('ep.pub.pem'));
    assert.equal(ep2.code, 0, ep2.stderr);
  });

  it('refuses damaged, truncated and wrongly keyed archives with one line', async () => {
    const good = readFileSync(file('ep.tar.gz'));
    writeFileSync(file('truncated.tar.gz'), good.subarray(0, Math.floor(good.length / 2)));
    const files = gunzipTar(file('ep.tar.gz'));
    const payload = Buffer.from(files.get('payload.enc')!);
    payload[payload.length >> 1]! ^= 0x01;
    writeFileSync(
      file('flipped.tar.gz'),
      gzipSync(writeTar([...files].map(([name, data]) => ({ name, data: name === 'payload.enc' ? payload : data })))),
    );
    for (const [name, re] of [
      ['truncated.tar.gz', /archive is damaged: .*truncated/],
      ['flipped.tar.gz', /archive is damaged: payload.enc does not match its digest/],
    ] as const) {
      for (const args of [
        ['backup', 'verify', '--in', file(name)],
        ['restore', '--in', file(name), '--key', file('ep.key')],
      ]) {
        const r = await run('ekm', args, { EKM_HOME: join(t.dir, 'scratch') });
        assertOneLineError(r);
        assert.match(r.stderr, re);
      }
    }
    const wrong = await run('ekm', ['backup', 'verify', '--in', file('ep.tar.gz'), '--key', file('other.key')], {});
    assertOneLineError(wrong);
    assert.match(wrong.stderr, /this private key does not open the archive/);
    const wrongRestore = await run('ekm', ['restore', '--in', file('ep.tar.gz'), '--key', file('partner.key')], {
      EKM_HOME: join(t.dir, 'scratch'),
    });
    assertOneLineError(wrongRestore);
  });

  it('full cycle: destroy all three homes, restore on new servers and ports, every key signs under its old public key', async () => {
    for (const role of ['ep', 'partner', 'aux'] as Role[]) await ekm(t, role, 'stop');
    for (const role of ['ep', 'partner', 'aux'] as Role[]) rmSync(t.homes[role], { recursive: true, force: true });

    const n = await makeTriplet();
    dirs.push(n);
    for (const role of ['ep', 'partner'] as const) {
      const r = await ekm(n, role, 'restore', '--in', file(`${role}.tar.gz`), '--key', file(`${role}.key`));
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Next: restore the/);
    }
    const again = await ekm(n, 'ep', 'restore', '--in', file('ep.tar.gz'), '--key', file('ep.key'));
    assertOneLineError(again);
    assert.match(again.stderr, /already holds a store .*--force/);

    // An EP archive where the Partner is bootstrapped: refused before any network step.
    const wrongRole = await makeTriplet();
    dirs.push(wrongRole);
    assert.equal((await ekm(wrongRole, 'partner', 'restore', '--in', file('ep.tar.gz'), '--key', file('ep.key'))).code, 0);
    const refused = await run(
      BOOT_SCRIPT.partner,
      wrongRole.bootArgs('partner', ['-restore', '-f', '--timeout', '5']),
      wrongRole.env('partner'),
    );
    assertOneLineError(refused);
    assert.match(refused.stderr, /the store in EKM_HOME is an EP's store, and this is the Partner bootstrap/);

    const boots = await bootRestored(n, { partnerPrompts: true });
    assertAllBooted(boots);
    assert.match(boots.ep.stdout, /archives match: 7 keys/);
    assert.match(boots.partner.stdout, /Approve this certificate\? \[y\/N\]/);
    const clusterOld = JSON.parse(readFileSync(join(n.homes.ep, 'server.json'), 'utf8')) as { clusterId: string };
    assert.match(boots.aux.stdout, new RegExp(`cluster ${clusterOld.clusterId}`));

    await startInSeedOrder(n);
    const waited = await waitInService(n, 180_000);
    const test = await ucl(n, 'server', 'test');
    assert.equal(test.code, 0, test.stdout);
    const napi = await apiFor(n);
    for (const k of made) await signsUnderOldKey(napi, k, `after the restore ${k.alg}`);
    const msg = Buffer.from('RSA after the restore');
    const rs = await napi.call<{ signature: string }>('POST', `/keys/${rsaKey.keyId}/sign`, { message: b64(msg) });
    assert.equal(rs.status, 200, JSON.stringify(rs.body));
    assert.ok(verify('sha256', msg, rsaKey.pem, unb64(rs.body.signature)), 'RSA signature verifies under the old public key (node:crypto)');
    const opened = await napi.call<{ plaintext: string }>('POST', `/keys/${aesKey.keyId}/decrypt`, { ciphertext: aesKey.ciphertext });
    assert.equal(opened.status, 200, JSON.stringify(opened.body));
    assert.equal(unb64(opened.body.plaintext).toString(), AES_PLAINTEXT, 'a ciphertext made before the backup decrypts');
    const alice = basicCaller(n);
    try {
      assert.equal((await alice.as('alice@restored', 'Alice-pass-1', 'GET', '/partitions/restored')).status, 200, 'the partition and its user are back');
    } finally {
      alice.close();
    }
    // Every key was refreshed after the Aux re-derivation (a new epoch makes the lost Aux's share worthless).
    const log = readFileSync(join(n.homes.ep, 'logs', 'ekm.log'), 'utf8');
    assert.match(log, /restore recovery complete/);
    const recovery = log.split('\n').filter((l) => l.includes('restore_recovery'));
    process.stderr.write(`# EP recovery log:\n${recovery.map((l) => `#   ${l}`).join('\n')}\n`);
    const show = await napi.call<{ epoch: number }>('GET', `/keys/${made[0]!.keyId}`);
    assert.ok(show.body.epoch >= 2, `epoch ${show.body.epoch} after the recovery refresh`);
    process.stderr.write(`# restored triplet in service ${waited} ms after the EP started\n`);
  });

  it('a mismatched EP/Partner pair is refused naming the keys; --partial on both restores the common keys', async () => {
    const m = await makeTriplet();
    dirs.push(m);
    assert.equal((await ekm(m, 'ep', 'restore', '--in', file('ep-later.tar.gz'), '--key', file('ep.key'))).code, 0);
    assert.equal((await ekm(m, 'partner', 'restore', '--in', file('partner.tar.gz'), '--key', file('partner.key'))).code, 0);
    const refused = await bootRestored(m, { timeout: 60 });
    // Both check (or the first to find the mismatch tells the other); the EP lists the keys.
    for (const r of ['ep', 'partner'] as Role[]) {
      assertOneLineError(refused[r]);
      assert.match(refused[r].stderr, /archives do not match: 2 of 8 keys cannot be restored/);
    }
    assert.match(refused.ep.stdout + refused.partner.stdout, new RegExp(`key ${later.keyId} \\(ecdsa-p256\\): only in the EP archive`));
    assert.match(
      refused.ep.stdout + refused.partner.stdout,
      new RegExp(`key ${refreshedLater.keyId} \\(ecdsa-p384\\): no common epoch \\(EP holds 1, Partner holds 0\\)`),
    );
    assert.notEqual(refused.aux.code, 0, 'the Aux bootstrap stops too');
    assert.match(refused.aux.stderr, /refused the restore/);

    const partial = await bootRestored(m, { extra: ['--partial'] });
    assertAllBooted(partial);
    assert.match(partial.ep.stdout, /Partial restore .*6 keys restored/);
    await startInSeedOrder(m);
    await waitInService(m, 180_000);
    const mapi = await apiFor(m);
    for (const k of made.filter((x) => x !== refreshedLater)) await signsUnderOldKey(mapi, k, `after the partial restore ${k.alg}`);
    assert.equal((await mapi.call('GET', `/keys/${later.keyId}`)).status, 404);
    assert.equal((await mapi.call('GET', `/keys/${refreshedLater.keyId}`)).status, 404);
  });
});

/** Every bootstrap exited 0; otherwise all three outputs (one bootstrap's timeout is usually another's earlier error). */
function assertAllBooted(boots: Record<Role, RunResult>): void {
  const outputs = (['ep', 'partner', 'aux'] as Role[]).map((r) => `--- ${r} (exit ${boots[r].code}):\n${boots[r].stdout}${boots[r].stderr}`).join('\n');
  for (const r of ['ep', 'partner', 'aux'] as Role[]) assert.equal(boots[r].code, 0, `${r} failed\n${outputs}`);
}

function gunzipTar(path: string): Map<string, Buffer> {
  return readTar(gunzipSync(readFileSync(path)));
}
