/**
 * What `ucl server test` and `GET /api/v1/health` report: for every server of the triplet, its
 * role, address, release, state and round-trip time, probed live from the EP.
 */
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { ROLE_LABEL, type Role } from '../config/roles.js';
import { decodeJson, encodeJson } from '../net/framing.js';
import type { PeerManager } from '../net/peers.js';

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
  const selfMissing = peers.status().filter((p) => !p.up).map((p) => p.role);
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
