/**
 * What the EP's API needs from the server that mounts it, as narrow types: the API depends on
 * these, not on the server process, so the server builds one `ApiDeps` and a test can build the
 * same from services it started itself.
 */
import type { Logger } from 'pino';
import type { TripletHealth } from '../cluster/health.js';
import type { ScaleOut } from '../cluster/scale-out.js';
import type { ServerConfig } from '../config/server-config.js';
import type { KeyCatalog } from '../service/key-catalog.js';
import type { KeyService } from '../service/key-service.js';
import type { ServerRow, Store } from '../store/store.js';

/** The key service's operations the key routes call. */
export type ApiKeyService = Pick<KeyService, 'generateKey' | 'importPublic' | 'rsaAes' | 'policyOf' | 'publicKey' | 'pool' | 'sign' | 'verify' | 'refresh' | 'rederiveAux'>;

/** The scale-out operations the server routes call (`ucl server create|delete`). */
export type ApiScaleOut = Pick<ScaleOut, 'inspect' | 'inspectAux' | 'replaceAux' | 'create' | 'delete'>;

/** Who this EP is, as `/api/v1/info` and `/api/v1/servers` report it. */
export type ApiServerInfo = Pick<ServerConfig, 'role' | 'name' | 'clusterId' | 'tripletId' | 'fips'>;

export interface ApiDeps {
  readonly server: ApiServerInfo;
  readonly store: Store;
  readonly log: Logger;
  readonly keys: ApiKeyService;
  readonly catalog: KeyCatalog;
  /** How long an API token lives (EKM_TOKEN_TTL_SECONDS). */
  readonly tokenTtlSeconds: number;
  /** Failed password checks per second per client address (EKM_LOGIN_FAILURES), and checks at once (EKM_PASSWORD_CHECKS). */
  readonly loginLimits: { readonly failuresPerSecond: number; readonly concurrentChecks: number };
  /** Absent where servers cannot be added (the routes of `ucl server create|delete` are then not mounted). */
  readonly scaleOut?: ApiScaleOut;
  /** This EP's triplet, probed live (health and `ucl server test`). */
  probe(): Promise<TripletHealth>;
  /** Another triplet of the cluster (its rows of the server list), probed through its EP, which this EP shows its identity. */
  probeOtherTriplet(members: readonly ServerRow[]): Promise<TripletHealth>;
}
