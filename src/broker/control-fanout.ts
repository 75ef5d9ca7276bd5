/**
 * The outermost layer of a node's broker stack: the engine takes one control handler, and the node has
 * several listeners (the gateway's sessions and sanctions, RPC routing): each `onControl` adds one, and
 * every control message goes to all of them, in the order they were added.
 */
import type { Broker, ControlHandler } from './broker.ts';
import { ForwardingBroker } from './forwarding-broker.ts';

export class ControlFanoutBroker extends ForwardingBroker {
  private readonly handlers: ControlHandler[] = [];

  constructor(inner: Broker) {
    super(inner);
    inner.onControl((message) => {
      for (const handler of this.handlers) handler(message);
    });
  }

  override onControl(handler: ControlHandler): void {
    this.handlers.push(handler);
  }
}
