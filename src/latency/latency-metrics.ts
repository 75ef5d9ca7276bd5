/**
 * What /metrics lacked and the tracker knows: connections by client type and status, recent-window
 * percentiles (what the dashboard shows, for scrapers that want them without computing quantiles from
 * the histograms in metrics.ts), and admin actions. Labels stay of low cardinality: client type, status,
 * measure, quantile, action name — never a channel, user or organization.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { HookBus } from '../hooks.ts';
import type { CachedCensus } from './connection-census.ts';
import type { LatencyTracker } from './latency-tracker.ts';

export function registerLatencyMetrics(
  registry: Registry,
  hooks: HookBus,
  tracker: LatencyTracker,
  census: CachedCensus,
  /** false (APIX_METRICS=false): the tracker sees no events, so no throughput gauge. */
  perEvent = true,
): void {
  new Gauge({
    name: 'apix_connections_by_client',
    help: 'Connections on this node by client type and status (RECONNECTING/SUSPENDED: sessions away)',
    labelNames: ['client_type', 'status'],
    registers: [registry],
    collect() {
      this.reset();
      const { node } = census.get();
      for (const [clientType, n] of Object.entries(node.byClientType))
        this.set({ client_type: clientType, status: 'CONNECTED' }, n);
      for (const [status, n] of Object.entries(node.byStatus))
        if (status !== 'CONNECTED') this.set({ client_type: 'any', status }, n);
    },
  });
  new Gauge({
    name: 'apix_latency_window_seconds',
    help: 'Latency percentiles over the last minute (publish_to_deliver, publish_to_ack, heartbeat_rtt)',
    labelNames: ['measure', 'quantile'],
    registers: [registry],
    collect() {
      this.reset();
      const { latency } = tracker.nodeFigures();
      const measures = {
        publish_to_deliver: latency.publishToDeliver,
        publish_to_ack: latency.publishToAck,
        heartbeat_rtt: latency.heartbeatRtt,
      };
      for (const [measure, p] of Object.entries(measures)) {
        if (p.count === 0) continue;
        this.set({ measure, quantile: '0.5' }, p.p50 / 1000);
        this.set({ measure, quantile: '0.95' }, p.p95 / 1000);
        this.set({ measure, quantile: '0.99' }, p.p99 / 1000);
      }
    },
  });
  if (perEvent)
    new Gauge({
      name: 'apix_throughput_per_second',
      help: 'Events published, deliveries and delivered bytes per second over the last 10 s',
      labelNames: ['measure'],
      registers: [registry],
      collect() {
        const { throughput } = tracker.nodeFigures();
        this.set({ measure: 'events' }, throughput.eventsPerSec);
        this.set({ measure: 'deliveries' }, throughput.deliveriesPerSec);
        this.set({ measure: 'bytes' }, throughput.bytesPerSec);
      },
    });
  const adminActions = new Counter({
    name: 'apix_admin_actions_total',
    help: 'Operator actions through the admin API',
    labelNames: ['action'],
    registers: [registry],
  });
  hooks.attach({ onAdminAction: (e) => adminActions.inc({ action: e.action }) });
}
