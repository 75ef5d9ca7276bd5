/**
 * The engine factories: in memory by default (`memoryEngines`), Redis when REDIS_URL is set (the Redis
 * engines share one pair of Redis connections, created here and closed with them). node.ts takes the
 * engines it is given; this module never imports node.ts.
 */
import { MemoryStreamStore } from './streams/memory-stream-store.ts';
import { RedisStreamStore } from './streams/redis-stream-store.ts';
import { MEMORY_MAX_STREAMS, streamStoreTtls } from './streams/stream-store.ts';
import type { StreamStore } from './streams/stream-store.ts';
import type { Config } from './config.ts';
import { systemClock } from './clock.ts';
import type { Clock } from './clock.ts';
import type { Broker } from './broker/broker.ts';
import { MemoryBroker, MemoryBrokerBus } from './broker/memory-broker.ts';
import type { OfflineQueue } from './queue/queue.ts';
import { MemoryOfflineQueue } from './queue/memory-queue.ts';
import type { SessionStore } from './sessions/session-store.ts';
import { MemorySessionStore } from './sessions/memory-session-store.ts';
import type { Presence } from './presence/presence.ts';
import { MemoryPresence } from './presence/memory-presence.ts';
import type { RateLimitStore } from './ratelimit/rate-limit-store.ts';
import { MemoryRateLimitStore } from './ratelimit/memory-rate-limit.ts';
import { MemoryPendingStore } from './pending/pending-store.ts';
import type { PendingStore } from './pending/pending-store.ts';
import type { RevocationStore } from './auth/revocation-store.ts';
import { MemoryRevocationStore } from './auth/memory-revocation.ts';
import type { SuspensionStore } from './suspension/suspension-store.ts';
import { MemorySuspensionStore } from './suspension/memory-suspension-store.ts';
import type { ReadinessCheck } from './http/api.ts';
import { createRedisClients } from './redis/client.ts';
import { RedisKeys } from './redis/keys.ts';
import { RedisBroker } from './broker/redis-broker.ts';
import { RedisOfflineQueue } from './queue/redis-queue.ts';
import { RedisSessionStore } from './sessions/redis-session-store.ts';
import { RedisPresence } from './presence/redis-presence.ts';
import { RedisRateLimitStore } from './ratelimit/redis-rate-limit.ts';
import { RedisPendingStore } from './pending/redis-pending-store.ts';
import { RedisRevocationStore } from './auth/redis-revocation.ts';
import { RedisSuspensionStore } from './suspension/redis-suspension-store.ts';
import { StateLog } from './state/state-log.ts';
import { MemoryRpcRegistry } from './rpc/registry.ts';
import type { RpcRegistry } from './rpc/registry.ts';
import { RedisRpcRegistry } from './rpc/redis-registry.ts';
import { MemoryWebhookStore } from './webhooks/webhook-store.ts';
import type { WebhookStore } from './webhooks/webhook-store.ts';
import { RedisWebhookStore } from './webhooks/redis-webhook-store.ts';
import { MemoryChannelOccupancy } from './webhooks/occupancy.ts';
import type { ChannelOccupancy } from './webhooks/occupancy.ts';
import { RedisChannelOccupancy } from './webhooks/redis-occupancy.ts';
import { silentLogger } from './store/log.ts';
import type { StoreLogger } from './store/log.ts';

/**
 * The memory engines, with their state kept in the data dir's state log (src/state/state-log.ts), so that
 * a restart of the node (graceful or not) keeps the history, the waiting sessions, their queues and their
 * in-flight events.
 */
async function embeddedEngines(config: Config, clock: Clock, logger: StoreLogger): Promise<Engines> {
  const engines = memoryEngines(config, clock);
  const broker = engines.broker as MemoryBroker;
  const state = await StateLog.open(
    {
      history: broker.bus.history,
      idempotency: broker.bus.idempotency,
      sessions: engines.sessionStore as MemorySessionStore,
      queue: engines.offlineQueue as MemoryOfflineQueue,
      pending: engines.pendingStore as MemoryPendingStore,
    },
    {
      dataDir: config.dataDir,
      flushMs: config.state.flushMs,
      compactBytes: config.state.compactBytes,
      maxBufferedBytes: config.state.maxBufferedBytes,
      history: { size: config.history.size, ttlMs: config.history.ttlMs },
      sessionTtlMs: config.sessionTtlMs,
      clock,
      logger,
    },
  );
  return {
    ...engines,
    sessionStore: state.sessionStore(),
    offlineQueue: state.offlineQueue(),
    pendingStore: state.pendingStore(),
    stateLog: state,
    async close() {
      // After the gateway drained (its sessions saved): the last write, then the engines.
      await state.close();
      await engines.close();
    },
  };
}

