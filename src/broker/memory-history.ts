/**
 * In-memory channel history: one bounded ring per channel (by count and age), a bounded number of
 * channels (least recently published channel evicted first), and a bound on the bytes of all of them
 * together (oldest events of the least recently published channels go first). Used by the memory broker.
 */
import { compareEventIds, formatEventId, parseEventId } from '@apix/protocol';
import type { BrokerEvent, HistoryOptions, HistoryQuery, HistoryResult } from '../broker/broker.ts';

/** What one retained event costs beyond its frame text: the event object, its id and key references. */
const EVENT_OVERHEAD_BYTES = 160;

function costOf(ev: BrokerEvent): number {
  return EVENT_OVERHEAD_BYTES + ev.frame.length + (ev.sealed?.length ?? 0);
}

class ChannelHistory {
  events: BrokerEvent[] = [];
  /** Index of the oldest live event in `events` (amortized shift). */
  head = 0;
  /** The newest id ever given in this channel. */
  lastMs = 0;
  lastSeq = 0;
  top: string | undefined;
  /** The bounds of the last publish kept (for a snapshot: src/state/state-log.ts). */
  opts: HistoryOptions | undefined;
  /** Events at or below this id may be gone: the id of the last evicted event, or the channel's start. */
  floor: string;
  constructor(floor: string) {
    this.floor = floor;
  }
  get length(): number {
    return this.events.length - this.head;
  }
  /** Drops the oldest event; returns its cost in bytes. */
  evictOne(): number {
    const ev = this.events[this.head]!;
    this.floor = ev.id;
    this.events[this.head] = undefined as unknown as BrokerEvent;
    this.head++;
    if (this.head > 1024 && this.head * 2 > this.events.length) {
      this.events = this.events.slice(this.head);
      this.head = 0;
    }
    return costOf(ev);
  }
}

/** The first events whose frames add up to at most `maxBytes` (counted in UTF-16 units), at least one. */
function withinBytes(events: readonly BrokerEvent[], maxBytes: number): readonly BrokerEvent[] {
  let bytes = 0;
  for (let i = 0; i < events.length; i++) {
    bytes += events[i]!.frame.length;
    if (bytes > maxBytes && i > 0) return events.slice(0, i);
  }
  return events;
}

/**
 * Told of every change that the history cannot derive again from its bounds (src/state/state-log.ts keeps
 * them in a log, so that a restart restores the history). Called synchronously; must not throw or block.
 */
export interface HistoryObserver {
  /** A channel was created with this floor. */
  created(key: string, floor: string): void;
  /** An event was kept. */
  kept(event: BrokerEvent, opts: HistoryOptions): void;
  /** A publish was not kept (history size 0): `id` is the channel's top and floor now. */
  skipped(key: string, id: string): void;
}

/** One channel's state, for a snapshot of the history. */
export interface ChannelState {
  readonly key: string;
  readonly floor: string;
  readonly top: string | undefined;
  readonly opts: HistoryOptions | undefined;
  readonly events: readonly BrokerEvent[];
}

export class MemoryHistory {
  private readonly channels = new Map<string, ChannelHistory>();
  /** See HistoryObserver (none: nothing is told). */
  observer: HistoryObserver | undefined;
  /** The highest id of any channel evicted by the channel cap: a new channel starts above it. */
  private evictedFloor: string;

  /** The retained events' estimated size (frames + a fixed overhead per event). */
  private retainedBytes = 0;

  constructor(
    private readonly maxChannels: number,
    startMs: number,
    /** The byte budget of all channels' histories together (estimated: frame text + overhead). */
    private readonly maxBytes = Number.POSITIVE_INFINITY,
  ) {
    this.evictedFloor = formatEventId(startMs, 0);
  }

  get channelCount(): number {
    return this.channels.size;
  }

  get bytes(): number {
    return this.retainedBytes;
  }

