/**
 * Installs the backend integration of issue 17 that is not on the gateway's path: the webhooks (their
 * dispatcher, hooks, admin API and gauges) and the server-side subscriptions. Called once from createNode.
 */
import type { Registry } from 'prom-client';
import { Gauge } from 'prom-client';
import type { NodeBase } from '../node-wiring.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Broker } from '../broker/broker.ts';
import type { HttpRouter } from '../http/router.ts';
import type { ApiXGateway } from '../gateway/gateway.ts';
import { ServerSubscriptions, registerServerSubscriptionsApi } from '../subscriptions/server-side.ts';
import { WebhookDispatcher } from './dispatcher.ts';
import { httpSender } from './sender.ts';
import type { Sender } from './sender.ts';
import { occupancyEvents, webhookHooks } from './webhook-hooks.ts';
import { registerWebhookApi } from './admin-api.ts';
import type { WebhookStore } from './webhook-store.ts';
import { MemoryChannelOccupancy } from './occupancy.ts';
import type { ChannelOccupancy } from './occupancy.ts';
import { RedisChannelOccupancy } from './redis-occupancy.ts';

export interface BackendIntegrationParts {
  readonly http: HttpRouter;
  readonly metrics: Registry;
  readonly authenticator: Authenticator;
  readonly broker: Broker;
  readonly gateway: ApiXGateway;
  readonly store: WebhookStore;
  readonly occupancy: ChannelOccupancy;
  /** Instead of the HTTP sender (tests). */
  readonly sender?: Sender;
}

export interface BackendIntegration {
  readonly dispatcher: WebhookDispatcher;
  readonly serverSubscriptions: ServerSubscriptions;
  start(): void;
  stop(): Promise<void>;
}

export function installBackendIntegration(
  base: NodeBase,
  parts: BackendIntegrationParts,
): BackendIntegration {
  const { config, clock, log, hooks, nodeId } = base;
  const w = config.webhooks;
  const sender =
    parts.sender ??
    httpSender({ timeoutMs: w.timeoutMs, allowPrivate: w.allowPrivate, now: () => clock.now() });
  const dispatcher = new WebhookDispatcher(
    parts.store,
    sender,
    {
      flushMs: w.flushMs,
      batchMax: w.batchMax,
      bufferMax: w.bufferMax,
      queueMax: w.queueMax,
      deadLetterMax: w.deadLetterMax,
      concurrency: w.concurrency,
      maxAttempts: w.maxAttempts,
      backoff: { baseMs: w.retryBaseMs, maxMs: Math.max(w.retryBaseMs, w.retryMaxMs) },
      leaseMs: w.timeoutMs * 2 + 5_000,
      endpointCacheMs: 1_000,
      // No other node shares the store on memory engines: nothing to take over, no reason to wake it.
      ...(parts.broker.name === 'memory' ? { idlePollMs: Infinity } : {}),
    },
    clock,
    base.random,
    log,
  );
  hooks.attach(webhookHooks(dispatcher, parts.occupancy, nodeId, log));
  registerWebhookApi(parts.http, {
    authenticator: parts.authenticator,
    hooks,
    clock,
    store: parts.store,
    dispatcher,
    maxBodyBytes: config.maxMessageBytes,
    allowPrivate: w.allowPrivate,
    endpointsPerOrg: w.endpointsPerOrg,
  });
  const serverSubscriptions = new ServerSubscriptions({
    nodeId,
    log,
    broker: parts.broker,
    sessions: parts.gateway.sessions,
    subscriptions: parts.gateway.subscriptions,
  });
  hooks.attach(serverSubscriptions.hooks());
  registerServerSubscriptionsApi(parts.http, {
    authenticator: parts.authenticator,
    hooks,
    maxBodyBytes: config.maxMessageBytes,
    server: serverSubscriptions,
  });
  registerWebhookGauges(parts.metrics, dispatcher, parts.store, parts.occupancy);
  return {
    dispatcher,
    serverSubscriptions,
    start: () => {
      dispatcher.start();
      parts.occupancy.start?.(occupancyEvents(dispatcher), (err) =>
        log.warn({ err }, 'channel occupancy lease or sweep failed'),
      );
    },
    stop: () => {
      parts.occupancy.stop?.();
      return dispatcher.stop();
    },
  };
}

function registerWebhookGauges(
  metrics: Registry,
  d: WebhookDispatcher,
  store: WebhookStore,
  occupancy: ChannelOccupancy,
): void {
  const gauge = (name: string, help: string, read: () => number | Promise<number>) =>
    new Gauge({
      name,
      help,
      registers: [metrics],
      async collect() {
        try {
          this.set(await read());
        } catch {
          // The store is down: the gauge keeps its last value.
        }
      },
    });
  gauge(
    'apix_webhook_buffered_events',
    "Webhook events in this node's memory, waiting for batching",
    () => d.buffered,
  );
  gauge('apix_webhook_sending_batches', 'Webhook batches this node is sending now', () => d.sending);
  gauge('apix_webhook_queued_batches', 'Webhook batches waiting for delivery in the store (all nodes)', () =>
    store.queued(),
  );
  gauge(
    'apix_webhook_delivered_events',
    'Webhook events delivered by this node (since start)',
    () => d.counters.delivered,
  );
  gauge(
    'apix_webhook_failed_attempts',
    'Webhook POSTs that failed on this node (since start)',
    () => d.counters.failedAttempts,
  );
  gauge(
    'apix_webhook_dead_lettered_batches',
    'Webhook batches dead-lettered by this node (since start)',
    () => d.counters.deadLettered,
  );
  gauge(
    'apix_webhook_dropped_events',
    'Webhook events dropped: buffer or queue full (since start)',
    () => d.counters.dropped,
  );
  gauge(
    'apix_webhook_endpoint_cache_orgs',
    'Organizations whose webhook endpoints this node has cached',
    () => d.cachedOrgs,
  );
  if (occupancy instanceof RedisChannelOccupancy) {
    gauge(
      'apix_occupancy_local_channels',
      'Channels this node occupies (registered in Redis under its lease)',
      () => occupancy.localChannels,
    );
    gauge(
      'apix_occupancy_swept_nodes',
      'Dead nodes whose channel occupancy this node swept (since start)',
      () => occupancy.counters.sweptNodes,
    );
    gauge(
      'apix_occupancy_swept_channels',
      'Channels this node found vacated by sweeping a dead node (since start)',
      () => occupancy.counters.vacatedBySweep,
    );
  }
  if (occupancy instanceof MemoryChannelOccupancy)
    gauge(
      'apix_channels_occupied',
      'Memory engine: channels with a subscriber on some node',
      () => occupancy.size,
    );
}
