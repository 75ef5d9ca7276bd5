/**
 * The shared rate limits of a node (docs/protocol.md §8, `RATE_LIMITED`): publishes per channel and per
 * organization, subscribes per organization, connection attempts per remote address. Their buckets live
 * in a RateLimitStore (memory, or Redis shared by every node). Per-connection limits (inbound frames,
 * publishes per connection) are TokenBuckets on the connection; see the gateway.
 *
 * `onRateLimited` is emitted once per burst of refusals of a bucket: on its first refusal, and again only
 * after a request has passed it. If the store fails (Redis unreachable), requests pass: a rate limit
 * protects the service, it must not take it down.
 */
import { ApiXError } from '@apix/protocol';
import type { HookBus } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import { TokenBucket } from './token-bucket.ts';
import { publisherScopeKey } from '../tenancy/scope-keys.ts';
import type { RateLimit, RateLimitStore, TakeResult } from './rate-limit-store.ts';

/** What a refusal limited, as reported by `onRateLimited`. */
export type RateLimitScope = 'connection' | 'publish' | 'channel' | 'org' | 'address' | 'rpc';

export interface RateLimits {
  /** Inbound frames per connection (local). */
  readonly connection: RateLimit;
  /** Publishes per connection (local). */
  readonly publish: RateLimit;
  /** RPC calls per connection (local). */
  readonly rpc: RateLimit;
  /** Publishes into one channel of an organization, by every publisher (shared); on a shared `system:`
   * channel, by every publisher of one organization. */
  readonly channel: RateLimit;
  /** Publishes of one organization (shared). */
  readonly orgPublish: RateLimit;
  /** Subscribes of one organization, one token per channel (shared). */
  readonly orgSubscribe: RateLimit;
  /** WebSocket connection attempts from one remote address (shared). */
  readonly address: RateLimit;
}

/** A refusal: `RATE_LIMITED` with `retryAfterMs`, and what limited it. */
export class RateLimitedError extends ApiXError {
  constructor(
    readonly scope: RateLimitScope,
    message: string,
    retryAfterMs: number,
  ) {
    super('RATE_LIMITED', message, { retryAfterMs });
  }
}

/** A bucket for a per-connection limit; `perSec: 0` gives one that never refuses. */
export function localBucket(limit: RateLimit, now: number): TokenBucket {
  return limit.perSec > 0
    ? new TokenBucket(limit.perSec, limit.burst, now)
    : new TokenBucket(Infinity, Infinity, now);
}

/** Buckets in a burst of refusals kept at most (for once-per-burst hooks); beyond it they are forgotten. */
const MAX_LIMITED = 10_000;

export class RateLimiter {
  /** Shared buckets in a burst of refusals. */
  private readonly limited = new Set<string>();

  constructor(
    readonly store: RateLimitStore,
    readonly limits: RateLimits,
    private readonly hooks: HookBus,
    private readonly onStoreError: (err: unknown) => void = () => {},
  ) {}

  /** A publish of `principal` into the channel with engine key `channelKey` (`<org>/<name>`). */
  async checkPublish(principal: Principal, peer: Peer, channelKey: string): Promise<void> {
    // Per publisher scope: on a shared channel (`system:`), each organization has its own bucket.
    const bucket = `ch:${publisherScopeKey(principal, channelKey)}`;
    const ch = await this.take(bucket, this.limits.channel);
    if (!ch.allowed) {
      this.refused('channel', bucket, principal, peer);
      throw new RateLimitedError(
        'channel',
        `too many publishes to ${channelKey.slice(channelKey.indexOf('/') + 1)}; retry after ${ch.retryAfterMs} ms`,
        ch.retryAfterMs,
      );
    }
    this.passed(bucket);
    const org = await this.take(`org:pub:${principal.orgId}`, this.limits.orgPublish);
    if (!org.allowed) {
      this.refused('org', `org:pub:${principal.orgId}`, principal, peer);
      throw new RateLimitedError(
        'org',
        `too many publishes in the organization; retry after ${org.retryAfterMs} ms`,
        org.retryAfterMs,
      );
    }
    this.passed(`org:pub:${principal.orgId}`);
  }

  /** One subscribe (one channel) of `principal`; a refusal is returned, not thrown. */
  async checkSubscribe(principal: Principal, peer: Peer): Promise<RateLimitedError | undefined> {
    const key = `org:sub:${principal.orgId}`;
    const r = await this.take(key, this.limits.orgSubscribe);
    if (r.allowed) {
      this.passed(key);
      return undefined;
    }
    this.refused('org', key, principal, peer);
    return new RateLimitedError(
      'org',
      `too many subscribes in the organization; retry after ${r.retryAfterMs} ms`,
      r.retryAfterMs,
    );
  }

  /** Whether connection attempts are limited per address at all. */
  get limitsAddresses(): boolean {
    return this.limits.address.perSec > 0;
  }

  /** A WebSocket connection attempt from `peer.remoteAddress`. */
  async checkAddress(peer: Peer): Promise<TakeResult> {
    const key = `addr:${peer.remoteAddress ?? 'unknown'}`;
    const r = await this.take(key, this.limits.address);
    if (r.allowed) this.passed(key);
    else this.refused('address', key, undefined, peer);
    return r;
  }

  private async take(key: string, limit: RateLimit): Promise<TakeResult> {
    if (!(limit.perSec > 0)) return { allowed: true, retryAfterMs: 0 };
    try {
      return await this.store.take(key, limit);
    } catch (err) {
      this.onStoreError(err);
      return { allowed: true, retryAfterMs: 0 };
    }
  }

  private refused(scope: RateLimitScope, key: string, principal: Principal | undefined, peer: Peer): void {
    if (this.limited.has(key)) return;
    if (this.limited.size >= MAX_LIMITED) this.limited.clear();
    this.limited.add(key);
    this.hooks.emit('onRateLimited', { principal, peer, scope });
  }

  private passed(key: string): void {
    if (this.limited.size > 0) this.limited.delete(key);
  }
}
