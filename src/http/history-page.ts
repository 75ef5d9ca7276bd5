/**
 * One page of `GET /v1/channels/<channel>/history`, served from the stored frames as they are: each
 * event's frame is the JSON text delivered on the WebSocket (serialized once, at publish), so the answer
 * is those strings joined into `{"events":[...],...}` — never parsed, never stringified again. A page
 * holds the events, oldest first, while their frames fit in a byte budget (the first one always, so that
 * every page moves the cursor), and is written in chunks that wait for the socket to drain.
 *
 * The cost of a read is bounded by the budget, not by what a client stored: 120 events of 180 KB asked
 * with `limit=1000` were parsed and stringified (about 22 MB) in one synchronous step per request, stalling
 * every other tenant's deliveries on the node (issue 13 item 7).
 */
import type { ServerResponse } from 'node:http';
import { compareEventIds } from '@apix/protocol';

/** What a page needs of a stored event. */
export interface StoredFrame {
  readonly id: string;
  readonly frame: string;
}

export interface HistoryPage {
  /** The frames of the page, oldest first. */
  readonly frames: readonly string[];
  /** Their total size in bytes (UTF-8). */
  readonly bytes: number;
  /** The channel holds events after the page's last one: read on with `since` = `next`. */
  readonly hasMore: boolean;
  /** The page's last id (present when `hasMore`). */
  readonly next: string | undefined;
}

/**
 * The events of `events` (oldest first) that fit in `budgetBytes` (at least one); `top` is the channel's
 * newest id: the page `hasMore` when its last event is older.
 */
export function historyPage(
  events: readonly StoredFrame[],
  top: string | undefined,
  budgetBytes: number,
): HistoryPage {
  const frames: string[] = [];
  let bytes = 0;
  let last: string | undefined;
  for (const e of events) {
    const size = Buffer.byteLength(e.frame);
    if (frames.length > 0 && bytes + size + 1 > budgetBytes) break;
    frames.push(e.frame);
    bytes += size + (frames.length > 1 ? 1 : 0);
    last = e.id;
  }
  const hasMore =
    last !== undefined &&
    (frames.length < events.length || (top !== undefined && compareEventIds(last, top) < 0));
  return { frames, bytes, hasMore, next: hasMore ? last : undefined };
}

/** Chunks of about this size are handed to the socket, each after the previous one drained. */
const CHUNK_BYTES = 64 * 1024;

/**
 * Writes `{"events":[<frames>],"recovered":..,"hasMore":..,"next"?:..,"streams"?:[..]}` with a 200, in
 * chunks; `streams`: `stream.snapshot` frames of the channel's open streams, when there are any.
 */
export async function sendHistoryPage(
  res: ServerResponse,
  page: HistoryPage,
  recovered: boolean,
  streams: readonly string[] = [],
): Promise<void> {
  const head = '{"events":[';
  const tail = `],"recovered":${recovered},"hasMore":${page.hasMore}${
    page.next !== undefined ? `,"next":${JSON.stringify(page.next)}` : ''
  }${streams.length > 0 ? `,"streams":[${streams.join(',')}]` : ''}}`;
  res.writeHead(200, {
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': Buffer.byteLength(head) + page.bytes + Buffer.byteLength(tail),
  });
  let chunk = head;
  for (let i = 0; i < page.frames.length; i++) {
    chunk += i === 0 ? page.frames[i]! : `,${page.frames[i]!}`;
    if (chunk.length >= CHUNK_BYTES) {
      if (!(await write(res, chunk))) return;
      chunk = '';
    }
  }
  res.end(chunk + tail);
}

/** Writes `text`; when the socket's buffer is full, resolves once it drained (false: the client left). */
function write(res: ServerResponse, text: string): Promise<boolean> {
  if (res.destroyed) return Promise.resolve(false);
  if (res.write(text)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (drained: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(drained);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}
