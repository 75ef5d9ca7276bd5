/**
 * LatencyTracker: live figures of one node, attached through the gateway's hooks only (no inline calls
 * in the gateway). Node-wide: publish-to-deliver and publish-to-ack latency per channel type, heartbeat
 * round-trip times, throughput (events, deliveries, bytes per second) and rate-limit hits. Per
 * organization: the same latencies and rates, the busiest channels (a decaying top-K), and recent
 * operator-relevant activity (rate limits, denials, slow consumers, dead letters, admin actions).
 *
 * Memory is bounded whatever the traffic: histograms have fixed buckets and fixed window slots; at most
 * `maxOrganizations` organizations are tracked (the least recently active is forgotten first), at most
 * `maxConnections` per-connection RTTs (dropped on disconnect), and every recent list is a short ring.
 * Time comes from the injected clock, so windows are testable without sleeping.
 */
import type { Clock } from '../clock.ts';
import type { ChannelType, ClientType } from '@apix/protocol';
import type { GatewayHooks } from '../hooks.ts';
import type { Principal } from '../auth/principal.ts';
import { LogLinearHistogram, WindowedHistogram } from './histogram.ts';
import type { HistogramOptions, Percentiles } from './histogram.ts';
import { SlidingRate } from './sliding-rate.ts';
import { TopK } from './top-k.ts';

export interface LatencyTrackerOptions {
  readonly clock: Clock;
  /** Node-wide latency window: `windowSlots` slots of `slotMs` (default 6 x 10 s: the last minute). */
  readonly windowSlots?: number;
  readonly slotMs?: number;
  /** Seconds over which per-second rates are averaged (default 10). */
  readonly rateWindowSeconds?: number;
  /** Organizations tracked at once (default 1000). */
  readonly maxOrganizations?: number;
  /** Connections whose last RTT is kept (default 200 000). */
  readonly maxConnections?: number;
  /** Counters of the busiest-channels top-K per organization (default 32), and their half-life. */
  readonly topChannels?: number;
  readonly topChannelsHalfLifeMs?: number;
  /** Entries kept in each organization's recent-activity list (default 50). */
  readonly recentEntries?: number;
  /** Channels (names) left out of every figure: the node's own telemetry channel. */
  readonly ignoredChannels?: readonly string[];
}

export interface LatencyFigures {
  readonly publishToDeliver: Percentiles;
  readonly publishToAck: Percentiles;
  readonly heartbeatRtt: Percentiles;
}

export interface Throughput {
  readonly eventsPerSec: number;
  readonly deliveriesPerSec: number;
  readonly bytesPerSec: number;
}

export interface ActivityEntry {
  readonly at: number;
  readonly kind: 'rate_limited' | 'denied' | 'slow_consumer' | 'dead_letter' | 'admin';
  /** Who: a user id, `apikey:<id>`, or undefined when unknown (before authentication). */
  readonly actor: string | undefined;
  /** What: a scope, an admin action, a denied action. */
  readonly action: string;
  readonly target: string | undefined;
  readonly detail?: string;
}

export interface ConnectionRtt {
  readonly connectionId: string;
  readonly userId: string;
  readonly clientType: ClientType;
  readonly rttMs: number;
}

export interface NodeFigures {
  readonly windowMs: number;
  readonly rateWindowSeconds: number;
  readonly throughput: Throughput;
  readonly latency: LatencyFigures;
  readonly byChannelType: Readonly<
    Partial<Record<ChannelType, { publishToDeliver: Percentiles; publishToAck: Percentiles }>>
  >;
  readonly rateLimited: { readonly perSec: number; readonly total: number };
  readonly trackedOrganizations: number;
  readonly trackedConnections: number;
}

export interface OrganizationFigures {
  readonly windowMs: number;
  readonly throughput: Throughput;
  readonly latency: LatencyFigures;
  readonly busiestChannels: ReadonlyArray<{ readonly channel: string; readonly events: number }>;
  readonly rateLimitHits: { readonly perSec: number; readonly recent: readonly ActivityEntry[] };
  readonly recentActivity: readonly ActivityEntry[];
  /** The connections with the highest last RTT (heartbeat), slowest first. */
  readonly slowestConnections: readonly ConnectionRtt[];
}

/** Per-organization windows are coarser (2 x 30 s, 3 % precision) to keep 1000 of them small. */
const ORG_HISTOGRAM: HistogramOptions = { subBucketBits: 4 };
const ORG_SLOTS = 2;
const ORG_SLOT_MS = 30_000;

class Ring<T> {
  private readonly items: T[] = [];
  constructor(private readonly capacity: number) {}
  push(item: T): void {
    this.items.push(item);
    if (this.items.length > this.capacity) this.items.shift();
  }
  /** Newest first. */
  list(): T[] {
    return [...this.items].reverse();
  }
}

