/**
 * The subscriber side of streams (docs/streams.md): the state of each stream of a channel, built from
 * `stream.start` / `stream.append` / `stream.snapshot` / `stream.end` frames and from the compacted event an
 * ended stream leaves in the history (what a late joiner, a resume or a replay gets instead).
 *
 * The rule that keeps the text exact: an append applies only when its `fromSeq` is the stream's `seq` + 1.
 * The server never sends anything else, so a frame that breaks the rule (a bug somewhere) is reported, not
 * applied; a snapshot or the compacted event replaces the text whole, and only moves `seq` forward.
 */
import { ApiXError, ErrorCode } from '@apix/protocol/errors';
import type { Subscription } from './subscription.ts';
import type { ApiXEvent, SubscribeOptions } from './types.ts';

export type AgentStreamStatus = 'streaming' | 'complete' | 'cancelled' | 'error';

/** One stream of a channel as a subscriber sees it. */
export interface AgentStream {
  readonly channel: string;
  readonly streamId: string;
  /** The stream's id while open; the compacted event's id (a position in the channel) once ended. */
  readonly id: string;
  readonly eventType: string;
  /** The start's `data` (merged with the end's, once ended). */
  readonly data: unknown;
  /** Everything appended so far (all of it once ended). */
  readonly text: string;
  /** The last append applied. */
  readonly seq: number;
  readonly status: AgentStreamStatus;
  readonly error?: { code: string; message: string } | undefined;
}

export type StreamChange =
  | { readonly kind: 'start' }
  | { readonly kind: 'snapshot' }
  | { readonly kind: 'append'; readonly text: string }
  | { readonly kind: 'end' }
  /** The compacted event of an ended stream (from a replay, a resume or a late join). */
  | { readonly kind: 'compacted' };

/** A frame or event of a channel, as far as streams care. */
export interface StreamInput {
  readonly type: string;
  readonly channel: string;
  readonly id: string;
  readonly payload: unknown;
}

export type StreamStep =
  | { readonly stream: AgentStream; readonly change: StreamChange }
  /** Nothing to apply: not a stream frame, or one already applied (a duplicate). */
  | undefined
  /** Breaks the `fromSeq` rule: `seq` of the stream vs the frame's `fromSeq`. */
  | { readonly gap: { readonly streamId: string; readonly seq: number; readonly fromSeq: number } };

const END_STATUSES: ReadonlySet<string> = new Set(['complete', 'cancelled', 'error']);

type Fields = Record<string, unknown>;
const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' ? v : 0);

/** The stream an event stands for when it is a compacted stream event (`{...data, streamId, text, seq, status}`). */
export function compactedStream(event: StreamInput): AgentStream | undefined {
  const p = event.payload as Fields | null;
  if (p === null || typeof p !== 'object' || event.type.startsWith('stream.')) return undefined;
  const { streamId, text, seq, status, error, ...data } = p;
  if (typeof streamId !== 'string' || typeof text !== 'string' || typeof seq !== 'number') return undefined;
  if (typeof status !== 'string' || !END_STATUSES.has(status)) return undefined;
  return {
    channel: event.channel,
    streamId,
    id: event.id,
    eventType: event.type,
    data,
    text,
    seq,
    status: status as AgentStreamStatus,
    error: error as AgentStream['error'],
  };
}

/**
 * Applies one frame or event to the stream it names (`current`: that stream's state so far, if any).
 * Pure: the caller keeps the states.
 */
export function applyStreamInput(current: AgentStream | undefined, input: StreamInput): StreamStep {
  const p = (input.payload ?? {}) as Fields;
  switch (input.type) {
    case 'stream.start':
      if (current) return undefined;
      return {
        stream: {
          channel: input.channel,
          streamId: str(p.streamId),
          id: input.id,
          eventType: str(p.eventType),
          data: p.data,
          text: '',
          seq: 0,
          status: 'streaming',
        },
        change: { kind: 'start' },
      };
    case 'stream.snapshot': {
      if (current && (current.status !== 'streaming' || num(p.seq) <= current.seq)) return undefined;
      const stream: AgentStream = {
        channel: input.channel,
        streamId: str(p.streamId),
        id: input.id,
        eventType: str(p.eventType),
        data: p.data,
        text: str(p.text),
        seq: num(p.seq),
        status: 'streaming',
      };
      return { stream, change: { kind: 'snapshot' } };
    }
    case 'stream.append': {
      const fromSeq = num(p.fromSeq);
      if (!current || current.status !== 'streaming' || num(p.seq) <= current.seq) return undefined;
      if (fromSeq !== current.seq + 1)
        return { gap: { streamId: current.streamId, seq: current.seq, fromSeq } };
      const text = str(p.text);
      return {
        stream: { ...current, text: current.text + text, seq: num(p.seq) },
        change: { kind: 'append', text },
      };
    }
    case 'stream.end': {
      if (!current || current.status !== 'streaming') return undefined;
      const seq = num(p.seq);
      if (seq !== current.seq) return { gap: { streamId: current.streamId, seq: current.seq, fromSeq: seq } };
      const data = p.data === undefined ? current.data : mergeData(current.data, p.data);
      const status = END_STATUSES.has(str(p.status)) ? (str(p.status) as AgentStreamStatus) : 'error';
      const stream: AgentStream = {
        ...current,
        id: input.id,
        data,
        status,
        error: p.error as AgentStream['error'],
      };
      return { stream, change: { kind: 'end' } };
    }
    default: {
      const ended = compactedStream(input);
      if (!ended || (current && current.status !== 'streaming')) return undefined;
      return { stream: ended, change: { kind: 'compacted' } };
    }
  }
}

