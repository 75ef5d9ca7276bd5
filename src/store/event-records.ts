/**
 * ApiXEvent rows for events on durable channels, and ApiXDeadLetter rows for events that exhausted their
 * delivery attempts. Appends are queued and written in batches (`createMany`); an event's row id is
 * `<channelKey>@<eventId>`, so a retried batch never duplicates a row and acks find their row without a
 * lookup. The queue is bounded: beyond `maxQueue` appends are refused and counted in `dropped`.
 */
import type { ApiXDeadLetter, ApiXEvent } from '../generated/prisma/client.ts';
import type { PrismaClient } from './database.ts';
import { toJsonValue } from './json.ts';

export interface DurableEvent {
  /** The channel's engine key (`channelKey(orgId, channel)`). */
  readonly channelKey: string;
  /** The event id the router gave it (`<ms>-<seq>`). */
  readonly eventId: string;
  readonly type: string;
  readonly payload: unknown;
  /** The publisher's session, when it published over WebSocket. */
  readonly sessionId?: string | undefined;
  readonly publishedAt: number;
  readonly metadata?: Record<string, unknown> | undefined;
}

export interface DeadLetterRecord {
  readonly orgId: string;
  readonly channelKey: string;
  readonly eventId: string;
  /** The subscriber session that never acknowledged it. */
  readonly sessionId: string;
  readonly attempts: number;
  readonly eventType?: string | undefined;
  readonly payload?: unknown;
  readonly reason?: string | undefined;
  readonly at: number;
}

export function eventRowId(channelKey: string, eventId: string): string {
  return `${channelKey}@${eventId}`;
}

export interface EventRecordsOptions {
  readonly maxQueue?: number;
  readonly maxBatch?: number;
}

export class EventRecords {
  private events: DurableEvent[] = [];
  private acks = new Set<string>();
  private deadLetters: DeadLetterRecord[] = [];
  private readonly maxQueue: number;
  private readonly maxBatch: number;
  dropped = 0;

  constructor(
    private readonly prisma: PrismaClient,
    options: EventRecordsOptions = {},
  ) {
    this.maxQueue = options.maxQueue ?? 50_000;
    this.maxBatch = options.maxBatch ?? 1_000;
  }

  get pendingCount(): number {
    return this.events.length + this.acks.size + this.deadLetters.length;
  }

  /** Queues an event for its durable row. False (and counted) when the queue is full. */
  append(event: DurableEvent): boolean {
    if (this.events.length >= this.maxQueue) return this.refuse();
    this.events.push(event);
    return true;
  }

  /** Marks events acknowledged. */
  acknowledge(channelKey: string, eventIds: readonly string[]): void {
    for (const id of eventIds) {
      if (this.acks.size >= this.maxQueue) return void this.refuse();
      this.acks.add(eventRowId(channelKey, id));
    }
  }

  deadLetter(record: DeadLetterRecord): boolean {
    if (this.deadLetters.length >= this.maxQueue) return this.refuse();
    this.deadLetters.push(record);
    return true;
  }

  async flush(): Promise<void> {
    while (this.events.length) {
      const batch = this.events.slice(0, this.maxBatch);
      await this.prisma.apiXEvent.createMany({
        data: batch.map((e) => ({
          id: eventRowId(e.channelKey, e.eventId),
          eventType: e.type,
          channel: e.channelKey,
          payload: toJsonValue(e.payload),
          sessionId: e.sessionId ?? null,
          createdAt: new Date(e.publishedAt),
          metadata: toJsonValue({ ...(e.metadata ?? {}), eventId: e.eventId }),
        })),
        skipDuplicates: true,
      });
      this.events.splice(0, batch.length);
    }
    while (this.deadLetters.length) {
      const batch = this.deadLetters.slice(0, this.maxBatch);
      await this.prisma.$transaction([
        this.prisma.apiXDeadLetter.createMany({
          data: batch.map((d) => ({
            organizationId: d.orgId,
            channel: d.channelKey,
            eventId: d.eventId,
            sessionId: d.sessionId,
            attempts: d.attempts,
            eventType: d.eventType ?? null,
            payload: d.payload === undefined ? undefined : toJsonValue(d.payload),
            reason: d.reason ?? null,
            createdAt: new Date(d.at),
          })),
        }),
        ...batch.map((d) =>
          this.prisma.apiXEvent.updateMany({
            where: { id: eventRowId(d.channelKey, d.eventId) },
            data: { retryCount: d.attempts },
          }),
        ),
      ]);
      this.deadLetters.splice(0, batch.length);
    }
    if (this.acks.size) {
      const ids = [...this.acks].slice(0, this.maxBatch * 10);
      await this.prisma.apiXEvent.updateMany({ where: { id: { in: ids } }, data: { acknowledgment: true } });
      for (const id of ids) this.acks.delete(id);
    }
  }

