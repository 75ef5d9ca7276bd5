/**
 * Writes the durable records from the gateway's hooks. Every handler is synchronous and only updates an
 * in-memory buffer of the repositories; their flush loop does the I/O. Subscriber counts are derived from
 * what this node saw per connection (subscribe, unsubscribe, disconnect), so they stay right whatever
 * order or repetition the gateway emits those hooks in. Dead letters are not taken from `onDeadLetter`:
 * PrismaDeadLetterStore, given to the node as its DeadLetterStore, writes them with their payload.
 */
import type { ConnectionInfo, GatewayHooks, HookBus } from '../hooks.ts';
import type { ChannelType } from '@apix/protocol';
import { ConnectionStatus, parseChannel } from '@apix/protocol';
import type { RecordRepositories } from './records.ts';
import type { ConnectionRef } from './connection-records.ts';

/**
 * What this node keeps per connection it saw connect. Kept small (it is held for every connection's
 * whole life): the record's key (organization, user, session id), its channels (one, the common case,
 * without a Map of its own) and the last heartbeat handed on.
 */
class TrackedConnection implements ConnectionRef {
  /** The first channel and its type; further ones in `more`. */
  private firstName: string | undefined;
  private firstType: ChannelType | undefined;
  private more: Map<string, ChannelType> | undefined;

  constructor(
    readonly orgId: string,
    readonly userId: string,
    readonly sessionId: string,
    /** The last heartbeat handed to the connection records. */
    public heartbeatAt: number,
  ) {}

  typeOf(name: string): ChannelType | undefined {
    return name === this.firstName ? this.firstType : this.more?.get(name);
  }

  set(name: string, type: ChannelType): void {
    if (this.firstName === undefined || this.firstName === name) {
      this.firstName = name;
      this.firstType = type;
    } else (this.more ??= new Map()).set(name, type);
  }

  delete(name: string): void {
    if (name !== this.firstName) {
      this.more?.delete(name);
      return;
    }
    // The oldest of the others takes the first place, so the order stays the order of subscribing.
    const next = this.more?.entries().next();
    if (next && !next.done) {
      [this.firstName, this.firstType] = next.value;
      this.more!.delete(next.value[0]);
    } else this.firstName = this.firstType = undefined;
  }

  /** The channels with their types, in the order they were subscribed. */
  *entries(): IterableIterator<[string, ChannelType]> {
    if (this.firstName !== undefined) yield [this.firstName, this.firstType!];
    if (this.more) yield* this.more;
  }

  names(): string[] {
    return [...this.entries()].map(([name]) => name);
  }
}

/**
 * `lastHeartbeat` is written at most this often per connection: it tells a live connection from a
 * stale one, which a minute resolves; writing every ping of 100,000 connections (one per 25 s each)
 * would be 4,000 row updates a second for nothing. Disconnects and status changes are written at once.
 */
export const HEARTBEAT_RECORD_INTERVAL_MS = 60_000;

/** Attaches the record writers to the bus; returns a function that detaches them. */
export function attachRecordHooks(bus: HookBus, repos: RecordRepositories): () => void {
  return bus.attach(recordHooks(repos));
}

/** The record writers as hook handlers (for `NodeOptions.hooks`); one set per node. */
export function recordHooks(repos: RecordRepositories): GatewayHooks {
  const { connections, channels, organizations, clock } = repos;
  const tracked = new Map<string, TrackedConnection>();

  const add = (t: TrackedConnection, name: string, type: ChannelType | undefined): boolean => {
    if (t.typeOf(name) !== undefined) return false;
    const resolved = type ?? channelTypeOf(name);
    if (!resolved) return false;
    t.set(name, resolved);
    channels.adjustSubscribers(t.orgId, name, resolved, +1);
    return true;
  };

  return {
    onConnect({ connection }) {
      connections.connected(connection);
      organizations.noteSeen(connection.principal.orgId);
      const t = new TrackedConnection(
        connection.principal.orgId,
        connection.principal.userId,
        connection.sessionId,
        connection.connectedAt,
      );
      tracked.set(connection.connectionId, t);
      for (const name of connection.channels) add(t, name, undefined);
    },
    onHeartbeat({ connectionId, at }) {
      // Only connections this node saw connect: the record's key (organization, user) comes from there.
      const t = tracked.get(connectionId);
      if (!t || at - t.heartbeatAt < HEARTBEAT_RECORD_INTERVAL_MS) return;
      t.heartbeatAt = at;
      connections.heartbeat(t, connectionId, at);
    },
    onSubscribe({ connection, channel, channelType, granted }) {
      const t = tracked.get(connection.connectionId);
      if (!granted || !t) return;
      if (add(t, channel, channelType)) connections.channelsChanged(t, connection.connectionId, t.names());
    },
    onUnsubscribe({ connection, channel }) {
      const t = tracked.get(connection.connectionId);
      const type = t?.typeOf(channel);
      if (!t || !type) return;
      t.delete(channel);
      channels.adjustSubscribers(t.orgId, channel, type, -1);
      connections.channelsChanged(t, connection.connectionId, t.names());
    },
    onDisconnect({ connection, status }) {
      const t = tracked.get(connection.connectionId);
      if (t) {
        for (const [name, type] of t.entries()) channels.adjustSubscribers(t.orgId, name, type, -1);
        tracked.delete(connection.connectionId);
      }
      connections.statusChanged(refOf(connection), connection.connectionId, status, clock.now());
    },
    onSessionEnd({ orgId, userId, sessionId, status }) {
      connections.statusChanged({ orgId, userId, sessionId }, undefined, status, clock.now());
    },
    onSuspend({ orgId, userId, sessionId, suspended }) {
      // A session's suspension marks its record (a user's or key's has no one session to mark).
      if (suspended && sessionId && userId !== undefined)
        connections.statusChanged(
          { orgId, userId, sessionId },
          undefined,
          ConnectionStatus.SUSPENDED,
          clock.now(),
        );
    },
  };
}

function refOf(connection: ConnectionInfo): ConnectionRef {
  return {
    orgId: connection.principal.orgId,
    userId: connection.principal.userId,
    sessionId: connection.sessionId,
  };
}

function channelTypeOf(name: string): ChannelType | undefined {
  const parsed = parseChannel(name);
  return parsed.ok ? parsed.channel.type : undefined;
}
