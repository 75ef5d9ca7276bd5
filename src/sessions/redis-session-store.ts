/**
 * Sessions in Redis: one JSON snapshot per session, stored with PX so that Redis forgets it when the
 * session expires (`expiresAt`). A snapshot already past its expiry is deleted instead of written.
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import type { SessionSnapshot, SessionStore } from './session-store.ts';

export class RedisSessionStore implements SessionStore {
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly clock: Clock = systemClock,
  ) {}

  async save(snapshot: SessionSnapshot): Promise<void> {
    const key = this.keys.session(snapshot.sessionId);
    const ttl = Math.ceil(snapshot.expiresAt - this.clock.now());
    if (ttl <= 0) {
      await this.client.del(key);
      return;
    }
    await this.client.set(key, JSON.stringify(snapshot), 'PX', ttl);
  }

  async load(sessionId: string): Promise<SessionSnapshot | undefined> {
    const text = await this.client.get(this.keys.session(sessionId));
    if (text === null) return undefined;
    const s = JSON.parse(text) as SessionSnapshot;
    // Redis expiry runs on Redis's clock; the snapshot's own deadline is authoritative (and testable).
    if (s.expiresAt <= this.clock.now()) return undefined;
    // JSON drops undefined fields; give them back so a loaded snapshot has the shape that was saved.
    return {
      ...s,
      subscriptions: s.subscriptions.map((x) => ({
        channel: x.channel,
        ack: x.ack,
        filters: x.filters ?? undefined,
        lastId: x.lastId ?? undefined,
      })),
    };
  }

  async delete(sessionId: string): Promise<void> {
    await this.client.del(this.keys.session(sessionId));
  }
}