  /** Gives the next id of the channel and, when `opts.size > 0`, keeps `make(id)` in its history. */
  append(key: string, now: number, opts: HistoryOptions, make: (id: string) => BrokerEvent): BrokerEvent {
    let ch = this.channels.get(key);
    if (ch === undefined) {
      ch = new ChannelHistory(this.evictedFloor);
      const floor = parseEventId(this.evictedFloor)!;
      ch.lastMs = floor.ms;
      ch.lastSeq = floor.seq;
      this.channels.set(key, ch);
      this.observer?.created(key, ch.floor);
      if (this.channels.size > this.maxChannels) this.evictOldestChannel();
    } else if (opts.size > 0) {
      // Keep the map ordered by last publish, for LRU eviction.
      this.channels.delete(key);
      this.channels.set(key, ch);
    }
    if (now > ch.lastMs) {
      ch.lastMs = now;
      ch.lastSeq = 0;
    } else {
      ch.lastSeq++;
    }
    const id = formatEventId(ch.lastMs, ch.lastSeq);
    ch.top = id;
    const event = make(id);
    if (opts.size > 0) {
      this.observer?.kept(event, opts);
      ch.opts = opts;
      ch.events.push(event);
      this.retainedBytes += costOf(event);
      while (ch.length > opts.size) this.retainedBytes -= ch.evictOne();
      this.expire(ch, now, opts.ttlMs);
      if (this.retainedBytes > this.maxBytes) this.shrink(ch);
    } else {
      // Not kept: whoever asks for events up to here cannot recover them.
      ch.floor = id;
      while (ch.length > 0) this.retainedBytes -= ch.evictOne();
      ch.floor = id;
      this.observer?.skipped(key, id);
    }
    return event;
  }

  /** Every channel's floor, top and retained events (references: events are never changed). */
  snapshot(): ChannelState[] {
    const out: ChannelState[] = [];
    for (const [key, ch] of this.channels)
      out.push({ key, floor: ch.floor, top: ch.top, opts: ch.opts, events: ch.events.slice(ch.head) });
    return out;
  }

  /** Restore (from the state log): the channel starts (again) at `floor`, with no events. */
  restoreChannel(key: string, floor: string, top: string | undefined): void {
    const old = this.channels.get(key);
    if (old) this.forget(key, old);
    const ch = new ChannelHistory(floor);
    const last = parseEventId(top ?? floor);
    if (last === undefined) return;
    ch.lastMs = last.ms;
    ch.lastSeq = last.seq;
    ch.top = top;
    this.channels.set(key, ch);
    if (this.channels.size > this.maxChannels) this.evictOldestChannel();
  }

  /** Restore: keeps `event` (its id above the channel's top) under the bounds, as `append` would. */
  restoreEvent(event: BrokerEvent, now: number, opts: HistoryOptions): void {
    const ch = this.channels.get(event.key);
    const id = parseEventId(event.id);
    if (
      ch === undefined ||
      id === undefined ||
      (ch.top !== undefined && compareEventIds(event.id, ch.top) <= 0)
    )
      return;
    this.channels.delete(event.key);
    this.channels.set(event.key, ch);
    ch.lastMs = id.ms;
    ch.lastSeq = id.seq;
    ch.top = event.id;
    ch.opts = opts;
    ch.events.push(event);
    this.retainedBytes += costOf(event);
    while (ch.length > Math.max(1, opts.size)) this.retainedBytes -= ch.evictOne();
    this.expire(ch, now, opts.ttlMs);
    if (this.retainedBytes > this.maxBytes) this.shrink(ch);
  }

  /** Restore: a publish that was not kept. */
  restoreSkipped(key: string, id: string): void {
    const ch = this.channels.get(key);
    const parsed = parseEventId(id);
    if (ch === undefined || parsed === undefined) return;
    while (ch.length > 0) this.retainedBytes -= ch.evictOne();
    ch.floor = id;
    ch.top = id;
    ch.lastMs = parsed.ms;
    ch.lastSeq = parsed.seq;
  }

  query(key: string, q: HistoryQuery, now: number, opts: HistoryOptions): HistoryResult {
    const r = this.select(key, q, now, opts);
    return q.maxBytes === undefined ? r : { ...r, events: withinBytes(r.events, q.maxBytes) };
  }

