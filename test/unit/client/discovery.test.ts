/**
 * EkmClient learns the cluster's EPs (src/client/client.ts, src/client/cluster-membership.ts): from
 * a pinned EP's `GET /api/v1/servers` it trusts every EP of the cluster by fingerprint and fails
 * over to them, keeps them in a file for the next run, drops an EP the cluster no longer lists,
 * and never takes the list of another cluster. Real HTTPS servers with self-signed certificates.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, openSync, readFileSync, readSync, readdirSync, rmSync, statSync, writeFileSync, closeSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { EkmClient } from '../../../src/client/client.js';
import {
  type ClusterMembership,
  membershipFromServerList,
  readClusterCache,
  writeClusterCache,
} from '../../../src/client/cluster-membership.js';
import { clusterCachePath, resolveClientOptions } from '../../../src/cli/client-config.js';
import { createIdentity } from '../../../src/cluster/identity.js';

const CLUSTER = '0123456789abcdef';
const OTHER_CLUSTER = 'fedcba9876543210';

interface Ep {
  name: string;
  server: Server;
  port: number;
  certPem: string;
  fingerprint: string;
  /** What this EP answers to GET /api/v1/servers. */
  membership: { clusterId: string; servers: unknown[] };
  /** Requests other than the membership's. */
  calls: number;
  /** When set, the membership is told only to a request with this Authorization header (as an EP does). */
  authorization?: string;
  /** The Authorization headers the membership requests came with. */
  membershipAuth: (string | undefined)[];
}

async function ep(name: string): Promise<Ep> {
  const id = await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 });
  const e = { name, calls: 0, membershipAuth: [], certPem: id.certPem, fingerprint: new X509Certificate(id.certPem).fingerprint256 } as unknown as Ep;
  e.server = createServer({ key: id.keyPem, cert: id.certPem }, (req, res) => {
    if (req.url === '/api/v1/servers') e.membershipAuth.push(req.headers.authorization);
    if (req.url === '/api/v1/servers' && e.authorization !== undefined && req.headers.authorization !== e.authorization) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'EKM_UNAUTHORIZED', message: 'authentication required' } }));
      return;
    }
    const body = req.url === '/api/v1/servers' ? e.membership : (e.calls++, { answeredBy: name });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  });
  await listen(e);
  return e;
}

async function listen(e: Ep): Promise<void> {
  await new Promise<void>((r) => e.server.listen(e.port ?? 0, '127.0.0.1', () => r()));
  e.port = (e.server.address() as { port: number }).port;
}

const stop = (e: Ep): Promise<void> => new Promise((r) => e.server.close(() => r()));
const row = (e: Ep): Record<string, unknown> => ({ name: e.name, role: 'ep', tripletId: 't', host: '127.0.0.1', port: 1, api: `127.0.0.1:${e.port}`, fingerprint: e.fingerprint });
const addressOf = (e: Ep): { host: string; port: number } => ({ host: '127.0.0.1', port: e.port });