class OrganizationState {
  touchedAt: number;
  readonly events: SlidingRate;
  readonly deliveries: SlidingRate;
  readonly bytes: SlidingRate;
  readonly rateLimited: SlidingRate;
  readonly deliver = new WindowedHistogram(ORG_SLOTS, ORG_SLOT_MS, ORG_HISTOGRAM);
  readonly ack = new WindowedHistogram(ORG_SLOTS, ORG_SLOT_MS, ORG_HISTOGRAM);
  readonly rtt = new WindowedHistogram(ORG_SLOTS, ORG_SLOT_MS, ORG_HISTOGRAM);
  readonly channels: TopK;
  readonly rateLimitHits: Ring<ActivityEntry>;
  readonly activity: Ring<ActivityEntry>;

  constructor(
    now: number,
    /** The tracker's start: rates divide by the same span as the node's, so they add up. */
    startedAt: number,
    rateWindowSeconds: number,
    topK: number,
    halfLifeMs: number,
    recent: number,
  ) {
    this.touchedAt = now;
    this.events = new SlidingRate(rateWindowSeconds, startedAt);
    this.deliveries = new SlidingRate(rateWindowSeconds, startedAt);
    this.bytes = new SlidingRate(rateWindowSeconds, startedAt);
    this.rateLimited = new SlidingRate(rateWindowSeconds, startedAt);
    this.channels = new TopK(topK, halfLifeMs);
    this.rateLimitHits = new Ring(Math.min(recent, 25));
    this.activity = new Ring(recent);
  }
}

interface TrackedConnection {
  readonly orgId: string;
  readonly userId: string;
  readonly clientType: ClientType;
  rttMs: number | undefined;
}

export class LatencyTracker {
  private readonly clock: Clock;
  private readonly rateWindowSeconds: number;
  private readonly maxOrganizations: number;
  private readonly maxConnections: number;
  private readonly topChannels: number;
  private readonly halfLifeMs: number;
  private readonly recentEntries: number;
  private readonly ignored: ReadonlySet<string>;
  private readonly windowSlots: number;
  private readonly slotMs: number;
  private readonly startedAt: number;

  private readonly deliverByType = new Map<ChannelType, WindowedHistogram>();
  private readonly ackByType = new Map<ChannelType, WindowedHistogram>();
  private readonly rtt: WindowedHistogram;
  private readonly events: SlidingRate;
  private readonly deliveries: SlidingRate;
  private readonly bytes: SlidingRate;
  private readonly rateLimited: SlidingRate;
  /** Insertion order = least recently active first (re-inserted when touched). */
  private readonly organizations = new Map<string, OrganizationState>();
  private readonly connections = new Map<string, TrackedConnection>();

  constructor(options: LatencyTrackerOptions) {
    this.clock = options.clock;
    this.windowSlots = options.windowSlots ?? 6;
    this.slotMs = options.slotMs ?? 10_000;
    this.rateWindowSeconds = options.rateWindowSeconds ?? 10;
    this.maxOrganizations = options.maxOrganizations ?? 1000;
    this.maxConnections = options.maxConnections ?? 200_000;
    this.topChannels = options.topChannels ?? 32;
    this.halfLifeMs = options.topChannelsHalfLifeMs ?? 60_000;
    this.recentEntries = options.recentEntries ?? 50;
    this.ignored = new Set(options.ignoredChannels ?? []);
    const now = this.clock.now();
    this.startedAt = now;
    this.rtt = new WindowedHistogram(this.windowSlots, this.slotMs);
    this.events = new SlidingRate(this.rateWindowSeconds, now);
    this.deliveries = new SlidingRate(this.rateWindowSeconds, now);
    this.bytes = new SlidingRate(this.rateWindowSeconds, now);
    this.rateLimited = new SlidingRate(this.rateWindowSeconds, now);
  }

  /** The hook handlers; attach them with `hooks.attach(tracker.hooks())`. */
  hooks(): GatewayHooks {
    return { ...this.connectionHooks(), ...this.trafficHooks(), ...this.activityHooks() };
  }