  /** A channel's most recent durable events (at most `limit`), oldest first. */
  list(channelKey: string, options: { limit?: number } = {}): Promise<ApiXEvent[]> {
    return this.prisma.apiXEvent
      .findMany({
        where: { channel: channelKey },
        orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
        take: Math.min(options.limit ?? 100, 1_000),
      })
      .then((rows) => rows.reverse());
  }

  /**
   * A channel's durable events with event ids from `fromId` (inclusive) up to `bound.before` (exclusive)
   * or `bound.through` (inclusive), ordered by event id compared numerically (`<ms>-<seq>`), at most
   * `limit`: the records part of a replay past the stream's retention (src/broker/durable-replay-broker.ts).
   */
  async range(
    channelKey: string,
    fromId: string,
    bound: { readonly before?: string | undefined; readonly through?: string | undefined },
    limit: number,
  ): Promise<DurableReplayRow[]> {
    const from = parseId(fromId);
    const upper = bound.before ?? bound.through;
    const to = upper === undefined ? undefined : parseId(upper);
    if (!from || (upper !== undefined && !to)) return [];
    const prefix = `${channelKey}@`;
    const params: unknown[] = [channelKey, prefix, prefix.length + 1, from.ms, from.seq];
    let upperSql = '';
    if (to) {
      params.push(to.ms, to.seq);
      upperSql = ` AND (ms, seq) ${bound.before !== undefined ? '<' : '<='} ($6::bigint, $7::bigint)`;
    }
    params.push(Math.max(1, Math.floor(limit)));
    const rows = await this.prisma.$queryRawUnsafe<
      Array<{ eid: string; type: string; payload: string; metadata: string | null; at: string }>
    >(
      `SELECT eid, type, payload, metadata, at FROM (
         SELECT substr(id, $3::int) AS eid, "eventType" AS type, payload::text AS payload, metadata::text AS metadata,
                (extract(epoch FROM "createdAt") * 1000)::bigint::text AS at,
                split_part(substr(id, $3::int), '-', 1)::bigint AS ms,
                split_part(substr(id, $3::int), '-', 2)::bigint AS seq
           FROM "ApiXEvent"
          WHERE channel = $1 AND starts_with(id, $2) AND substr(id, $3::int) ~ '^[0-9]{1,16}-[0-9]{1,16}$'
       ) e
       WHERE (ms, seq) >= ($4::bigint, $5::bigint)${upperSql}
       ORDER BY ms, seq
       LIMIT $${params.length}::int`,
      ...params.map((p) => (typeof p === 'number' ? String(p) : p)),
    );
    return rows.map((r) => {
      const parsed: unknown = r.metadata === null ? null : JSON.parse(r.metadata);
      const meta: Record<string, unknown> =
        parsed && typeof parsed === 'object' ? { ...(parsed as Record<string, unknown>) } : {};
      delete meta.eventId;
      return {
        id: r.eid,
        type: r.type,
        payload: JSON.parse(r.payload) as unknown,
        timestamp: Number(r.at),
        metadata: Object.keys(meta).length > 0 ? meta : undefined,
      };
    });
  }

  listDeadLetters(orgId: string, options: { limit?: number } = {}): Promise<ApiXDeadLetter[]> {
    return this.prisma.apiXDeadLetter.findMany({
      where: { organizationId: orgId },
      orderBy: { createdAt: 'desc' },
      take: Math.min(options.limit ?? 100, 1_000),
    });
  }

  private refuse(): false {
    this.dropped++;
    return false;
  }
}

export interface DurableReplayRow {
  readonly id: string;
  readonly type: string;
  readonly payload: unknown;
  readonly timestamp: number;
  readonly metadata: Record<string, unknown> | undefined;
}

function parseId(id: string): { ms: number; seq: number } | undefined {
  const m = /^(\d{1,16})-(\d{1,16})$/.exec(id);
  return m ? { ms: Number(m[1]), seq: Number(m[2]) } : undefined;
}
