/**
 * The embedded broker: history in memory, delivery by direct call. Several MemoryBroker instances can
 * share one MemoryBrokerBus to act as several nodes in one process (used by the multi-node tests
 * without Redis, the way socket.io tests its cluster adapter over an in-process bus).
 */
import type { Clock } from '../clock.ts';
import { systemClock } from '../clock.ts';
import { MemoryHistory } from '../history/memory-history.ts';
import { MemoryPresenceStore } from '../presence/memory-presence.ts';
import type {
  Broker,
  BrokerEvent,
  BrokerEventHandler,
  ControlHandler,
  ControlMessage,
  HistoryOptions,
  HistoryQuery,
  HistoryResult,
  PublishInput,
} from './broker.ts';

export class MemoryBrokerBus {
  readonly history: MemoryHistory;
  /** Room presence shared by the in-process nodes of this bus. */
  readonly presence: MemoryPresenceStore;
  readonly brokers = new Set<MemoryBroker>();
  constructor(
    readonly clock: Clock = systemClock,
    maxChannels = 100_000,
  ) {
    this.history = new MemoryHistory(maxChannels, clock.now());
    this.presence = new MemoryPresenceStore(clock);
  }
}

export class MemoryBroker implements Broker {
  readonly name = 'memory';
  private readonly subscribed = new Set<string>();
  private eventHandler: BrokerEventHandler = () => {};
  private controlHandler: ControlHandler = () => {};
  private closed = false;

  constructor(
    private readonly bus: MemoryBrokerBus,
    private readonly historyDefaults: HistoryOptions,
  ) {
    bus.brokers.add(this);
  }

  async publish(input: PublishInput): Promise<BrokerEvent> {
    if (this.closed) throw new Error('broker closed');
    const event = this.bus.history.append(input.key, input.timestamp, input.history, (id) => ({
      key: input.key,
      id,
      type: input.type,
      timestamp: input.timestamp,
      frame: input.encode(id),
      publisher: input.publisher,
    }));
    for (const b of this.bus.brokers) if (b.subscribed.has(input.key)) b.eventHandler(event);
    return event;
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
