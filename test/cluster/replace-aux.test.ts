/**
 * Scale-out, `ucl server create -a <aux>` alone: a server bootstrapped with
 * `ekm_boot_additional_server.sh` replaces the Aux of the main EP's triplet while EP and Partner
 * run (a single triplet on the embedded store: an Aux keeps its own store, so no PostgreSQL is
 * needed). The Partner pins it only once its own operator approved it (`ekm approve-join --as aux`); once
 * the new Aux runs, the EP re-derives its shares and refreshes every key, and `ucl server test`
 * passes only then. Every key made before signs, decrypts and encrypts through the new Aux, also
 * after a restart of the whole triplet; the old Aux, started again, is linked by nobody.
 */
import assert from 'node:assert/strict';
import { X509Certificate, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { homePaths } from '../../src/config/home.js';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import {
  ROLES,
  ROOT_SO_PASSWORD,
  type RunResult,
  type Triplet,
  assertOneLineError,
  ekm,
  makeTriplet,
  run,
  servingTriplet,
  ucl,
  waitInService,
} from '../support/cluster.js';
import { EC_TEST_ALGS, type SignTestAlg, verifyIndependently } from '../support/verify-ec.js';

let t: Triplet;
/** Only its Aux home and port are used: the new Aux. */
let spare: Triplet;
let api: Api;
const keys: { keyId: string; alg: SignTestAlg; pem: string; epoch: number }[] = [];
let aes: { keyId: string; epoch: number; sealed: { ciphertext: string; plaintext: string }[] };

before(async () => {
  t = await servingTriplet();
  spare = await makeTriplet();
  api = await apiFor(t);
  for (const alg of [...EC_TEST_ALGS, 'rsa-2048'] as const) {
    const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    keys.push({ keyId: r.body.keyId, alg, pem: r.body.publicKey, epoch: await epochOf(r.body.keyId) });
  }
  const a = await api.call<{ keyId: string }>('POST', '/keys', { alg: 'aes-256-dprf' });
  assert.equal(a.status, 201, JSON.stringify(a.body));
  aes = { keyId: a.body.keyId, epoch: await epochOf(a.body.keyId), sealed: [] };
  for (const plaintext of ['before the Aux is replaced', '']) {
    const e = await api.call<{ ciphertext: string }>('POST', `/keys/${aes.keyId}/encrypt`, { plaintext: b64(plaintext) });
    assert.equal(e.status, 200, JSON.stringify(e.body));
    aes.sealed.push({ ciphertext: e.body.ciphertext, plaintext });
  }
});
after(async () => {
  await spare?.cleanup();
  await t?.cleanup();
});

async function epochOf(keyId: string): Promise<number> {
  const r = await api.call<{ epoch: number }>('GET', `/keys/${keyId}`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body.epoch;
}

function replaceAux(...extra: string[]): Promise<RunResult> {
  return ucl(t, 'server', 'create', '-a', spare.names.aux, '-w', ROOT_SO_PASSWORD, ...extra);
}

const newAuxFingerprint = (): string =>
  new X509Certificate(readFileSync(join(spare.homes.aux, 'tls', 'server.crt'), 'utf8')).fingerprint256;
const pinnedAux = (role: 'ep' | 'partner'): string =>
  (JSON.parse(readFileSync(homePaths(t.homes[role]).config, 'utf8')) as { peers: { role: string; name: string }[] }).peers.find(
    (p) => p.role === 'aux',
  )!.name;

/** Every key signs (verified outside ekm) and every AES ciphertext decrypts, as one more proof that no share was lost. */
async function everyKeyWorks(): Promise<void> {
  for (const k of keys) {
    const message = randomBytes(32);
    const r = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { message: b64(message) });
    assert.equal(r.status, 200, `${k.alg}: ${JSON.stringify(r.body)}`);
    assert.ok(verifyIndependently(k, message, unb64(r.body.signature)), `${k.alg} signature verifies`);
  }
  for (const s of aes.sealed) {
    const d = await api.call<{ plaintext: string }>('POST', `/keys/${aes.keyId}/decrypt`, { ciphertext: s.ciphertext });
    assert.equal(d.status, 200, JSON.stringify(d.body));
    assert.equal(unb64(d.body.plaintext).toString(), s.plaintext);
  }
}

describe('ucl server create -a: replacing the Aux of a running triplet', () => {
  it('the new Aux boots waiting to join; the refusals change nothing', async () => {
    const boot = await run('ekm_boot_additional_server.sh', ['-s', spare.names.aux, '-fips'], spare.env('aux'));
    assert.equal(boot.code, 0, boot.stderr);
    assert.ok(boot.stdout.includes(newAuxFingerprint()), boot.stdout);

    const half = await ucl(t, 'server', 'create', '-e', spare.names.ep, '-a', spare.names.aux, '-w', ROOT_SO_PASSWORD, '-f');
    assertOneLineError(half);
    assert.match(half.stderr, /give -e, -p and -a for a new triplet, or -a alone/);

    const taken = await ucl(t, 'server', 'create', '-a', t.names.partner, '-w', ROOT_SO_PASSWORD, '-f');
    assertOneLineError(taken);
    assert.match(taken.stderr, /is already the Partner/);

    // The EP alone cannot choose the Aux: the Partner's operator has not approved it.
    const unapproved = await replaceAux('-f');
    assertOneLineError(unapproved);
    assert.match(unapproved.stderr, /has not approved the new Aux .* run `ekm approve-join --as aux ([0-9A-F]{2}:){31}[0-9A-F]{2}`/);
    assert.match((await ekm(spare, 'aux', 'status')).stdout, /waiting to join a cluster/);
    for (const role of ['ep', 'partner'] as const) assert.equal(pinnedAux(role), t.names.aux);
    assert.equal((await ucl(t, 'server', 'test')).code, 0, 'the triplet still serves with its old Aux');

    // A fingerprint the operator approved that is not the one presented.
    const wrong = await api.call<{ error: { code: string; message: string } }>('POST', '/servers/aux', {
      aux: spare.names.aux,
      approve: { [spare.names.aux]: new X509Certificate(readFileSync(join(t.homes.aux, 'tls', 'server.crt'), 'utf8')).fingerprint256 },
    });
    assert.equal(wrong.status, 409, JSON.stringify(wrong.body));
    assert.equal(wrong.body.error.code, 'EKM_NOT_APPROVED');

    // Approved as a new Partner is not approved as the new Aux: an approval serves one purpose.
    const asPartner = await ekm(t, 'partner', 'approve-join', newAuxFingerprint());
    assert.match(asPartner.stdout, /^Approved the new Partner certificate /);
    const stillRefused = await replaceAux('-f');
    assertOneLineError(stillRefused);
    assert.match(stillRefused.stderr, /has not approved the new Aux/);
    for (const role of ['ep', 'partner'] as const) assert.equal(pinnedAux(role), t.names.aux);
  });

  it('with the Partner’s approval: the old Aux is gone, the new one joins, gets its shares, every key is refreshed and works', async () => {
    // The old Aux is lost (its machine died).
    assert.equal((await ekm(t, 'aux', 'stop')).code, 0);
    const approved = await ekm(t, 'partner', 'approve-join', '--as', 'aux', newAuxFingerprint());
    assert.equal(approved.code, 0, approved.stderr);
    assert.match(approved.stdout, /^Approved the new Aux certificate ([0-9A-F]{2}:){31}[0-9A-F]{2} until .*: this Partner will pin it as its triplet's Aux/);

    const inspect = await api.call<{ servers: { role: string; name: string; fingerprint: string }[] }>('POST', '/servers/inspect', {
      aux: spare.names.aux,
    });
    assert.equal(inspect.status, 200, JSON.stringify(inspect.body));
    assert.deepEqual(
      inspect.body.servers.map((s) => [s.role, s.name, s.fingerprint]),
      [['aux', spare.names.aux, newAuxFingerprint()]],
    );

    const r = await replaceAux('-f');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`Aux ${spare.names.aux} replaces the Aux of triplet [0-9a-f]{16}`));
    assert.match(r.stdout, /Now start .* \(service ekm start\)/);
    for (const role of ['ep', 'partner'] as const)
      assert.equal(pinnedAux(role), spare.names.aux, `${role} pins the new Aux in server.json`);

    // Until the new Aux runs and has its shares, the triplet is not in service.
    const before = await ucl(t, 'server', 'test');
    assert.notEqual(before.code, 0, before.stdout);
    assert.equal((await ekm(spare, 'aux', 'start')).code, 0);
    await waitInService(t, 120_000);
    const test = await ucl(t, 'server', 'test');
    assert.ok(test.stdout.includes(spare.names.aux), test.stdout);
    assert.ok(!test.stdout.includes(t.names.aux), test.stdout);

    const list = await ucl(t, 'server', 'list', '--json');
    assert.equal(list.code, 0, list.stderr);
    const auxes = (JSON.parse(list.stdout) as { servers: { role: string; name: string }[] }).servers
      .filter((s) => s.role === 'aux')
      .map((s) => s.name);
    assert.deepEqual(auxes, [spare.names.aux]);

    // Every key moved to a new epoch: the old Aux's shares are worthless.
    for (const k of [...keys, aes]) assert.ok((await epochOf(k.keyId)) > k.epoch, `${k.keyId} was refreshed`);
    await everyKeyWorks();
    const e = await api.call<{ ciphertext: string }>('POST', `/keys/${aes.keyId}/encrypt`, { plaintext: b64('after') });
    assert.equal(e.status, 200, JSON.stringify(e.body));
    aes.sealed.push({ ciphertext: e.body.ciphertext, plaintext: 'after' });
  });

  it('the new pin survives a restart of the whole triplet, and the old Aux, started again, is linked by nobody', async () => {
    for (const role of ROLES) assert.equal((await ekm(role === 'aux' ? spare : t, role, 'stop')).code, 0);
    for (const role of ['partner', 'aux', 'ep'] as const) assert.equal((await ekm(role === 'aux' ? spare : t, role, 'start')).code, 0);
    await waitInService(t, 60_000);
    api = await apiFor(t);
    await everyKeyWorks();

    const log = homePaths(t.homes.aux).logFile;
    const mark = statSync(log).size;
    assert.equal((await ekm(t, 'aux', 'start')).code, 0);
    await everyKeyWorks();
    await new Promise((r) => setTimeout(r, 1500));
    const since = readFileSync(log).subarray(mark).toString();
    assert.ok(since.includes('ekm server started'), since);
    assert.ok(!since.includes('peer link up'), `the old Aux has no link:\n${since}`);
    assert.equal((await ekm(t, 'aux', 'stop')).code, 0);
  });
});
