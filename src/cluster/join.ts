/**
 * Scale-out's wire contract (the seed's "Add a Server Triplet"): what a server waiting to join
 * (`ekm_boot_additional_server.sh`) says about itself, the package the main EP gives it, and the
 * role-group secret inside that package, sealed to the new server's identity key.
 *
 * The role-group secret is what makes "every EP shares the EP database" work: the system key that
 * seals the role's shares and its database password, plus the database's address. Only the server
 * of that role that already holds it hands it on (the EP its own; the Partner its own, relayed by the
 * EP, which cannot open it), sealed by ECIES to the certificate the operator approved:
 * ephemeral P-256 ECDH with the certificate's key, HKDF-SHA-256, AES-256-GCM, all bound to the
 * cluster, the role and the recipient's fingerprint.
 */
import {
  X509Certificate,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  randomBytes,
  createPublicKey,
} from 'node:crypto';
import { z } from 'zod';
import { PeerEntry, StoreConfig } from '../config/server-config.js';
import { ROLES } from '../config/roles.js';
import { EkmError } from '../errors.js';

export const JOIN_HELLO = 'join.hello';
export const JOIN_CHECK = 'join.check';
export const JOIN_APPLY = 'join.apply';
/** Peer method on a Partner: its role-group secret, sealed to a new Partner (asked by its EP only). */
export const ROLE_SECRET_METHOD = 'scale.role-secret';

/** Peer method on a Partner: pin a new Aux for its triplet (`ucl server create -a`; asked by its EP only). */
export const AUX_REPIN_METHOD = 'scale.aux-repin';

const HEX16 = z.string().regex(/^[0-9a-f]{16}$/);
const FINGERPRINT = z.string().regex(/^[0-9A-F]{2}(?::[0-9A-F]{2}){31}$/);

export const JoinHello = z.object({
  purpose: z.literal('join'),
  protocol: z.number().int(),
  version: z.string(),
  name: z.string().min(1),
  fingerprint: FINGERPRINT,
  fips: z.boolean(),
  /** The API port it serves if it joins as an EP. */
  apiPort: z.number().int().min(1).max(65535).optional(),
  /** 'joined': it accepted a package already and waits to be started as its role. */
  state: z.enum(['waiting', 'joined']),
});
export type JoinHello = z.infer<typeof JoinHello>;

export const RoleSecret = z.object({ systemKey: z.string().regex(/^[A-Za-z0-9+/]{43}=$/), store: StoreConfig });
export type RoleSecret = z.infer<typeof RoleSecret>;

export const JoinPackage = z.object({
  clusterId: HEX16,
  tripletId: HEX16,
  role: z.enum(ROLES),
  name: z.string().min(1),
  /** The API port (EP only). */
  apiPort: z.number().int().min(1).max(65535).optional(),
  /** The other two servers of the new triplet, with the certificates the operator approved. */
  peers: z.array(PeerEntry).length(2),
  /** EP and Partner: the role-group secret, sealed to this server; Aux: none (its store is its own). */
  sealedSecret: z.string().min(1).nullable(),
  /** Who sent the package (the main EP), for the log. */
  from: z.object({ name: z.string(), fingerprint: FINGERPRINT }),
});
export type JoinPackage = z.infer<typeof JoinPackage>;

export const JoinAnswer = z.object({ ok: z.literal(true), fingerprint: FINGERPRINT });

export const RoleSecretRequest = z.object({ clusterId: HEX16, recipientCertPem: z.string().min(1), recipientFingerprint: FINGERPRINT });
export const RoleSecretAnswer = z.object({ sealed: z.string().min(1) });

/** `apply: false`: check only (the Partner's operator approved this Aux); `apply: true`: pin it. */
export const AuxRepinRequest = z.object({ clusterId: HEX16, tripletId: HEX16, aux: PeerEntry, apply: z.boolean() });
export const AuxRepinAnswer = z.object({ ok: z.literal(true) });

const SEAL_FORMAT = 1;

function sealContext(clusterId: string, role: 'ep' | 'partner', fingerprint: string): Buffer {
  return Buffer.from(`ekm/v1/join/role-secret|${clusterId}|${role}|${fingerprint}`, 'utf8');
}

/** Seals the role-group secret to the certificate's P-256 key (see the module comment). */
export function sealRoleSecret(secret: RoleSecret, to: { certPem: string; clusterId: string; role: 'ep' | 'partner' }): string {
  const cert = new X509Certificate(to.certPem);
  const ctx = sealContext(to.clusterId, to.role, cert.fingerprint256);
  const eph = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const ephDer = eph.publicKey.export({ type: 'spki', format: 'der' });
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: cert.publicKey });
  const key = Buffer.from(hkdfSync('sha256', shared, ephDer, ctx, 32));
  const iv = randomBytes(12);
  const c = createCipheriv('aes-256-gcm', key, iv);
  c.setAAD(ctx);
  const body = Buffer.concat([c.update(JSON.stringify(RoleSecret.parse(secret)), 'utf8'), c.final()]);
  const len = Buffer.alloc(2);
  len.writeUInt16BE(ephDer.length);
  return Buffer.concat([Buffer.of(SEAL_FORMAT), len, ephDer, iv, body, c.getAuthTag()]).toString('base64');
}

/** Opens a sealed role-group secret with this server's identity key; refuses anything else. */
export function openRoleSecret(
  sealed: string,
  mine: { keyPem: string; fingerprint: string; clusterId: string; role: 'ep' | 'partner' },
): RoleSecret {
  const refused = (why: string): EkmError =>
    new EkmError('EKM_JOIN_REFUSED', `the ${mine.role} role secret in the join package ${why}`, {
      hint: 'run ucl server create again from the main EP',
    });
  const buf = Buffer.from(sealed, 'base64');
  if (buf.length < 3 || buf[0] !== SEAL_FORMAT) throw refused('is malformed');
  const ephLen = buf.readUInt16BE(1);
  if (buf.length < 3 + ephLen + 12 + 16) throw refused('is malformed');
  const ephDer = buf.subarray(3, 3 + ephLen);
  const iv = buf.subarray(3 + ephLen, 15 + ephLen);
  const body = buf.subarray(15 + ephLen, buf.length - 16);
  const ctx = sealContext(mine.clusterId, mine.role, mine.fingerprint);
  let plain: Buffer;
  try {
    const shared = diffieHellman({
      privateKey: createPrivateKey(mine.keyPem),
      publicKey: createPublicKey({ key: ephDer, format: 'der', type: 'spki' }),
    });
    const key = Buffer.from(hkdfSync('sha256', shared, ephDer, ctx, 32));
    const d = createDecipheriv('aes-256-gcm', key, iv);
    d.setAAD(ctx);
    d.setAuthTag(buf.subarray(buf.length - 16));
    plain = Buffer.concat([d.update(body), d.final()]);
  } catch {
    throw refused('was not sealed to this server for this cluster and role');
  }
  const parsed = RoleSecret.safeParse(JSON.parse(plain.toString('utf8')));
  if (!parsed.success) throw refused('holds no valid secret');
  return parsed.data;
}
