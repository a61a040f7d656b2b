/** Server names as the bootstrap flags take them: `host[:port]`, the port being the peer (engine) port. */
import { isIP } from 'node:net';
import { usageError } from '../errors.js';

export const DEFAULT_PEER_PORT = 6603;
export const DEFAULT_API_PORT = 8443;

export interface ServerAddress {
  readonly host: string;
  readonly port: number;
}

const HOST_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

export function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw usageError(`${what}: "${text}" is not a port number`, 'use 1-65535');
  const port = Number(text);
  if (port < 1 || port > 65535) throw usageError(`${what}: port ${port} is out of range`, 'use 1-65535');
  return port;
}

/** Parses `host[:port]` (IPv6 as `[::1]:port`); `what` names the flag in error messages. */
export function parseServerName(text: string, what: string, defaultPort = DEFAULT_PEER_PORT): ServerAddress {
  const s = text.trim();
  if (s.length === 0) throw usageError(`${what}: empty server name`, 'give host[:port]');
  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([0-9A-Fa-f:.]+)\](?::(.*))?$/.exec(s);
  if (v6) {
    host = v6[1]!;
    portText = v6[2];
  } else {
    const parts = s.split(':');
    if (parts.length > 2) throw usageError(`${what}: "${s}" is not host[:port]`, 'write IPv6 addresses as [addr]:port');
    host = parts[0]!;
    portText = parts[1];
    if (!HOST_RE.test(host)) throw usageError(`${what}: "${host}" is not a valid host name or IPv4 address`);
  }
  const port = portText === undefined ? defaultPort : parsePort(portText, what);
  return { host, port };
}

export function formatAddress(a: ServerAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Where a listener binds for a server name: the given IP, or every interface for a DNS name. */
export function listenHostFor(host: string): string {
  return isIP(host) ? host : '0.0.0.0';
}