describe('EkmClient learns the EPs of its cluster from a pinned EP', () => {
  let a: Ep;
  let b: Ep;
  let dir: string;
  before(async () => {
    a = await ep('ep1');
    b = await ep('ep2');
  });
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ekm-discovery-'));
    for (const e of [a, b]) {
      if (!e.server.listening) await listen(e);
      e.membership = { clusterId: CLUSTER, servers: [row(a), row(b), { name: 'p1', role: 'partner', api: null, fingerprint: a.fingerprint }] };
      delete e.authorization;
      e.membershipAuth = [];
    }
  });
  after(async () => {
    for (const e of [a, b]) if (e.server.listening) await stop(e);
  });

  it('pinned to EP1 only, it trusts and fails over to EP2 once EP1 is down; without discovery it cannot', async () => {
    const learning = new EkmClient({ servers: [addressOf(a)], trustedCertsPem: [a.certPem] });
    const fixed = new EkmClient({ servers: [addressOf(a), addressOf(b)], trustedCertsPem: [a.certPem], discover: false });
    assert.equal((await learning.request<{ answeredBy: string }>('GET', '/x')).body.answeredBy, 'ep1');
    assert.equal((await fixed.request<{ answeredBy: string }>('GET', '/x')).body.answeredBy, 'ep1');
    assert.deepEqual(learning.servers, [addressOf(a), addressOf(b)], 'EP2 learned; the Partner is not an EP');
    assert.equal(learning.clusterId, CLUSTER);
    await stop(a);
    learning.close();
    fixed.close();
    assert.equal((await learning.request<{ answeredBy: string }>('GET', '/x')).body.answeredBy, 'ep2');
    await assert.rejects(fixed.request('GET', '/x'), { code: 'EKM_UNTRUSTED' });
    learning.close();
  });

  it("reads the server list with the caller's credentials; when the EP refuses them, that is the answer and the request is not sent", async () => {
    a.authorization = 'Basic good';
    const c = new EkmClient({ servers: [addressOf(a)], trustedCertsPem: [a.certPem], membershipRefreshMs: 0 });
    assert.equal((await c.request<{ answeredBy: string }>('GET', '/x', undefined, { Authorization: 'Basic good' })).body.answeredBy, 'ep1');
    assert.deepEqual(c.servers, [addressOf(a), addressOf(b)], 'EP2 learned with the credentials');
    const calls = a.calls;
    const refused = await c.request<{ error: { code: string } }>('POST', '/x', {}, { authorization: 'Basic wrong' });
    assert.equal(refused.status, 401);
    assert.equal(refused.body.error.code, 'EKM_UNAUTHORIZED');
    assert.equal(a.calls, calls, 'one failed login, not two: the request itself was not sent');
    assert.deepEqual(a.membershipAuth, ['Basic good', 'Basic wrong']);
    c.close();
  });

  it('keeps the learned EPs in a file (owner-writable, atomically) and the next client fails over from it at once', async () => {
    const cache = join(dir, 'client-cluster.json');
    const first = new EkmClient({ servers: [addressOf(a)], trustedCertsPem: [a.certPem], clusterCachePath: cache });
    await first.request('GET', '/x');
    first.close();
    const kept = readClusterCache(cache);
    assert.equal(kept?.clusterId, CLUSTER);
    assert.deepEqual(kept?.eps.map((e) => e.fingerprint), [a.fingerprint, b.fingerprint]);
    assert.equal(statSync(cache).mode & 0o022, 0, 'writable by its owner only (0644 under the usual umask)');
    assert.deepEqual(readdirSync(dir), ['client-cluster.json'], 'no temporary file is left');

    await stop(a);
    const next = new EkmClient({ servers: [addressOf(a)], trustedCertsPem: [a.certPem], clusterCachePath: cache });
    assert.equal((await next.request<{ answeredBy: string }>('GET', '/x')).body.answeredBy, 'ep2');
    next.close();
  });

  it('an EP the cluster no longer lists is dropped: out of the file, and its certificate no longer trusted', async () => {
    const cache = join(dir, 'client-cluster.json');
    const c = new EkmClient({ servers: [addressOf(a), addressOf(b)], trustedCertsPem: [a.certPem], clusterCachePath: cache, membershipRefreshMs: 0 });
    await c.request('GET', '/x');
    assert.equal(readClusterCache(cache)?.eps.length, 2);
    a.membership = { clusterId: CLUSTER, servers: [row(a)] };
    await c.request('GET', '/x');
    assert.deepEqual(readClusterCache(cache)?.eps.map((e) => e.name), ['ep1']);
    await stop(a);
    await assert.rejects(c.request('GET', '/x'), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'EKM_UNTRUSTED');
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${b.port} presented a certificate that is not trusted`));
      return true;
    });
    c.close();
  });

  it('never takes the list of another cluster: refused before the request is sent, the file left as it was', async () => {
    const cache = join(dir, 'client-cluster.json');
    const learned = new EkmClient({ servers: [addressOf(a)], trustedCertsPem: [a.certPem], clusterCachePath: cache });
    await learned.request('GET', '/x');
    learned.close();
    const before = readFileSync(cache, 'utf8');
    b.membership = { clusterId: OTHER_CLUSTER, servers: [row(b)] };
    const calls = b.calls;
    const other = new EkmClient({ servers: [addressOf(b)], trustedCertsPem: [b.certPem], clusterCachePath: cache });
    await assert.rejects(other.request('POST', '/x', {}), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'EKM_CLUSTER_MISMATCH');
      assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${b.port} belongs to cluster ${OTHER_CLUSTER}, but the learned cluster file .* is of cluster ${CLUSTER}`));
      return true;
    });
    other.close();
    assert.equal(b.calls, calls, 'the request itself was not sent');
    assert.equal(readFileSync(cache, 'utf8'), before);
    // An EP's own configuration names its cluster: a file of another is refused at once.
    assert.throws(
      () => new EkmClient({ servers: [addressOf(a)], trustedCertsPem: [a.certPem], clusterCachePath: cache, clusterId: OTHER_CLUSTER }),
      { code: 'EKM_CLUSTER_MISMATCH' },
    );
  });
});

