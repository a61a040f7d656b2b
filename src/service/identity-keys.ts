/**
 * The identity statements of the two-phase commits (threshold-protocols.md §11 R4): each server
 * signs PREPARED / ACTIVATED with the key of its pinned TLS certificate, and verifies the others'
 * with the public keys of the certificates approved at bootstrap.
 */
import { X509Certificate, createPrivateKey, sign, verify, type KeyObject } from 'node:crypto';
import type { ServerConfig } from '../config/server-config.js';
import { ROLE_PARTY } from '../config/server-config.js';
import type { IdentitySigner, IdentityVerifier } from '../protocols/session-kit.js';
import type { PartyId } from '../protocols/types.js';

export function identitySigner(keyPem: string): IdentitySigner {
  const key = createPrivateKey(keyPem);
  return { sign: (message) => new Uint8Array(sign('sha256', message, key)) };
}

export function identityVerifier(config: ServerConfig, ownCertPem: string): IdentityVerifier {
  const keys = new Map<PartyId, KeyObject>();
  keys.set(ROLE_PARTY[config.role], new X509Certificate(ownCertPem).publicKey);
  for (const p of config.peers) keys.set(ROLE_PARTY[p.role], new X509Certificate(p.certPem).publicKey);
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
