/**
 * Prometheus metrics (prom-client), attached through hooks. Labels are of low cardinality only:
 * channel type, error code, node (a default label) — never a channel, user or organization name.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HookBus } from '../hooks.ts';

export interface NodeStats {
  connections: number;
  sessions: number;
  subscriptions: number;
  channels: number;
  inflight: number;
  offlineQueued: number;
  /** Connections in degraded mode (QoS). */
  degradedConnections: number;
}

/**
 * `perEvent` false (APIX_METRICS=false): no per-event counters and histograms (published, deliveries,
 * delivered bytes, publish-to-deliver, publish-to-ack) and no hooks on publish, deliver and ack.
 */
export function createMetrics(
  nodeId: string,
  hooks: HookBus,
  stats: () => NodeStats,
  perEvent = true,
): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ node: nodeId });
  collectDefaultMetrics({ register: registry });

  registerNodeGauges(registry, stats);
  if (perEvent) attachPerEventMetrics(registry, hooks);
  attachNodeEventMetrics(registry, hooks);
  return registry;
}

/** The gauges of this node's figures, read from `stats()` at each scrape. */
function registerNodeGauges(registry: Registry, stats: () => NodeStats): void {
  const gauge = (name: string, help: string, pick: (s: NodeStats) => number) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(pick(stats()));
      },
    });
  gauge('apix_connections', 'Open WebSocket connections', (s) => s.connections);
  gauge('apix_sessions', 'Sessions held by this node (live or awaiting resume)', (s) => s.sessions);
  gauge('apix_subscriptions', 'Channel subscriptions on this node', (s) => s.subscriptions);
  gauge('apix_channels', 'Channels with at least one subscriber on this node', (s) => s.channels);
  gauge('apix_inflight_events', 'Events awaiting acknowledgment', (s) => s.inflight);
  gauge('apix_offline_queued_events', 'Events held for sessions that are away', (s) => s.offlineQueued);
  gauge(
    'apix_qos_degraded_connections',
    'Connections in degraded mode (reading too slowly: latest event per key on coalescible channels)',
    (s) => s.degradedConnections,
  );
}

/** The counters and the heartbeat RTT histogram of connections, denials, QoS and limits. */
function attachNodeEventMetrics(registry: Registry, hooks: HookBus): void {
  const rtt = new Histogram({
    name: 'apix_heartbeat_rtt_seconds',
    help: 'Round-trip time measured by heartbeats',
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const refused = new Counter({
    name: 'apix_connections_refused_total',
    help: 'Connection attempts refused',
    labelNames: ['code'],
    registers: [registry],
  });
  const authFailures = new Counter({
    name: 'apix_auth_failures_total',
    help: 'Authentication failures',
    labelNames: ['code', 'via'],
    registers: [registry],
  });
  const denials = new Counter({
    name: 'apix_permission_denials_total',
    help: 'Permission denials',
    labelNames: ['action'],
    registers: [registry],
  });
  const slow = new Counter({
    name: 'apix_slow_consumers_total',
    help: 'Connections cut for reading too slowly',
    registers: [registry],
  });
  const qosTransitions = new Counter({
    name: 'apix_qos_transitions_total',
    help: 'Connections entering (degraded) or leaving (normal) degraded mode',
    labelNames: ['state'],
    registers: [registry],
  });
  const coalesced = new Counter({
    name: 'apix_qos_coalesced_events_total',
    help: 'Events not written to a degraded connection because a later event of the same key replaced them',
    labelNames: ['channel_type'],
    registers: [registry],
  });
  const deadLetters = new Counter({
    name: 'apix_dead_letters_total',
    help: 'Events dead-lettered after max attempts',
    registers: [registry],
  });
  const rateLimited = new Counter({
    name: 'apix_rate_limited_total',
    help: 'Requests refused by a rate limit',
    labelNames: ['scope'],
    registers: [registry],
  });
  const connects = new Counter({
    name: 'apix_connects_total',
    help: 'Completed connect handshakes',
    labelNames: ['resumed'],
    registers: [registry],
  });

  hooks.attach({
    onHeartbeat: (e) => {
      if (e.rttMs !== undefined) rtt.observe(e.rttMs / 1000);
    },
    onConnect: (e) => connects.inc({ resumed: String(e.resumed) }),
    onConnectRefused: (e) => refused.inc({ code: e.code }),
    onAuthFailure: (e) => authFailures.inc({ code: e.code, via: e.via }),
    onDeny: (e) => denials.inc({ action: e.action }),
    onSlowConsumer: () => slow.inc(),
    onQos: (e) => qosTransitions.inc({ state: e.state }),
    onCoalesced: (e) => coalesced.inc({ channel_type: e.channelType }),
    onDeadLetter: () => deadLetters.inc(),
    onRateLimited: (e) => rateLimited.inc({ scope: e.scope }),
  });
}

/** The metrics updated on every publish, delivery and acknowledgment. */
function attachPerEventMetrics(registry: Registry, hooks: HookBus): void {
  const published = new Counter({
    name: 'apix_events_published_total',
    help: 'Events accepted',
    labelNames: ['channel_type'],
    registers: [registry],
  });
  const deliveries = new Counter({
    name: 'apix_deliveries_total',
    help: 'Event deliveries written to sockets',
    labelNames: ['channel_type'],
    registers: [registry],
  });
  const deliveredBytes = new Counter({
    name: 'apix_delivered_bytes_total',
    help: 'Bytes of event frames written',
    labelNames: ['channel_type'],
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'apix_publish_to_deliver_seconds',
    help: 'Time from publish to fan-out on this node',
    labelNames: ['channel_type'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const ackLatency = new Histogram({
    name: 'apix_publish_to_ack_seconds',
    help: 'Time from publish to acknowledgment',
    labelNames: ['channel_type'],
    buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 60],
    registers: [registry],
  });
  hooks.attach({
    onPublish: (e) => published.inc({ channel_type: e.channelType }),
    onDeliver: (e) => {
      deliveries.inc({ channel_type: e.channelType }, e.recipients);
      deliveredBytes.inc({ channel_type: e.channelType }, e.recipients * e.bytes);
      latency.observe({ channel_type: e.channelType }, Math.max(0, e.deliveredAt - e.publishedAt) / 1000);
    },
    onAck: (e) =>
      ackLatency.observe({ channel_type: e.channelType }, Math.max(0, e.ackedAt - e.publishedAt) / 1000),
  });
}
