/**
 * Where the state of shared rate limits lives (docs/protocol.md §8, `RATE_LIMITED`): token buckets keyed by
 * what they limit (a channel, an organization, a remote address). The memory store serves one node (or
 * the nodes of one process); the Redis store shares each bucket between every node of a deployment, so a
 * client cannot multiply its limit by spreading over nodes.
 *
 * Per-connection buckets (inbound frames, publishes per connection) never come here: they are plain
 * `TokenBucket`s on the connection, on the node that holds it.
 */

/** A token bucket's shape: `perSec` tokens per second, at most `burst` at once. `perSec: 0` = no limit. */
export interface RateLimit {
  readonly perSec: number;
  readonly burst: number;
}

export interface TakeResult {
  readonly allowed: boolean;
  /** When refused: milliseconds until the tokens asked for should be there (0 when allowed). */
  readonly retryAfterMs: number;
}

export const ALLOWED: TakeResult = Object.freeze({ allowed: true, retryAfterMs: 0 });

/**
 * Shared token buckets.
 *
 * Guarantees: a bucket starts full (`burst` tokens) and refills continuously at `perSec`, up to `burst`.
 * `take` either takes all `n` tokens or none. Across every user of the same backend, the tokens granted
 * from one bucket over any interval of T ms are at most what the bucket handed out: `burst + perSec·T/1000`,
 * plus, for a store that leases tokens to nodes ahead of use (the Redis store), `perSec·leaseTtlMs/1000`
 * for the lease window (see redis-rate-limit.ts). A bucket left alone until full is the same as one never
 * used, so stores may forget it. `n` must not exceed `burst`. A limit with `perSec <= 0` always allows.
 * Callers use one `RateLimit` per key (the limit is part of the key's meaning, not stored with it).
 */
export interface RateLimitStore {
  readonly name: string;
  take(key: string, limit: RateLimit, n?: number): Promise<TakeResult>;
  close(): Promise<void>;
}
