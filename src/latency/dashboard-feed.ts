/**
 * The live feed of the admin dashboard, over the gateway's own WebSocket: once a second, for every
 * organization with a subscriber to `org:apix-dashboard` on this node, the node publishes that
 * organization's admin stats (type `apix.stats`) to the channel. Nothing is built or published for an
 * organization nobody watches.
 *
 * The channel is reserved: whatever the channel registry says, only role `admin` may subscribe or read
 * its history, and only services publish (ReservedChannelRegistry). Events go straight to the broker, not
 * through the EventRouter: they are the node's telemetry, not traffic, and must not show up in the audit
 * trail, the publish metrics, or the very figures they carry. Their history is kept short (the
 * dashboard replays the last two minutes to draw its charts at once).
 */
import { channelKey, parseChannel } from '@apix/protocol';
import type { ParsedChannel } from '@apix/protocol';
import type { Broker, HistoryOptions } from '../broker/broker.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { GatewayHooks } from '../hooks.ts';
import { encodeChannelEvent } from '../gateway/frames.ts';
import type { ChannelSettings } from '../subscriptions/channel-registry.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export const DASHBOARD_CHANNEL = 'org:apix-dashboard';
export const DASHBOARD_EVENT_TYPE = 'apix.stats';

const parsed = parseChannel(DASHBOARD_CHANNEL);
if (!parsed.ok) throw new InternalError('APIX_ERR_INVALID_ARGUMENT', parsed.reason);
const DASHBOARD_PARSED: ParsedChannel = parsed.channel;

export const DASHBOARD_CHANNEL_SETTINGS: ChannelSettings = {
  permissions: {
    subscribe: { roles: ['admin'] },
    history: { roles: ['admin'] },
    publish: { deny: true },
  },
};

export interface DashboardFeedDeps {
  readonly broker: Broker;
  /** The local subscribers of a channel key (ApiXGateway.hub.subscribers). */
  readonly subscribers: (key: string) => ReadonlySet<unknown> | undefined;
  readonly clock: Clock;
  readonly log: Logger;
  /** The payload for one organization. */
  readonly snapshot: (orgId: string) => unknown;
  readonly intervalMs?: number;
  readonly history?: HistoryOptions;
}

export class DashboardFeed {
  /** Organizations that had a dashboard subscriber here; pruned when the last one leaves. */
  private readonly watched = new Set<string>();
  private readonly inFlight = new Set<string>();
  private timer: TimerHandle | undefined;
  private readonly history: HistoryOptions;

  constructor(private readonly deps: DashboardFeedDeps) {
    this.history = deps.history ?? { size: 180, ttlMs: 5 * 60_000 };
  }

  hooks(): GatewayHooks {
    return {
      onSubscribe: ({ connection, channel, granted }) => {
        if (granted && channel === DASHBOARD_CHANNEL) this.watched.add(connection.principal.orgId);
      },
      onConnect: ({ connection }) => {
        if (connection.channels.includes(DASHBOARD_CHANNEL)) this.watched.add(connection.principal.orgId);
      },
    };
  }

  start(): void {
    this.timer ??= this.deps.clock.setInterval(() => this.tick(), this.deps.intervalMs ?? 1000);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = undefined;
  }

  /** Publishes one snapshot per watched organization (exposed for tests). */
  tick(): void {
    for (const orgId of this.watched) {
      const key = channelKey(orgId, DASHBOARD_PARSED);
      if ((this.deps.subscribers(key)?.size ?? 0) === 0) {
        this.watched.delete(orgId);
        continue;
      }
      if (this.inFlight.has(orgId)) continue; // a slow broker: skip a beat rather than pile up
      let payload: string;
      try {
        payload = JSON.stringify(this.deps.snapshot(orgId));
      } catch (err) {
        this.deps.log.warn({ err, orgId }, 'dashboard snapshot failed');
        continue;
      }
      const timestamp = this.deps.clock.now();
      this.inFlight.add(orgId);
      this.deps.broker
        .publish({
          key,
          type: DASHBOARD_EVENT_TYPE,
          timestamp,
          publisher: undefined,
          history: this.history,
          encode: (id) =>
            encodeChannelEvent(DASHBOARD_EVENT_TYPE, DASHBOARD_CHANNEL, id, payload, timestamp, undefined),
        })
        .catch((err: unknown) => this.deps.log.warn({ err, orgId }, 'dashboard feed publish failed'))
        .finally(() => this.inFlight.delete(orgId));
    }
  }
}