/** The engines a node runs on: memory (embedded) or shared (Redis). */
export interface Engines {
  readonly broker: Broker;
  readonly offlineQueue: OfflineQueue;
  readonly sessionStore: SessionStore;
  readonly presence: Presence;
  /** Shared rate-limit buckets (channel, organization, address). */
  readonly rateLimits: RateLimitStore;
  /** In-flight events of acknowledged subscriptions, kept across restarts (memory when absent). */
  readonly pendingStore?: PendingStore;
  /** Revoked tokens, shared by the nodes (absent: a memory store of this node). */
  readonly revocations?: RevocationStore;
  /** Suspensions (session, user, API key), shared by the nodes (absent: a memory store of this node). */
  readonly suspensions?: SuspensionStore;
  /** Which services serve which RPC methods, shared by the nodes. */
  readonly rpcRegistry: RpcRegistry;
  /** Webhook endpoints, queued batches and dead letters (shared by the nodes). */
  readonly webhooks: WebhookStore;
  /** Which nodes have subscribers on which channels (channel.occupied / vacated, cluster-wide). */
  readonly occupancy: ChannelOccupancy;
  /** The memory engines' state log in the data dir (absent: their state ends with the process). */
  readonly stateLog?: StateLog;
  /** Open streams (docs/protocol.md §14), shared by the nodes (absent: a memory store of this node). */
  readonly streamStore?: StreamStore;
  readonly readiness: readonly ReadinessCheck[];
  close(): Promise<void>;
}

/** Nodes over one MemoryBrokerBus share their pending entries, as Redis nodes do. */
const busPending = new WeakMap<MemoryBrokerBus, MemoryPendingStore>();
function busPendingStore(bus: MemoryBrokerBus, clock: Clock): MemoryPendingStore {
  let store = busPending.get(bus);
  if (!store) busPending.set(bus, (store = new MemoryPendingStore(1_000_000, () => clock.now())));
  return store;
}

/** Nodes over one MemoryBrokerBus share their rate limits too, as Redis nodes do. */
const busRateLimits = new WeakMap<MemoryBrokerBus, MemoryRateLimitStore>();
/** And their revocations. */
const busRevocations = new WeakMap<MemoryBrokerBus, MemoryRevocationStore>();
/** And their suspensions. */
const busSuspensions = new WeakMap<MemoryBrokerBus, MemorySuspensionStore>();
/** And their RPC registrations. */
const busRpc = new WeakMap<MemoryBrokerBus, MemoryRpcRegistry>();

/** Nodes over one MemoryBrokerBus share their streams, as Redis nodes do. */
const busStreams = new WeakMap<MemoryBrokerBus, MemoryStreamStore>();
function busStreamStore(bus: MemoryBrokerBus, config: Config, clock: Clock): MemoryStreamStore {
  let store = busStreams.get(bus);
  if (!store)
    busStreams.set(
      bus,
      (store = new MemoryStreamStore({
        ...streamStoreTtls(config),
        maxStreams: MEMORY_MAX_STREAMS,
        now: () => clock.now(),
      })),
    );
  return store;
}

/** And their webhook state and channel occupancy. */
const busWebhooks = new WeakMap<
  MemoryBrokerBus,
  { store: MemoryWebhookStore; occupancy: MemoryChannelOccupancy }
>();
function busWebhookState(bus: MemoryBrokerBus) {
  let state = busWebhooks.get(bus);
  if (!state)
    busWebhooks.set(
      bus,
      (state = { store: new MemoryWebhookStore(), occupancy: new MemoryChannelOccupancy() }),
    );
  return state;
}

