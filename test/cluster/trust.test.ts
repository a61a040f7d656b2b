/**
 * Trust is pinned: a server whose certificate was not approved cannot join, and a peer
 * that presents another key under an approved name is refused — with real ekm processes.
 *
 * Triplet B is bootstrapped on triplet A's Partner and Aux ports (while A is stopped), so B's
 * servers are genuine ekm servers that dial, and answer at, the addresses A has approved.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { createIdentity } from '../../src/cluster/identity.js';
import { PeerLink } from '../../src/net/link.js';
import { type Triplet, bootAll, ekm, makeTriplet, ucl, waitInService } from '../support/cluster.js';

const log = (t: Triplet, role: 'ep' | 'partner' | 'aux'): string => readFileSync(join(t.homes[role], 'logs', 'ekm.log'), 'utf8');

describe('pinned peer certificates', () => {
  let a: Triplet;
  let b: Triplet;
  before(async () => {
    a = await makeTriplet();
    b = await makeTriplet({ partner: a.ports.partner, aux: a.ports.aux });
    for (const t of [a, b]) {
      const r = await bootAll(t);
      for (const role of ['ep', 'partner', 'aux'] as const) assert.equal(r[role].code, 0, r[role].stderr);
    }
    for (const role of ['partner', 'aux', 'ep'] as const) assert.equal((await ekm(a, role, 'start')).code, 0);
    await waitInService(a);
  });
  after(async () => {
    await b.cleanup();
    await a.cleanup();
  });

  it('a server of another triplet dialling approved addresses does not join', async () => {
    // B's EP dials A's Partner and Aux, believing they are its own: the certificates it meets
    // are not the ones it approved, so it refuses them, and A never admits it.
    assert.equal((await ekm(b, 'ep', 'start')).code, 0);
    await new Promise((r) => setTimeout(r, 1500));
    assert.match(log(b, 'ep'), /"kind":"peer_pin_mismatch"/);
    const bTest = await ucl(b, 'server', 'test');
    assert.equal(bTest.code, 1);
    assert.match(bTest.stdout, /Partner\s+\S+\s+\S+\s+untrusted/);
    assert.doesNotMatch(log(a, 'partner'), new RegExp(`peer link up.*${b.names.ep}|"name":"${b.names.ep}".*link up`));
    assert.equal((await ucl(a, 'server', 'test')).code, 0);
    await ekm(b, 'ep', 'stop');
  });

  it('refuses a connection whose client certificate was not approved, tells the caller, and logs it', async () => {
    const rogue = await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 });
    const socket = tls.connect({ host: '127.0.0.1', port: a.ports.partner, key: rogue.keyPem, cert: rogue.certPem, rejectUnauthorized: false });
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    const link = new PeerLink(socket, 'A partner');
    link.sendHello({ purpose: 'link' });
    await assert.rejects(link.awaitHello(5000), /refused this server: certificate not approved/);
    await new Promise((r) => setTimeout(r, 200));
    assert.match(log(a, 'partner'), new RegExp(`"kind":"peer_unapproved".*"fingerprint":"${rogue.fingerprint}"`));
    assert.equal((await ucl(a, 'server', 'test')).code, 0);
  });

  it('refuses a peer that presents a different key under an approved name', async () => {
    await ekm(a, 'aux', 'stop');
    assert.equal((await ekm(b, 'aux', 'start')).code, 0);
    let out = '';
    for (let i = 0; i < 40; i++) {
      const r = await ucl(a, 'server', 'test');
      assert.equal(r.code, 1);
      out = r.stdout;
      if (/Aux\s+\S+\s+\S+\s+untrusted/.test(out)) break;
      await new Promise((res) => setTimeout(res, 250));
    }
    assert.match(out, /Aux\s+\S+\s+\S+\s+untrusted\s+-\s+presented certificate/);
    assert.match(log(a, 'ep'), /"kind":"peer_pin_mismatch","peer":"aux"/);
    await ekm(b, 'aux', 'stop');
    assert.equal((await ekm(a, 'aux', 'start')).code, 0);
    await waitInService(a);
  });
});
