/**
 * The local hub: which sessions on this node subscribe to which channel, and the fan-out of one event
 * to all of them. The hot path: the frame bytes are built once per event and the same Buffer is written
 * to every subscriber's socket; nothing is allocated per subscriber on plain subscriptions.
 */
import type { Broker, BrokerEvent } from '../broker/broker.ts';
import { compareEventIds } from '../protocol/index.ts';
import type { ParsedChannel } from '../protocol/index.ts';
import type { Subscription } from '../gateway/session.ts';
import { EventFrames } from '../gateway/frames.ts';
import type { FilterInput } from '../subscriptions/filters.ts';
import type { Connection } from '../gateway/connection.ts';

export interface FanoutTarget {
  /** An event for an acknowledged subscription (tracked until acked). */
  deliverAcked(sub: Subscription, event: BrokerEvent, frames: EventFrames): void;
  /** An event for a session whose client is away. */
  deliverAway(sub: Subscription, event: BrokerEvent): void;
  /** A connection's send buffer crossed the ceiling. */
  slowConsumer(conn: Connection): void;
  /** Called once per event after the fan-out, with the number of sockets written. */
  /** `channel` is the parsed channel every subscriber of the key already holds (no re-parse per event). */
  delivered(event: BrokerEvent, channel: ParsedChannel, recipients: number, bytes: number): void;
}

export class LocalHub {
  private readonly channels = new Map<string, Set<Subscription>>();
  subscriptionCount = 0;

  constructor(
    private readonly broker: Broker,
    private readonly target: FanoutTarget,
    private readonly maxBufferedBytes: number,
    private readonly compressThresholdBytes: number,
  ) {
    broker.onEvent((event) => this.deliver(event));
  }

  get channelCount(): number {
    return this.channels.size;
  }

  has(key: string): boolean {
    return this.channels.has(key);
  }

  subscribers(key: string): ReadonlySet<Subscription> | undefined {
    return this.channels.get(key);
  }

  /** Adds a subscription; the first on a channel subscribes this node to it at the broker. */
  async add(sub: Subscription): Promise<void> {
    let set = this.channels.get(sub.key);
    if (!set) {
      set = new Set();
      this.channels.set(sub.key, set);
      set.add(sub);
      this.subscriptionCount++;
      try {
        await this.broker.subscribe(sub.key);
      } catch (err) {
        this.remove(sub);
        throw err;
      }
      return;
    }
    if (!set.has(sub)) {
      set.add(sub);
      this.subscriptionCount++;
    }
  }

  remove(sub: Subscription): void {
    const set = this.channels.get(sub.key);
    if (!set || !set.delete(sub)) return;
    this.subscriptionCount--;
    if (set.size === 0) {
      this.channels.delete(sub.key);
      this.broker.unsubscribe(sub.key).catch(() => {});
    }
  }

  deliver(event: BrokerEvent): void {
    const subs = this.channels.get(event.key);
    if (subs === undefined) return;
    let frames: EventFrames | undefined;
    let input: FilterInput | undefined;
    let recipients = 0;
    for (const sub of subs) {
      if (sub.filter !== undefined && !sub.filter((input ??= filterInput(event)))) continue;
      if (sub.pending !== undefined) {
        sub.pending.push(event);
        continue;
      }
      if (sub.replayFloor !== undefined) {
        if (compareEventIds(event.id, sub.replayFloor) <= 0) continue;
        sub.replayFloor = undefined;
      }
      const conn = sub.session.connection;
      if (conn === undefined) {
        // Away: acked and user subscriptions queue; others replay from history on resume (from lastId).
        if (sub.queuesWhileAway) {
          sub.lastId = event.id;
          this.target.deliverAway(sub, event);
        }
        continue;
      }
      sub.lastId = event.id;
      if (frames === undefined) frames = new EventFrames(event.frame, this.compressThresholdBytes);
      if (sub.ack) {
        this.target.deliverAcked(sub, event, frames);
        recipients++;
        // maxInflight bounds events, not bytes: a stalled reader of acked events is a slow consumer too.
        if (conn.bufferedBytes > this.maxBufferedBytes) this.target.slowConsumer(conn);
        continue;
      }
      conn.sendEvent(frames);
      recipients++;
      if (conn.bufferedBytes > this.maxBufferedBytes) this.target.slowConsumer(conn);
    }
    const first = subs.values().next().value as Subscription | undefined;
    if (first)
      this.target.delivered(event, first.channel, recipients, frames === undefined ? 0 : frames.size);
  }
}

function filterInput(event: BrokerEvent): FilterInput {
  let parsed: unknown;
  let done = false;
  return {
    type: event.type,
    payload() {
      if (!done) {
        done = true;
        try {
          parsed = (JSON.parse(event.frame) as { payload?: unknown }).payload;
        } catch {
          parsed = undefined;
        }
      }
      return parsed;
    },
  };
}
