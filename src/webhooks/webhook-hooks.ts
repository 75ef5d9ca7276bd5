/**
 * The hooks that turn what happens on the gateway into webhook events (PROTOCOL-1.1 section 13), with
 * each event's `data`. `channel.occupied` / `vacated` are decided cluster-wide by the occupancy store from
 * this node's first-in / last-out (`onChannelLocal`), so exactly one node emits each.
 */
import type { GatewayHooks } from '../hooks.ts';
import type { Logger } from '../log.ts';
import type { ChannelOccupancy } from './occupancy.ts';
import type { WebhookEventType } from './events.ts';

export interface WebhookSink {
  emit(orgId: string, type: WebhookEventType, data: Record<string, unknown>): void;
}

/** The organization's part of a channel key `<org>/<channel>` (undefined for the shared `_`). */
function splitKey(key: string): [string, string] | undefined {
  const i = key.indexOf('/');
  if (i <= 0) return undefined;
  const org = key.slice(0, i);
  return org === '_' ? undefined : [org, key.slice(i + 1)];
}

/** Emits `channel.occupied` / `channel.vacated` for a cluster-wide change of a channel key. */
export function occupancyEvents(sink: WebhookSink): (key: string, occupied: boolean) => void {
  return (key, occupied) => {
    const parts = splitKey(key);
    if (parts) sink.emit(parts[0], occupied ? 'channel.occupied' : 'channel.vacated', { channel: parts[1] });
  };
}

export function webhookHooks(
  sink: WebhookSink,
  occupancy: ChannelOccupancy,
  nodeId: string,
  log: Logger,
): GatewayHooks {
  const emitOccupancy = occupancyEvents(sink);
  return {
    onConnect: ({ connection: c, resumed }) =>
      sink.emit(c.principal.orgId, 'connection.opened', {
        connectionId: c.connectionId,
        sessionId: c.sessionId,
        userId: c.principal.userId,
        clientType: c.clientType,
        resumed,
        nodeId,
      }),
    onDisconnect: ({ connection: c, code, reason }) => {
      // A connection that never completed `connect` was never opened.
      if (c.sessionId === '') return;
      sink.emit(c.principal.orgId, 'connection.closed', {
        connectionId: c.connectionId,
        sessionId: c.sessionId,
        userId: c.principal.userId,
        code,
        reason,
      });
    },
    onSubscribe: ({ connection: c, channel, granted }) => {
      if (!granted) return;
      sink.emit(c.principal.orgId, 'subscription.added', {
        connectionId: c.connectionId,
        sessionId: c.sessionId,
        userId: c.principal.userId,
        channel,
      });
    },
    onUnsubscribe: ({ connection: c, channel, reason }) =>
      sink.emit(c.principal.orgId, 'subscription.removed', {
        connectionId: c.connectionId,
        sessionId: c.sessionId,
        userId: c.principal.userId,
        channel,
        reason,
      }),
    onPresence: ({ orgId, channel, userId, clientId, connectionId, joined }) =>
      sink.emit(orgId, joined ? 'presence.join' : 'presence.leave', {
        channel,
        userId,
        clientId,
        connectionId,
      }),
    onStreamEnded: ({ orgId, ...data }) => sink.emit(orgId, 'stream.ended', data),
    onDeadLetter: ({ orgId, channel, eventId, sessionId, attempts }) =>
      sink.emit(orgId, 'message.failed', { channel, eventId, sessionId, attempts }),
    onChannelLocal: ({ key, occupied }) => {
      if (!splitKey(key)) return;
      occupancy.change(key, nodeId, occupied).then(
        (changed) => {
          if (changed) emitOccupancy(key, occupied);
        },
        (err: unknown) => log.warn({ err, key }, 'channel occupancy not recorded'),
      );
    },
  };
}
