/**
 * Presence in Redis: per room, a hash connectionId -> JSON member and a zset connectionId -> deadline
 * (ms since epoch, on the nodes' clocks). `list` first drops the entries whose deadline passed (Lua:
 * presence-list-2), so the members of a dead node vanish within the TTL. Both keys expire when nobody
 * refreshes the room, so abandoned rooms do not accumulate.
 */
import type { Clock, TimerHandle } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { Presence, PresenceMember, PresenceOptions } from './presence.ts';
import { DEFAULT_PRESENCE_TTL_MS } from './presence.ts';

export interface RedisPresenceOptions extends PresenceOptions {
  readonly clock?: Clock;
}

export class RedisPresence implements Presence {
  readonly name = 'redis';
  private readonly local = new Map<string, Map<string, PresenceMember>>();
  private readonly ttlMs: number;
  private readonly clock: Clock;
  private timer: TimerHandle | undefined;

  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    options: RedisPresenceOptions = {},
  ) {
    this.ttlMs = options.ttlMs ?? DEFAULT_PRESENCE_TTL_MS;
    this.clock = options.clock ?? systemClock;
    const every = options.refreshIntervalMs ?? Math.floor(this.ttlMs / 3);
    // A failed refresh is retried by the next tick; members survive two misses (ttl / 3 period).
    if (every > 0) this.timer = this.clock.setInterval(() => void this.refresh().catch(() => {}), every);
  }

  async join(roomKey: string, member: PresenceMember): Promise<void> {
    let room = this.local.get(roomKey);
    if (!room) this.local.set(roomKey, (room = new Map()));
    room.set(member.connectionId, member);
    await this.write(roomKey, [member]);
  }

  async leave(roomKey: string, connectionId: string): Promise<void> {
    const room = this.local.get(roomKey);
    if (room?.delete(connectionId) && room.size === 0) this.local.delete(roomKey);
    await this.client
      .multi()
      .hdel(this.keys.presenceMembers(roomKey), connectionId)
      .zrem(this.keys.presenceDeadlines(roomKey), connectionId)
      .exec();
  }

  async list(roomKey: string): Promise<PresenceMember[]> {
    const values = (await runScript(
      this.client,
      'presence-list',
      [this.keys.presenceMembers(roomKey), this.keys.presenceDeadlines(roomKey)],
      [this.clock.now()],
    )) as string[];
    return values.map((v) => JSON.parse(v) as PresenceMember);
  }

  async refresh(): Promise<void> {
    await Promise.all([...this.local].map(([roomKey, room]) => this.write(roomKey, [...room.values()])));
  }

  async close(): Promise<void> {
    this.timer?.cancel();
    this.timer = undefined;
    this.local.clear();
  }

  private async write(roomKey: string, members: readonly PresenceMember[]): Promise<void> {
    if (members.length === 0) return;
    const args: (string | number)[] = [this.clock.now() + this.ttlMs, this.ttlMs * 2];
    for (const m of members) args.push(m.connectionId, JSON.stringify(m));
    await runScript(
      this.client,
      'presence-join',
      [this.keys.presenceMembers(roomKey), this.keys.presenceDeadlines(roomKey)],
      args,
    );
  }
}
