/**
 * What `ucl server test` and `GET /api/v1/health` report: for every server of the triplet, its
 * role, address, release, state and round-trip time, probed live from the EP.
 */
import { request } from 'node:https';
import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { z } from 'zod';
import { ROLES, ROLE_LABEL, type Role } from '../config/roles.js';
import { decodeJson, encodeJson } from '../net/framing.js';
import type { PeerManager } from '../net/peers.js';
import { parseServerName } from './names.js';

export type ServerState = 'ok' | 'starting' | 'degraded' | 'unreachable' | 'untrusted' | 'incompatible';

export interface ServerHealth {
  readonly role: Role;
  readonly roleLabel: string;
  readonly name: string;
  readonly version: string | null;
  readonly state: ServerState;
  readonly rttMs: number | null;
  readonly detail: string | null;
}

export interface TripletHealth {
  readonly tripletId: string;
  readonly inService: boolean;
  readonly servers: readonly ServerHealth[];
}

/** What a server answers to the `status` peer request. */
export const PeerStatusReply = z.object({
  role: z.enum(['ep', 'partner', 'aux']),
  version: z.string(),
  ready: z.boolean(),
  uptimeMs: z.number(),
  missing: z.array(z.enum(['ep', 'partner', 'aux'])),
  storeOk: z.boolean(),
});
export type PeerStatusReply = z.infer<typeof PeerStatusReply>;

/** A server that came up less than this long ago and still lacks a link is `starting`, not `degraded`. */
export const STARTING_GRACE_MS = 15_000;
/** How long a probe waits for the dials it starts at once to links that are down (PeerManager.redialNow). */
export const REDIAL_WAIT_MS = 1000;

export function encodeStatus(s: PeerStatusReply): Uint8Array {
  return encodeJson(s);
}

export interface SelfView {
  readonly role: Role;
  readonly name: string;
  readonly version: string;
  readonly tripletId: string;
  readonly uptimeMs: number;
  readonly storeOk: boolean;
}

/** Probes every peer of this server's triplet over its peer links (in parallel). */
export async function probeTriplet(self: SelfView, peers: PeerManager, timeoutMs = 2000): Promise<TripletHealth> {
  await peers.redialNow(REDIAL_WAIT_MS);
  const selfMissing = peers
    .status()
    .filter((p) => !p.up)
    .map((p) => p.role);
  const own: ServerHealth = {
    role: self.role,
    roleLabel: ROLE_LABEL[self.role],
    name: self.name,
    version: self.version,
    state: !self.storeOk ? 'degraded' : 'ok',
    rttMs: 0,
    detail: !self.storeOk ? 'its store does not answer' : null,
  };
  const others = await Promise.all(
    peers.status().map(async (p): Promise<ServerHealth> => {
      const base = { role: p.role, roleLabel: ROLE_LABEL[p.role], name: p.name };
      const link = peers.link(p.role);
      if (!link) {
        const kind = p.problem?.kind ?? 'unreachable';
        return { ...base, version: p.remoteVersion ?? null, state: kind, rttMs: null, detail: p.problem?.message ?? 'not connected' };
      }
      try {
        const t0 = performance.now();
        const reply = PeerStatusReply.parse(decodeJson(await link.request('status', new Uint8Array(0), timeoutMs)));
        const rttMs = performance.now() - t0;
        const lacks = reply.missing.filter((r) => r !== self.role);
        let state: ServerState = 'ok';
        let detail: string | null = null;
        if (!reply.storeOk) {
          state = 'degraded';
          detail = 'its store does not answer';
        } else if (lacks.length > 0) {
          state = reply.uptimeMs < STARTING_GRACE_MS ? 'starting' : 'degraded';
          detail = `no link to ${lacks.map((r) => ROLE_LABEL[r]).join(', ')}`;
        }
        return { ...base, version: reply.version, state, rttMs, detail };
      } catch (e) {
        return { ...base, version: p.remoteVersion ?? null, state: 'unreachable', rttMs: null, detail: (e as Error).message };
      }
    }),
  );
  const order: Record<Role, number> = { ep: 0, partner: 1, aux: 2 };
  const servers = [own, ...others].sort((a, b) => order[a.role] - order[b.role]);
  // The EP is in service only with both links of its own; a peer's view covers the Partner–Aux link.
  const inService = servers.every((s) => s.state === 'ok') && selfMissing.length === 0;
  return { tripletId: self.tripletId, inService, servers };
}

