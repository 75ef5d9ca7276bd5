/**
 * The operator's tools of a node, installed in one call from createNode: the latency tracker (hooks),
 * the extra Prometheus metrics, the admin API (with dead letters and channel settings), the dashboard and
 * its live feed.
 */
import type { Registry } from 'prom-client';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Broker } from '../broker/broker.ts';
import { withoutPerEventHooks } from '../hooks.ts';
import type { HookBus } from '../hooks.ts';
import type { ApiXGateway } from '../gateway/gateway.ts';
import type { RevocationStore } from '../auth/revocation-store.ts';
import { LatencyTracker } from '../latency/latency-tracker.ts';
import { CachedCensus } from '../latency/connection-census.ts';
import { adminStats } from '../latency/admin-stats.ts';
import { registerLatencyMetrics } from '../latency/latency-metrics.ts';
import { DASHBOARD_CHANNEL, DashboardFeed } from '../latency/dashboard-feed.ts';
import { registerAdminApi } from './admin-api.ts';
import { registerDashboard } from './dashboard.ts';
import { registerAdminChannels } from './admin-channels.ts';
import { registerDeadLetterAdmin } from '../dead-letters/dead-letter-admin.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { DeadLetterStore } from '../retry/dead-letter.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import type { HttpRouter } from './router.ts';

export interface OperatorToolsDeps {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly metrics: Registry;
  readonly http: HttpRouter;
  readonly authenticator: Authenticator;
  readonly broker: Broker;
  readonly gateway: ApiXGateway;
  readonly maxBodyBytes: number;
  /** Where token revocations are stored (shared by the nodes), and how long by default. */
  readonly revocations: RevocationStore;
  readonly tokenRevocationTtlMs: number;
  readonly suspensionTtlMs: number;
  /** APIX_METRICS: false leaves out the tracker's publish, deliver and ack hooks and the throughput gauge. */
  readonly perEventMetrics: boolean;
  /** Dead letters are replayed through the router; channel settings written to the registry. */
  readonly router: Pick<EventRouter, 'publish'>;
  readonly deadLetters: DeadLetterStore;
  readonly channels: ChannelRegistry;
  readonly encryptionConfigured: boolean;
}

export interface OperatorTools {
  readonly tracker: LatencyTracker;
  readonly feed: DashboardFeed;
  /** Starts the dashboard feed's timer (when the node listens). */
  start(): void;
  stop(): void;
}

export function installOperatorTools(deps: OperatorToolsDeps): OperatorTools {
  const { clock, hooks, gateway } = deps;
  const tracker = new LatencyTracker({ clock, ignoredChannels: [DASHBOARD_CHANNEL] });
  hooks.attach(deps.perEventMetrics ? tracker.hooks() : withoutPerEventHooks(tracker.hooks()));
  const census = new CachedCensus(gateway, () => clock.now());
  registerLatencyMetrics(deps.metrics, hooks, tracker, census, deps.perEventMetrics);
  const stats = (orgId: string) =>
    adminStats({ nodeId: deps.nodeId, clock, tracker, census, counters: () => gateway.stats() }, orgId);
  registerAdminApi(deps.http, {
    authenticator: deps.authenticator,
    hooks,
    gateway,
    clock,
    stats,
    maxBodyBytes: deps.maxBodyBytes,
    revocations: deps.revocations,
    tokenRevocationTtlMs: deps.tokenRevocationTtlMs,
    suspensionTtlMs: deps.suspensionTtlMs,
  });
  registerDeadLetterAdmin(deps.http, deps);
  registerAdminChannels(deps.http, deps);
  registerDashboard(deps.http);
  const feed = new DashboardFeed({
    broker: deps.broker,
    subscribers: (key) => gateway.hub.subscribers(key),
    clock,
    log: deps.log,
    snapshot: stats,
  });
  hooks.attach(feed.hooks());
  return { tracker, feed, start: () => feed.start(), stop: () => feed.stop() };
}