describe('the learned cluster file and the server list', () => {
  const fp = (n: number): string => Array.from({ length: 32 }, () => n.toString(16).padStart(2, '0').toUpperCase()).join(':');
  const m: ClusterMembership = { clusterId: CLUSTER, eps: [{ name: 'ep1', api: 'ep1.example:8443', fingerprint: fp(1) }] };

  it('takes the EPs of a server list, each with a name, an API address and a SHA-256 fingerprint', () => {
    const body = {
      clusterId: CLUSTER,
      servers: [
        { name: 'ep1', role: 'ep', api: 'ep1.example:8443', fingerprint: fp(1) },
        { name: 'ep6', role: 'ep', api: '[::1]:8443', fingerprint: fp(6) },
        { name: 'p1', role: 'partner', api: null, fingerprint: fp(2) },
        { name: 'ep2', role: 'ep', api: 'ep2.example:8443', fingerprint: 'sha1:00' },
        { name: 'ep3', role: 'ep', api: 'ep3.example:99999', fingerprint: fp(3) },
        { name: 'ep4', role: 'ep', api: null, fingerprint: fp(4) },
      ],
    };
    assert.deepEqual(membershipFromServerList(body)?.eps.map((e) => e.name), ['ep1', 'ep6']);
    assert.equal(membershipFromServerList({ ...body, clusterId: 'not-a-cluster' }), undefined);
    assert.equal(membershipFromServerList({ ok: true }), undefined);
    assert.equal(membershipFromServerList('<html>'), undefined);
  });

  it('is replaced whole by rename: a reader of the old file reads all of it, never half of the new one', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekm-cache-'));
    try {
      const path = join(dir, 'client-cluster.json');
      assert.equal(writeClusterCache(path, m), true);
      const oldText = readFileSync(path, 'utf8');
      const fd = openSync(path, 'r');
      const inode = statSync(path).ino;
      assert.equal(writeClusterCache(path, { clusterId: CLUSTER, eps: [...m.eps, { name: 'ep2', api: 'ep2.example:8443', fingerprint: fp(2) }] }), true);
      assert.notEqual(statSync(path).ino, inode, 'a new file took the old one\'s name');
      const buf = Buffer.alloc(oldText.length + 100);
      const n = readSync(fd, buf, 0, buf.length, 0);
      closeSync(fd);
      assert.equal(buf.subarray(0, n).toString('utf8'), oldText);
      assert.equal(readClusterCache(path)?.eps.length, 2);
      assert.deepEqual(readdirSync(dir), ['client-cluster.json']);
      assert.equal(writeClusterCache(join(dir, 'no', 'such', 'folder', 'c.json'), m), false, 'an unwritable place: false, no throw');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads a missing file as nothing learned yet, and refuses a garbled one with a clear message', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ekm-cache-'));
    try {
      const path = join(dir, 'client-cluster.json');
      assert.equal(readClusterCache(path), undefined);
      for (const [text, why] of [
        ['{', /is not JSON/],
        ['{"clusterId":"x","eps":[]}', /is not a learned cluster/],
        [`{"clusterId":"${CLUSTER}","eps":[{"name":"ep1","api":"h:1"}]}`, /holds an EP without a name, an API address or a SHA-256 fingerprint/],
      ] as const) {
        writeFileSync(path, text);
        assert.throws(() => readClusterCache(path), (e: Error & { code?: string }) => {
          assert.equal(e.code, 'EKM_CLUSTER_CACHE');
          assert.match(e.message, why);
          return true;
        });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('ucl: discover= in client.conf, and where the learned file is kept', () => {
  let dir: string;
  let certFile: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ekm-conf-'));
    certFile = join(dir, 'eps.pem');
    writeFileSync(certFile, (await createIdentity({ role: 'ep', host: '127.0.0.1', years: 1 })).certPem);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const settingsFor = (conf: string): { home: string; uclConf: string; uclServers: undefined; uclClusterCache: undefined } => ({
    home: join(dir, 'no-home'),
    uclConf: conf,
    uclServers: undefined,
    uclClusterCache: undefined,
  });

  it('discovers by default, keeping the file beside client.conf; discover=no keeps to the hand-written list', async () => {
    const conf = join(dir, 'client.conf');
    writeFileSync(conf, `servers=ep1.example:8443\ntrust=${certFile}\n`);
    const learning = await resolveClientOptions(undefined, settingsFor(conf));
    assert.equal(learning.discover, true);
    assert.equal(learning.clusterCachePath, join(dir, 'client-cluster.json'));
    writeFileSync(conf, `servers=ep1.example:8443\ntrust=${certFile}\ndiscover=no\n`);
    const fixed = await resolveClientOptions(undefined, settingsFor(conf));
    assert.equal(fixed.discover, false);
    assert.equal(fixed.clusterCachePath, undefined);
    writeFileSync(conf, `servers=ep1.example:8443\ntrust=${certFile}\ndiscover=maybe\n`);
    await assert.rejects(resolveClientOptions(undefined, settingsFor(conf)), (e: Error & { code?: string }) => {
      assert.equal(e.code, 'EKM_CLIENT_CONF');
      assert.match(e.message, /client\.conf:3: discover must be yes or no, not "maybe"/);
      return true;
    });
  });

  it('the file: UCL_CLUSTER_CACHE, else beside UCL_CONF, else in EKM_HOME, else in ~/.ekm', () => {
    const conf = join(dir, 'client.conf');
    writeFileSync(conf, '');
    const none = { home: join(dir, 'no-home'), uclConf: undefined, uclClusterCache: undefined };
    assert.equal(clusterCachePath({ ...none, uclClusterCache: join(dir, 'mine.json') }), join(dir, 'mine.json'));
    assert.equal(clusterCachePath({ ...none, uclConf: conf }), join(dir, 'client-cluster.json'));
    assert.equal(clusterCachePath({ ...none, home: dir }), join(dir, 'client-cluster.json'));
    assert.equal(clusterCachePath(none, join(dir, 'user')), join(dir, 'user', '.ekm', 'client-cluster.json'));
    assert.equal(existsSync(join(dir, 'user')), false, 'only looked at');
  });
});
