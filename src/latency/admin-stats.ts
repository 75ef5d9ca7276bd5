/**
 * The figures an organization's admin sees (`GET /v1/admin/stats` and the dashboard feed): node-wide
 * connection counts and throughput, this organization's own figures, and nothing about other
 * organizations but anonymous totals.
 */
import type { Clock } from '../clock.ts';
import type { CachedCensus, ConnectionCounts } from './connection-census.ts';
import type { LatencyTracker, NodeFigures, OrganizationFigures } from './latency-tracker.ts';

/** The gateway's own counters (ApiXGateway.stats()). */
export interface GatewayCounters {
  readonly connections: number;
  readonly sessions: number;
  readonly subscriptions: number;
  readonly channels: number;
  readonly inflight: number;
  readonly offlineQueued: number;
}

export interface AdminStats {
  readonly nodeId: string;
  readonly at: number;
  readonly node: NodeFigures & {
    readonly connections: ConnectionCounts;
    readonly sessions: number;
    readonly subscriptions: number;
    readonly channels: number;
    readonly inflight: number;
    readonly offlineQueued: number;
  };
  readonly organization: OrganizationFigures & {
    readonly id: string;
    readonly connections: ConnectionCounts;
  };
}

export interface AdminStatsDeps {
  readonly nodeId: string;
  readonly clock: Clock;
  readonly tracker: LatencyTracker;
  readonly census: CachedCensus;
  readonly counters: () => GatewayCounters;
}

export function adminStats(deps: AdminStatsDeps, orgId: string): AdminStats {
  const counters = deps.counters();
  return {
    nodeId: deps.nodeId,
    at: deps.clock.now(),
    node: {
      ...deps.tracker.nodeFigures(),
      connections: deps.census.get().node,
      sessions: counters.sessions,
      subscriptions: counters.subscriptions,
      channels: counters.channels,
      inflight: counters.inflight,
      offlineQueued: counters.offlineQueued,
    },
    organization: {
      id: orgId,
      ...deps.tracker.organizationFigures(orgId),
      connections: deps.census.organization(orgId),
    },
  };
}
