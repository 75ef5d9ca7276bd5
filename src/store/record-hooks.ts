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

interface TrackedConnection {
  /** The connection's record: its organization, user and session id. */
  readonly ref: ConnectionRef;
  readonly channels: Map<string, ChannelType>;
  /** The last heartbeat handed to the connection records. */
  heartbeatAt: number;
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
    if (t.channels.has(name)) return false;
    const resolved = type ?? channelTypeOf(name);
    if (!resolved) return false;
    t.channels.set(name, resolved);
    channels.adjustSubscribers(t.ref.orgId, name, resolved, +1);
    return true;
  };

  return {
    onConnect({ connection }) {
      connections.connected(connection);
      organizations.noteSeen(connection.principal.orgId);
      const t: TrackedConnection = {
        ref: refOf(connection),
        channels: new Map(),
        heartbeatAt: connection.connectedAt,
      };
      tracked.set(connection.connectionId, t);
      for (const name of connection.channels) add(t, name, undefined);
    },
    onHeartbeat({ connectionId, at }) {
      // Only connections this node saw connect: the record's key (organization, user) comes from there.
      const t = tracked.get(connectionId);
      if (!t || at - t.heartbeatAt < HEARTBEAT_RECORD_INTERVAL_MS) return;
      t.heartbeatAt = at;
      connections.heartbeat(t.ref, connectionId, at);
    },
    onSubscribe({ connection, channel, channelType, granted }) {
      const t = tracked.get(connection.connectionId);
      if (!granted || !t) return;
      if (add(t, channel, channelType))
        connections.channelsChanged(t.ref, connection.connectionId, [...t.channels.keys()]);
    },
    onUnsubscribe({ connection, channel }) {
      const t = tracked.get(connection.connectionId);
      const type = t?.channels.get(channel);
      if (!t || !type) return;
      t.channels.delete(channel);
      channels.adjustSubscribers(t.ref.orgId, channel, type, -1);
      connections.channelsChanged(t.ref, connection.connectionId, [...t.channels.keys()]);
    },
    onDisconnect({ connection, status }) {
      const t = tracked.get(connection.connectionId);
      if (t) {
        for (const [name, type] of t.channels) channels.adjustSubscribers(t.ref.orgId, name, type, -1);
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
