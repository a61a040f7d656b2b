/**
 * Where `ucl` finds the cluster: `--server` / `UCL_SERVERS` name EPs (`host:port[,host:port]`);
 * `client.conf` (`$UCL_CONF`, `$EKM_HOME/client.conf`, `/etc/ekm/client.conf`) has
 * `servers=`, `trust=<PEM file of the EP certificates>` and `discover=yes|no`; run where an EP's
 * EKM_HOME is, ucl uses that EP's own API address and certificate. From a trusted EP ucl learns
 * the cluster's other EPs and keeps them in `client-cluster.json` (UCL_CLUSTER_CACHE).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { type HomePaths, homePaths, isBootstrapped } from '../config/home.js';
import type { Settings } from '../config/settings.js';
import { EkmError } from '../errors.js';
import { DEFAULT_API_PORT, type ServerAddress, parseServerName } from '../cluster/names.js';
import type { ClientIdentity, ClientOptions } from '../client/client.js';

export const SYSTEM_CLIENT_CONF = '/etc/ekm/client.conf';

export const CLUSTER_CACHE_FILE = 'client-cluster.json';

interface ClientConf {
  servers?: string;
  trust?: string;
  discover?: string;
}

const CONF_KEYS = ['servers', 'trust', 'discover'] as const;
const isConfKey = (key: string): key is (typeof CONF_KEYS)[number] => (CONF_KEYS as readonly string[]).includes(key);

function parseConf(path: string): ClientConf {
  const out: ClientConf = {};
  const text = readFileSync(path, 'utf8');
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const eq = line.indexOf('=');
    if (eq < 0) throw new EkmError('EKM_CLIENT_CONF', `${path}:${i + 1}: expected key=value`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (!isConfKey(key)) throw new EkmError('EKM_CLIENT_CONF', `${path}:${i + 1}: unknown setting "${key}"`, { hint: `known settings: ${CONF_KEYS.join(', ')}` });
    if (key === 'discover' && value !== 'yes' && value !== 'no')
      throw new EkmError('EKM_CLIENT_CONF', `${path}:${i + 1}: discover must be yes or no, not "${value}"`, { hint: 'discover=no keeps ucl to the servers= and trust= written here' });
    out[key] = value;
  });
  return out;
}

const isFolder = (path: string): boolean => statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;

/**
 * Where ucl keeps the EPs it learned: UCL_CLUSTER_CACHE; else beside the client.conf named by
 * UCL_CONF; else in EKM_HOME (where client.conf or the EP's own certificate is read); else in
 * ~/.ekm. One file per place, so that two configurations for two clusters never share one.
 */
export function clusterCachePath(settings: Pick<Settings, 'home' | 'uclConf' | 'uclClusterCache'>, home = homedir()): string {
  if (settings.uclClusterCache) return settings.uclClusterCache;
  if (settings.uclConf && existsSync(settings.uclConf)) return join(dirname(settings.uclConf), CLUSTER_CACHE_FILE);
  const paths = homePaths(settings.home);
  if (isFolder(paths.home)) return join(paths.home, CLUSTER_CACHE_FILE);
  return join(home, '.ekm', CLUSTER_CACHE_FILE);
}

function parseServers(list: string, what: string): ServerAddress[] {
  return list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map((s) => parseServerName(s, what, DEFAULT_API_PORT));
}

function readPemBundle(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new EkmError('EKM_CLIENT_CONF', `cannot read the trusted certificates file ${path}`, { hint: 'fix trust= in client.conf' });
  }
  const certs = text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (certs.length === 0) throw new EkmError('EKM_CLIENT_CONF', `${path} holds no PEM certificate`, { hint: 'fix trust= in client.conf' });
  return certs.map((c) => `${c}\n`);
}

export async function resolveClientOptions(
  serverFlag: string | undefined,
  settings: Pick<Settings, 'home' | 'uclConf' | 'uclServers' | 'uclClusterCache'>,
): Promise<ClientOptions> {
  const paths = homePaths(settings.home);
  const candidates = [settings.uclConf, paths.clientConf, SYSTEM_CLIENT_CONF].filter((p): p is string => !!p);
  const confPath = candidates.find((p) => existsSync(p));
  const conf = confPath ? parseConf(confPath) : {};
  const trusted: string[] = conf.trust ? readPemBundle(conf.trust) : [];

  let servers: ServerAddress[] = [];
  if (serverFlag) servers = parseServers(serverFlag, '--server');
  else if (settings.uclServers) servers = parseServers(settings.uclServers, 'UCL_SERVERS');
  else if (conf.servers) servers = parseServers(conf.servers, 'client.conf servers');

  // Where this is an EP's EKM_HOME, its own API and certificate need no configuration.
  // The configuration's schema module is loaded only then: it costs ~0.1 s of start-up.
  let clusterId: string | undefined;
  let identity: ClientIdentity | undefined;
  if (isBootstrapped(paths)) {
    const { loadServerConfig } = await import('../config/server-config.js');
    const cfg = loadServerConfig(paths);
    if (cfg.role === 'ep' && cfg.api) {
      clusterId = cfg.clusterId;
      trusted.push(readFileSync(paths.tlsCert, 'utf8'));
      identity = readOwnIdentity(paths);
      if (servers.length === 0) {
        const host = cfg.api.host === '0.0.0.0' ? '127.0.0.1' : cfg.api.host;
        servers = [{ host, port: cfg.api.port }];
      }
    }
  }
  if (servers.length === 0) {
    throw new EkmError('EKM_NO_SERVER', 'no EP to talk to', { hint: 'give --server host:port, set UCL_SERVERS, write servers= in client.conf, or set EKM_HOME to an EP\'s home' });
  }
  const discover = conf.discover !== 'no';
  return {
    servers,
    trustedCertsPem: trusted,
    discover,
    ...(discover ? { clusterCachePath: clusterCachePath(settings) } : {}),
    ...(clusterId !== undefined ? { clusterId } : {}),
    ...(identity !== undefined ? { identity } : {}),
  };
}

/**
 * The EP's identity, where ucl may read its key (the EP's own account): shown to the EP, it lets
 * `ucl server test|list` run on the EP's host without a password. Unreadable: none.
 */
function readOwnIdentity(paths: HomePaths): ClientIdentity | undefined {
  try {
    return { keyPem: readFileSync(paths.tlsKey, 'utf8'), certPem: readFileSync(paths.tlsCert, 'utf8') };
  } catch {
    return undefined;
  }
}
