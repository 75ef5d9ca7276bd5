/**
 * The embedded broker: history in memory, delivery by direct call. Several MemoryBroker instances can
 * share one MemoryBrokerBus to act as several nodes in one process (used by the multi-node tests
 * without Redis, the way socket.io tests its cluster adapter over an in-process bus).
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import { MemoryHistory } from './memory-history.ts';
import { MemoryPresenceStore } from '../presence/memory-presence.ts';
import { MemoryIdempotency } from './memory-idempotency.ts';
import type {
  Broker,
  BrokerEvent,
  BrokerEventHandler,
  ControlHandler,
  ControlMessage,
  HistoryOptions,
  HistoryQuery,
  HistoryResult,
  LiveInput,
  PublishInput,
} from './broker.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export class MemoryBrokerBus {
  readonly history: MemoryHistory;
  /** Room presence shared by the in-process nodes of this bus. */
  readonly presence: MemoryPresenceStore;
  /** Idempotency keys of publishes, shared by the in-process nodes of this bus. */
  readonly idempotency: MemoryIdempotency;
  readonly brokers = new Set<MemoryBroker>();
  constructor(
    readonly clock: Clock = systemClock,
    maxChannels = 100_000,
    maxIdempotencyKeys = 100_000,
    maxHistoryBytes = Number.POSITIVE_INFINITY,
  ) {
    this.history = new MemoryHistory(maxChannels, clock.now(), maxHistoryBytes);
    this.presence = new MemoryPresenceStore(clock);
    this.idempotency = new MemoryIdempotency(maxIdempotencyKeys);
  }
}

export class MemoryBroker implements Broker {
  readonly name = 'memory';
  private readonly subscribed = new Set<string>();
  private eventHandler: BrokerEventHandler = () => {};
  private controlHandler: ControlHandler = () => {};
  private closed = false;

  constructor(
    readonly bus: MemoryBrokerBus,
    private readonly historyDefaults: HistoryOptions,
  ) {
    bus.brokers.add(this);
  }

  async publish(input: PublishInput): Promise<BrokerEvent> {
    if (this.closed) throw new InternalError('APIX_ERR_CLOSED', 'broker closed');
    // Synchronous from lookup to remember: no other publish can slip in between (atomic, as in Redis).
    const idem = input.idempotency && input.idempotency.windowMs > 0 ? input.idempotency : undefined;
    const now = this.bus.clock.now();
    if (idem) {
      const seen = this.bus.idempotency.lookup(input.key, idem.key, now);
      if (seen !== undefined)
        return {
          key: input.key,
          id: seen,
          type: input.type,
          timestamp: input.timestamp,
          frame: '',
          publisher: input.publisher,
          duplicate: true,
        };
    }
    const event = this.bus.history.append(input.key, input.timestamp, input.history, (id) => ({
      key: input.key,
      id,
      type: input.type,
      timestamp: input.timestamp,
      frame: input.encode(id),
      publisher: input.publisher,
    }));
    if (idem) this.bus.idempotency.remember(input.key, idem.key, event.id, idem.windowMs, now);
    for (const b of this.bus.brokers) if (b.subscribed.has(input.key)) b.eventHandler(event);
    return event;
  }

  async publishLive(input: LiveInput): Promise<void> {
    if (this.closed) throw new InternalError('APIX_ERR_CLOSED', 'broker closed');
    const event: BrokerEvent = {
      key: input.key,
      id: '',
      type: input.type,
      timestamp: input.timestamp,
      frame: input.frame,
      publisher: undefined,
      live: true,
    };
    for (const b of this.bus.brokers) if (b.subscribed.has(input.key)) b.eventHandler(event);
  }

  async history(key: string, query: HistoryQuery): Promise<HistoryResult> {
    return this.bus.history.query(key, query, this.bus.clock.now(), this.historyDefaults);
  }

  async subscribe(key: string): Promise<void> {
    this.subscribed.add(key);
  }
  async unsubscribe(key: string): Promise<void> {
    this.subscribed.delete(key);
  }
  onEvent(handler: BrokerEventHandler): void {
    this.eventHandler = handler;
  }
  async publishControl(message: ControlMessage): Promise<void> {
    // Like the Redis broker (and socket.io's ClusterAdapter): a node never gets its own control messages.
    for (const b of this.bus.brokers) if (b !== this) b.controlHandler(message);
  }
  onControl(handler: ControlHandler): void {
    this.controlHandler = handler;
  }
  async ping(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
    this.bus.brokers.delete(this);
    this.subscribed.clear();
  }
  /** Channels this node is subscribed to (for metrics and leak checks). */
  get subscriptionCount(): number {
    return this.subscribed.size;
  }
}
