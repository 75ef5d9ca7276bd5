/**
 * Replay past the stream's retention for durable channels (docs/reliability.md, durable channels): a Broker decorator whose
 * `history` answers a `since` older than the channel's history (memory ring or Redis Stream) from the
 * ApiXEvent records, then continues with the stream, as one cursor.
 *
 * The seam. The records are written in batches (each node buffers its durable events and flushes them
 * every APIX_RECORDS_FLUSH_INTERVAL_MS), so an event can be in the stream and not yet in the records,
 * or (after trimming) in the records and no longer in the stream. The cursor is defined so that neither
 * a gap nor a duplicate appears:
 *
 *   1. read the stream's retained events S = [F .. top] (F: its first retained id);
 *   2. flush this node's buffered durable events; on a shared engine (Redis) other nodes' buffers are
 *      written within one flush interval, so wait until F's time + `peerFlushWaitMs` has passed (only
 *      when F is that recent: a resume right after a burst waits at most one interval);
 *   3. read the records with ids in [since, F) (or [since, top] when the stream holds nothing),
 *      ordered by event id numerically; the first row must be `since` itself, else the records do not
 *      know the asked id either and the answer stays `recovered: false`;
 *   4. answer records(since, F) then S: ids below F only come from the records, ids from F on only
 *      from the stream, so no event appears twice; live events that arrive meanwhile are merged by the
 *      caller after the last replayed id (the gateway's `sub.pending`).
 *
 * At most `maxEvents` events are answered (the first ones after `since`); more: `recovered: false`, like
 * a capped history read (HTTP clients page with `since` = the last id).
 */
import type { Clock } from '../clock.ts';
import { channelNameFromKey, compareEventIds, isEventId, parseEventId } from '@apix/protocol';
import { ForwardingBroker } from '../broker/forwarding-broker.ts';
import { encodeChannelEvent } from '../gateway/frames.ts';
import { sealedBoxOfRecordPayload, sealedFrameText } from '../crypto/at-rest.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import type { Broker, BrokerEvent, HistoryQuery, HistoryResult } from '../broker/broker.ts';

/** A durable event as the records give it back. */
export interface DurableReplayEvent {
  readonly id: string;
  readonly type: string;
  readonly payload: unknown;
  /** Publish time (ms since epoch). */
  readonly timestamp: number;
  /** The publisher's custom metadata keys (e.g. `trace_id`), if any. */
  readonly metadata?: Record<string, unknown> | undefined;
}

/** Where durable events are read back from (the ApiXEvent records, `EventRecords.range`). */
export interface DurableEventSource {
  /**
   * The channel's durable events with ids from `fromId` (inclusive) to `bound.before` (exclusive) or
   * `bound.through` (inclusive; neither: no upper bound), ordered by event id, at most `limit`.
   */
  range(
    key: string,
    fromId: string,
    bound: { readonly before?: string | undefined; readonly through?: string | undefined },
    limit: number,
  ): Promise<readonly DurableReplayEvent[]>;
  /** Writes this node's buffered durable events now; resolves false when the write failed. */
  flush(): Promise<boolean>;
}

export interface DurableReplayOptions {
  readonly source: DurableEventSource;
  readonly channels: ChannelRegistry;
  readonly clock: Clock;
  /** Most events one replay answers. */
  readonly maxEvents: number;
  /**
   * How long after an event's time every node has surely written it (their flush interval plus
   * slack); 0 when this node is the only writer (memory engine): then flushing its buffer suffices.
   */
  readonly peerFlushWaitMs: number;
  /** Counts replays served from the records (a metric). */
  readonly onReplay?: (events: number) => void;
  readonly onError?: (err: unknown, key: string) => void;
}

export class DurableReplayBroker extends ForwardingBroker {
  /** Replays that reached into the records, and the events they read there. */
  replays = 0;
  replayedFromRecords = 0;

  constructor(
    inner: Broker,
    private readonly options: DurableReplayOptions,
  ) {
    super(inner);
  }

