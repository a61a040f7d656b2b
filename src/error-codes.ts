/**
 * Every error code ekm gives a user, an operator or a peer, declared once: the HTTP status the API
 * answers with, the exit code a CLI ends with, what the code means and what to do about it.
 * `EkmError` takes its status and exit code from here, so a code cannot drift to two statuses at
 * two call sites, and its code parameter accepts only the codes below: a typo fails the typecheck.
 * `docs/operations.md`'s error-code table is generated from this table (scripts/gen-error-table.ts).
 *
 * Add a code here, by hand, before the first `new EkmError('EKM_…', …)` that throws it. This module
 * imports nothing, so every floor of the code (crypto and store included) may use it.
 *
 * `group` orders the documentation; `reserved` says why a code that no source throws is kept
 * (e.g. older releases still send it over the wire).
 */
export interface ErrorSpec {
  readonly group: ErrorGroup;
  /** What the API answers with (where the error can reach the API). */
  readonly httpStatus: number;
  /** What a CLI exits with (where the error can reach a CLI): 2 is bad usage, 130 an interrupt. */
  readonly exitCode: number;
  /** One line: what happened. The message at each site says it with the particulars. */
  readonly means: string;
  /** What the operator or user does about it, when there is something to do. */
  readonly action?: string;
  /** Why the code is declared although no source throws it. */
  readonly reserved?: string;
}

export const ERROR_GROUPS = [
  'command line and client',
  'API and accounts',
  'keys and operations',
  'protocols and peers',
  'server, configuration and store',
  'bootstrap',
  'backup and restore',
  'scale-out and Aux replacement',
  'internal (logs only)',
] as const;
export type ErrorGroup = (typeof ERROR_GROUPS)[number];

const cli = 'command line and client' as const;
const api = 'API and accounts' as const;
const keys = 'keys and operations' as const;
const peers = 'protocols and peers' as const;
const server = 'server, configuration and store' as const;
const boot = 'bootstrap' as const;
const backup = 'backup and restore' as const;
const scale = 'scale-out and Aux replacement' as const;
const internal = 'internal (logs only)' as const;