function mergeData(start: unknown, end: unknown): unknown {
  if (typeof start === 'object' && start !== null && typeof end === 'object' && end !== null)
    return { ...(start as Fields), ...(end as Fields) };
  return end;
}

export interface StreamHandlers {
  /** Every change of every stream of the channel, with the stream's state after it. */
  onUpdate?(stream: AgentStream, change: StreamChange): void;
  /** A stream seen for the first time (`stream.start` or a late joiner's `stream.snapshot`). */
  onStart?(stream: AgentStream): void;
  /** A live piece (after it was applied to `stream.text`). */
  onAppend?(stream: AgentStream, text: string): void;
  /** A stream ended (`stream.end`, or the compacted event of one that ended while away). */
  onEnd?(stream: AgentStream): void;
  /** A frame broke the `fromSeq` rule (never expected from a conforming server): not applied. */
  onError?(error: ApiXError): void;
}

export interface StreamsOptions extends SubscribeOptions {
  /** Streams kept in `streams` (the oldest ended ones go first). Default 100. */
  readonly maxStreams?: number;
}

/** What `subscribeStreams` needs of the client. */
export interface StreamSubscriber {
  subscription(channel: string): Subscription | undefined;
  subscribe(channel: string, options?: SubscribeOptions): Subscription;
}

export interface StreamsSubscription {
  readonly subscription: Subscription;
  /** Every stream seen, by streamId, oldest first. */
  readonly streams: ReadonlyMap<string, AgentStream>;
  /** Stops handling; unsubscribes when `subscribeStreams` made the subscription. */
  close(): Promise<void>;
}

const STREAM_FRAME_TYPES = ['stream.start', 'stream.append', 'stream.snapshot', 'stream.end'] as const;

/** `ApiXClient.subscribeStreams`: see there. */
export function subscribeStreams(
  client: StreamSubscriber,
  channel: string,
  handlers: StreamHandlers,
  options: StreamsOptions = {},
): StreamsSubscription {
  const { maxStreams = 100, ...subscribeOptions } = options;
  const existing = client.subscription(channel);
  const subscription = existing ?? client.subscribe(channel, subscribeOptions);
  const streams = new Map<string, AgentStream>();
  const apply = (event: ApiXEvent): void => {
    const p = event.payload as Fields | null;
    const streamId = p !== null && typeof p === 'object' ? p.streamId : undefined;
    if (typeof streamId !== 'string') return;
    const step = applyStreamInput(streams.get(streamId), event);
    if (step === undefined) return;
    if ('gap' in step) {
      const { seq, fromSeq } = step.gap;
      handlers.onError?.(
        new ApiXError(ErrorCode.INTERNAL, `stream ${streamId} on ${channel}: at seq ${seq}, got ${fromSeq}`),
      );
      return;
    }
    const { stream, change } = step;
    const isNew = !streams.has(streamId);
    streams.set(streamId, stream);
    if (isNew) evict(streams, maxStreams);
    handlers.onUpdate?.(stream, change);
    if (isNew && stream.status === 'streaming') handlers.onStart?.(stream);
    if (change.kind === 'append') handlers.onAppend?.(stream, change.text);
    if (stream.status !== 'streaming') handlers.onEnd?.(stream);
  };
  const offs = [...STREAM_FRAME_TYPES.map((type) => subscription.on(type, apply))];
  offs.push(
    subscription.on('*', (event) => {
      if (!event.type.startsWith('stream.')) apply(event);
    }),
  );
  return {
    subscription,
    streams,
    close: async () => {
      for (const off of offs) off();
      if (!existing) await subscription.unsubscribe();
    },
  };
}

function evict(streams: Map<string, AgentStream>, max: number): void {
  if (streams.size <= max) return;
  for (const [id, s] of streams) {
    if (streams.size <= max) return;
    if (s.status !== 'streaming') streams.delete(id);
  }
  // All open: the oldest goes all the same (the bound holds).
  while (streams.size > max) streams.delete(streams.keys().next().value as string);
}
