/**
 * The identity statements of the two-phase commits (docs/protocols.md §11 R4): each server
 * signs PREPARED / ACTIVATED with the key of its pinned TLS certificate, and verifies the others'
 * with the public keys of the certificates approved at bootstrap.
 */
import { X509Certificate, createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import type { ServerConfig } from '../config/server-config.js';
import { ROLE_PARTY } from '../config/roles.js';
import type { IdentitySigner, IdentityVerifier } from '../protocols/session-kit.js';
import type { PartyId } from '../protocols/types.js';

export function identitySignerFromPem(keyPem: string): IdentitySigner {
  const key = createPrivateKey(keyPem);
  return { sign: (message) => new Uint8Array(sign('sha256', message, key)) };
}

/** The certificates of the triplet by party (ours and the pinned peers'), for CommonData. */
export function tripletCerts(config: ServerConfig, ownCertPem: string): [PartyId, string][] {
  return [[ROLE_PARTY[config.role], ownCertPem], ...config.peers.map((p): [PartyId, string] => [ROLE_PARTY[p.role], p.certPem])];
}

export function identityVerifierFromPems(certs: readonly (readonly [PartyId, string])[]): IdentityVerifier {
  const keys = new Map<PartyId, KeyObject>(certs.map(([party, pem]) => [party, new X509Certificate(pem).publicKey]));
  return {
    verify(party, message, signature) {
      const key = keys.get(party);
      if (!key) return false;
      try {
        return verify('sha256', message, key, signature);
      } catch {
        return false;
      }
    },
  };
}
