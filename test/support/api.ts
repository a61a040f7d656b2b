/** A caller of a test triplet's EP API, as an application would be: pinned certificate, bearer token. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EkmClient } from '../../src/client/client.js';
import { ROOT_SO_PASSWORD, type Triplet } from './cluster.js';

export interface Api {
  call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

export async function apiFor(t: Triplet, password = ROOT_SO_PASSWORD): Promise<Api> {
  const client = new EkmClient({
    servers: [{ host: '127.0.0.1', port: t.apiPort }],
    trustedCertsPem: [readFileSync(join(t.homes.ep, 'tls', 'server.crt'), 'utf8')],
    timeoutMs: 60_000,
  });
  const login = async (): Promise<{ authorization: string }> => {
    const tok = await client.request<{ access_token: string }>('POST', '/api/v1/token', { username: 'so@root', password });
    if (tok.status !== 200) throw new Error(`login failed: ${tok.status} ${JSON.stringify(tok.body)}`);
    return { authorization: `Bearer ${tok.body.access_token}` };
  };
  let auth = await login();
  return {
    // As an application does: a token that expired (900 s; a long suite on a slow machine
    // outlives it) is renewed once, and the request sent again.
    async call<T>(method: string, path: string, body?: unknown) {
      let r = await client.request<T>(method, `/api/v1${path}`, body, auth);
      if (r.status === 401) {
        auth = await login();
        r = await client.request<T>(method, `/api/v1${path}`, body, auth);
      }
      return { status: r.status, body: r.body };
    },
  };
}

/** POST /keys (asserted created): the new key's id, algorithm and public key (PEM). */
export async function createKey<A extends string>(api: Api, alg: A): Promise<{ keyId: string; alg: A; pem: string }> {
  const r = await api.call<{ keyId: string; publicKey: string }>('POST', '/keys', { alg });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return { keyId: r.body.keyId, alg, pem: r.body.publicKey };
}

export const b64 = (b: Uint8Array | string): string => Buffer.from(b).toString('base64');
export const unb64 = (s: string): Buffer => Buffer.from(s, 'base64');

export interface BasicCaller {
  /** One request with HTTP Basic `user@partition:password`, as `ucl` sends it. */
  as<T = Record<string, unknown>>(user: string, password: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
  close(): void;
}

export function basicCaller(t: Triplet): BasicCaller {
  const client = new EkmClient({
    servers: [{ host: '127.0.0.1', port: t.apiPort }],
    trustedCertsPem: [readFileSync(join(t.homes.ep, 'tls', 'server.crt'), 'utf8')],
    timeoutMs: 60_000,
  });
  return {
    async as<T>(user: string, password: string, method: string, path: string, body?: unknown) {
      const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
      const r = await client.request<T>(method, `/api/v1${path}`, body, { authorization });
      return { status: r.status, body: r.body };
    },
    close: () => client.close(),
  };
}

/** The API's one error shape, with the expected status (and code). */
export function assertApiError(r: { status: number; body: unknown }, status: number, code?: string): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  const e = (r.body as { error?: { code?: unknown; message?: unknown } }).error;
  assert.ok(e && typeof e.code === 'string' && typeof e.message === 'string', `error shape: ${JSON.stringify(r.body)}`);
  if (code) assert.equal(e.code, code);
}