  /** Connections and their heartbeat RTTs. */
  private connectionHooks(): Pick<GatewayHooks, 'onConnect' | 'onDisconnect' | 'onHeartbeat'> {
    return {
      onConnect: ({ connection: c }) => {
        if (this.connections.size >= this.maxConnections && !this.connections.has(c.connectionId)) {
          // Bounded: forget the oldest entry (its connection may be long-lived, but RTTs are advisory).
          this.connections.delete(this.connections.keys().next().value as string);
        }
        this.connections.set(c.connectionId, {
          orgId: c.principal.orgId,
          userId: c.principal.userId,
          clientType: c.clientType,
          rttMs: undefined,
        });
      },
      onDisconnect: ({ connection: c }) => {
        this.connections.delete(c.connectionId);
      },
      onHeartbeat: ({ connectionId, rttMs, at }) => {
        if (rttMs === undefined) return;
        this.rtt.record(rttMs, at);
        const tracked = this.connections.get(connectionId);
        if (tracked === undefined) return;
        tracked.rttMs = rttMs;
        this.organization(tracked.orgId, at).rtt.record(rttMs, at);
      },
    };
  }

  /** Publishes, deliveries and acks: rates and latencies. */
  private trafficHooks(): Pick<GatewayHooks, 'onPublish' | 'onDeliver' | 'onAck'> {
    return {
      onPublish: ({ principal, channel }) => {
        if (this.ignored.has(channel)) return;
        const now = this.clock.now();
        this.events.add(1, now);
        const org = this.organization(principal.orgId, now);
        org.events.add(1, now);
        org.channels.decayTo(now);
        org.channels.add(channel);
      },
      onDeliver: (e) => {
        if (this.ignored.has(e.channel)) return;
        const ms = e.deliveredAt - e.publishedAt;
        const bytes = e.recipients * e.bytes;
        const now = e.deliveredAt;
        this.deliveries.add(e.recipients, now);
        this.bytes.add(bytes, now);
        this.windowFor(this.deliverByType, e.channelType).record(ms, now);
        const org = this.organization(e.orgId, now);
        org.deliveries.add(e.recipients, now);
        org.bytes.add(bytes, now);
        org.deliver.record(ms, now);
      },
      onAck: (e) => {
        const ms = e.ackedAt - e.publishedAt;
        this.windowFor(this.ackByType, e.channelType).record(ms, e.ackedAt);
        this.organization(e.orgId, e.ackedAt).ack.record(ms, e.ackedAt);
      },
    };
  }

  /** The organizations' recent activity: rate-limit hits, denials, slow consumers, dead letters, admin actions. */
  private activityHooks(): Pick<
    GatewayHooks,
    'onRateLimited' | 'onDeny' | 'onSlowConsumer' | 'onDeadLetter' | 'onAdminAction'
  > {
    return {
      onRateLimited: ({ principal, peer, scope }) => {
        const now = this.clock.now();
        this.rateLimited.add(1, now);
        if (principal === undefined) return;
        const org = this.organization(principal.orgId, now);
        org.rateLimited.add(1, now);
        const entry: ActivityEntry = {
          at: now,
          kind: 'rate_limited',
          actor: actorOf(principal),
          action: scope,
          target: undefined,
          detail: peer.remoteAddress,
        };
        org.rateLimitHits.push(entry);
        org.activity.push(entry);
      },
      onDeny: ({ principal, action, channel, reason }) => {
        const now = this.clock.now();
        this.organization(principal.orgId, now).activity.push({
          at: now,
          kind: 'denied',
          actor: actorOf(principal),
          action,
          target: channel,
          detail: reason,
        });
      },
      onSlowConsumer: ({ connection: c, bufferedBytes }) => {
        const now = this.clock.now();
        this.organization(c.principal.orgId, now).activity.push({
          at: now,
          kind: 'slow_consumer',
          actor: actorOf(c.principal),
          action: 'disconnected',
          target: c.connectionId,
          detail: `${bufferedBytes} bytes buffered`,
        });
      },
      onDeadLetter: ({ orgId, channel, sessionId, attempts }) => {
        const now = this.clock.now();
        this.organization(orgId, now).activity.push({
          at: now,
          kind: 'dead_letter',
          actor: undefined,
          action: `not acked after ${attempts} attempts`,
          target: channel,
          detail: `session ${sessionId}`,
        });
      },
      onAdminAction: ({ principal, action, target }) => {
        const now = this.clock.now();
        this.organization(principal.orgId, now).activity.push({
          at: now,
          kind: 'admin',
          actor: actorOf(principal),
          action,
          target,
        });
      },
    };
  }

  /** The last heartbeat RTT of a connection on this node, if it answered one. */
  lastRtt(connectionId: string): number | undefined {
    return this.connections.get(connectionId)?.rttMs;
  }