/** A server of the cluster as the membership list records it (the fields a probe needs). */
export interface MemberRow {
  readonly name: string;
  readonly role: Role;
  readonly tripletId: string;
  readonly api: string | null;
  readonly fingerprint: string;
}

/** What an EP tells a caller it does not know (health without the triplet). */
const BareHealth = z.object({ status: z.enum(['ok', 'unavailable']) }).strict();

const RemoteHealth = z.object({
  triplet: z.object({
    tripletId: z.string(),
    inService: z.boolean(),
    servers: z.array(
      z.object({
        role: z.enum(ROLES),
        roleLabel: z.string(),
        name: z.string(),
        version: z.string().nullable(),
        state: z.enum(['ok', 'starting', 'degraded', 'unreachable', 'untrusted', 'incompatible']),
        rttMs: z.number().nullable(),
        detail: z.string().nullable(),
      }),
    ),
  }),
});

/**
 * Another triplet of the cluster, as its EP reports it (`GET /api/v1/health`, which probes its own
 * Partner and Aux), over HTTPS pinned to the EP's recorded certificate fingerprint. The probing EP
 * shows its own `identity` as the client certificate: the other EP tells the triplet's servers
 * only to an EP of the cluster (or an authenticated caller). An EP that does not answer leaves its
 * whole triplet out of service: no other server can use it.
 */
export async function probeRemoteTriplet(members: readonly MemberRow[], identity: { readonly keyPem: string; readonly certPem: string }, timeoutMs = 3000): Promise<TripletHealth> {
  const ep = members.find((m) => m.role === 'ep');
  const tripletId = members[0]?.tripletId ?? '';
  const down = (why: string): TripletHealth => ({
    tripletId,
    inService: false,
    servers: ROLES.flatMap((role) =>
      members
        .filter((m) => m.role === role)
        .map((m) => ({
          role,
          roleLabel: ROLE_LABEL[role],
          name: m.name,
          version: null,
          state: 'unreachable' as const,
          rttMs: null,
          detail: role === 'ep' ? why : `not probed: its EP ${ep?.name ?? '(none recorded)'} does not answer`,
        })),
    ),
  });
  if (!ep?.api) return down('no API address recorded');
  const { host, port } = parseServerName(ep.api, 'recorded API address');
  return new Promise<TripletHealth>((resolve) => {
    const t0 = performance.now();
    const req = request(
      { host, port, path: '/api/v1/health', method: 'GET', rejectUnauthorized: false, timeout: timeoutMs, key: identity.keyPem, cert: identity.certPem },
      (res) => {
        const presented = (res.socket as TLSSocket).getPeerX509Certificate?.()?.fingerprint256;
        if (presented !== ep.fingerprint) {
          res.destroy();
          resolve(down(`presents certificate ${presented ?? '(none)'}, not the recorded ${ep.fingerprint}`));
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const body: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            if (BareHealth.safeParse(body).success) {
              resolve(down(`told only up or down: it does not take this EP's certificate as an EP of the cluster's`));
              return;
            }
            const parsed = RemoteHealth.parse(body);
            const rtt = performance.now() - t0;
            resolve({ ...parsed.triplet, servers: parsed.triplet.servers.map((s) => (s.role === 'ep' ? { ...s, rttMs: rtt } : s)) });
          } catch {
            resolve(down('answered the health probe with something else'));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (e: NodeJS.ErrnoException) => resolve(down(e.code === 'ECONNREFUSED' ? 'connection refused (stopped?)' : e.message)));
    req.end();
  });
}
