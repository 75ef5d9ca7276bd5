/**
 * The local hub: which sessions on this node subscribe to which channel, and the fan-out of one event
 * to all of them. The hot path: the frame bytes are built once per event and the same Buffer is written
 * to every subscriber's socket; nothing is allocated per subscriber on plain subscriptions.
 */
import type { Broker, BrokerEvent } from '../broker/broker.ts';
import { compareEventIds } from '@apix/protocol';
import type { ParsedChannel } from '@apix/protocol';
import type { Connection, Subscription } from '../connections/session.ts';
import { EventFrames } from '../gateway/frames.ts';
import type { FilterInput } from '../subscriptions/filters.ts';
import { coalesceKeyOf } from '../connections/qos.ts';

export interface FanoutTarget {
  /** An event for an acknowledged subscription (tracked until acked). */
  deliverAcked(sub: Subscription, event: BrokerEvent, frames: EventFrames): void;
  /** An event for a session whose client is away. */
  deliverAway(sub: Subscription, event: BrokerEvent): void;
  /**
   * A connection's send buffer crossed the QoS threshold (`pressureBytes`, at most the ceiling): the
   * target degrades it, or cuts it past the ceiling.
   */
  pressure(conn: Connection): void;
  /**
   * The `coalesceKey` of the event's channel, or undefined when it is not coalescible. Asked at most once
   * per event, and only when a subscriber's connection is degraded.
   */
  coalesceField(event: BrokerEvent, channel: ParsedChannel): string | undefined;
  /** Holds an event for a degraded connection instead of writing it: the latest per coalescing key. */
  hold(conn: Connection, sub: Subscription, event: BrokerEvent, frames: EventFrames, key: string): void;
  /** Called once per event after the fan-out, with the number of sockets written. */
  /** `channel` is the parsed channel every subscriber of the key already holds (no re-parse per event). */
  delivered(event: BrokerEvent, channel: ParsedChannel, recipients: number, bytes: number): void;
  /** This node's first subscription on a channel key (`occupied`), or its last one gone. */
  occupancy?(key: string, occupied: boolean): void;
}

/**
 * Streams (src/streams/stream-fanout.ts): the broker's live stream messages go there, and a stream's
 * compacted event goes to a subscriber that followed the stream as the frames it answers (`stream.end`).
 */
export interface StreamTap {
  onLive(event: BrokerEvent): void;
  watches(key: string): boolean;
  replace(sub: Subscription, event: BrokerEvent): EventFrames | undefined;
}

export class LocalHub {
  private readonly channels = new Map<string, Set<Subscription>>();
  private streams: StreamTap | undefined;
  private readonly pressureBytes: number;
  subscriptionCount = 0;

  constructor(
    private readonly broker: Broker,
    private readonly target: FanoutTarget,
    private readonly maxBufferedBytes: number,
    private readonly compressThresholdBytes: number,
    /** Unsent bytes above which `target.pressure` is told (QoS degrade threshold); default the ceiling. */
    pressureBytes = maxBufferedBytes,
  ) {
    this.pressureBytes =
      pressureBytes > 0 && pressureBytes < maxBufferedBytes ? pressureBytes : maxBufferedBytes;
    broker.onEvent((event) => this.deliver(event));
  }

  /** Attaches the node's streams (set once, by the composition root). */
  attachStreams(tap: StreamTap): void {
    this.streams = tap;
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
      this.target.occupancy?.(sub.key, true);
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
      this.target.occupancy?.(sub.key, false);
      this.broker.unsubscribe(sub.key).catch(() => {});
    }
  }

  deliver(event: BrokerEvent): void {
    const subs = this.channels.get(event.key);
    if (subs === undefined) return;
    if (event.live) {
      if (this.streams !== undefined && event.type.startsWith('stream.')) return this.streams.onLive(event);
      return this.deliverLive(event, subs);
    }
    const streams = this.streams?.watches(event.key) === true ? this.streams : undefined;
    let frames: EventFrames | undefined;
    let input: FilterInput | undefined;
    // The channel's coalescing field, looked up only if a degraded subscriber is met (null: none).
    let coalesce: string | null | undefined;
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
        } else if (sub.lastId === undefined) sub.missedFrom ??= event.id;
        continue;
      }
      const streamEnd = streams?.replace(sub, event);
      if (streamEnd !== undefined) {
        sub.lastId = event.id;
        if (sub.ack) this.target.deliverAcked(sub, event, streamEnd);
        else conn.sendEvent(streamEnd);
        recipients++;
        continue;
      }
      if (frames === undefined) frames = new EventFrames(event.frame, this.compressThresholdBytes);
      // Degraded (QoS) connections only: on a coalescible channel, plain events are held, latest per key
      // (acknowledged ones never are). `lastId` then stays at the last event written, for resumes.
      if (conn.qos !== undefined && !sub.ack) {
        if (coalesce === undefined) coalesce = this.target.coalesceField(event, sub.channel) ?? null;
        if (coalesce !== null) {
          const key = coalesceKeyOf((input ??= filterInput(event)).payload(), coalesce);
          this.target.hold(conn, sub, event, frames, key);
          continue;
        }
      }
      sub.lastId = event.id;
      if (sub.ack) {
        this.target.deliverAcked(sub, event, frames);
        recipients++;
        // maxInflight bounds events, not bytes: a stalled reader of acked events is a slow consumer too.
        if (conn.bufferedBytes > this.pressureBytes) this.target.pressure(conn);
        continue;
      }
      conn.sendEvent(frames);
      recipients++;
      if (conn.bufferedBytes > this.pressureBytes) this.target.pressure(conn);
    }
    const first = subs.values().next().value as Subscription | undefined;
    if (first)
      this.target.delivered(event, first.channel, recipients, frames === undefined ? 0 : frames.size);
  }

  /**
   * A live-only event (room presence): written to the subscribers connected now, whose filters take it.
   * It has no id, so it moves no subscription's position, is never acked, queued or held for later, and a
   * subscriber still replaying (`pending`) or away does not get it.
   */
  private deliverLive(event: BrokerEvent, subs: ReadonlySet<Subscription>): void {
    let frames: EventFrames | undefined;
    let input: FilterInput | undefined;
    for (const sub of subs) {
      if (sub.filter !== undefined && !sub.filter((input ??= filterInput(event)))) continue;
      const conn = sub.session.connection;
      if (sub.pending !== undefined || conn === undefined) continue;
      frames ??= new EventFrames(event.frame, this.compressThresholdBytes);
      conn.sendEvent(frames);
      if (conn.bufferedBytes > this.pressureBytes) this.target.pressure(conn);
    }
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
