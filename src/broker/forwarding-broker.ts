/**
 * A broker that hands every call to another one: the base of the decorators that change one or two
 * calls of the engine's broker (durable replay's history, at-rest decryption of history and events).
 */
import type {
  Broker,
  BrokerEvent,
  BrokerEventHandler,
  ControlHandler,
  ControlMessage,
  HistoryQuery,
  HistoryResult,
  LiveInput,
  PublishInput,
} from './broker.ts';

export class ForwardingBroker implements Broker {
  constructor(readonly inner: Broker) {}
  get name(): string {
    return this.inner.name;
  }
  publish(input: PublishInput): Promise<BrokerEvent> {
    return this.inner.publish(input);
  }
  publishLive(input: LiveInput): Promise<void> {
    return this.inner.publishLive(input);
  }
  history(key: string, query: HistoryQuery): Promise<HistoryResult> {
    return this.inner.history(key, query);
  }
  subscribe(key: string): Promise<void> {
    return this.inner.subscribe(key);
  }
  unsubscribe(key: string): Promise<void> {
    return this.inner.unsubscribe(key);
  }
  onEvent(handler: BrokerEventHandler): void {
    this.inner.onEvent(handler);
  }
  publishControl(message: ControlMessage): Promise<void> {
    return this.inner.publishControl(message);
  }
  onControl(handler: ControlHandler): void {
    this.inner.onControl(handler);
  }
  ping(): Promise<void> {
    return this.inner.ping();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
