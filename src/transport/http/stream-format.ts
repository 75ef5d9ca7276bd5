/**
 * How a server frame is written on an HTTP stream: one JSON text per line (`application/x-ndjson`), or one
 * Server-Sent Event per frame (`text/event-stream`, with `id: <channel>/<event id>` for channel events so
 * that `Last-Event-ID` can resume). `encodeStreamFrame` is the one place a frame becomes bytes: another
 * encoding (MessagePack) is added here.
 */
export type StreamFormat = 'ndjson' | 'sse';

export const STREAM_CONTENT_TYPES: Readonly<Record<StreamFormat, string>> = {
  ndjson: 'application/x-ndjson; charset=utf-8',
  sse: 'text/event-stream; charset=utf-8',
};

/**
 * The channel and id of a channel event frame. Event frames are built by `encodeChannelEvent` (and
 * `withRetryCount`, which keeps the member order) with grammar-checked names, so a prefix match is exact.
 */
const EVENT_PREFIX = /^\{"type":"[^"]*","channel":"([^"]*)","id":"([^"]*)"/;

export function sseEventId(text: string): string | undefined {
  const m = EVENT_PREFIX.exec(text);
  return m ? `${m[1]}/${m[2]}` : undefined;
}

/** The bytes of one server frame (its JSON text) on a stream of `format`. JSON text holds no raw newline. */
export function encodeStreamFrame(format: StreamFormat, text: string): Buffer {
  if (format === 'ndjson') return Buffer.from(`${text}\n`);
  const id = sseEventId(text);
  return Buffer.from(id === undefined ? `data: ${text}\n\n` : `id: ${id}\ndata: ${text}\n\n`);
}

/** An SSE comment line: ignored by clients, it keeps proxies and load balancers from timing the stream out. */
export const SSE_KEEPALIVE = Buffer.from(': heartbeat\n\n');

/**
 * Parses a `Last-Event-ID` (`<channel>/<event id>`): the channel and the id, or undefined when malformed.
 * The id never holds a `/`; a channel may, so the split is at the last one.
 */
export function parseLastEventId(value: string | undefined): { channel: string; id: string } | undefined {
  if (value === undefined) return undefined;
  const at = value.lastIndexOf('/');
  if (at <= 0 || at === value.length - 1 || value.length > 512) return undefined;
  return { channel: value.slice(0, at), id: value.slice(at + 1) };
}