export function memoryEngines(config: Config, clock: Clock, bus?: MemoryBrokerBus): Engines {
  const sharedBus =
    bus ?? new MemoryBrokerBus(clock, config.history.maxChannels, 100_000, config.history.maxBytes);
  let rateLimits = busRateLimits.get(sharedBus);
  if (!rateLimits) busRateLimits.set(sharedBus, (rateLimits = new MemoryRateLimitStore(clock)));
  let revocations = busRevocations.get(sharedBus);
  if (!revocations) busRevocations.set(sharedBus, (revocations = new MemoryRevocationStore(clock)));
  let suspensions = busSuspensions.get(sharedBus);
  if (!suspensions) busSuspensions.set(sharedBus, (suspensions = new MemorySuspensionStore(clock)));
  let rpcRegistry = busRpc.get(sharedBus);
  if (!rpcRegistry) busRpc.set(sharedBus, (rpcRegistry = new MemoryRpcRegistry()));
  const broker = new MemoryBroker(sharedBus, { size: config.history.size, ttlMs: config.history.ttlMs });
  const presence = new MemoryPresence(sharedBus.presence, { ttlMs: config.presenceTtlMs });
  // Housekeeping: what expires by time (history past its TTL, idempotency keys past their window, rate
  // buckets full again) is dropped even when no traffic comes to trigger it, as Redis expires keys itself.
  const housekeeping = setInterval(() => {
    const now = clock.now();
    sharedBus.history.sweep(now, config.history.ttlMs);
    sharedBus.idempotency.expire(now);
    rateLimits.sweep(now);
  }, 5_000);
  housekeeping.unref();
  return {
    broker,
    offlineQueue: new MemoryOfflineQueue(config.offlineQueueSize),
    sessionStore: new MemorySessionStore(clock),
    pendingStore: busPendingStore(sharedBus, clock),
    streamStore: busStreamStore(sharedBus, config, clock),
    presence,
    rateLimits,
    revocations,
    suspensions,
    rpcRegistry,
    webhooks: busWebhookState(sharedBus).store,
    occupancy: busWebhookState(sharedBus).occupancy,
    readiness: [],
    async close() {
      clearInterval(housekeeping);
      await presence.close();
      await broker.close();
    },
  };
}

export interface EngineOptions {
  readonly clock?: Clock;
  /** The node id (control messages from it are not handed back to it). */
  readonly nodeId: string;
  readonly logger?: StoreLogger;
}

export async function createEngines(config: Config, options: EngineOptions): Promise<Engines> {
  const clock = options.clock ?? systemClock;
  if (!config.redisUrl)
    return config.state.flushMs > 0
      ? embeddedEngines(config, clock, options.logger ?? silentLogger)
      : memoryEngines(config, clock);
  const clients = await createRedisClients(config.redisUrl, { connectionName: `apix:${options.nodeId}` });
  const keys = new RedisKeys(config.redisPrefix);
  const broker = new RedisBroker(clients, keys, {
    nodeId: options.nodeId,
    history: { size: config.history.size, ttlMs: config.history.ttlMs },
  });
  await broker.ready();
  const presence = new RedisPresence(clients.command, keys, { ttlMs: config.presenceTtlMs, clock });
  return {
    broker,
    offlineQueue: new RedisOfflineQueue(clients.command, keys, {
      maxPerSession: config.offlineQueueSize,
      ttlMs: Math.max(1000, config.sessionTtlMs),
      clock,
    }),
    sessionStore: new RedisSessionStore(clients.command, keys, clock),
    pendingStore: new RedisPendingStore(clients.command, {
      prefix: config.redisPrefix,
      cluster: clients.mode === 'cluster',
      now: () => clock.now(),
    }),
    presence,
    streamStore: new RedisStreamStore(clients.command, keys, streamStoreTtls(config)),
    // Shared buckets refill by Redis's clock; nodes lease tokens ahead of use (see redis-rate-limit.ts).
    rateLimits: new RedisRateLimitStore(clients.command, keys, { clock }),
    revocations: new RedisRevocationStore(clients.command, keys, { clock }),
    suspensions: new RedisSuspensionStore(clients.command, keys, { clock }),
    rpcRegistry: new RedisRpcRegistry(clients.command, keys),
    webhooks: new RedisWebhookStore(clients.command, keys),
    occupancy: new RedisChannelOccupancy(clients.command, keys, clock, options.nodeId, {
      leaseMs: config.webhooks.occupancyLeaseMs,
      sweepMs: config.webhooks.occupancySweepMs,
    }),
    readiness: [],
    async close() {
      await presence.close();
      await broker.close();
      await clients.close();
    },
  };
}
