/**
 * Token buckets in Redis, shared by every node (script `rate-limit-1.lua`: refill and take in one atomic
 * step, so two nodes never both spend the same token).
 *
 * Local token leasing keeps Redis off the hot path: a node takes tokens from the shared bucket in leases
 * (1 at first; doubled each time a lease is used up within its lifetime, halved when one expires unused, at
 * most `maxLease` and a tenth of the burst) and hands them out locally; a refusal is remembered until its
 * `retryAfterMs`, so a flood of refused requests costs no Redis call either. Concurrent requests for a key
 * wait for one lease instead of each calling Redis.
 *
 * The trade-off: leased tokens have already left the shared bucket, so the cluster never admits more than
 * the bucket hands out; but a node may spend them up to `leaseTtlMs` later, so over a window of T ms the
 * cluster admits at most `burst + perSec·(T + leaseTtlMs)/1000`, and tokens a node leased but did not
 * use are lost (dropped when the lease expires: the effective limit can only be lower, by at most one
 * lease per node and key). With `maxLease: 1` every request is one Redis call and the limit is exact.
 * If Redis cannot be reached, `take` rejects; the caller decides (the RateLimiter lets the request pass).
 */
import type { Clock } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import { ALLOWED } from './rate-limit-store.ts';
import type { RateLimit, RateLimitStore, TakeResult } from './rate-limit-store.ts';

export interface RedisRateLimitOptions {
  /** The node's clock, for leases and remembered refusals. */
  readonly clock: Clock;
  /**
   * Refill by the Redis server's clock (default), so that nodes whose clocks disagree share one time
   * line; `false`: by `clock` (tests with a manual clock).
   */
  readonly serverTime?: boolean;
  /** Most tokens leased at once per key (default 32); 1 disables leasing. */
  readonly maxLease?: number;
  /** How long leased tokens may be spent before they are dropped (default 1000 ms). */
  readonly leaseTtlMs?: number;
  /** Keys whose lease state is kept locally (default 10000); the least recently used go first. */
  readonly maxKeys?: number;
}

class Lease {
  tokens = 0;
  expiresAt = 0;
  /** How many tokens the next lease asks for. */
  want = 1;
  /** A refusal from Redis for requests of `refusedNeed` tokens or more, remembered until this time. */
  refusedUntil = 0;
  refusedNeed = 0;
  /** The latest Redis call for this key, and the tokens wanted by requests waiting for it. */
  inflight: Promise<unknown> | undefined;
  waiting = 0;
}

/** Times a request waits for another request's lease before it asks Redis itself. */
const MAX_WAITS = 2;

