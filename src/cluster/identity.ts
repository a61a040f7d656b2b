/**
 * A server's identity: a P-256 key and a self-signed certificate, made at bootstrap. Peers pin
 * its SHA-256 fingerprint (approved by the operator, or by `-f`), so no CA is trusted implicitly.
 */
import 'reflect-metadata';
import { X509Certificate as NodeX509, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export interface Identity {
  readonly keyPem: string;
  readonly certPem: string;
  readonly fingerprint: string;
}

/** SHA-256 fingerprint as OpenSSL prints it: upper-case hex pairs joined by colons. */
export function certFingerprint(certPem: string): string {
  return new NodeX509(certPem).fingerprint256;
}

export async function createIdentity(opts: { role: string; host: string; extraNames?: readonly string[]; years: number }): Promise<Identity> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
  const keys = (await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const names = [opts.host, ...(opts.extraNames ?? [])];
  const san = names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }));
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(notBefore.getTime() + opts.years * 365.25 * 24 * 3600 * 1000);
  const serial = Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)));
  serial[0] = serial[0]! & 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    // Unique per certificate, with the key identifiers below: a client that pins several servers
    // (ep1 and ep2 on one host) hands OpenSSL all their certificates as trust anchors, and OpenSSL
    // looks an issuer up by subject name and key identifier; two equal names without identifiers
    // made it try the wrong certificate and refuse the right server.
    name: `CN=ekm ${opts.role} ${opts.host} ${serial.subarray(0, 4).toString('hex')}, O=ekm`,
    notBefore,
    notAfter,
    signingAlgorithm: alg,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
      new x509.SubjectAlternativeNameExtension(san),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '')}\n-----END PRIVATE KEY-----\n`;
  const certPem = cert.toString('pem') + '\n';
  return { keyPem, certPem, fingerprint: certFingerprint(certPem) };
}
