/**
 * PeerManager in one process: three servers' peer links on loopback come up in any start order,
 * recover from a restart, replace a stale connection, and refuse what was not approved.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import pino from 'pino';
import { type Identity, createIdentity } from '../../../src/cluster/identity.js';
import { PeerLink } from '../../../src/net/link.js';
import { type PeerRole, PeerManager, type PeerStatus } from '../../../src/net/peers.js';
import { freePorts, permutations } from '../../support/cluster.js';

const ROLES: readonly PeerRole[] = ['ep', 'partner', 'aux'];
const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

type LogLine = Record<string, unknown> & { msg: string };

interface Node {
  role: PeerRole;
  manager: PeerManager;
  log: LogLine[];
}

let ids: Record<PeerRole, Identity>;
let rogue: Identity;
before(async () => {
  const [ep, partner, aux, r] = await Promise.all([...ROLES, 'ep'].map((role) => createIdentity({ role, host: '127.0.0.1', years: 1 })));
  ids = { ep: ep!, partner: partner!, aux: aux! };
  rogue = r!;
});

interface Layout {
  ports: Record<PeerRole, number>;
  clusterId: string;
}

async function layout(): Promise<Layout> {
  const [ep, partner, aux] = await freePorts(3);
  return { ports: { ep: ep!, partner: partner!, aux: aux! }, clusterId: '00000000000000aa' };
}

const running: PeerManager[] = [];

/** One server's PeerManager; `pins` overrides the fingerprints it approved, `identity` the one it presents. */
function node(
  l: Layout,
  role: PeerRole,
  o: {
    identity?: Identity;
    pins?: Partial<Record<PeerRole, string>>;
    clusterId?: string;
    listenPort?: number;
    version?: string;
    backoff?: { min: number; max: number };
  } = {},
): Node {
  const log: LogLine[] = [];
  const logger = pino({ level: 'debug', base: undefined }, { write: (s: string) => void log.push(JSON.parse(s) as LogLine) });
  const me = o.identity ?? ids[role];
  const manager = new PeerManager({
    self: {
      role,
      name: `127.0.0.1:${l.ports[role]}`,
      listenHost: '127.0.0.1',
      listenPort: o.listenPort ?? l.ports[role],
      clusterId: o.clusterId ?? l.clusterId,
      tripletId: '00000000000000bb',
      version: o.version ?? '0.0.0-test',
      keyPem: me.keyPem,
      certPem: me.certPem,
    },
    peers: ROLES.filter((r) => r !== role).map((r) => ({
      role: r,
      name: `127.0.0.1:${l.ports[r]}`,
      host: '127.0.0.1',
      port: l.ports[r],
      fingerprint: o.pins?.[r] ?? ids[r].fingerprint,
    })),
    handlers: { onRequest: (method, body) => enc(`${role} answers ${method} ${dec(body)}`) },
    log: logger,
    ...(o.backoff ? { backoff: o.backoff } : {}),
  });
  running.push(manager);
  return { role, manager, log };
}

/** Partner, Aux, then the EP, all with their approved identities; resolves when every link is up. */
async function seedOrder(l: Layout): Promise<[Node, Node, Node]> {
  const nodes: [Node, Node, Node] = [node(l, 'partner'), node(l, 'aux'), node(l, 'ep')];
  for (const n of nodes) await n.manager.start();
  await Promise.all(nodes.map((n) => n.manager.waitAllUp(5000)));
  return nodes;
}

async function stopAll(nodes: readonly Node[]): Promise<void> {
  await Promise.all(nodes.map((n) => n.manager.stop()));
}

