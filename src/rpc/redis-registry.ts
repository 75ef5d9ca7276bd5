/**
 * The RPC registry on Redis: one sorted set per organization and method (RedisKeys.rpcMethod), member =
 * the registration (node, connection, roles), score = valid until (ms). Lapsed members are trimmed when
 * read; the key itself expires when no node refreshes it.
 */
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { memberOf, providerOf } from './registry.ts';
import type { RpcProvider, RpcRegistration, RpcRegistry } from './registry.ts';

export class RedisRpcRegistry implements RpcRegistry {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  async register(
    orgId: string,
    providers: readonly RpcRegistration[],
    until: number,
    ttlMs: number,
  ): Promise<void> {
    await Promise.all(
      providers.map(async (p) => {
        const key = this.keys.rpcMethod(orgId, p.method);
        await this.redis.zadd(key, until, memberOf(p));
        await this.redis.pexpire(key, ttlMs * 2);
      }),
    );
  }

  async unregister(orgId: string, providers: readonly RpcRegistration[]): Promise<void> {
    await Promise.all(
      providers.map((p) => this.redis.zrem(this.keys.rpcMethod(orgId, p.method), memberOf(p))),
    );
  }

  async providers(orgId: string, method: string, now: number): Promise<RpcProvider[]> {
    const key = this.keys.rpcMethod(orgId, method);
    const members = await this.redis.zrangebyscore(key, `(${now}`, '+inf');
    if (members.length === 0) return [];
    // Trim what lapsed (a crashed node's registrations), without waiting for it.
    this.redis.zremrangebyscore(key, '-inf', now).catch(() => {});
    return members.map(providerOf).filter((p): p is RpcProvider => p !== undefined);
  }
}