export const ERROR_CODES = {
  // Command line and client (ucl, ekm): the status is moot there, the exit code is what counts.
  EKM_USAGE: {
    group: cli,
    httpStatus: 400,
    exitCode: 2,
    means: 'the command line is wrong: a missing, unknown, repeated or malformed flag or argument',
    action: 'fix the command line (the message names the flag; usage is printed)',
  },
  EKM_INPUT: { group: cli, httpStatus: 400, exitCode: 1, means: 'an input file cannot be read or is not in the format asked for', action: 'check the path and the format flags' },
  EKM_OUTPUT: { group: cli, httpStatus: 400, exitCode: 1, means: 'an output file cannot be written', action: 'check the path and its permissions' },
  EKM_FILE: { group: cli, httpStatus: 400, exitCode: 2, means: 'a file named on the command line cannot be read', action: 'check the path and its permissions' },
  EKM_FILE_EXISTS: {
    group: cli,
    httpStatus: 400,
    exitCode: 2,
    means: 'the output file of `ekm backup` or `ekm backup-keygen` exists already',
    action: 'a backup or key never overwrites a file: choose another name',
  },
  EKM_CANCELLED: { group: cli, httpStatus: 400, exitCode: 1, means: 'the confirmation prompt was not answered yes', action: 'answer y, or give -y' },
  EKM_INTERRUPTED: { group: cli, httpStatus: 400, exitCode: 130, means: 'Ctrl-C at a password prompt' },
  EKM_CLIENT_CONF: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'client.conf has a line that is not key=value, an unknown setting, or a trust= file that cannot be read',
    action: 'fix client.conf (settings: `servers`, `trust`, `discover`; trust= is a PEM file holding the EPs\' `tls/server.crt`)',
  },
  EKM_NO_SERVER: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'no EP to talk to',
    action: "give `--server`, set `UCL_SERVERS`, write `servers=` in client.conf, or set `EKM_HOME` to an EP's home",
  },
  EKM_NO_TRUST: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'no trusted EP certificate is configured',
    action: "set `trust=` in client.conf (a PEM file with the EPs' `tls/server.crt`), or run on the EP",
  },
  EKM_UNREACHABLE: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'no EP answers at the configured addresses',
    action: 'the EP does not run or the address is wrong: `ekm status` on the EP',
  },
  EKM_UNTRUSTED: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'the EP presented a certificate that is not trusted',
    action: "the `trust=` file does not hold this EP's current certificate",
  },
  EKM_CLUSTER_MISMATCH: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'the EP answering belongs to another cluster than the one the client learned (or the EP home it runs in)',
    action: 'point the client at an EP of its own cluster; if that cluster was rebuilt, delete the learned cluster file `client-cluster.json`',
  },
  EKM_CLUSTER_CACHE: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: 'the learned cluster file `client-cluster.json` cannot be read or is not a list of EPs',
    action: 'delete the file: the client learns the cluster again from a pinned EP',
  },
  EKM_API: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: "the EP answered with an error that carries no code (ucl shows the EP's status)",
    action: 'on a 5xx the EP failed to answer the request: see its log',
  },
  EKM_BAD_SIGNATURE: { group: cli, httpStatus: 400, exitCode: 1, means: '`ucl verify`: the signature does not verify with the key' },
  EKM_AUDIT_BROKEN: {
    group: cli,
    httpStatus: 400,
    exitCode: 1,
    means: '`ucl audit verify`: the audit chain does not verify (a row was altered, removed or reordered, or holds text an older release stored unlike it hashed it)',
    action: 'treat the store as tampered with: keep it for investigation and compare with a backup; a row the message says holds replacement characters may be acknowledged (ucl audit acknowledge)',
  },

  // API and accounts.
  EKM_BAD_REQUEST: { group: api, httpStatus: 400, exitCode: 2, means: 'the request does not match the route: the message names the field', action: 'fix the request (docs/api.md)' },
  EKM_AUDIT_NOT_ACKNOWLEDGEABLE: { group: api, httpStatus: 409, exitCode: 1, means: 'the audit row is not one whose content does not match its hash, or is acknowledged already', action: 'acknowledge only the rows `ucl audit verify` reports so' },
  EKM_URI_TOO_LONG: { group: api, httpStatus: 414, exitCode: 1, means: 'a path segment of the request is too long' },
  EKM_UNAUTHORIZED: {
    group: api,
    httpStatus: 401,
    exitCode: 1,
    means: 'no credentials, wrong user, partition or password, or an unknown, expired or revoked bearer token',
    action: 'give user@partition and its password, or get a new token from POST /api/v1/token',
  },
  EKM_LOCKED: { group: api, httpStatus: 401, exitCode: 1, means: 'the user is locked after too many failed logins', action: 'an SO resets its password (ucl user reset-pwd)' },
  EKM_LOGIN_BUSY: { group: api, httpStatus: 429, exitCode: 1, means: "as many login attempts as the partition's lockout limit are being checked for the user at once", action: 'try again in a second; if those attempts fail, the user is locked' },
  EKM_RATE_LIMITED: { group: api, httpStatus: 429, exitCode: 1, means: 'the client address sent more wrong passwords than EKM_LOGIN_FAILURES allows: its password checks wait', action: 'wait Retry-After seconds and check the credentials; a shared address may raise EKM_LOGIN_FAILURES' },
  EKM_TOO_MANY_LOGINS: { group: api, httpStatus: 429, exitCode: 1, means: 'the EP is running and queueing as many password checks as EKM_PASSWORD_CHECKS allows', action: 'try again in a second; log in once and send the bearer token' },
  EKM_LOGIN_DELAYED: { group: api, httpStatus: 429, exitCode: 1, means: 'the root SO failed five or more logins in a row: its next check waits, doubling up to 5 minutes', action: 'wait Retry-After seconds; the root SO is never locked' },
  EKM_FORBIDDEN: { group: api, httpStatus: 403, exitCode: 1, means: "the user's role or partition does not allow the operation" },
  EKM_NOT_FOUND: { group: api, httpStatus: 404, exitCode: 1, means: 'no such partition, user or route' },
  EKM_EXISTS: { group: api, httpStatus: 409, exitCode: 1, means: 'a partition or user of that name exists already', action: 'choose another name' },
  EKM_WEAK_PASSWORD: { group: api, httpStatus: 400, exitCode: 2, means: 'the password is too short', action: 'choose a longer password' },
  EKM_PARTITION_NOT_EMPTY: { group: api, httpStatus: 409, exitCode: 1, means: 'the partition still holds keys', action: 'delete them first, or force (ucl partition delete --force)' },
  EKM_NOT_FIPS: { group: api, httpStatus: 400, exitCode: 1, means: 'the partition allows only FIPS-approved algorithms and this one is not', action: 'use one of the algorithms the message lists' },

  // Keys and the operations on them.
  EKM_BAD_ALG: { group: keys, httpStatus: 400, exitCode: 1, means: 'an unknown key algorithm, or an operation the key algorithm does not have' },
  EKM_BAD_INPUT: { group: keys, httpStatus: 400, exitCode: 2, means: 'an operation argument is out of range (digest length, notAfter, addresses)' },
  EKM_BAD_KEY: { group: keys, httpStatus: 400, exitCode: 1, means: 'the RSA private key to import cannot be imported', action: 'give an RSA 2048, 3072 or 4096-bit key as PKCS#8 PEM' },
  EKM_BAD_KEY_NAME: { group: keys, httpStatus: 400, exitCode: 2, means: 'not a key name', action: 'a name has 1 to 64 printable characters, no "/", and is not 16 hex characters; nothing that renders like another name (invisible characters, spaces other than the plain one or at the end, forms NFKC changes, Latin, Greek and Cyrillic letters mixed)' },
  EKM_BAD_PUBLIC_KEY: { group: keys, httpStatus: 400, exitCode: 2, means: 'not an importable public key', action: 'give an SPKI PEM (-----BEGIN PUBLIC KEY-----) of a supported algorithm' },
  EKM_KEY_NOT_FOUND: { group: keys, httpStatus: 404, exitCode: 1, means: 'no such key in this partition', action: 'list the keys with `ucl list`' },
  EKM_KEY_NAME_TAKEN: { group: keys, httpStatus: 409, exitCode: 1, means: 'a key of that name exists in the partition', action: 'choose another name, or rename or delete the other key first' },
  EKM_KEY_EXISTS: { group: keys, httpStatus: 400, exitCode: 1, means: 'a new key would take a key UID that exists (the EP never reuses one)' },
  EKM_KEY_DEACTIVATED: {
    group: keys,
    httpStatus: 409,
    exitCode: 1,
    means: 'the key is deactivated: it verifies and decrypts, it does not sign or encrypt',
    action: 'reactivate it (ucl update --state active) or use another key',
  },
  EKM_KEY_DESTROYED: { group: keys, httpStatus: 410, exitCode: 1, means: 'the key was destroyed' },
  EKM_KEY_EXPIRED: {
    group: keys,
    httpStatus: 409,
    exitCode: 1,
    means: 'the key is past its notAfter: none of the three servers signs with it',
    action: 'use another key; signatures made before still verify',
  },
  EKM_KEY_STATE: { group: keys, httpStatus: 409, exitCode: 1, means: 'this server holds no current share of the key', action: 'run `ucl server test`; an Aux may need re-derivation' },
  EKM_KEY_EPOCH: { group: keys, httpStatus: 400, exitCode: 1, means: 'a server holds no share of the key at the epoch asked for (a peer answers this during a protocol)' },
  EKM_WRONG_KEY: { group: keys, httpStatus: 400, exitCode: 1, means: 'the ciphertext was made with another key than the one given' },
  EKM_WRONG_KEY_TYPE: { group: keys, httpStatus: 400, exitCode: 1, means: 'the key is of a type that does not do this (e.g. an AES key does not sign)' },
  EKM_PUBLIC_KEY_ONLY: {
    group: keys,
    httpStatus: 409,
    exitCode: 1,
    means: 'the key is an imported public key: it verifies (and RSA keys encrypt), it never signs or decrypts',
    action: 'use a key generated in ekm',
  },
  EKM_DECRYPTION_FAILED: { group: keys, httpStatus: 400, exitCode: 1, means: 'the RSA ciphertext does not decrypt under the key' },
  EKM_OBJECT_FORMAT: {
    group: keys,
    httpStatus: 400,
    exitCode: 1,
    means: 'not an AES object of a format this release reads (truncated, wrong magic or version)',
    action: 'an object sealed by a newer release opens with that release (section 11.4)',
  },
  EKM_OBJECT_WRONG_KEY: { group: keys, httpStatus: 400, exitCode: 1, means: 'the AES object was sealed under another key than the one given' },
  EKM_OBJECT_AUTH: { group: keys, httpStatus: 400, exitCode: 1, means: 'the AES object fails authentication: ciphertext, header, encryption context (AAD) or key does not match' },
  EKM_NOT_EP: { group: keys, httpStatus: 400, exitCode: 1, means: 'a key operation was asked of a Partner or Aux: only the EP coordinates them' },
  EKM_PRESIG_USED: { group: keys, httpStatus: 400, exitCode: 1, means: 'a presignature is used already or unknown: it never signs twice (the EP takes another)' },

  // Protocols between the servers of a triplet, and the links that carry them.
  EKM_PROTOCOL_ABORTED: {
    group: peers,
    httpStatus: 502,
    exitCode: 1,
    means: 'the triplet did not perform the operation (a peer refused, failed or produced an output that does not verify)',
    action: 'it is safe to retry; if it persists, `ucl server test` and the servers\' logs say which peer',
  },
  EKM_PROTOCOL_PENDING: { group: peers, httpStatus: 504, exitCode: 1, means: 'the operation is committing and waits for a peer', action: 'it completes when the peer is back; check again later' },
  EKM_PEER_DOWN: { group: peers, httpStatus: 503, exitCode: 1, means: 'a peer the operation needs is not connected', action: 'check that the server runs and that `ucl server test` shows it ok' },
  EKM_PEER_TIMEOUT: { group: peers, httpStatus: 504, exitCode: 1, means: 'a peer did not answer in time' },
  EKM_LINK_CLOSED: { group: peers, httpStatus: 503, exitCode: 1, means: 'the link to a peer closed while a request waited for its answer' },
  EKM_PEER_PROTOCOL: { group: peers, httpStatus: 502, exitCode: 1, means: 'a peer sent a request or answer that breaks the protocol (malformed, or not its role to send)' },
  EKM_PEER_ERROR: { group: peers, httpStatus: 502, exitCode: 1, means: 'a peer answered a request with an error that carries no code' },
  EKM_PEER_REFUSED: { group: peers, httpStatus: 400, exitCode: 1, means: 'a peer refused this server at the link hello', action: 'see the peer\'s log for the reason' },
  EKM_PEER_INCOMPATIBLE: { group: peers, httpStatus: 400, exitCode: 1, means: 'a peer does not belong to this triplet or cluster' },
  EKM_RELEASE_INCOMPATIBLE: {
    group: peers,
    httpStatus: 400,
    exitCode: 1,
    means: "a peer's release is outside the rolling-upgrade window (same major, minors at most one apart)",
    action: 'upgrade the servers of the triplet to releases that link (section 11.4)',
  },
  EKM_UNKNOWN_METHOD: { group: peers, httpStatus: 400, exitCode: 1, means: 'a peer asked for a method this server does not have' },
  EKM_STOPPING: { group: peers, httpStatus: 503, exitCode: 1, means: 'the server is stopping and takes no new requests' },

  // The server process, its configuration and its store.
  EKM_HOME_UNUSABLE: { group: server, httpStatus: 400, exitCode: 1, means: 'EKM_HOME or a file in it cannot be read or written', action: 'set `EKM_HOME` to a folder the user can write, or run as `ekm`' },
  EKM_NOT_BOOTSTRAPPED: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: 'no server is bootstrapped in EKM_HOME',
    action: 'run the bootstrap script of this server, or set `EKM_HOME` (init script: exit 6)',
  },
  EKM_CONFIG_CORRUPT: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: "the server's configuration (server.json, joining.json) is not valid",
    action: 'the configuration was damaged: restore it from a copy, or bootstrap again',
  },
  EKM_BAD_SETTING: { group: server, httpStatus: 400, exitCode: 1, means: 'an environment variable of the settings table has a value out of its range', action: 'the message names the variable and what it allows: fix or unset it (Settings, §16)' },
  EKM_FAILPOINTS: { group: server, httpStatus: 400, exitCode: 1, means: 'EKM_FAILPOINTS (a test-only switch) is malformed' },
  EKM_START_FAILED: { group: server, httpStatus: 400, exitCode: 1, means: '`ekm start`: the server did not start or did not report ready', action: "the reason is the server's own line from `logs/ekm.log`, e.g. a port in use" },
  EKM_RUNNING: { group: server, httpStatus: 400, exitCode: 1, means: 'ekm runs already in this EKM_HOME', action: '`ekm stop` first' },
  EKM_PORT_IN_USE: { group: server, httpStatus: 400, exitCode: 1, means: 'the port is already in use', action: 'another process (maybe another server) listens there: stop it or choose another port' },
  EKM_PORT_DENIED: { group: server, httpStatus: 400, exitCode: 1, means: 'not allowed to listen on the port', action: 'ports below 1024 need privileges: use a higher port' },
  EKM_ADDRESS_UNAVAILABLE: { group: server, httpStatus: 400, exitCode: 1, means: 'the address is not an address of this machine', action: '`-s` must name this host' },
  EKM_LISTEN_FAILED: { group: server, httpStatus: 400, exitCode: 1, means: 'the server cannot listen on its address for another reason (the message gives it)' },
  EKM_STORE_UNAVAILABLE: {
    group: server,
    httpStatus: 503,
    exitCode: 1,
    means: 'the store cannot be opened or reached, or holds no ekm store',
    action: 'check `data/ekm.db` and the permissions of `EKM_HOME`; on PostgreSQL start it or fix its access (section 12)',
  },
  EKM_STORE_STATE: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: "the store's state refuses the request: it disagrees with server.json, has no cluster id, or aborted the protocol session named",
    action: 'a store that disagrees with server.json: do not back it up; restore it from a backup',
  },
  EKM_STORE_IN_USE: { group: server, httpStatus: 400, exitCode: 1, means: 'the PostgreSQL database already holds a store of a cluster', action: 'a new cluster needs a new, empty database' },
  EKM_STORE_OTHER_ROLE: { group: server, httpStatus: 400, exitCode: 1, means: "the database holds another role's store", action: 'two roles never share a database: give each role its own' },
  EKM_SCHEMA_TOO_NEW: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: 'the store (or the archive) is at a schema newer than this release knows',
    action: 'a newer release wrote it: install that release instead of downgrading',
  },
  EKM_SCHEMA_TOO_OLD: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: 'a store to copy (a backup of a PostgreSQL database, a restore into one) is at a schema older than this release\'s',
    action: 'start a server of this release on it once (it migrates the store), or use the release that wrote it',
  },
  EKM_MIGRATION_FAILED: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: 'the store could not be migrated to this release; it was left as it was',
    action: 'install the previous release again and report this with the log',
  },
  EKM_SEALED_CORRUPT: {
    group: server,
    httpStatus: 400,
    exitCode: 1,
    means: 'a sealed store value is malformed or fails authentication (wrong system key, or the row was altered or moved)',
    action: '`keys/system.key` does not belong to this store, or the store was altered: restore both from the same backup',
  },
  EKM_SYSTEM_KEY: { group: server, httpStatus: 400, exitCode: 1, means: 'the system key is not 32 bytes', action: 'restore keys/system.key from a backup' },
  EKM_DB_URL_INVALID: { group: server, httpStatus: 400, exitCode: 1, means: 'EKM_DB_URL is not a PostgreSQL URL naming a host and a database', action: '`postgres://user:password@host:5432/database`' },
  EKM_DB_URL_MISSING: { group: server, httpStatus: 400, exitCode: 1, means: '-externaldb needs the PostgreSQL database in EKM_DB_URL', action: "set `EKM_DB_URL` in the bootstrap's environment (section 12)" },

  // Bootstrap of a triplet.
  EKM_ALREADY_BOOTSTRAPPED: {
    group: boot,
    httpStatus: 400,
    exitCode: 1,
    means: 'this server is already bootstrapped',
    action: 'it is: start it. To redo it, stop it and remove its `EKM_HOME` (EP/Partner with an existing store: `-restore`)',
  },
  EKM_BOOT_FAILED: { group: boot, httpStatus: 400, exitCode: 1, means: 'the bootstrap failed (the message gives the reason); nothing was written' },
  EKM_BOOT_TIMEOUT: {
    group: boot,
    httpStatus: 400,
    exitCode: 1,
    means: 'the bootstrap timed out waiting for the other servers',
    action: 'start the bootstrap on the servers named, with flags that name this server; then run this one again',
  },
  EKM_TRIPLET_MISMATCH: {
    group: boot,
    httpStatus: 400,
    exitCode: 1,
    means: 'the three bootstraps do not name the same three addresses and roles, or run different releases',
    action: 'bootstrap all three with the same EP, Partner and Aux names, on the same release',
  },
  EKM_PEER_CHANGED: {
    group: boot,
    httpStatus: 400,
    exitCode: 1,
    means: 'a peer now presents another certificate than the one approved',
    action: "a peer's bootstrap was restarted during yours: run this bootstrap again",
  },
  EKM_NOTHING_TO_RESTORE: {
    group: boot,
    httpStatus: 400,
    exitCode: 1,
    means: '-restore needs a restored store and its system key in EKM_HOME',
    action: 'put them there with `ekm restore` (section 10), or bootstrap without `-restore`',
  },
  EKM_WRONG_PASSWORD: { group: boot, httpStatus: 400, exitCode: 1, means: 'the -w password does not match the root SO password of the restored store', action: 'give the root SO password the store had' },

  // Backup and restore.
  EKM_BACKUP_AUX: { group: backup, httpStatus: 400, exitCode: 1, means: 'the Aux has no backup', action: 'back up the EP and the Partner; a restored triplet gets a fresh Aux' },
  EKM_BACKUP_CORRUPT: { group: backup, httpStatus: 400, exitCode: 1, means: 'the archive is damaged: cut short, altered, or its contents fail authentication', action: 'use another copy' },
  EKM_BACKUP_KEY: {
    group: backup,
    httpStatus: 400,
    exitCode: 2,
    means: 'the backup key given is not a usable PEM key (not PEM, encrypted with a passphrase, or too small)',
    action: 'give the key pair made by `ekm backup-keygen`; decrypt a passphrase key first: `openssl pkey -in <key> -out <plain key>` to a 0600 file',
  },
  EKM_BACKUP_TOO_NEW: { group: backup, httpStatus: 400, exitCode: 1, means: 'the archive has a format newer than this release reads', action: 'use the ekm release that made it, or newer' },
  EKM_BACKUP_WRONG_KEY: {
    group: backup,
    httpStatus: 400,
    exitCode: 1,
    means: 'this private key does not open the archive',
    action: 'give the private key whose public key the backup was made to (the fingerprints are printed)',
  },
  EKM_RESTORE_MISMATCH: {
    group: backup,
    httpStatus: 400,
    exitCode: 1,
    means: 'the EP and Partner archives do not match: other clusters, or keys that one holds and the other not',
    action: 'restore a pair of backups of the same cluster taken together, or `--partial` on both (dropped keys are lost)',
  },
  EKM_RESTORE_OCCUPIED: { group: backup, httpStatus: 400, exitCode: 1, means: 'EKM_HOME already holds a bootstrapped server or a store', action: "restore into a new server's `EKM_HOME`, or add `--force`" },
  EKM_RESTORE_ROLE: { group: backup, httpStatus: 400, exitCode: 1, means: "the store in EKM_HOME is another role's store than the bootstrap's", action: 'the archives were swapped: `ekm restore --force` the right one' },

  // Scale-out (ucl server create) and the replacement of an Aux: the cluster's state is 409, a
  // server not there 502, a peer down 503.
  EKM_SCALE_OUT_NEEDS_POSTGRES: {
    group: scale,
    httpStatus: 409,
    exitCode: 1,
    means: 'triplets can only be added to a cluster whose EP and Partner stores are on PostgreSQL',
    action: 'bootstrap the cluster with -externaldb (section 12)',
  },
  EKM_SERVER_EXISTS: { group: scale, httpStatus: 409, exitCode: 1, means: 'a server of that name is in the cluster already', action: 'name a new server' },
  EKM_NOT_WAITING: {
    group: scale,
    httpStatus: 409,
    exitCode: 1,
    means: 'the server named does not wait to join a cluster',
    action: 'bootstrap it with ekm_boot_additional_server.sh -s <name> -fips first',
  },
  EKM_VERSION_MISMATCH: { group: scale, httpStatus: 409, exitCode: 1, means: 'the new server runs another release than the cluster', action: 'install the release the cluster runs on the new servers' },
  EKM_JOIN_REFUSED: { group: scale, httpStatus: 409, exitCode: 1, means: 'a new server refused to join (the message gives its reason)' },
  EKM_JOIN_PARTIAL: {
    group: scale,
    httpStatus: 409,
    exitCode: 1,
    means: 'some of the new servers joined and others did not; the cluster itself is unchanged',
    action: 'the message says which servers to bootstrap again before running ucl server create again',
  },
  EKM_NOT_APPROVED: {
    group: scale,
    httpStatus: 409,
    exitCode: 1,
    means: "a new server's certificate was not approved",
    action: 'check the fingerprint on that server and run again, or use `-f`',
  },
  EKM_SERVER_UNREACHABLE: { group: scale, httpStatus: 502, exitCode: 1, means: 'a new server cannot be reached' },
  EKM_PARTNER_DOWN: { group: scale, httpStatus: 503, exitCode: 1, means: "this EP has no link to its Partner, which takes part in the change", action: 'start the Partner and run this again' },
  EKM_SERVER_UNKNOWN: { group: scale, httpStatus: 404, exitCode: 1, means: 'no server of that name in this cluster', action: '`ucl server list` shows them' },
  EKM_SERVER_IN_USE: { group: scale, httpStatus: 409, exitCode: 1, means: 'the server belongs to a triplet that serves or still runs', action: 'stop its three servers first, or give --force' },
  EKM_REPLACEMENT_PENDING: {
    group: scale,
    httpStatus: 409,
    exitCode: 1,
    means: "the replacement of this triplet's Aux is still being finished",
    action: 'the Partner must run (and pin it); this EP keeps trying, see its log',
  },

  // Codes of lower-layer errors (crypto, framing, protocol state machines): they name the failure
  // in logs; the service turns them into one of the codes above before they reach anyone else.
  EKM_INTERNAL: { group: internal, httpStatus: 500, exitCode: 1, means: 'an unexpected error: the API answers 500 and logs it', action: "see the server's log" },
  EKM_PROTOCOL_ABORT: { group: internal, httpStatus: 500, exitCode: 1, means: 'a protocol state machine aborted a session (becomes EKM_PROTOCOL_ABORTED)' },
  EKM_FRAME: { group: internal, httpStatus: 500, exitCode: 1, means: 'a peer link frame is malformed (the link closes)' },
  EKM_ENCODING: { group: internal, httpStatus: 500, exitCode: 1, means: 'a length-prefixed encoding is malformed' },
  EKM_INVALID_ENCODING: { group: internal, httpStatus: 500, exitCode: 1, means: 'a curve point or scalar encoding is invalid' },
  EKM_SIGNATURE_FORMAT: { group: internal, httpStatus: 500, exitCode: 1, means: 'an ECDSA signature is not in the format expected' },
  EKM_MODEXP: { group: internal, httpStatus: 500, exitCode: 1, means: 'a modular exponentiation got an argument out of range' },
  EKM_RSA_ENCODING: { group: internal, httpStatus: 500, exitCode: 1, means: 'an RSA padding cannot encode the message' },
  EKM_RSA_DECRYPT: { group: internal, httpStatus: 500, exitCode: 1, means: 'an RSA padding does not decode (decryption error)' },
} as const satisfies Readonly<Record<string, ErrorSpec>>;

export type ErrorCode = keyof typeof ERROR_CODES;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERROR_CODES, code);
}
