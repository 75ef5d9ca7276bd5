/**
 * The one configuration schema. Every setting has its default here, durations end in `Ms`, and nothing
 * else in the codebase reads `process.env`: the CLI passes the environment to `loadConfig`.
 */
import { z } from 'zod';
import type { RateLimit } from './ratelimit/rate-limit-store.ts';
import type { Keyring } from './crypto/at-rest.ts';
import { isValidOrgId } from '@apix/protocol/channels';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes' || v === 'on');
const list = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter(Boolean),
);

/** Environment variables (PROTOCOL.md 10 and the extensions documented in docs/configuration.md). */
export const EnvSchema = z.object({
  APIX_PORT: int(0, 65535).default(8080),
  APIX_HOST: z.string().min(1).default('0.0.0.0'),
  APIX_DATA_DIR: z.string().min(1).default('./.apix'),
  APIX_NODE_ID: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/)
    .optional(),
  APIX_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  APIX_JWT_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
  APIX_JWKS_URL: z.url().optional(),
  /** A PEM public key (SPKI) for RS256/ES256 tokens, inline or a file path. */
  APIX_JWT_PUBLIC_KEY: z.string().optional(),
  APIX_JWT_ISSUER: z.string().optional(),
  APIX_JWT_AUDIENCE: z.string().optional(),
  APIX_JWT_ALGORITHMS: list.default(['HS256', 'RS256', 'ES256']),
  /** Static API keys for services: `org:key[:scope|scope]`, comma separated (keys in the database also work). */
  APIX_API_KEYS: list.default([]),
  /**
   * The platform's own organizations: their services (service tokens, API keys) may publish to the shared
   * `system:` channels. Empty: only API keys with the explicit `system` scope may.
   */
  APIX_PLATFORM_ORGS: list
    .refine((orgs) => orgs.every(isValidOrgId), {
      message: 'must be organization ids ([A-Za-z0-9_-]{1,64}, not "_")',
    })
    .default([]),

  APIX_ALLOWED_ORIGINS: list.optional(),
  APIX_MAX_MESSAGE_BYTES: int(64, 64 * 1024 * 1024).default(1024 * 1024),
  /**
   * Bounds of client JSON (packages/protocol/src/json-bounds.ts): `connect.metadata` (bytes as JSON, nesting depth,
   * members of one object or array), and the nesting depth and members per object or array of publish
   * payloads and metadata. Larger input is refused with PAYLOAD_TOO_LARGE.
   */
  APIX_CONNECT_METADATA_MAX_BYTES: int(0, 64 * 1024 * 1024).default(4096),
  APIX_CONNECT_METADATA_MAX_DEPTH: int(1, 1000).default(8),
  APIX_CONNECT_METADATA_MAX_KEYS: int(1, 1_000_000).default(64),
  APIX_PAYLOAD_MAX_DEPTH: int(1, 10_000).default(64),
  APIX_PAYLOAD_MAX_WIDTH: int(1, 64 * 1024 * 1024).default(10_000),
  APIX_CONNECT_TIMEOUT_MS: int(100, 600_000).default(10_000),
  APIX_HEARTBEAT_INTERVAL_MS: int(100, 600_000).default(25_000),
  APIX_ACK_TIMEOUT_MS: int(10, 3_600_000).default(10_000),
  APIX_SESSION_TTL_MS: int(0, 86_400_000).default(120_000),
  APIX_DRAIN_TIMEOUT_MS: int(0, 600_000).default(10_000),

  APIX_MAX_BUFFERED_BYTES: int(1024, 1024 * 1024 * 1024).default(4 * 1024 * 1024),
  /**
   * Quality of service (src/gateway/qos.ts): a connection with more unsent bytes than this, or a heartbeat
   * round trip over APIX_QOS_DEGRADE_RTT_MS, is degraded (coalescible channels: latest event per key);
   * 0 turns a trigger off. Its held events go out once its buffer is under APIX_QOS_LOW_WATER_BYTES.
   */
  APIX_QOS_DEGRADE_BUFFERED_BYTES: int(0, 1024 * 1024 * 1024).default(1024 * 1024),
  APIX_QOS_LOW_WATER_BYTES: int(0, 1024 * 1024 * 1024).default(64 * 1024),
  APIX_QOS_DEGRADE_RTT_MS: int(0, 600_000).default(5000),
  APIX_QOS_MIN_DEGRADED_MS: int(0, 600_000).default(1000),
  APIX_QOS_MAX_COALESCED_KEYS: int(1, 1_000_000).default(1000),
  APIX_MAX_CHANNELS_PER_CONNECTION: int(1, 100_000).default(500),
  APIX_MAX_CONNECTIONS: int(1, 10_000_000).default(200_000),
  /** Concurrent connections per remote address, per user and per organization on one node; 0 turns one off. */
  APIX_MAX_CONNECTIONS_PER_ADDRESS: int(0, 10_000_000).default(10_000),
  APIX_MAX_CONNECTIONS_PER_USER: int(0, 10_000_000).default(0),
  APIX_MAX_CONNECTIONS_PER_ORG: int(0, 10_000_000).default(0),
  APIX_HISTORY_SIZE: int(0, 1_000_000).default(1000),
  APIX_HISTORY_TTL_MS: int(0, 30 * 86_400_000).default(3_600_000),
  APIX_MAX_CHANNELS_IN_HISTORY: int(1, 10_000_000).default(100_000),
  APIX_HISTORY_MAX_BYTES: int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(256 * 1024 * 1024),
  /** The byte budget of one `GET /v1/channels/<channel>/history` answer (its events' frames); more: a next page. */
  APIX_HISTORY_PAGE_BYTES: int(1024, 256 * 1024 * 1024).default(1024 * 1024),
  /** Most events one replay of a durable channel reads back from the records (past the history). */
  APIX_DURABLE_REPLAY_MAX: int(1, 1_000_000).default(10_000),
  APIX_OFFLINE_QUEUE_SIZE: int(1, 1_000_000).default(1000),
  APIX_MAX_INFLIGHT: int(1, 100_000).default(1000),
  APIX_MAX_PUBLISHES_IN_FLIGHT: int(1, 1_000_000).default(5000),
  APIX_RETRY_BASE_MS: int(1, 3_600_000).default(1000),
  APIX_RETRY_MAX_MS: int(1, 86_400_000).default(60_000),
  APIX_RETRY_MAX_ATTEMPTS: int(1, 100).default(5),
  /**
   * In-flight (un-acked) events are written to the pending store (Redis with REDIS_URL) every this many
   * ms, in one batch, so that a session resumed on another node after a crash gets them back.
   */
  APIX_PENDING_FLUSH_MS: int(10, 60_000).default(100),
  /** How often one node (holding a lease) dead-letters the pending events of sessions that expired. */
  APIX_PENDING_SWEEP_MS: int(100, 3_600_000).default(10_000),
  APIX_DEAD_LETTER_SIZE: int(1, 10_000_000).default(10_000),
  APIX_IDEMPOTENCY_WINDOW_MS: int(0, 86_400_000).default(120_000),
  /** How long a token revocation is kept: make it at least the longest lifetime of the tokens issued. */
  APIX_TOKEN_REVOCATION_TTL_MS: int(60_000, 365 * 86_400_000).default(7 * 86_400_000),
  /** How long a suspension (session, user, API key) lasts unless lifted or given a shorter one. */
  APIX_SUSPENSION_TTL_MS: int(60_000, 365 * 86_400_000).default(7 * 86_400_000),
  /** A room member not refreshed by its node for this long is gone (a dead node's members expire). */
  APIX_PRESENCE_TTL_MS: int(1000, 3_600_000).default(60_000),
  /**
   * Memory engine (no REDIS_URL): the state a restart must not lose (history, waiting sessions, their queues
   * and in-flight events) is appended to `<APIX_DATA_DIR>/state.log` every this many ms; 0 keeps none.
   */
  APIX_STATE_FLUSH_MS: int(0, 600_000).default(1000),
  /** The state log is compacted when it outgrows this (or twice its size after the last compaction). */
  APIX_STATE_COMPACT_BYTES: int(1024 * 1024, 1024 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
  /** Changes waiting for the next state-log write; past it the next write is a full snapshot instead. */
  APIX_STATE_MAX_BUFFERED_BYTES: int(64 * 1024, 4 * 1024 * 1024 * 1024).default(64 * 1024 * 1024),
  /** `off`: keep no database records (no audit trail, no stored keys): for benchmarks and stateless edges. */
  APIX_RECORDS: z.enum(['on', 'off']).default('on'),
  /** Gateway processes sharing the port (node:cluster); more than 1 needs REDIS_URL. */
  APIX_WORKERS: int(1, 256).default(1),
  /** How often buffered connection/channel/key records are written (heartbeats never write more often). */
  APIX_RECORDS_FLUSH_INTERVAL_MS: int(100, 600_000).default(5_000),
  /** How long API-key answers are cached: the longest a revoked key keeps working. */
  APIX_API_KEY_CACHE_MS: int(0, 600_000).default(5_000),
  APIX_AUDIT_PUBLISHES: bool.default(true),
  APIX_AUDIT_FLUSH_INTERVAL_MS: int(50, 600_000).default(1_000),
  APIX_AUDIT_MAX_QUEUE: int(100, 10_000_000).default(20_000),
  APIX_AUDIT_MAX_SPILL_BYTES: int(1024, 68_719_476_736).default(64 * 1024 * 1024),
  /** Denials of one connection (or principal and address) within this window make one entry and a count. */
  APIX_AUDIT_DENIAL_WINDOW_MS: int(0, 3_600_000).default(10_000),
  /**
   * Rate limits (token buckets: tokens per second and burst; a rate of 0 turns the limit off). Per
   * connection: inbound frames and publishes. Shared by every node (in Redis with REDIS_URL): publishes
   * into one channel, publishes and subscribes of one organization, connection attempts per address.
   */
  APIX_RATE_CONNECTION_PER_SEC: int(0, 1_000_000).default(200),
  APIX_RATE_CONNECTION_BURST: int(1, 10_000_000).default(400),
  APIX_RATE_PUBLISH_PER_SEC: int(0, 1_000_000).default(100),
  APIX_RATE_PUBLISH_BURST: int(1, 10_000_000).default(200),
  APIX_RATE_CHANNEL_PER_SEC: int(0, 10_000_000).default(1000),
  APIX_RATE_CHANNEL_BURST: int(1, 100_000_000).default(2000),
  APIX_RATE_ORG_PUBLISH_PER_SEC: int(0, 10_000_000).default(5000),
  APIX_RATE_ORG_PUBLISH_BURST: int(1, 100_000_000).default(10_000),
  APIX_RATE_ORG_SUBSCRIBE_PER_SEC: int(0, 10_000_000).default(2000),
  APIX_RATE_ORG_SUBSCRIBE_BURST: int(1, 100_000_000).default(10_000),
  APIX_RATE_ADDRESS_PER_SEC: int(0, 1_000_000).default(50),
  APIX_RATE_ADDRESS_BURST: int(1, 10_000_000).default(200),
  /** Refusals of one connection within the window that close it (4008), or suspend its session. */
  APIX_RATE_ABUSE_REFUSALS: int(1, 1_000_000).default(100),
  APIX_RATE_ABUSE_WINDOW_MS: int(100, 3_600_000).default(10_000),
  APIX_SUSPEND_ON_ABUSE: bool.default(false),
  /** PEM files: when both are set the node serves HTTPS and WSS on its port. */
  APIX_TLS_CERT: z.string().min(1).optional(),
  APIX_TLS_KEY: z.string().min(1).optional(),
  /**
   * Master keys for channels encrypted at rest: `<version>:<base64 of 32 bytes>`, comma separated (version a
   * positive integer). New writes use APIX_ENCRYPTION_ACTIVE_KEY, else the highest version; older versions
   * stay listed so that what they encrypted stays readable.
   */
  APIX_ENCRYPTION_KEYS: z
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
  /** The version of APIX_ENCRYPTION_KEYS used for new writes (default: the highest). */
  APIX_ENCRYPTION_ACTIVE_KEY: int(1, 999_999_999).optional(),
  APIX_COMPRESSION: bool.default(true),
  APIX_COMPRESSION_THRESHOLD_BYTES: int(0, 64 * 1024 * 1024).default(1024),
  /**
   * Per-event instrumentation: the latency tracker's and prom-client's publish, deliver and ack hooks
   * (publish-to-deliver/ack histograms, event counters, throughput). `false` leaves them out; /metrics
   * keeps the process metrics and the gauges read at scrape time.
   */
  APIX_METRICS: bool.default(true),

  REDIS_URL: z
    .string()
    .regex(/^rediss?(\+cluster)?:\/\//, 'must be a redis://, rediss:// or redis+cluster:// URL')
    .optional(),
  /** Prefix of every Redis key (several deployments can share one Redis). */
  APIX_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.:-]{1,64}$/)
    .default('apix:'),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  /** The embedded PGlite's shared_buffers: pages it keeps in the gateway's own memory (the OS caches the rest). */
  APIX_EMBEDDED_DB_BUFFERS_MB: int(1, 1024).default(16),
});
export type Env = z.infer<typeof EnvSchema>;

