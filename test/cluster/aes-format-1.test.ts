/**
 * AES objects an earlier release sealed in format 1 (K_obj from the whole point k·U) still open
 * with this release, which seals format 2 (K_obj from x(k·U); docs/protocols.md §8.1).
 * test/fixtures/aes-format-1 holds the three EKM_HOMEs of a triplet made by commit 3a93d62 (its
 * make.sh regenerates them), with one AES key, three objects sealed by it (one without AAD) and a
 * data key. This release starts on copies of them, opens every object with its AAD and refuses a
 * wrong one; new objects of the same key are format 2 and open too.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Api, apiFor, b64, unb64 } from '../support/api.js';
import { type Triplet, assertOneLineError, ekm, run, startSeedOrder, waitInService } from '../support/cluster.js';
import { FIXTURES, fixtureTriplet } from '../support/fixture-triplet.js';

const fixture = JSON.parse(readFileSync(join(FIXTURES, 'aes-format-1', 'objects.json'), 'utf8')) as {
  commit: string;
  rootSoPassword: string;
  apiPort: number;
  keyId: string;
  objects: { plaintext: string; aad: string; ciphertext: string }[];
  datakey: { plaintextKey: string; ciphertext: string };
  datakeyAad: string;
};

/** The format byte of a sealed object (after the magic "EKMO"). */
const formatOf = (ciphertext: string): number => unb64(ciphertext)[4]!;

describe(`AES objects sealed in format 1 by commit ${fixture.commit}`, () => {
  let t: Triplet;
  let api: Api;

  before(async () => {
    t = await fixtureTriplet('aes-format-1', fixture.apiPort);
    await startSeedOrder(t);
    api = await apiFor(t, fixture.rootSoPassword);
  });
  after(async () => t.cleanup());

  const decrypt = (ciphertext: string, aad: string) =>
    api.call<{ plaintext: string; error?: { code: string } }>('POST', `/keys/${fixture.keyId}/decrypt`, {
      ciphertext,
      ...(aad ? { aad } : {}),
    });

  it('every object of the fixture is format 1, and opens to its plaintext with its AAD', async () => {
    assert.equal(fixture.objects.length, 3);
    for (const o of [...fixture.objects, { ...fixture.datakey, aad: fixture.datakeyAad }]) {
      assert.equal(formatOf(o.ciphertext), 1);
      const r = await decrypt(o.ciphertext, o.aad);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.plaintext, 'plaintext' in o ? o.plaintext : o.plaintextKey);
    }
  });

  it('a wrong AAD is refused with EKM_OBJECT_AUTH', async () => {
    for (const o of fixture.objects) {
      const r = await decrypt(o.ciphertext, b64(Buffer.from(`${Buffer.from(o.aad, 'base64').toString()}-changed`)));
      assert.equal(r.status, 400);
      assert.equal(r.body.error?.code, 'EKM_OBJECT_AUTH');
    }
  });

  it('the same key seals new objects in format 2, which open', async () => {
    const plaintext = b64(Buffer.from('sealed by this release'));
    const aad = b64(Buffer.from('tenant=a'));
    const sealed = await api.call<{ ciphertext: string }>('POST', `/keys/${fixture.keyId}/encrypt`, { plaintext, aad });
    assert.equal(sealed.status, 200, JSON.stringify(sealed.body));
    assert.equal(formatOf(sealed.body.ciphertext), 2);
    const r = await decrypt(sealed.body.ciphertext, aad);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.plaintext, plaintext);
  });

  it('EKM_AES_OBJECT_FORMAT=1 (while older releases still serve the cluster) seals format 1 again; another value stops the start with one line', async () => {
    assert.equal((await ekm(t, 'ep', 'stop')).code, 0);
    const bad = await run(join(t.bin, 'ekm'), ['start'], { ...t.env('ep'), EKM_AES_OBJECT_FORMAT: '3' });
    assertOneLineError(bad);
    assert.match(bad.stderr, /EKM_AES_OBJECT_FORMAT must be 1 or 2, got "3"/);
    const started = await run(join(t.bin, 'ekm'), ['start'], { ...t.env('ep'), EKM_AES_OBJECT_FORMAT: '1' });
    assert.equal(started.code, 0, started.stderr);
    await waitInService(t);
    api = await apiFor(t, fixture.rootSoPassword);
    const plaintext = b64(Buffer.from('for an older release'));
    for (const path of ['encrypt', 'datakey'] as const) {
      const sealed = await api.call<{ ciphertext: string; plaintextKey?: string }>(
        'POST',
        `/keys/${fixture.keyId}/${path}`,
        path === 'encrypt' ? { plaintext } : { bits: 256 },
      );
      assert.equal(sealed.status, 200, JSON.stringify(sealed.body));
      assert.equal(formatOf(sealed.body.ciphertext), 1, path);
      const r = await decrypt(sealed.body.ciphertext, '');
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.equal(r.body.plaintext, path === 'encrypt' ? plaintext : sealed.body.plaintextKey);
    }
  });
});
