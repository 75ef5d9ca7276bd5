/**
 * The one configuration schema. Every setting is declared once, in {@link SETTINGS}: its environment
 * variable, its parser with its default, one line of documentation, and where its value lands in
 * {@link Config} (the table has Config's shape). The env schema ({@link EnvSchema}), the `Config` type and
 * the mapping are derived from it. Durations end in `Ms`, and nothing else in the codebase reads
 * `process.env`: the CLI passes the environment to `loadConfig`.
 */
import { z } from 'zod';
import type { Keyring } from './crypto/at-rest.ts';
import { isValidOrgId } from '@apix/protocol/channels';
import {
  bool,
  group,
  int,
  isGroup,
  isSetting,
  list,
  omittable,
  s,
  settingsOf,
  type ConfigOf,
  type Table,
} from './config-table.ts';
import { RATE_LIMIT_SETTINGS } from './config-rate-limits.ts';
import { PROXY_SETTINGS, RPC_SETTINGS } from './config-backend.ts';
import { STREAM_SETTINGS } from './config-streams.ts';
import { WEBHOOK_SETTINGS } from './config-webhooks.ts';

export type { ConfigOf, Group, Setting, Table } from './config-table.ts';
export { settingsOf } from './config-table.ts';

/** Every setting of the node, in the shape of {@link Config}. */
export const SETTINGS = {
  port: s(
    'APIX_PORT',
    int(0, 65535).default(8080),
    'HTTP and WebSocket port (one port for both; 0 picks a free one)',
  ),
  host: s('APIX_HOST', z.string().min(1).default('0.0.0.0'), 'bind address'),
  dataDir: s(
    'APIX_DATA_DIR',
    z.string().min(1).default('./.apix'),
    "the node's local files: embedded database, development JWT secret, audit spill file",
  ),
  nodeId: s(
    'APIX_NODE_ID',
    z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,64}$/)
      .optional(),
    "the node's name in logs, metrics, connection ids and Redis client names",
  ),
  logLevel: s(
    'APIX_LOG_LEVEL',
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    'pino log level (JSON lines on stdout)',
  ),
  auth: {
    jwtSecret: s(
      'APIX_JWT_SECRET',
      z.string().min(16, 'must be at least 16 characters').optional(),
      'HMAC secret for HS256/HS384/HS512 tokens',
    ),
    jwksUrl: s(
      'APIX_JWKS_URL',
      z.url().optional(),
      'JWKS endpoint for asymmetric tokens (RS*, PS*, ES*, EdDSA)',
    ),
    publicKeyPem: s(
      'APIX_JWT_PUBLIC_KEY',
      z.string().optional(),
      'a public key for asymmetric tokens, instead of a JWKS',
    ),
    issuer: s('APIX_JWT_ISSUER', z.string().optional(), 'when set, the `iss` claim must equal it'),
    audience: s('APIX_JWT_AUDIENCE', z.string().optional(), 'when set, the `aud` claim must contain it'),
    algorithms: s(
      'APIX_JWT_ALGORITHMS',
      list.default(['HS256', 'RS256', 'ES256']),
      'the algorithm allow-list',
    ),
    apiKeys: s(
      'APIX_API_KEYS',
      list.default([]),
      'static API keys for services: `org:key[:scope|scope]`, comma separated',
    ),
    platformOrgs: omittable(
      s(
        'APIX_PLATFORM_ORGS',
        list
          .refine((orgs) => orgs.every(isValidOrgId), {
            message: 'must be organization ids ([A-Za-z0-9_-]{1,64}, not "_")',
          })
          .default([]),
        'organizations whose services may publish to the shared `system:` channels (absent in a Config: none)',
        (v): readonly string[] => v,
      ),
    ),
  },
  allowedOrigins: s(
    'APIX_ALLOWED_ORIGINS',
    list.optional(),
    '`Origin`s allowed to open a WebSocket and to receive CORS headers (unset: all)',
  ),
  maxMessageBytes: s(
    'APIX_MAX_MESSAGE_BYTES',
    int(64, 64 * 1024 * 1024).default(1024 * 1024),
    'largest WebSocket frame (a larger one closes the connection with 1009) and largest HTTP body (413)',
  ),
  jsonBounds: {
    metadataMaxBytes: s(
      'APIX_CONNECT_METADATA_MAX_BYTES',
      int(0, 64 * 1024 * 1024).default(4096),
      'largest `connect.metadata`, as JSON text',
    ),
    metadataMaxDepth: s(
      'APIX_CONNECT_METADATA_MAX_DEPTH',
      int(1, 1000).default(8),
      'deepest nesting of `connect.metadata` (`{}` is 1, `{"a":[]}` is 2)',
    ),
    metadataMaxKeys: s(
      'APIX_CONNECT_METADATA_MAX_KEYS',
      int(1, 1_000_000).default(64),
      'most members of one object or array in `connect.metadata` (its keys included)',
    ),
    payloadMaxDepth: s(
      'APIX_PAYLOAD_MAX_DEPTH',
      int(1, 10_000).default(64),
      "deepest nesting of a publish's payload or metadata (WebSocket and HTTP)",
    ),
    payloadMaxWidth: s(
      'APIX_PAYLOAD_MAX_WIDTH',
      int(1, 64 * 1024 * 1024).default(10_000),
      "most members of one object or array in a publish's payload or metadata (300,000 empty arrays fit in 1 MB)",
    ),
  },
  connectTimeoutMs: s(
    'APIX_CONNECT_TIMEOUT_MS',
    int(100, 600_000).default(10_000),
    'time from the WebSocket upgrade to the `connect` frame (else close 4004)',
  ),
  heartbeatIntervalMs: s(
    'APIX_HEARTBEAT_INTERVAL_MS',
    int(100, 600_000).default(25_000),
    'the server pings every connection this often (`heartbeat.ping` frame and a WebSocket ping)',
  ),
  ackTimeoutMs: s(
    'APIX_ACK_TIMEOUT_MS',
    int(10, 3_600_000).default(10_000),
    'an event of an acknowledged subscription not acked in this time is redelivered',
  ),
  sessionTtlMs: s(
    'APIX_SESSION_TTL_MS',
    int(0, 86_400_000).default(120_000),
    'how long a disconnected session waits for a resume (with the Redis engine, on any node)',
  ),
  drainTimeoutMs: s(
    'APIX_DRAIN_TIMEOUT_MS',
    int(0, 600_000).default(10_000),
    'on SIGTERM/SIGINT, how long the node waits for clients to leave (close 1001) before cutting the rest',
  ),
  maxBufferedBytes: s(
    'APIX_MAX_BUFFERED_BYTES',
    int(1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
    'unsent data allowed per connection',
  ),
  writeFlushMs: s(
    'APIX_WRITE_FLUSH_MS',
    int(0, 2).default(1),
    'frames to one connection within this window go out in one socket write; 0: each frame at once',
  ),
  qos: {
    degradeBufferedBytes: s(
      'APIX_QOS_DEGRADE_BUFFERED_BYTES',
      int(0, 1024 * 1024 * 1024).default(1024 * 1024),
      'unsent bytes of a connection above which it is degraded',
    ),
    lowWaterBytes: s(
      'APIX_QOS_LOW_WATER_BYTES',
      int(0, 1024 * 1024 * 1024).default(64 * 1024),
      "a degraded connection's held events are written when its unsent bytes fall to this",
    ),
    degradeRttMs: s(
      'APIX_QOS_DEGRADE_RTT_MS',
      int(0, 600_000).default(5000),
      'a heartbeat round trip longer than this degrades the connection; 0: never by latency',
    ),
    minDegradedMs: s(
      'APIX_QOS_MIN_DEGRADED_MS',
      int(0, 600_000).default(1000),
      'the shortest stay in degraded mode (no flapping)',
    ),
    maxCoalescedKeys: s(
      'APIX_QOS_MAX_COALESCED_KEYS',
      int(1, 1_000_000).default(1000),
      'distinct keys held for one degraded connection (bounds its memory)',
    ),
  },
  maxChannelsPerConnection: s(
    'APIX_MAX_CHANNELS_PER_CONNECTION',
    int(1, 100_000).default(500),
    'subscriptions per connection',
  ),
  maxConnections: s(
    'APIX_MAX_CONNECTIONS',
    int(1, 10_000_000).default(200_000),
    'WebSocket connections per node',
  ),
  connectionCaps: {
    perAddress: s(
      'APIX_MAX_CONNECTIONS_PER_ADDRESS',
      int(0, 10_000_000).default(10_000),
      'open WebSocket connections per remote address on one node',
    ),
    perUser: s(
      'APIX_MAX_CONNECTIONS_PER_USER',
      int(0, 10_000_000).default(0),
      'connections of one user (`sub` of an organization) on one node; 0: no cap',
    ),
    perOrg: s(
      'APIX_MAX_CONNECTIONS_PER_ORG',
      int(0, 10_000_000).default(0),
      'connections of one organization on one node, refused like `APIX_MAX_CONNECTIONS_PER_USER`',
    ),
  },
  history: {
    size: s(
      'APIX_HISTORY_SIZE',
      int(0, 1_000_000).default(1000),
      'events retained per channel for replay (`since`, `replay.last`, resume, `GET /v1/channels/<channel>/history`)',
    ),
    ttlMs: s(
      'APIX_HISTORY_TTL_MS',
      int(0, 30 * 86_400_000).default(3_600_000),
      'how long retained events stay',
    ),
    maxChannels: s(
      'APIX_MAX_CHANNELS_IN_HISTORY',
      int(1, 10_000_000).default(100_000),
      'memory engine only: channels with history kept in memory',
    ),
    maxBytes: omittable(
      s(
        'APIX_HISTORY_MAX_BYTES',
        int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(256 * 1024 * 1024),
        "memory engine only: the byte budget of all channels' history together (unset in a Config: no byte bound)",
      ),
    ),
  },
  historyPageBytes: s(
    'APIX_HISTORY_PAGE_BYTES',
    int(1024, 256 * 1024 * 1024).default(1024 * 1024),
    'the byte budget of one `GET /v1/channels/<channel>/history` answer; more: a next page',
  ),
  durableReplayMax: s(
    'APIX_DURABLE_REPLAY_MAX',
    int(1, 1_000_000).default(10_000),
    'durable channels: most events one replay reads back from the records (past the history)',
  ),
  offlineQueueSize: s(
    'APIX_OFFLINE_QUEUE_SIZE',
    int(1, 1_000_000).default(1000),
    'events held per away session (acknowledged subscriptions and its `user:` channel)',
  ),
  maxInflight: s(
    'APIX_MAX_INFLIGHT',
    int(1, 100_000).default(1000),
    'unacked events outstanding per session',
  ),
  maxPublishesInFlight: s(
    'APIX_MAX_PUBLISHES_IN_FLIGHT',
    int(1, 1_000_000).default(5000),
    'publishes of one connection not yet answered above which its socket stops being read',
  ),
  retry: {
    baseMs: s(
      'APIX_RETRY_BASE_MS',
      int(1, 3_600_000).default(1000),
      'redelivery backoff (full jitter): the base delay',
    ),
    maxMs: s(
      'APIX_RETRY_MAX_MS',
      int(1, 86_400_000).default(60_000),
      'redelivery backoff: the largest delay',
    ),
    maxAttempts: s(
      'APIX_RETRY_MAX_ATTEMPTS',
      int(1, 100).default(5),
      'deliveries of an event before it is dead-lettered (and its publisher, if connected, gets `message.failed`)',
    ),
  },
  pending: {
    flushMs: s(
      'APIX_PENDING_FLUSH_MS',
      int(10, 60_000).default(100),
      'in-flight (un-acked) events are written to the pending store every this many ms, in one batch',
    ),
    sweepMs: s(
      'APIX_PENDING_SWEEP_MS',
      int(100, 3_600_000).default(10_000),
      'how often one node (holding a lease) dead-letters the pending events of sessions whose TTL ran out',
    ),
  },
  deadLetterSize: s(
    'APIX_DEAD_LETTER_SIZE',
    int(1, 10_000_000).default(10_000),
    'dead letters kept (the oldest go first)',
  ),
  idempotencyWindowMs: s(
    'APIX_IDEMPOTENCY_WINDOW_MS',
    int(0, 86_400_000).default(120_000),
    'a publish repeating a `metadata.idempotency_key` within this window is not published again',
  ),
  tokenRevocationTtlMs: s(
    'APIX_TOKEN_REVOCATION_TTL_MS',
    int(60_000, 365 * 86_400_000).default(7 * 86_400_000),
    'how long a token revocation is kept: at least the longest lifetime of the tokens issued',
  ),
  suspensionTtlMs: s(
    'APIX_SUSPENSION_TTL_MS',
    int(60_000, 365 * 86_400_000).default(7 * 86_400_000),
    'how long a suspension (session, user, API key) lasts unless lifted or given a shorter one',
  ),
  httpTransports: {
    enabled: s(
      'APIX_HTTP_TRANSPORTS',
      bool.default(true),
      'serve HTTP streaming (`POST /v1/stream`, `/v1/frames`) and SSE (`GET /v1/sse`, `POST /v1/sse/ticket`)',
    ),
    sseTicketTtlMs: s(
      'APIX_SSE_TICKET_TTL_MS',
      int(1000, 600_000).default(30_000),
      'lifetime of a single-use SSE ticket (`POST /v1/sse/ticket`)',
    ),
    sseTicketsMax: s(
      'APIX_SSE_TICKETS_MAX',
      int(1, 10_000_000).default(10_000),
      'SSE tickets outstanding on a node; one more is refused with 429',
    ),
  },
  compression: {
    enabled: s('APIX_COMPRESSION', bool.default(true), 'permessage-deflate when the client offers it'),
    thresholdBytes: s(
      'APIX_COMPRESSION_THRESHOLD_BYTES',
      int(0, 64 * 1024 * 1024).default(1024),
      'messages smaller than this are sent uncompressed',
    ),
  },
  metrics: s(
    'APIX_METRICS',
    bool.default(true),
    'per-event instrumentation: the publish, deliver and ack hooks of the metrics and latency tracker',
  ),
  otlpEndpoint: omittable(
    s(
      'OTEL_EXPORTER_OTLP_ENDPOINT',
      z.url({ protocol: /^https?$/ }).optional(),
      'OpenTelemetry traces (publish, route, deliver, connect) sent by OTLP/HTTP to `<endpoint>/v1/traces`; unset: none',
    ),
  ),
  rateLimits: RATE_LIMIT_SETTINGS,
  rpc: RPC_SETTINGS,
  proxy: PROXY_SETTINGS,
  streams: STREAM_SETTINGS,
  webhooks: WEBHOOK_SETTINGS,
  tls: group(
    {
      certFile: s(
        'APIX_TLS_CERT',
        z.string().min(1).optional(),
        "the node's certificate (chain), a PEM file",
      ),
      keyFile: s('APIX_TLS_KEY', z.string().min(1).optional(), "the certificate's private key, a PEM file"),
    },
    /** PEM file paths; when set the node serves HTTPS and WSS (read by `loadTlsFiles`). */
    ({ certFile, keyFile }): { readonly certFile: string; readonly keyFile: string } | undefined => {
      if (certFile !== undefined && keyFile !== undefined) return { certFile, keyFile };
      if (certFile === undefined && keyFile === undefined) return undefined;
      const missing = certFile === undefined ? 'APIX_TLS_CERT' : 'APIX_TLS_KEY';
      throw new ConfigError(
        `invalid ${missing}: must be set too (APIX_TLS_CERT and APIX_TLS_KEY go together)`,
      );
    },
  ),
  encryption: group(
    {
      keys: s(
        'APIX_ENCRYPTION_KEYS',
        z
          .string()
          .transform((s, ctx) => {
            const keys: { version: number; key: Uint8Array }[] = [];
            for (const part of s
              .split(',')
              .map((x) => x.trim())
              .filter(Boolean)) {
              const m = /^([0-9]{1,9}):([A-Za-z0-9+/_-]+={0,2})$/.exec(part);
              const key = m ? Buffer.from(m[2]!, 'base64') : undefined;
              if (!m || Number(m[1]) < 1 || key!.length !== 32) {
                ctx.addIssue({
                  code: 'custom',
                  message: 'each entry must be <version>:<base64 of 32 bytes>, version a positive integer',
                });
                return z.NEVER;
              }
              if (keys.some((k) => k.version === Number(m[1]))) {
                ctx.addIssue({ code: 'custom', message: `version ${m[1]} is listed twice` });
                return z.NEVER;
              }
              keys.push({ version: Number(m[1]), key: new Uint8Array(key!) });
            }
            return keys;
          })
          .optional(),
        'master keys for channels encrypted at rest: `<version>:<base64 of 32 bytes>`, comma separated',
      ),
      active: s(
        'APIX_ENCRYPTION_ACTIVE_KEY',
        int(1, 999_999_999).optional(),
        'the version of APIX_ENCRYPTION_KEYS new writes use (default: the highest)',
      ),
    },
    /** The at-rest keyring; undefined: channels cannot be `encrypted`. */
    ({ keys, active }): Keyring | undefined => {
      if (active !== undefined && !keys?.some((k) => k.version === active))
        throw new ConfigError(
          `invalid APIX_ENCRYPTION_ACTIVE_KEY: version ${active} is not in APIX_ENCRYPTION_KEYS`,
        );
      return keys !== undefined && keys.length > 0
        ? { keys, active: active ?? Math.max(...keys.map((k) => k.version)) }
        : undefined;
    },
  ),
  presenceTtlMs: s(
    'APIX_PRESENCE_TTL_MS',
    int(1000, 3_600_000).default(60_000),
    'a room member not refreshed by its node for this long is gone (the members of a dead node expire)',
  ),
  state: {
    flushMs: s(
      'APIX_STATE_FLUSH_MS',
      int(0, 600_000).default(1000),
      'memory engine: the state a restart must not lose is appended to `<APIX_DATA_DIR>/state.log` this often; 0: none',
    ),
    compactBytes: s(
      'APIX_STATE_COMPACT_BYTES',
      int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
      'the state log is compacted when it outgrows this (or twice its size after the last compaction)',
    ),
    maxBufferedBytes: s(
      'APIX_STATE_MAX_BUFFERED_BYTES',
      int(64 * 1024, 4 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
      'changes waiting for the next state-log write; past it the next write is a full snapshot instead',
    ),
  },
  records: s(
    'APIX_RECORDS',
    z.enum(['on', 'off']).default('on'),
    '`off`: keep no database records (no audit trail, no stored keys)',
    (v) => v === 'on',
  ),
  workers: s(
    'APIX_WORKERS',
    int(1, 256).default(1),
    'gateway processes sharing the port (`node:cluster`); more than 1 needs REDIS_URL',
  ),
  recordsFlushIntervalMs: s(
    'APIX_RECORDS_FLUSH_INTERVAL_MS',
    int(100, 600_000).default(5_000),
    'how often buffered connection/channel/key records are written',
  ),
  apiKeyCacheMs: s(
    'APIX_API_KEY_CACHE_MS',
    int(0, 600_000).default(5_000),
    'how long an API-key lookup is cached: the longest a revoked key keeps working',
  ),
  audit: {
    publishes: s(
      'APIX_AUDIT_PUBLISHES',
      bool.default(true),
      'also audit every publish (connections, denials, auth failures and admin actions are always audited)',
    ),
    flushIntervalMs: s(
      'APIX_AUDIT_FLUSH_INTERVAL_MS',
      int(50, 600_000).default(1_000),
      'how often audit entries are written',
    ),
    maxQueue: s('APIX_AUDIT_MAX_QUEUE', int(100, 10_000_000).default(20_000), 'audit entries held in memory'),
    maxSpillBytes: s(
      'APIX_AUDIT_MAX_SPILL_BYTES',
      int(1024, 68_719_476_736).default(64 * 1024 * 1024),
      'size of the spill file',
    ),
    denialWindowMs: s(
      'APIX_AUDIT_DENIAL_WINDOW_MS',
      int(0, 3_600_000).default(10_000),
      'denials of one source within this window make one audit entry and a count; 0: off',
    ),
  },
  redisUrl: s(
    'REDIS_URL',
    z
      .string()
      .regex(/^rediss?(\+cluster)?:\/\//, 'must be a redis://, rediss:// or redis+cluster:// URL')
      .optional(),
    'the shared engine: broker (pub/sub between nodes), history, offline queues, sessions, presence',
  ),
  redisPrefix: s(
    'APIX_REDIS_PREFIX',
    z
      .string()
      .regex(/^[A-Za-z0-9_.:-]{1,64}$/)
      .default('apix:'),
    'prefix of every Redis key, so that several deployments (or test runs) can share one Redis',
  ),
  databaseUrl: s(
    'DATABASE_URL',
    z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
      .optional(),
    'PostgreSQL for records, API keys, channel settings, dead letters and the audit trail',
  ),
  embeddedDbBuffersMb: s(
    'APIX_EMBEDDED_DB_BUFFERS_MB',
    int(1, 1024).default(16),
    "embedded PGlite only: its `shared_buffers`, the pages it keeps in the gateway's own memory",
  ),
  embeddedDbIdleCloseMs: s(
    'APIX_EMBEDDED_DB_IDLE_CLOSE_MS',
    int(0, 86_400_000).default(30_000),
    'embedded PGlite only: after this long without a statement its engine is shut down (its 50-110 MB returned) and started again, in about half a second, by the next statement; 0: never',
  ),
} satisfies Table;

export type Config = ConfigOf<typeof SETTINGS>;

/** The environment variables, derived from {@link SETTINGS}. */
export const EnvSchema = z.object(
  Object.fromEntries(settingsOf(SETTINGS).map(({ setting }) => [setting.env, setting.schema])),
);
export type Env = Record<string, unknown>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validates the environment; throws a ConfigError whose message is one line naming the variable. */
export function loadConfig(env: Record<string, string | undefined>): Config {
  const picked: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const v = env[key];
    if (v !== undefined && v !== '') picked[key] = v;
  }
  const r = EnvSchema.safeParse(picked);
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const value = picked[name];
    const shown = value === undefined || /SECRET|KEY|PASSWORD|URL/.test(name) ? '' : ` (got "${value}")`;
    throw new ConfigError(`invalid ${name}${shown}: ${issue.message}`);
  }
  return configFromEnv(r.data);
}

/** Config from parsed environment variables (the output of {@link EnvSchema}). */
export function configFromEnv(e: Env): Config {
  const build = (table: Table): Record<string, unknown> =>
    Object.fromEntries(
      Object.entries(table).map(([key, x]) => [
        key,
        isSetting(x) ? x.to(e[x.env]) : isGroup(x) ? x.build(build(x.group) as never) : build(x),
      ]),
    );
  return build(SETTINGS) as Config;
}

/** A config for tests and embedding: defaults, then the overrides given. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...configFromEnv(EnvSchema.parse({})), port: 0, host: '127.0.0.1', ...overrides };
}