export interface Config {
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly nodeId: string | undefined;
  readonly logLevel: Env['APIX_LOG_LEVEL'];
  readonly auth: {
    readonly jwtSecret: string | undefined;
    readonly jwksUrl: string | undefined;
    readonly publicKeyPem: string | undefined;
    readonly issuer: string | undefined;
    readonly audience: string | undefined;
    readonly algorithms: readonly string[];
    readonly apiKeys: readonly string[];
    /** APIX_PLATFORM_ORGS: organizations whose services may publish to `system:` channels (absent: none). */
    readonly platformOrgs?: readonly string[];
  };
  readonly allowedOrigins: readonly string[] | undefined;
  readonly maxMessageBytes: number;
  /** Bounds of `connect.metadata` and of publish payloads (packages/protocol/src/json-bounds.ts). */
  readonly jsonBounds: {
    readonly metadataMaxBytes: number;
    readonly metadataMaxDepth: number;
    readonly metadataMaxKeys: number;
    readonly payloadMaxDepth: number;
    readonly payloadMaxWidth: number;
  };
  readonly connectTimeoutMs: number;
  readonly heartbeatIntervalMs: number;
  readonly ackTimeoutMs: number;
  readonly sessionTtlMs: number;
  readonly drainTimeoutMs: number;
  readonly maxBufferedBytes: number;
  /** Degraded mode of slow subscribers (src/gateway/qos.ts). */
  readonly qos: {
    readonly degradeBufferedBytes: number;
    readonly lowWaterBytes: number;
    readonly degradeRttMs: number;
    readonly minDegradedMs: number;
    readonly maxCoalescedKeys: number;
  };
  readonly maxChannelsPerConnection: number;
  readonly maxConnections: number;
  /** Concurrent connections on this node per remote address (at the upgrade), user and organization (at `connect`); 0: no cap. */
  readonly connectionCaps: { readonly perAddress: number; readonly perUser: number; readonly perOrg: number };
  readonly history: {
    readonly size: number;
    readonly ttlMs: number;
    readonly maxChannels: number;
    /** Memory engine: the byte budget of all channels' history together (unset: no byte bound). */
    readonly maxBytes?: number;
  };
  /**
   * The byte budget of one HTTP history answer: events are added while their frames fit (the first one
   * always), the rest is the next page (`hasMore`, `next`).
   */
  readonly historyPageBytes: number;
  /** Most events one replay of a durable channel reads from the records. */
  readonly durableReplayMax: number;
  readonly offlineQueueSize: number;
  readonly maxInflight: number;
  /** Publishes of one connection not yet answered above which its socket stops being read. */
  readonly maxPublishesInFlight: number;
  readonly retry: { readonly baseMs: number; readonly maxMs: number; readonly maxAttempts: number };
  /** The pending store of in-flight events: batch interval, sweep of expired sessions. */
  readonly pending: { readonly flushMs: number; readonly sweepMs: number };
  readonly deadLetterSize: number;
  readonly idempotencyWindowMs: number;
  readonly tokenRevocationTtlMs: number;
  /** How long a suspension lasts unless lifted (the admin API may ask for less). */
  readonly suspensionTtlMs: number;
  readonly compression: { readonly enabled: boolean; readonly thresholdBytes: number };
  /** Per-event instrumentation (APIX_METRICS): publish/deliver/ack hooks of the metrics and latency tracker. */
  readonly metrics: boolean;
  readonly rateLimits: {
    readonly connection: RateLimit;
    readonly publish: RateLimit;
    readonly channel: RateLimit;
    readonly orgPublish: RateLimit;
    readonly orgSubscribe: RateLimit;
    readonly address: RateLimit;
    /** `refusals` refusals of one connection within `windowMs` close it (4008), or suspend it (4011). */
    readonly abuse: { readonly refusals: number; readonly windowMs: number; readonly suspend: boolean };
  };
  /** The at-rest keyring (APIX_ENCRYPTION_KEYS); undefined: channels cannot be `encrypted`. */
  readonly encryption: Keyring | undefined;
  /** PEM file paths; when set the node serves HTTPS and WSS (read by `loadTlsFiles`). */
  readonly tls: { readonly certFile: string; readonly keyFile: string } | undefined;
  readonly presenceTtlMs: number;
  /** Memory engine: the state log in the data dir (src/state/state-log.ts); flushMs 0: none. */
  readonly state: {
    readonly flushMs: number;
    readonly compactBytes: number;
    readonly maxBufferedBytes: number;
  };
  readonly records: boolean;
  readonly workers: number;
  readonly recordsFlushIntervalMs: number;
  readonly apiKeyCacheMs: number;
  readonly audit: {
    readonly publishes: boolean;
    readonly flushIntervalMs: number;
    readonly maxQueue: number;
    readonly maxSpillBytes: number;
    /** Denials per source aggregated within this window (src/audit/denial-aggregator.ts); 0: off. */
    readonly denialWindowMs: number;
  };
  readonly redisUrl: string | undefined;
  readonly redisPrefix: string;
  readonly databaseUrl: string | undefined;
  readonly embeddedDbBuffersMb: number;
}

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
  if ((r.data.APIX_TLS_CERT === undefined) !== (r.data.APIX_TLS_KEY === undefined)) {
    const missing = r.data.APIX_TLS_CERT === undefined ? 'APIX_TLS_CERT' : 'APIX_TLS_KEY';
    throw new ConfigError(`invalid ${missing}: must be set too (APIX_TLS_CERT and APIX_TLS_KEY go together)`);
  }
  const keys = r.data.APIX_ENCRYPTION_KEYS;
  const active = r.data.APIX_ENCRYPTION_ACTIVE_KEY;
  if (active !== undefined && !keys?.some((k) => k.version === active))
    throw new ConfigError(
      `invalid APIX_ENCRYPTION_ACTIVE_KEY: version ${active} is not in APIX_ENCRYPTION_KEYS`,
    );
  return configFromEnv(r.data);
}