  nodeFigures(): NodeFigures {
    const now = this.clock.now();
    const byChannelType: Partial<
      Record<ChannelType, { publishToDeliver: Percentiles; publishToAck: Percentiles }>
    > = {};
    const deliverAll = new LogLinearHistogram();
    const ackAll = new LogLinearHistogram();
    for (const type of new Set([...this.deliverByType.keys(), ...this.ackByType.keys()])) {
      const d = this.deliverByType.get(type)?.merged(now);
      const publishToDeliver = d?.percentiles() ?? EMPTY;
      if (d) deliverAll.add(d);
      const a = this.ackByType.get(type)?.merged(now);
      const publishToAck = a?.percentiles() ?? EMPTY;
      if (a) ackAll.add(a);
      if (publishToDeliver.count > 0 || publishToAck.count > 0)
        byChannelType[type] = { publishToDeliver, publishToAck };
    }
    return {
      windowMs: this.windowSlots * this.slotMs,
      rateWindowSeconds: this.rateWindowSeconds,
      throughput: {
        eventsPerSec: round2(this.events.rate(now)),
        deliveriesPerSec: round2(this.deliveries.rate(now)),
        bytesPerSec: Math.round(this.bytes.rate(now)),
      },
      latency: {
        publishToDeliver: deliverAll.percentiles(),
        publishToAck: ackAll.percentiles(),
        heartbeatRtt: this.rtt.percentiles(now),
      },
      byChannelType,
      rateLimited: { perSec: round2(this.rateLimited.rate(now)), total: this.rateLimited.lifetimeTotal },
      trackedOrganizations: this.organizations.size,
      trackedConnections: this.connections.size,
    };
  }

  /** One organization's figures (empty ones when it has had no activity lately). */
  organizationFigures(orgId: string, slowest = 5): OrganizationFigures {
    const now = this.clock.now();
    const org = this.organizations.get(orgId);
    if (org === undefined)
      return {
        windowMs: ORG_SLOTS * ORG_SLOT_MS,
        throughput: { eventsPerSec: 0, deliveriesPerSec: 0, bytesPerSec: 0 },
        latency: { publishToDeliver: EMPTY, publishToAck: EMPTY, heartbeatRtt: EMPTY },
        busiestChannels: [],
        rateLimitHits: { perSec: 0, recent: [] },
        recentActivity: [],
        slowestConnections: this.slowestConnections(orgId, slowest),
      };
    org.channels.decayTo(now);
    return {
      windowMs: ORG_SLOTS * ORG_SLOT_MS,
      throughput: {
        eventsPerSec: round2(org.events.rate(now)),
        deliveriesPerSec: round2(org.deliveries.rate(now)),
        bytesPerSec: Math.round(org.bytes.rate(now)),
      },
      latency: {
        publishToDeliver: org.deliver.percentiles(now),
        publishToAck: org.ack.percentiles(now),
        heartbeatRtt: org.rtt.percentiles(now),
      },
      busiestChannels: org.channels
        .top(10)
        .map((e) => ({ channel: e.key, events: Math.round(e.count * 10) / 10 })),
      rateLimitHits: { perSec: round2(org.rateLimited.rate(now)), recent: org.rateLimitHits.list() },
      recentActivity: org.activity.list(),
      slowestConnections: this.slowestConnections(orgId, slowest),
    };
  }

  private slowestConnections(orgId: string, n: number): ConnectionRtt[] {
    const out: ConnectionRtt[] = [];
    for (const [connectionId, c] of this.connections)
      if (c.orgId === orgId && c.rttMs !== undefined)
        out.push({ connectionId, userId: c.userId, clientType: c.clientType, rttMs: c.rttMs });
    return out.sort((a, b) => b.rttMs - a.rttMs).slice(0, n);
  }

  private windowFor(map: Map<ChannelType, WindowedHistogram>, type: ChannelType): WindowedHistogram {
    let w = map.get(type);
    if (w === undefined) {
      w = new WindowedHistogram(this.windowSlots, this.slotMs);
      map.set(type, w);
    }
    return w;
  }

  private organization(orgId: string, now: number): OrganizationState {
    let org = this.organizations.get(orgId);
    if (org !== undefined) {
      // Keep the map in least-recently-active order, re-inserting at most once a second.
      if (now - org.touchedAt >= 1000) {
        org.touchedAt = now;
        this.organizations.delete(orgId);
        this.organizations.set(orgId, org);
      }
      return org;
    }
    if (this.organizations.size >= this.maxOrganizations)
      this.organizations.delete(this.organizations.keys().next().value as string);
    org = new OrganizationState(
      now,
      this.startedAt,
      this.rateWindowSeconds,
      this.topChannels,
      this.halfLifeMs,
      this.recentEntries,
    );
    this.organizations.set(orgId, org);
    return org;
  }
}

const EMPTY: Percentiles = { count: 0, p50: 0, p95: 0, p99: 0, max: 0 };

function actorOf(p: Principal): string {
  return p.kind === 'apiKey' && p.keyId ? `apikey:${p.keyId}` : p.userId;
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