async function until(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for: ${what}`);
    await sleep(10);
  }
}

const statusOf = (n: Node, role: PeerRole): PeerStatus => n.manager.status().find((s) => s.role === role)!;

describe('PeerManager', () => {
  after(async () => {
    await Promise.all(running.map((m) => m.stop()));
  });

  for (const order of permutations(ROLES)) {
    it(`links come up when started in the order ${order.join(', ')}`, async () => {
      const l = await layout();
      const nodes = Object.fromEntries(ROLES.map((r) => [r, node(l, r)])) as Record<PeerRole, Node>;
      for (const r of order) {
        await nodes[r].manager.start();
        await sleep(40);
      }
      await Promise.all(ROLES.map((r) => nodes[r].manager.waitAllUp(5000)));
      // Every pair talks, in both directions, on the one link of that pair.
      for (const from of ROLES) {
        for (const to of ROLES.filter((r) => r !== from)) {
          assert.equal(dec(await nodes[from].manager.requireLink(to).request('echo', enc(from))), `${to} answers echo ${from}`);
        }
      }
      for (const r of ROLES) assert.ok(nodes[r].manager.status().every((s) => s.up && s.remoteVersion === '0.0.0-test' && !s.problem));
      await stopAll(Object.values(nodes));
    });
  }

  it('reconnects after a server is stopped and started again, and reports it unreachable meanwhile', async () => {
    const l = await layout();
    const [partner, aux, ep] = await seedOrder(l);

    const downs: PeerRole[] = [];
    ep.manager.on('down', (r: PeerRole) => downs.push(r));
    await partner.manager.stop();
    await until('the EP sees the Partner down', () => !statusOf(ep, 'partner').up);
    await until('the EP has tried to redial', () => statusOf(ep, 'partner').problem?.kind === 'unreachable');
    assert.match(statusOf(ep, 'partner').problem!.message, /connection refused/);
    assert.throws(
      () => ep.manager.requireLink('partner'),
      (e: unknown) => (e as { code?: string }).code === 'EKM_PEER_DOWN',
    );
    assert.deepEqual(downs, ['partner']);
    assert.equal(statusOf(ep, 'aux').up, true);

    const partner2 = node(l, 'partner');
    await partner2.manager.start();
    await Promise.all([ep, partner2, aux].map((n) => n.manager.waitAllUp(5000)));
    assert.equal(statusOf(ep, 'partner').problem, undefined);
    assert.equal(dec(await ep.manager.requireLink('partner').request('echo', enc('again'))), 'partner answers echo again');

    // The EP (a dialer) restarts: the acceptors take its new connections.
    await ep.manager.stop();
    await until('Partner sees the EP down', () => !statusOf(partner2, 'ep').up);
    const ep2 = node(l, 'ep');
    await ep2.manager.start();
    await Promise.all([ep2, partner2, aux].map((n) => n.manager.waitAllUp(5000)));
    await stopAll([ep2, partner2, aux]);
  });

  it('redialNow links a peer that came up meanwhile at once, without waiting out the backoff', async () => {
    const l = await layout();
    // A backoff far longer than the test: only redialNow can bring these links up in time.
    const ep = node(l, 'ep', { backoff: { min: 60_000, max: 60_000 } });
    await ep.manager.start();
    await until('the EP has tried both peers once', () => statusOf(ep, 'partner').problem !== undefined && statusOf(ep, 'aux').problem !== undefined);
    const partner = node(l, 'partner');
    const aux = node(l, 'aux');
    await partner.manager.start();
    await aux.manager.start();
    await sleep(100);
    assert.equal(statusOf(ep, 'partner').up, false, 'no scheduled dial within the backoff');
    await ep.manager.redialNow(3000);
    assert.equal(statusOf(ep, 'partner').up, true);
    assert.equal(statusOf(ep, 'aux').up, true);
    // With every link up it has nothing to do and returns at once.
    const t0 = Date.now();
    await ep.manager.redialNow(3000);
    assert.ok(Date.now() - t0 < 100);
    // A peer that is down again: the attempt ends (refused) well before the wait.
    await aux.manager.stop();
    await until('the EP sees the Aux down', () => !statusOf(ep, 'aux').up);
    await ep.manager.redialNow(3000);
    assert.equal(statusOf(ep, 'aux').up, false);
    assert.match(statusOf(ep, 'aux').problem!.message, /connection refused/);
    await stopAll([ep, partner]);
  });

  it('replacePeer pins another Aux: the links to the old one close, and the new one is linked at once', async () => {
    const l = await layout();
    const [partner, aux, ep] = await seedOrder(l);
    const [port] = await freePorts(1);
    const id2 = await createIdentity({ role: 'aux', host: '127.0.0.1', years: 1 });
    const aux2 = node({ ...l, ports: { ...l.ports, aux: port! } }, 'aux', { identity: id2 });
    await aux2.manager.start();
    const spec = { role: 'aux' as const, name: `127.0.0.1:${port}`, host: '127.0.0.1', port: port!, fingerprint: id2.fingerprint };
    for (const n of [ep, partner]) n.manager.replacePeer(spec);
    await Promise.all([ep, partner, aux2].map((n) => n.manager.waitAllUp(5000)));
    await until('the old Aux lost both links', () => !statusOf(aux, 'ep').up && !statusOf(aux, 'partner').up);
    for (const n of [ep, partner]) {
      assert.equal(statusOf(n, 'aux').name, spec.name);
      assert.equal(dec(await n.manager.requireLink('aux').request('echo', enc(n.role))), `aux answers echo ${n.role}`);
    }
    // Nobody dials the old Aux again, and it cannot come in itself: an Aux is dialled, never dials.
    await sleep(300);
    assert.equal(statusOf(aux, 'ep').up, false);
    assert.equal(statusOf(aux, 'partner').up, false);
    for (const n of [ep, partner]) {
      const socket = tls.connect({ host: '127.0.0.1', port: l.ports[n.role], key: ids.aux.keyPem, cert: ids.aux.certPem, rejectUnauthorized: false });
      await new Promise<void>((r) => socket.once('secureConnect', () => r()));
      const link = new PeerLink(socket, n.role);
      link.sendHello({ purpose: 'link' });
      await assert.rejects(link.awaitHello(3000), /refused this server: certificate not approved by this server/);
      assert.ok(n.log.some((e) => e.kind === 'peer_unapproved' && e.fingerprint === ids.aux.fingerprint));
      assert.equal(statusOf(n, 'aux').name, spec.name);
    }
    await stopAll([ep, partner, aux, aux2]);
  });

  it('an acceptor replaces an old connection by a new one from the same peer', async () => {
    const l = await layout();
    const [partner, aux, epA] = await seedOrder(l);
    const old = partner.manager.link('ep')!;

    // A second process with the EP's identity (as after a crash the Partner has not noticed yet).
    const [spare] = await freePorts(1);
    const epB = node(l, 'ep', { listenPort: spare! });
    await epB.manager.start();
    await until('the Partner dropped the old connection', () => old.closed);
    await epA.manager.stop();
    await Promise.all([epB, partner, aux].map((n) => n.manager.waitAllUp(5000)));
    assert.notEqual(partner.manager.link('ep'), old);
    assert.equal(dec(await epB.manager.requireLink('partner').request('echo', enc('B'))), 'partner answers echo B');
    await stopAll([epB, partner, aux]);
  });

  it('refuses a connection whose certificate was not approved, tells the caller, and logs it', async () => {
    const l = await layout();
    const partner = node(l, 'partner');
    await partner.manager.start();
    const socket = tls.connect({
      host: '127.0.0.1',
      port: l.ports.partner,
      key: rogue.keyPem,
      cert: rogue.certPem,
      rejectUnauthorized: false,
    });
    await new Promise<void>((r) => socket.once('secureConnect', () => r()));
    const link = new PeerLink(socket, 'partner');
    link.sendHello({ purpose: 'link' });
    await assert.rejects(link.awaitHello(3000), /partner refused this server: certificate not approved by this server/);
    const entry = partner.log.find((e) => e.kind === 'peer_unapproved');
    assert.ok(entry, JSON.stringify(partner.log));
    assert.equal(entry.event, 'security');
    assert.equal(entry.fingerprint, rogue.fingerprint);
    assert.equal(partner.manager.link('ep'), undefined);

    // A whole rogue EP (it pins the Partner's real certificate) is refused the same way and
    // reports the Partner as untrusted.
    const fake = node(l, 'ep', { identity: rogue });
    await fake.manager.start();
    await until('the rogue EP was refused', () => statusOf(fake, 'partner').problem?.kind === 'untrusted');
    assert.match(statusOf(fake, 'partner').problem!.message, /refused this server: certificate not approved/);
    assert.equal(partner.manager.link('ep'), undefined);
    assert.ok(partner.log.filter((e) => e.kind === 'peer_unapproved').length >= 2);
    await stopAll([partner, fake]);
  });

  it('a peer presenting another certificate than the pinned one is untrusted, and logged as a security event', async () => {
    const l = await layout();
    const ep = node(l, 'ep', { pins: { partner: ids.aux.fingerprint } });
    const partner = node(l, 'partner');
    const aux = node(l, 'aux');
    for (const n of [partner, aux, ep]) await n.manager.start();
    await until('the EP classified the Partner', () => statusOf(ep, 'partner').problem?.kind === 'untrusted');
    const p = statusOf(ep, 'partner');
    assert.equal(p.up, false);
    assert.equal(p.problem!.message, `presented certificate ${ids.partner.fingerprint}, approved ${ids.aux.fingerprint}`);
    const entry = ep.log.find((e) => e.kind === 'peer_pin_mismatch');
    assert.ok(entry);
    assert.equal(entry.event, 'security');
    assert.equal(entry.presented, ids.partner.fingerprint);
    await ep.manager.waitAllUp(300).then(
      () => assert.fail('must not come up'),
      () => undefined,
    );
    assert.equal(statusOf(ep, 'aux').up, true, 'the other link is unaffected');
    await stopAll([ep, partner, aux]);
  });

  it('a peer of another cluster is refused with the reason', async () => {
    const l = await layout();
    const ep = node(l, 'ep');
    const partner = node(l, 'partner', { clusterId: '00000000000000cc' });
    await partner.manager.start();
    await ep.manager.start();
    await until(
      'the EP got an answer',
      () => statusOf(ep, 'partner').problem?.kind !== undefined && statusOf(ep, 'partner').problem?.kind !== 'unreachable',
    );
    // The acceptor checks the hello first and refuses, so the dialer sees a refusal (untrusted).
    const p = statusOf(ep, 'partner').problem!;
    assert.equal(p.kind, 'untrusted');
    assert.match(p.message, /refused this server: ep \S+ belongs to cluster 00000000000000aa, not 00000000000000cc/);
    await stopAll([ep, partner]);
  });

  it('links N and N+1 releases, refuses N+2 on both sides with both versions named, and logs it', async () => {
    const l = await layout();
    const ep = node(l, 'ep', { version: '1.4.2' });
    const partner = node(l, 'partner', { version: '1.5.0' });
    const aux = node(l, 'aux', { version: '1.6.0' });
    for (const n of [partner, aux, ep]) await n.manager.start();
    await until('EP–Partner link up', () => statusOf(ep, 'partner').up);
    assert.equal(statusOf(ep, 'partner').remoteVersion, '1.5.0');
    assert.equal(statusOf(partner, 'ep').remoteVersion, '1.4.2');
    await until('Partner–Aux link up', () => statusOf(partner, 'aux').up);
    // EP 1.4 and Aux 1.6 are two minors apart: the dialer (EP) sees `incompatible`, not a bare refusal.
    await until('the EP classified the Aux', () => statusOf(ep, 'aux').problem?.kind === 'incompatible');
    assert.match(statusOf(ep, 'aux').problem!.message, /^aux \S+ runs ekm 1\.6\.0, this server ekm 1\.4\.2: releases link only within one major version/);
    assert.equal(statusOf(ep, 'aux').up, false);
    assert.equal(statusOf(ep, 'aux').remoteVersion, '1.6.0', 'the refused peer\'s own release is shown, not a stale one');
    assert.equal(statusOf(aux, 'ep').up, false);
    const refusedAtEp = ep.log.find((x) => x.msg === 'peer link refused: incompatible peer');
    assert.ok(refusedAtEp, 'the EP logs the refusal as an error');
    assert.equal(refusedAtEp.level, 50);
    const refusedAtAux = aux.log.find((x) => x.msg === 'peer handshake failed' && x.code === 'EKM_RELEASE_INCOMPATIBLE');
    assert.ok(refusedAtAux, 'the Aux logs the refusal with its code');
    assert.match(String(refusedAtAux.err), /ep \S+ runs ekm 1\.4\.2, this server ekm 1\.6\.0/);
    await stopAll([ep, partner, aux]);
  });

  it('start fails with an operator message when the peer port is taken', async () => {
    const l = await layout();
    const a = node(l, 'partner');
    await a.manager.start();
    const b = node(l, 'partner');
    await assert.rejects(b.manager.start(), (e: unknown) => (e as { code?: string }).code === 'EKM_PORT_IN_USE');
    await stopAll([a, b]);
  });
});