export function configFromEnv(e: Env): Config {
  return {
    port: e.APIX_PORT,
    host: e.APIX_HOST,
    dataDir: e.APIX_DATA_DIR,
    nodeId: e.APIX_NODE_ID,
    logLevel: e.APIX_LOG_LEVEL,
    auth: {
      jwtSecret: e.APIX_JWT_SECRET,
      jwksUrl: e.APIX_JWKS_URL,
      publicKeyPem: e.APIX_JWT_PUBLIC_KEY,
      issuer: e.APIX_JWT_ISSUER,
      audience: e.APIX_JWT_AUDIENCE,
      algorithms: e.APIX_JWT_ALGORITHMS,
      apiKeys: e.APIX_API_KEYS,
      platformOrgs: e.APIX_PLATFORM_ORGS,
    },
    allowedOrigins: e.APIX_ALLOWED_ORIGINS,
    maxMessageBytes: e.APIX_MAX_MESSAGE_BYTES,
    jsonBounds: {
      metadataMaxBytes: e.APIX_CONNECT_METADATA_MAX_BYTES,
      metadataMaxDepth: e.APIX_CONNECT_METADATA_MAX_DEPTH,
      metadataMaxKeys: e.APIX_CONNECT_METADATA_MAX_KEYS,
      payloadMaxDepth: e.APIX_PAYLOAD_MAX_DEPTH,
      payloadMaxWidth: e.APIX_PAYLOAD_MAX_WIDTH,
    },
    connectTimeoutMs: e.APIX_CONNECT_TIMEOUT_MS,
    heartbeatIntervalMs: e.APIX_HEARTBEAT_INTERVAL_MS,
    ackTimeoutMs: e.APIX_ACK_TIMEOUT_MS,
    sessionTtlMs: e.APIX_SESSION_TTL_MS,
    drainTimeoutMs: e.APIX_DRAIN_TIMEOUT_MS,
    maxBufferedBytes: e.APIX_MAX_BUFFERED_BYTES,
    qos: {
      degradeBufferedBytes: e.APIX_QOS_DEGRADE_BUFFERED_BYTES,
      lowWaterBytes: e.APIX_QOS_LOW_WATER_BYTES,
      degradeRttMs: e.APIX_QOS_DEGRADE_RTT_MS,
      minDegradedMs: e.APIX_QOS_MIN_DEGRADED_MS,
      maxCoalescedKeys: e.APIX_QOS_MAX_COALESCED_KEYS,
    },
    maxChannelsPerConnection: e.APIX_MAX_CHANNELS_PER_CONNECTION,
    maxConnections: e.APIX_MAX_CONNECTIONS,
    connectionCaps: {
      perAddress: e.APIX_MAX_CONNECTIONS_PER_ADDRESS,
      perUser: e.APIX_MAX_CONNECTIONS_PER_USER,
      perOrg: e.APIX_MAX_CONNECTIONS_PER_ORG,
    },
    history: {
      size: e.APIX_HISTORY_SIZE,
      ttlMs: e.APIX_HISTORY_TTL_MS,
      maxChannels: e.APIX_MAX_CHANNELS_IN_HISTORY,
      maxBytes: e.APIX_HISTORY_MAX_BYTES,
    },
    historyPageBytes: e.APIX_HISTORY_PAGE_BYTES,
    durableReplayMax: e.APIX_DURABLE_REPLAY_MAX,
    offlineQueueSize: e.APIX_OFFLINE_QUEUE_SIZE,
    maxInflight: e.APIX_MAX_INFLIGHT,
    maxPublishesInFlight: e.APIX_MAX_PUBLISHES_IN_FLIGHT,
    retry: {
      baseMs: e.APIX_RETRY_BASE_MS,
      maxMs: e.APIX_RETRY_MAX_MS,
      maxAttempts: e.APIX_RETRY_MAX_ATTEMPTS,
    },
    pending: { flushMs: e.APIX_PENDING_FLUSH_MS, sweepMs: e.APIX_PENDING_SWEEP_MS },
    deadLetterSize: e.APIX_DEAD_LETTER_SIZE,
    idempotencyWindowMs: e.APIX_IDEMPOTENCY_WINDOW_MS,
    tokenRevocationTtlMs: e.APIX_TOKEN_REVOCATION_TTL_MS,
    suspensionTtlMs: e.APIX_SUSPENSION_TTL_MS,
    compression: { enabled: e.APIX_COMPRESSION, thresholdBytes: e.APIX_COMPRESSION_THRESHOLD_BYTES },
    metrics: e.APIX_METRICS,
    rateLimits: {
      connection: { perSec: e.APIX_RATE_CONNECTION_PER_SEC, burst: e.APIX_RATE_CONNECTION_BURST },
      publish: { perSec: e.APIX_RATE_PUBLISH_PER_SEC, burst: e.APIX_RATE_PUBLISH_BURST },
      channel: { perSec: e.APIX_RATE_CHANNEL_PER_SEC, burst: e.APIX_RATE_CHANNEL_BURST },
      orgPublish: { perSec: e.APIX_RATE_ORG_PUBLISH_PER_SEC, burst: e.APIX_RATE_ORG_PUBLISH_BURST },
      orgSubscribe: { perSec: e.APIX_RATE_ORG_SUBSCRIBE_PER_SEC, burst: e.APIX_RATE_ORG_SUBSCRIBE_BURST },
      address: { perSec: e.APIX_RATE_ADDRESS_PER_SEC, burst: e.APIX_RATE_ADDRESS_BURST },
      abuse: {
        refusals: e.APIX_RATE_ABUSE_REFUSALS,
        windowMs: e.APIX_RATE_ABUSE_WINDOW_MS,
        suspend: e.APIX_SUSPEND_ON_ABUSE,
      },
    },
    encryption:
      e.APIX_ENCRYPTION_KEYS !== undefined && e.APIX_ENCRYPTION_KEYS.length > 0
        ? {
            keys: e.APIX_ENCRYPTION_KEYS,
            active: e.APIX_ENCRYPTION_ACTIVE_KEY ?? Math.max(...e.APIX_ENCRYPTION_KEYS.map((k) => k.version)),
          }
        : undefined,
    tls:
      e.APIX_TLS_CERT !== undefined && e.APIX_TLS_KEY !== undefined
        ? { certFile: e.APIX_TLS_CERT, keyFile: e.APIX_TLS_KEY }
        : undefined,
    presenceTtlMs: e.APIX_PRESENCE_TTL_MS,
    state: {
      flushMs: e.APIX_STATE_FLUSH_MS,
      compactBytes: e.APIX_STATE_COMPACT_BYTES,
      maxBufferedBytes: e.APIX_STATE_MAX_BUFFERED_BYTES,
    },
    records: e.APIX_RECORDS === 'on',
    workers: e.APIX_WORKERS,
    recordsFlushIntervalMs: e.APIX_RECORDS_FLUSH_INTERVAL_MS,
    apiKeyCacheMs: e.APIX_API_KEY_CACHE_MS,
    audit: {
      publishes: e.APIX_AUDIT_PUBLISHES,
      flushIntervalMs: e.APIX_AUDIT_FLUSH_INTERVAL_MS,
      maxQueue: e.APIX_AUDIT_MAX_QUEUE,
      maxSpillBytes: e.APIX_AUDIT_MAX_SPILL_BYTES,
      denialWindowMs: e.APIX_AUDIT_DENIAL_WINDOW_MS,
    },
    redisUrl: e.REDIS_URL,
    redisPrefix: e.APIX_REDIS_PREFIX,
    databaseUrl: e.DATABASE_URL,
    embeddedDbBuffersMb: e.APIX_EMBEDDED_DB_BUFFERS_MB,
  };
}

/** A config for tests and embedding: defaults, then the overrides given. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...configFromEnv(EnvSchema.parse({})), port: 0, host: '127.0.0.1', ...overrides };
}
