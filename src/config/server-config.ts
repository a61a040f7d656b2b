/** The bootstrap configuration of one server (`EKM_HOME/server.json`), validated on every load. */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { EkmError } from '../errors.js';
import { type HomePaths, writeFileAtomic } from './home.js';
import { ROLES } from './roles.js';


const Address = z.object({ host: z.string().min(1), port: z.number().int().min(1).max(65535) });

export const PeerEntry = z.object({
  role: z.enum(ROLES),
  name: z.string().min(1),
  address: Address,
  /** SHA-256 fingerprint of the peer's certificate, approved at bootstrap: the pin. */
  fingerprint: z.string().regex(/^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/),
  certPem: z.string().min(1),
});
export type PeerEntry = z.infer<typeof PeerEntry>;

export const StoreConfig = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('sqlite') }),
  /** The role's PostgreSQL database: its URL without the password, which is kept sealed by the system key (src/store/server-store.ts). */
  z.object({ kind: z.literal('postgres'), url: z.string().min(1), passwordSealed: z.string().min(1).optional() }),
]);
export type StoreConfig = z.infer<typeof StoreConfig>;

export const ServerConfig = z.object({
  format: z.literal(1),
  role: z.enum(ROLES),
  name: z.string().min(1),
  listen: Address,
  /** HTTPS API (EP only). */
  api: Address.optional(),
  fips: z.boolean(),
  clusterId: z.string().regex(/^[0-9a-f]{16}$/),
  tripletId: z.string().regex(/^[0-9a-f]{16}$/),
  fingerprint: z.string(),
  bootstrappedWith: z.string(),
  bootstrappedAt: z.string(),
  restored: z.boolean(),
  peers: z.array(PeerEntry),
  store: StoreConfig,
});
export type ServerConfig = z.infer<typeof ServerConfig>;

export function loadServerConfig(paths: HomePaths): ServerConfig {
  let text: string;
  try {
    text = readFileSync(paths.config, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      throw new EkmError(
        'EKM_NOT_BOOTSTRAPPED',
        `no server is bootstrapped in EKM_HOME ${paths.home}`,
        { hint: 'run the bootstrap script for this server (ekm_boot_ep.sh, ekm_boot_partner.sh or ekm_boot_auxiliary.sh) or set EKM_HOME' },
      );
    }
    throw new EkmError('EKM_HOME_UNUSABLE', `cannot read ${paths.config} (${code ?? 'error'})`, { hint: 'check EKM_HOME and its permissions' });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new EkmError('EKM_CONFIG_CORRUPT', `${paths.config} is not valid JSON`, { hint: 'restore it from a backup or bootstrap again' });
  }
  const parsed = ServerConfig.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new EkmError(
      'EKM_CONFIG_CORRUPT',
      `${paths.config} is invalid at ${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'unknown'}`,
      { hint: 'restore it from a backup or bootstrap again' },
    );
  }
  return parsed.data;
}

export function saveServerConfig(paths: HomePaths, cfg: ServerConfig): void {
  writeFileAtomic(paths.config, JSON.stringify(ServerConfig.parse(cfg), null, 2) + '\n', 0o600);
}