  private select(key: string, q: HistoryQuery, now: number, opts: HistoryOptions): HistoryResult {
    const ch = this.channels.get(key);
    const cap = Math.max(0, Math.min(q.limit ?? opts.size, opts.size || 0, 10_000));
    if (ch === undefined) {
      if (q.since === undefined) return { events: [], recovered: true, top: undefined };
      // `0-0`, the floor of a channel before any event (a subscription's `attachedAt` when it was made on
      // a quiet channel): nothing after it is lost, as the Redis engine answers (its floor defaults to it).
      if (q.since === '0-0') return { events: [], recovered: true, top: undefined };
      // Unknown (never published, or evicted): no other id of it can be vouched for.
      return { events: [], recovered: false, top: undefined };
    }
    this.expire(ch, now, opts.ttlMs);
    const live = ch.events;
    if (q.since === undefined) {
      const n = Math.min(q.last ?? cap, cap, ch.length);
      return { events: live.slice(live.length - n), recovered: true, top: ch.top };
    }
    const since = q.since;
    if (parseEventId(since) === undefined) return { events: [], recovered: false, top: ch.top };
    if (sameId(since, ch.floor)) {
      return {
        events: live.slice(ch.head, ch.head + cap),
        recovered: ch.length <= cap || cap === 0,
        top: ch.top,
      };
    }
    // Binary search for `since` among the retained events: recovered only when it is one of them.
    let lo = ch.head;
    let hi = live.length - 1;
    let exact = false;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const c = compareEventIds(live[mid]!.id, since);
      if (c === 0) {
        exact = true;
        lo = mid + 1;
        break;
      }
      if (c < 0) lo = mid + 1;
      else hi = mid - 1;
    }
    if (exact) {
      const available = live.length - lo;
      return { events: live.slice(lo, lo + cap), recovered: available <= cap, top: ch.top };
    }
    // Older than every retained event (trimmed, expired, or lost with a restart): what is retained, with
    // the gap said. Inside the retained range yet not one of its ids: not a position in this channel (ids
    // are per channel; another channel's id is never compared into this one), so nothing.
    if (lo === ch.head) return { events: live.slice(ch.head, ch.head + cap), recovered: false, top: ch.top };
    return { events: [], recovered: false, top: ch.top };
  }

  top(key: string): string | undefined {
    return this.channels.get(key)?.top;
  }

  private expire(ch: ChannelHistory, now: number, ttlMs: number): void {
    if (ttlMs <= 0) return;
    const cutoff = now - ttlMs;
    while (ch.length > 0 && ch.events[ch.head]!.timestamp < cutoff) this.retainedBytes -= ch.evictOne();
  }

  /**
   * Over the byte budget: drops the oldest events of the least recently published channels (a channel
   * left empty is forgotten, like one evicted by the channel cap) until under it; the channel just
   * published to keeps at least its newest event.
   */
  private shrink(current: ChannelHistory): void {
    while (this.retainedBytes > this.maxBytes) {
      const [key, oldest] = this.channels.entries().next().value as [string, ChannelHistory];
      if (oldest === current) {
        while (this.retainedBytes > this.maxBytes && current.length > 1)
          this.retainedBytes -= current.evictOne();
        return;
      }
      if (oldest.length > 0) this.retainedBytes -= oldest.evictOne();
      if (oldest.length === 0) this.forget(key, oldest);
    }
  }

  /**
   * Forgets the channels whose every event is older than `ttlMs` and that saw no publish for as long, so
   * that the history of channels gone quiet drains (a periodic housekeeping call; ids stay increasing: a
   * channel published again starts above every forgotten one, like after an eviction).
   */
  sweep(now: number, ttlMs: number): void {
    if (ttlMs <= 0) return;
    for (const [key, ch] of this.channels) {
      this.expire(ch, now, ttlMs);
      if (ch.length === 0 && now - ch.lastMs >= ttlMs) this.forget(key, ch);
    }
  }

  private evictOldestChannel(): void {
    const oldest = this.channels.keys().next().value as string;
    this.forget(oldest, this.channels.get(oldest)!);
  }

  private forget(key: string, ch: ChannelHistory): void {
    while (ch.length > 0) this.retainedBytes -= ch.evictOne();
    this.channels.delete(key);
    if (ch.top !== undefined && compareEventIds(ch.top, this.evictedFloor) > 0) this.evictedFloor = ch.top;
  }
}

function sameId(a: string, b: string): boolean {
  return parseEventId(a) !== undefined && compareEventIds(a, b) === 0;
}