  override async history(key: string, query: HistoryQuery): Promise<HistoryResult> {
    const r = await this.inner.history(key, query);
    const since = query.since;
    // Not recovered: `since` may be older than the stream (the retained events after it came back, with
    // the gap); the records fill the gap when they know `since`, else the stream's answer stands.
    if (r.recovered || since === undefined || !isEventId(since)) return r;
    if (!this.isDurable(key)) return r;
    try {
      return (await this.fromRecords(key, since, query.limit)) ?? r;
    } catch (err) {
      this.options.onError?.(err, key);
      return r;
    }
  }

  private isDurable(key: string): boolean {
    const slash = key.indexOf('/');
    if (slash <= 0) return false;
    return this.options.channels.get(key.slice(0, slash), key.slice(slash + 1))?.durable === true;
  }

  private async fromRecords(
    key: string,
    since: string,
    limit: number | undefined,
  ): Promise<HistoryResult | undefined> {
    const { source, clock, peerFlushWaitMs } = this.options;
    const cap = Math.max(1, Math.min(limit ?? this.options.maxEvents, this.options.maxEvents));
    // 1. What the stream still holds.
    const stream = await this.inner.history(key, {});
    const first = stream.events[0]?.id;
    const edge = first ?? stream.top;
    // 2. Everything below the edge must be in the records: ours now, the other nodes' within a flush.
    await source.flush();
    const edgeMs = edge === undefined ? undefined : parseEventId(edge)?.ms;
    if (peerFlushWaitMs > 0 && edgeMs !== undefined) {
      const wait = Math.min(peerFlushWaitMs, edgeMs + peerFlushWaitMs - clock.now());
      if (wait > 0) await new Promise<void>((resolve) => clock.setTimeout(resolve, wait));
    }
    // 3. The records from `since` (which must be there) up to the stream's first event.
    const bound = first !== undefined ? { before: first } : { through: stream.top };
    const rows = await source.range(key, since, bound, cap + 2);
    if (rows.length === 0 || compareEventIds(rows[0]!.id, since) !== 0) return undefined;
    const channel = channelNameFromKey(key);
    const events: BrokerEvent[] = [];
    for (let i = 1; i < rows.length && events.length < cap; i++)
      events.push(toBrokerEvent(key, channel, rows[i]!));
    const fromRecords = events.length;
    let truncated = rows.length - 1 > cap;
    // 4. Then the stream, after whatever the records gave.
    const after = events.length > 0 ? events[events.length - 1]!.id : since;
    for (const ev of stream.events) {
      if (compareEventIds(ev.id, after) <= 0) continue;
      if (events.length >= cap) {
        truncated = true;
        break;
      }
      events.push(ev);
    }
    this.replays++;
    this.replayedFromRecords += fromRecords;
    this.options.onReplay?.(fromRecords);
    return { events, recovered: !truncated, top: stream.top };
  }
}

function toBrokerEvent(key: string, channel: string, e: DurableReplayEvent): BrokerEvent {
  // A channel encrypted at rest: the record holds the event's sealed frame; the node opens it (AtRestBroker).
  const box = sealedBoxOfRecordPayload(e.payload);
  if (box !== undefined)
    return {
      key,
      id: e.id,
      type: e.type,
      timestamp: e.timestamp,
      frame: sealedFrameText(box, e.id),
      publisher: undefined,
    };
  let extra: string | undefined;
  for (const [k, v] of Object.entries(e.metadata ?? {})) {
    const member = `${JSON.stringify(k)}:${JSON.stringify(v) ?? 'null'}`;
    extra = extra === undefined ? member : `${extra},${member}`;
  }
  const payloadJson = e.payload === undefined ? 'null' : JSON.stringify(e.payload);
  return {
    key,
    id: e.id,
    type: e.type,
    timestamp: e.timestamp,
    frame: encodeChannelEvent(e.type, channel, e.id, payloadJson, e.timestamp, extra),
    publisher: undefined,
  };
}
