/**
 * Picks the engines from the config: in memory by default, Redis when REDIS_URL is set. The engines
 * share one pair of Redis connections, created here and closed with them.
 */
import type { Config } from './config.ts';
import { systemClock } from './clock.ts';
import type { Clock } from './clock.ts';
import { memoryEngines } from './node.ts';
import type { Engines } from './node.ts';
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
import type { MemoryBroker } from './broker/memory-broker.ts';
import type { MemorySessionStore } from './sessions/memory-session-store.ts';
import type { MemoryOfflineQueue } from './queue/memory-queue.ts';
import type { MemoryPendingStore } from './pending/pending-store.ts';
import { StateLog } from './state/state-log.ts';
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
    // Shared buckets refill by Redis's clock; nodes lease tokens ahead of use (see redis-rate-limit.ts).
    rateLimits: new RedisRateLimitStore(clients.command, keys, { clock }),
    revocations: new RedisRevocationStore(clients.command, keys, { clock }),
    suspensions: new RedisSuspensionStore(clients.command, keys, { clock }),
    readiness: [],
    async close() {
      await presence.close();
      await broker.close();
      await clients.close();
    },
  };
}
