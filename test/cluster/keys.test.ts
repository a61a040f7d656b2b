/**
 * Keys that never exist whole, on a real triplet: every algorithm generates, signs
 * (verified by node:crypto and OpenSSL / noble), refreshes and signs again under the same public
 * key; the Aux's store is wiped and re-derived; servers are killed in the middle of operations.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { verifyIndependently } from '../support/verify-ec.js';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { type Triplet, ekm, servingTriplet, waitInService } from '../support/cluster.js';
import { readPid } from '../../src/config/pidfile.js';
import { homePaths } from '../../src/config/home.js';

const ALGS = ['ecdsa-p256', 'ecdsa-secp256k1', 'ecdsa-p384', 'eddsa-ed25519', 'schnorr-bip340'] as const;
type Alg = (typeof ALGS)[number];

interface Made {
  keyId: string;
  alg: Alg;
  pem: string;
}

async function sign(api: Api, k: Made, message: Buffer, format?: 'der'): Promise<Buffer> {
  const r = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { message: b64(message), ...(format ? { format } : {}) });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return unb64(r.body.signature);
}

async function generate(api: Api, alg: Alg): Promise<Made> {
  const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { keyId: r.body.keyId, alg, pem: r.body.publicKey };
}

describe('threshold EC keys on a real triplet', () => {
  let t: Triplet;
  let api: Api;
  const made = new Map<Alg, Made>();
  before(async () => {
    t = await servingTriplet();
    api = await apiFor(t);
  });
  after(async () => t.cleanup());

  for (const alg of ALGS) {
    it(`${alg}: generate, sign, verify independently`, async () => {
      const k = await generate(api, alg);
      made.set(alg, k);
      for (let i = 0; i < 5; i++) {
        const msg = Buffer.from(`message ${i} for ${alg}`);
        const sig = await sign(api, k, msg);
        assert.ok(verifyIndependently(k, msg, sig), `signature ${i} verifies`);
        const v = await api.call<{ valid: boolean }>('POST', `/keys/${k.keyId}/verify`, { message: b64(msg), signature: b64(sig) });
        assert.equal(v.body.valid, true);
        const wrong = await api.call<{ valid: boolean }>('POST', `/keys/${k.keyId}/verify`, { message: b64('other'), signature: b64(sig) });
        assert.equal(wrong.body.valid, false);
      }
    });
  }

  it('ECDSA P-256 DER signatures verify with the openssl command line', async () => {
    const k = made.get('ecdsa-p256')!;
    const msg = Buffer.from('openssl checks this');
    const der = await sign(api, k, msg, 'der');
    writeFileSync(join(t.dir, 'pub.pem'), k.pem);
    writeFileSync(join(t.dir, 'msg'), msg);
    writeFileSync(join(t.dir, 'sig.der'), der);
    const out = execFileSync('openssl', ['dgst', '-sha256', '-verify', join(t.dir, 'pub.pem'), '-signature', join(t.dir, 'sig.der'), join(t.dir, 'msg')]).toString();
    assert.match(out, /Verified OK/);
  });

  it('signs a caller-supplied digest', async () => {
    const k = made.get('ecdsa-secp256k1')!;
    const { createHash } = await import('node:crypto');
    const msg = Buffer.from('digest me');
    const r = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { digest: b64(createHash('sha256').update(msg).digest()) });
    assert.equal(r.status, 200);
    assert.ok(verifyIndependently(k, msg, unb64(r.body.signature)));
    const bad = await api.call<{ error: { code: string } }>('POST', `/keys/${k.keyId}/sign`, { digest: b64(Buffer.alloc(20)) });
    assert.equal(bad.status, 400);
  });

  for (const alg of ALGS) {
    it(`${alg}: refresh keeps the public key, new signatures verify under it`, async () => {
      const k = made.get(alg)!;
      const r = await api.call<{ epoch: number }>('POST', `/keys/${k.keyId}/refresh`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.epoch, 1);
      const show = await api.call<{ publicKey: string; epoch: number }>('GET', `/keys/${k.keyId}`);
      assert.equal(show.body.publicKey, k.pem);
      assert.equal(show.body.epoch, 1);
      const msg = Buffer.from(`after refresh ${alg}`);
      assert.ok(verifyIndependently(k, msg, await sign(api, k, msg)));
    });
  }

  it('the Aux store is wiped, re-derived from EP and Partner, and every key signs again', async () => {
    await ekm(t, 'aux', 'stop');
    const data = join(t.homes.aux, 'data');
    rmSync(data, { recursive: true, force: true });
    assert.equal((await ekm(t, 'aux', 'start')).code, 0);
    await waitInService(t);
    // ECDSA needs all three servers: with an empty Aux it cannot sign.
    const k = made.get('ecdsa-p256')!;
    const before = await api.call('POST', `/keys/${k.keyId}/sign`, { message: b64('x') });
    assert.notEqual(before.status, 200);
    const r = await api.call<{ keys: number }>('POST', '/servers/aux/rederive');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.keys, ALGS.length);
    for (const alg of ALGS) {
      const m = made.get(alg)!;
      const msg = Buffer.from(`after re-derivation ${alg}`);
      assert.ok(verifyIndependently(m, msg, await sign(api, m, msg)), alg);
    }
    // FROST keys sign with the re-derived Aux alone when the Partner is down.
    await ekm(t, 'partner', 'stop');
    const ed = made.get('eddsa-ed25519')!;
    const msg = Buffer.from('EP and Aux only');
    assert.ok(verifyIndependently(ed, msg, await sign(api, ed, msg)));
    assert.equal((await ekm(t, 'partner', 'start')).code, 0);
    await waitInService(t);
  });

  for (const victim of ['partner', 'aux'] as const) {
    it(`kill -9 of the ${victim} during generations, signatures and refreshes loses no acknowledged key`, async () => {
      const acked: Made[] = [];
      const ops: Promise<void>[] = [];
      const run = async (i: number): Promise<void> => {
        const alg = ALGS[i % ALGS.length]!;
        const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg }).catch(() => undefined);
        if (r?.status === 201) {
          const k = { keyId: r.body.keyId, alg, pem: r.body.publicKey };
          acked.push(k);
          await api.call('POST', `/keys/${k.keyId}/sign`, { message: b64('during') }).catch(() => undefined);
          await api.call('POST', `/keys/${k.keyId}/refresh`).catch(() => undefined);
        }
      };
      for (let i = 0; i < 10; i++) ops.push(run(i));
      await new Promise((r) => setTimeout(r, 400));
      const pid = readPid(homePaths(t.homes[victim]));
      assert.ok(pid);
      process.kill(pid, 'SIGKILL');
      await Promise.all(ops);
      assert.equal((await ekm(t, victim, 'start')).code, 0);
      await waitInService(t);
      // Every key the API acknowledged signs under its public key (retrying covers sessions that
      // were committing at the kill and finish once the peer is back).
      for (const k of acked) {
        const msg = Buffer.from(`after the kill ${k.keyId}`);
        let sig: Buffer | undefined;
        for (let attempt = 0; attempt < 5 && !sig; attempt++) {
          const r = await api.call<{ signature: string }>('POST', `/keys/${k.keyId}/sign`, { message: b64(msg) });
          if (r.status === 200) sig = unb64(r.body.signature);
          else await new Promise((res) => setTimeout(res, 500));
        }
        assert.ok(sig, `key ${k.keyId} (${k.alg}) signs after the restart`);
        assert.ok(verifyIndependently(k, msg, sig));
        const again = await api.call<{ epoch: number }>('POST', `/keys/${k.keyId}/refresh`);
        assert.equal(again.status, 200, `key ${k.keyId} refreshes after the restart: ${JSON.stringify(again.body)}`);
      }
    });
  }
});
