/**
 * Offline queues in Redis: one list per session (oldest first) and an overflow counter beside it, both
 * expiring with the session TTL. Push and drain are Lua scripts (queue-push-2, queue-drain-2), so a frame
 * pushed while another node drains is either in the drained batch or left for the next drain, never lost
 * or doubled.
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { DrainResult, OfflineQueue, QueuedFrame } from './queue.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export interface RedisOfflineQueueOptions {
  /** Frames kept per session; a push beyond drops the oldest and counts it. */
  readonly maxPerSession: number;
  /** The session TTL: a queue nobody drains expires this long after its last push. */
  readonly ttlMs: number;
  readonly clock?: Clock;
}

export class RedisOfflineQueue implements OfflineQueue {
  /** Queues this node pushed to, with their last known length: the `totalSize()` gauge (see there). */
  private readonly known = new Map<string, { n: number; expiresAt: number }>();
  private readonly clock: Clock;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly options: RedisOfflineQueueOptions,
  ) {
    if (!(options.maxPerSession >= 1))
      throw new InternalError('APIX_ERR_INVALID_ARGUMENT', 'maxPerSession must be at least 1');
    this.clock = options.clock ?? systemClock;
  }

  async push(sessionId: string, item: QueuedFrame): Promise<boolean> {
    const [n, dropped] = (await runScript(
      this.client,
      'queue-push',
      [this.keys.queue(sessionId), this.keys.queueOverflow(sessionId)],
      [encode(item), this.options.maxPerSession, Math.max(1, Math.ceil(this.options.ttlMs))],
    )) as [number, number];
    this.known.set(sessionId, { n, expiresAt: this.clock.now() + this.options.ttlMs });
    return dropped === 0;
  }

  async drain(sessionId: string): Promise<DrainResult> {
    const [items, overflowed] = (await runScript(
      this.client,
      'queue-drain',
      [this.keys.queue(sessionId), this.keys.queueOverflow(sessionId)],
      [],
    )) as [string[], number];
    this.known.delete(sessionId);
    return { frames: items.map(decode), overflowed };
  }

  async size(sessionId: string): Promise<number> {
    return this.client.llen(this.keys.queue(sessionId));
  }

  async clear(sessionId: string): Promise<void> {
    await this.client.del(this.keys.queue(sessionId), this.keys.queueOverflow(sessionId));
    this.known.delete(sessionId);
  }

  /**
   * Frames held for the sessions this node pushed to, as last seen by this node (a per-node gauge: the
   * cluster-wide total is the sum over nodes, approximately, since another node may have drained since).
   */
  totalSize(): number {
    const now = this.clock.now();
    let total = 0;
    for (const [sid, q] of this.known) {
      if (q.expiresAt <= now) this.known.delete(sid);
      else total += q.n;
    }
    return total;
  }
}

// The whole item as JSON (QueuedFrame is plain data), so fields added to it later need no change here.
function encode(item: QueuedFrame): string {
  return JSON.stringify(item);
}

function decode(text: string): QueuedFrame {
  return JSON.parse(text) as QueuedFrame;
}
