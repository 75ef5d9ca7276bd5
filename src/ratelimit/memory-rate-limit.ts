/**
 * Token buckets in the process: exact, no I/O. Shared by the nodes of one process when they are given
 * the same instance (tests; `apix serve` with one worker). Bounded: at most `maxKeys` buckets; past that
 * the least recently used tenth is forgotten (a forgotten bucket starts full again). Like the Redis store,
 * it forgets a bucket once it would be full again (checked from the least recently used end, at most once a
 * second), so that the buckets of clients gone drain to none.
 */
import type { Clock } from '../clock.ts';
import { ALLOWED } from './rate-limit-store.ts';
import type { RateLimit, RateLimitStore, TakeResult } from './rate-limit-store.ts';

interface Bucket {
  tokens: number;
  last: number;
  /** When the bucket will be full again (then it is the same as no bucket). */
  fullAt: number;
}

export class MemoryRateLimitStore implements RateLimitStore {
  readonly name = 'memory';
  private readonly buckets = new Map<string, Bucket>();
  private lastSweep = 0;

  constructor(
    private readonly clock: Clock,
    private readonly maxKeys = 100_000,
  ) {}

  take(key: string, limit: RateLimit, n = 1): Promise<TakeResult> {
    return Promise.resolve(this.takeNow(key, limit, n));
  }

  /** The synchronous form of `take`. */
  takeNow(key: string, limit: RateLimit, n = 1): TakeResult {
    if (!(limit.perSec > 0)) return ALLOWED;
    const now = this.clock.now();
    if (now - this.lastSweep >= 1000) this.sweep(now);
    let b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.evict();
      b = { tokens: limit.burst, last: now, fullAt: now };
    } else {
      // Most recently used last: eviction walks the map from its oldest entries.
      this.buckets.delete(key);
      if (now > b.last) {
        b.tokens = Math.min(limit.burst, b.tokens + ((now - b.last) / 1000) * limit.perSec);
        b.last = now;
      }
    }
    this.buckets.set(key, b);
    if (b.tokens >= n) {
      b.tokens -= n;
      b.fullAt = now + Math.ceil(((limit.burst - b.tokens) / limit.perSec) * 1000);
      return ALLOWED;
    }
    return { allowed: false, retryAfterMs: Math.max(1, Math.ceil(((n - b.tokens) / limit.perSec) * 1000)) };
  }

  /** Buckets held (for tests and bounds). */
  get size(): number {
    return this.buckets.size;
  }

  async close(): Promise<void> {
    this.buckets.clear();
  }

  /**
   * Forgets the buckets that are full again, oldest use first; stops at the first 100 that are not (the
   * rest were used more recently, so most of them are not full either; the next sweep goes on).
   */
  sweep(now: number): void {
    this.lastSweep = now;
    let kept = 0;
    for (const [k, b] of this.buckets) {
      if (b.fullAt <= now) this.buckets.delete(k);
      else if (++kept >= 100) break;
    }
  }

  private evict(): void {
    let n = Math.max(1, Math.floor(this.maxKeys / 10));
    for (const k of this.buckets.keys()) {
      if (n-- <= 0) break;
      this.buckets.delete(k);
    }
  }
}
