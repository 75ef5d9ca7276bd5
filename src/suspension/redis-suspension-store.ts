/**
 * Suspensions in Redis: `susp:{<org>/<user>}:user` and `susp:{<org>/<user>}:s:<sessionId>` (value: the
 * reason), each with PX until the suspension lapses. Both keys of a user share a hash tag, so a check is one
 * MGET (one slot in a cluster); it gives up after `timeoutMs`, and the caller decides what a failed check
 * means (the gateway lets the connection in unless this node heard of a suspension, and logs it).
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import { withTimeout } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import type { FoundSuspension, Suspension, SuspensionStore, SuspensionTarget } from './suspension-store.ts';

export interface RedisSuspensionOptions {
  readonly clock?: Clock;
  /** How long a check may take. Default 500 ms. */
  readonly timeoutMs?: number;
}

export class RedisSuspensionStore implements SuspensionStore {
  private readonly clock: Clock;
  private readonly timeoutMs: number;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    options: RedisSuspensionOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
    this.timeoutMs = options.timeoutMs ?? 500;
  }

  private key(t: SuspensionTarget): string {
    return this.keys.suspension(t.orgId, t.userId, t.sessionId);
  }

  async suspend(s: Suspension): Promise<void> {
    const ttl = Math.ceil(s.expiresAt - this.clock.now());
    if (ttl <= 0) return;
    await this.client.set(this.key(s), s.reason, 'PX', ttl);
  }

  async lift(t: SuspensionTarget): Promise<void> {
    await this.client.del(this.key(t));
  }

  async find(orgId: string, userId: string, sessionId: string): Promise<FoundSuspension | undefined> {
    const [user, session] = await withTimeout(
      this.client.mget(this.key({ orgId, userId }), this.key({ orgId, userId, sessionId })),
      this.timeoutMs,
    );
    if (typeof user === 'string') return { scope: 'user', reason: user };
    if (typeof session === 'string') return { scope: 'session', reason: session };
    return undefined;
  }
}
