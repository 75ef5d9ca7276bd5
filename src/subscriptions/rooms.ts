/**
 * Presence in `room:` channels: a connection subscribed to a room is a member of it, joined in the
 * presence store (refreshed by this node, so a dead node's members expire) and announced with live-only
 * `presence.join` / `presence.leave` events on the room channel.
 */
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Broker } from '../broker/broker.ts';
import type { Presence, PresenceMember } from '../presence/presence.ts';
import { encodePresence } from '../gateway/frames.ts';
import { Phase } from '../connections/session.ts';
import type { Connection } from '../connections/session.ts';
import type { Session, Subscription } from '../connections/session.ts';
import type { HookBus } from '../hooks.ts';

export interface RoomsDeps {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly broker: Broker;
  readonly presence: Presence;
  /** The sessions held by this node (a member's session must still be one of them). */
  readonly sessions: ReadonlyMap<string, Session>;
  /** Told of every join and leave (`onPresence`: webhooks). */
  readonly hooks?: HookBus;
}

export class Rooms {
  constructor(private readonly deps: RoomsDeps) {}

  /**
   * A connection subscribed to a room is a member of it: joined in the presence store (refreshed by
   * this node, so a dead node's members expire) and announced with a `presence.join` event on the room
   * channel. Returns the room's members.
   */
  async join(conn: Connection, sub: Subscription): Promise<PresenceMember[] | undefined> {
    if (sub.presenceConnectionId === conn.id) return undefined;
    // Only for a connection still holding its session: one that left already would never leave the room.
    if (!this.holds(conn, sub, false)) return undefined;
    const member: PresenceMember = {
      connectionId: conn.id,
      clientId: sub.session.sessionId,
      userId: sub.session.userId,
      nodeId: this.deps.nodeId,
      info: { clientType: sub.session.clientType },
    };
    sub.presenceConnectionId = conn.id;
    try {
      await this.deps.presence.join(sub.key, member);
      if (!this.holds(conn, sub, true)) {
        // Left (disconnected, unsubscribed, taken over) while joining: the leave ran first, or never will,
        // so undo the join, or the member would stay in the room (refreshed by this node) forever.
        if (sub.presenceConnectionId === conn.id) sub.presenceConnectionId = undefined;
        await this.deps.presence.leave(sub.key, conn.id);
        return undefined;
      }
      this.publish(sub, 'presence.join', member);
      return await this.deps.presence.list(sub.key);
    } catch (err) {
      this.deps.log.warn({ err }, 'presence join failed');
      return undefined;
    }
  }

  /** Whether `conn` is still the live connection of the subscription's session (and, `joined`, its member). */
  private holds(conn: Connection, sub: Subscription, joined: boolean): boolean {
    return (
      (!joined || sub.presenceConnectionId === conn.id) &&
      conn.phase !== Phase.CLOSED &&
      sub.session.connection === conn &&
      sub.session.subscriptions.get(sub.key) === sub &&
      this.deps.sessions.get(sub.session.key) === sub.session
    );
  }

  leave(sub: Subscription): void {
    const connectionId = sub.presenceConnectionId;
    if (connectionId === undefined) return;
    sub.presenceConnectionId = undefined;
    this.deps.presence.leave(sub.key, connectionId).catch(() => {});
    this.publish(sub, 'presence.leave', {
      connectionId,
      clientId: sub.session.sessionId,
      userId: sub.session.userId,
      nodeId: this.deps.nodeId,
    });
  }

  private publish(sub: Subscription, type: 'presence.join' | 'presence.leave', member: PresenceMember): void {
    const timestamp = this.deps.clock.now();
    if (this.deps.hooks?.has('onPresence'))
      this.deps.hooks.emit('onPresence', {
        orgId: sub.session.orgId,
        channel: sub.name,
        userId: member.userId,
        clientId: member.clientId,
        connectionId: member.connectionId,
        joined: type === 'presence.join',
      });
    const payload = JSON.stringify({
      userId: member.userId,
      clientId: member.clientId,
      connectionId: member.connectionId,
      ...(member.info ? { info: member.info } : {}),
    });
    // Live only: never in history (a room's churn must not push its events out), no id, no replay.
    this.deps.broker
      .publishLive({
        key: sub.key,
        type,
        timestamp,
        frame: encodePresence(type, sub.name, payload, timestamp),
      })
      .catch((err) => this.deps.log.warn({ err }, 'presence event failed'));
  }

  /** The live members of a room channel (for the HTTP API). */
  members(key: string): Promise<PresenceMember[]> {
    return this.deps.presence.list(key);
  }
}
