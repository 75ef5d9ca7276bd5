/**
 * Sessions in Redis: one JSON snapshot per session, stored with PX so that Redis forgets it when the
 * session expires (`expiresAt`). A snapshot already past its expiry is deleted instead of written.
 *
 * Per user, an index of the sessions that receive their own `user:` channel (`usersessions:{<org>/<user>}`,
 * kept by src/redis/scripts/session-index-1.lua), so that a node can answer a publish to `user:<id>` with
 * `message.queued` when the target's sessions are all away, on whichever nodes they wait.
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import type { RedisClient } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type { PrivateChannelState, SessionSnapshot, SessionStore } from './session-store.ts';
import { receivesPrivateChannel } from './session-store.ts';

export class RedisSessionStore implements SessionStore {
  readonly outlivesNode = true;
  constructor(
    private readonly client: RedisClient,
    private readonly keys: RedisKeys,
    private readonly clock: Clock = systemClock,
  ) {}

  async save(snapshot: SessionSnapshot): Promise<void> {
    const key = this.keys.session(snapshot.sessionId);
    const now = this.clock.now();
    const ttl = Math.ceil(snapshot.expiresAt - now);
    const indexed = ttl > 0 && receivesPrivateChannel(snapshot);
    if (ttl <= 0) await this.client.del(key);
    else await this.client.set(key, JSON.stringify(snapshot), 'PX', ttl);
    await runScript(
      this.client,
      'session-index',
      [this.keys.userSessions(snapshot.orgId, snapshot.userId)],
      [
        snapshot.sessionId,
        indexed ? `${snapshot.live ? 1 : 0}:${snapshot.expiresAt}` : '',
        now,
        Math.max(1, ttl),
      ],
    );
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
        ...(x.attachedAt !== undefined && x.attachedAt !== null ? { attachedAt: x.attachedAt } : {}),
      })),
    };
  }

  async delete(sessionId: string): Promise<void> {
    // The user's index keeps the entry until its deadline: readers skip sessions whose snapshot is gone.
    await this.client.del(this.keys.session(sessionId));
  }

  async privateChannelState(orgId: string, userId: string): Promise<PrivateChannelState> {
    const entries = await this.client.hgetall(this.keys.userSessions(orgId, userId));
    const now = this.clock.now();
    const candidates: Array<{ sessionId: string; live: boolean }> = [];
    for (const [sessionId, value] of Object.entries(entries)) {
      const [live, deadline] = value.split(':');
      if (Number(deadline) > now) candidates.push({ sessionId, live: live === '1' });
    }
    if (candidates.length === 0) return 'none';
    // A session ended (deleted) without touching the index: its snapshot is gone.
    const exists = await Promise.all(
      candidates.map((c) => this.client.exists(this.keys.session(c.sessionId))),
    );
    let state: PrivateChannelState = 'none';
    for (const [i, c] of candidates.entries()) {
      if (exists[i] !== 1) continue;
      if (c.live) return 'live';
      state = 'away';
    }
    return state;
  }
}
