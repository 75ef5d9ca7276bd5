/**
 * The delivery components of a node: the retry manager (acknowledged subscriptions), the pending journal
 * (their in-flight events across restarts) and the local hub (fan-out to this node's subscribers). The
 * gateway binds their callbacks (`callbacks`) once it exists.
 */
import type { NodeBase } from './node-base.ts';
import type { Broker } from './broker/broker.ts';
import { Late } from './late.ts';
import { MemoryPendingStore } from './pending/pending-store.ts';
import type { PendingStore } from './pending/pending-store.ts';
import { RetryManager } from './retry/retry-manager.ts';
import { PendingJournal } from './retry/pending-journal.ts';
import type { DeadLetterStore } from './retry/dead-letter.ts';
import { LocalHub, type FanoutTarget } from './subscriptions/hub.ts';
import type { ChannelRegistry } from './subscriptions/channel-registry.ts';
import type { Delivery, GatewayCallbacks } from './gateway/delivery.ts';
import type { Tracing } from './tracing/tracing.ts';

export interface DeliveryDeps extends NodeBase {
  /** The node's broker stack: the hub fans out what it hands over. */
  readonly broker: Broker;
  readonly channels: ChannelRegistry;
  readonly deadLetters: DeadLetterStore;
  /** Where in-flight events of acknowledged subscriptions are kept across restarts (memory when absent). */
  readonly pendingStore: PendingStore | undefined;
  /** OpenTelemetry: an `apix.deliver` span per event fanned out here; absent: none. */
  readonly tracing?: Tracing | undefined;
}

/** The retry manager, the pending journal and the hub; the gateway binds `callbacks`. */
export function buildDelivery(deps: DeliveryDeps): Delivery {
  const { config, clock, hooks } = deps;
  const callbacks = new Late<GatewayCallbacks>('the gateway callbacks of the delivery components');
  const retry = new RetryManager(
    {
      ackTimeoutMs: config.ackTimeoutMs,
      baseMs: config.retry.baseMs,
      maxMs: config.retry.maxMs,
      maxAttempts: config.retry.maxAttempts,
      maxInflight: config.maxInflight,
      maxWaiting: config.offlineQueueSize,
      compressThresholdBytes: config.compression.thresholdBytes,
    },
    clock,
    deps.random,
    deps.deadLetters,
    {
      queueAway: (sub, event, attempts) => callbacks.value.queueAway(sub, event, attempts),
      deadLettered: (sub, event, attempts) => callbacks.value.deadLettered(sub, event, attempts),
      acked: (sub, event) => {
        if (hooks.has('onAck'))
          hooks.emit('onAck', {
            orgId: sub.session.orgId,
            channelType: sub.type,
            publishedAt: event.timestamp,
            ackedAt: clock.now(),
          });
      },
    },
  );
  const pending = new PendingJournal(
    deps.pendingStore ?? new MemoryPendingStore(1_000_000, () => clock.now()),
    clock,
    {
      nodeId: deps.nodeId,
      flushMs: config.pending.flushMs,
      sweepMs: config.pending.sweepMs,
      sessionTtlMs: config.sessionTtlMs,
    },
    (owner, entries) => callbacks.value.deadLetterStored(owner, entries),
    deps.log,
  );
  retry.pending = pending;
  const hub = buildHub(deps, retry, callbacks);
  return { retry, pending, hub, callbacks };
}

/** The hub hands acknowledged deliveries to the retry manager, the rest to the gateway's callbacks. */
function buildHub(deps: DeliveryDeps, retry: RetryManager, callbacks: Late<GatewayCallbacks>): LocalHub {
  const { config, hooks } = deps;
  return new LocalHub(
    deps.broker,
    {
      deliverAcked: (sub, event, frames) => retry.deliver(sub, event, frames),
      deliverAway: (sub, event) => callbacks.value.queueAway(sub, event, 0),
      pressure: (conn) => callbacks.value.pressure(conn),
      coalesceField: (event, channel) =>
        deps.channels.get(event.key.slice(0, event.key.indexOf('/')), channel.name)?.coalesceKey,
      hold: (conn, sub, event, frames, key) => callbacks.value.hold(conn, sub, event, frames, key),
      delivered: deliveredHook(deps),
      occupancy: (key, occupied) => {
        if (hooks.has('onChannelLocal')) hooks.emit('onChannelLocal', { key, occupied });
      },
    },
    config.maxBufferedBytes,
    config.compression.thresholdBytes,
    config.qos.degradeBufferedBytes,
  );
}

/** After a fan-out: the deliver span and the onDeliver hook (latency metrics), when anyone listens. */
function deliveredHook(deps: DeliveryDeps): FanoutTarget['delivered'] {
  const { clock, hooks } = deps;
  return (event, channel, recipients, bytes) => {
    if (recipients > 0 && deps.tracing !== undefined)
      deps.tracing.deliver(
        event.frame,
        { 'apix.channel': channel.name, 'apix.recipients': recipients },
        event.timestamp,
        clock.now(),
      );
    if (recipients > 0 && hooks.has('onDeliver'))
      hooks.emit('onDeliver', {
        orgId: event.key.slice(0, event.key.indexOf('/')),
        channel: channel.name,
        channelType: channel.type,
        publishedAt: event.timestamp,
        deliveredAt: clock.now(),
        recipients,
        bytes,
      });
  };
}
