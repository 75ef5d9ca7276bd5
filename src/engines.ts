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

export interface EngineOptions {
  readonly clock?: Clock;
  /** The node id (control messages from it are not handed back to it). */
  readonly nodeId: string;
}

export async function createEngines(config: Config, options: EngineOptions): Promise<Engines> {
  const clock = options.clock ?? systemClock;
  if (!config.redisUrl) return memoryEngines(config, clock);
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