export class RedisRateLimitStore implements RateLimitStore {
  readonly name = 'redis';
  private readonly leases = new Map<string, Lease>();
  private readonly maxLease: number;
  private readonly leaseTtlMs: number;
  private readonly maxKeys: number;
  private readonly serverTime: boolean;
  /** Redis calls made (leases and refusals), for tests and metrics. */
  calls = 0;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
    private readonly options: RedisRateLimitOptions,
  ) {
    this.maxLease = Math.max(1, Math.floor(options.maxLease ?? 32));
    this.leaseTtlMs = options.leaseTtlMs ?? 1000;
    this.maxKeys = options.maxKeys ?? 10_000;
    this.serverTime = options.serverTime ?? true;
    // Lease state of keys gone quiet is dropped, so that it drains when the clients leave (found by the soak).
    this.sweeper = setInterval(() => this.sweep(this.options.clock.now()), 5_000);
    this.sweeper.unref?.();
  }

  /**
   * Forgets the lease state that no longer matters (lease expired, no refusal remembered, no call in
   * flight), least recently used first; stops at the first 100 still live.
   */
  sweep(now: number): void {
    let kept = 0;
    for (const [k, l] of this.leases) {
      if (l.inflight === undefined && l.waiting === 0 && l.expiresAt <= now && l.refusedUntil <= now)
        this.leases.delete(k);
      else if (++kept >= 100) break;
    }
  }

  /** Keys with lease state (for tests and bounds). */
  get size(): number {
    return this.leases.size;
  }

  async take(key: string, limit: RateLimit, n = 1): Promise<TakeResult> {
    if (!(limit.perSec > 0)) return ALLOWED;
    const lease = this.lease(key);
    for (let waits = 0; ; waits++) {
      const now = this.options.clock.now();
      if (lease.tokens >= n && now < lease.expiresAt) {
        lease.tokens -= n;
        return ALLOWED;
      }
      if (now < lease.refusedUntil && n >= lease.refusedNeed)
        return { allowed: false, retryAfterMs: lease.refusedUntil - now };
      if (lease.inflight === undefined || waits >= MAX_WAITS) return this.renew(key, lease, limit, n, now);
      // Another request is asking Redis: its lease may cover this one too.
      lease.waiting += n;
      await lease.inflight.catch(() => {});
      lease.waiting -= n;
    }
  }

  /**
   * Asks Redis for `need` tokens for this request plus a lease for the ones after it. Leftovers of an
   * expired lease are dropped; concurrent calls for one key add up their grants.
   */
  private async renew(
    key: string,
    lease: Lease,
    limit: RateLimit,
    need: number,
    now: number,
  ): Promise<TakeResult> {
    const cap = Math.max(need, Math.min(this.maxLease, Math.floor(limit.burst / 10)));
    if (lease.expiresAt > 0) {
      // Used up within its lifetime: ask for more next time; expired with tokens left: ask for fewer.
      lease.want = now < lease.expiresAt ? lease.want * 2 : Math.ceil(lease.want / 2);
    }
    lease.want = Math.min(cap, Math.max(1, lease.want));
    const want = Math.min(cap, Math.max(need + lease.waiting, lease.want));
    this.calls++;
    const call = runScript(
      this.redis,
      'rate-limit',
      [this.keys.rateLimit(key)],
      [limit.perSec, limit.burst, need, want, this.serverTime ? '' : now],
    ) as Promise<[number, number]>;
    lease.inflight = call;
    let reply: [number, number];
    try {
      reply = await call;
    } finally {
      if (lease.inflight === call) lease.inflight = undefined;
    }
    const granted = Number(reply[0]);
    const after = this.options.clock.now();
    if (granted >= need) {
      const extra = granted - need;
      lease.tokens = after < lease.expiresAt ? lease.tokens + extra : extra;
      lease.expiresAt = after + this.leaseTtlMs;
      lease.refusedUntil = 0;
      return ALLOWED;
    }
    // Refused by Redis, but tokens this node leased may be here, or on their way: use them first.
    for (let i = 0; i < MAX_WAITS && lease.inflight !== undefined; i++) await lease.inflight.catch(() => {});
    const later = this.options.clock.now();
    if (lease.tokens >= need && later < lease.expiresAt) {
      lease.tokens -= need;
      return ALLOWED;
    }
    const retryAfterMs = Math.max(1, Number(reply[1]));
    lease.want = 1;
    lease.refusedUntil = after + retryAfterMs;
    lease.refusedNeed = need;
    return { allowed: false, retryAfterMs };
  }

  private lease(key: string): Lease {
    let lease = this.leases.get(key);
    if (lease !== undefined) {
      // Most recently used last, so that eviction starts from the least recently used.
      this.leases.delete(key);
      this.leases.set(key, lease);
      return lease;
    }
    if (this.leases.size >= this.maxKeys) {
      let n = Math.max(1, Math.floor(this.maxKeys / 10));
      for (const [k, l] of this.leases) {
        if (n <= 0) break;
        if (l.inflight !== undefined) continue;
        this.leases.delete(k);
        n--;
      }
    }
    lease = new Lease();
    this.leases.set(key, lease);
    return lease;
  }

  async close(): Promise<void> {
    clearInterval(this.sweeper);
    this.leases.clear();
  }
}
