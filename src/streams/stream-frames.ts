/**
 * The frames of streams (docs/protocol.md §14): what subscribers and publishers are sent, the messages
 * the nodes pass each other over the broker's live path, and the stored form of a stream's text.
 */
import { PROTOCOL_VERSION } from '@apix/protocol';
import type { AtRestCipher, SealedBox } from '../crypto/at-rest.ts';

function meta(now: number, correlationId?: string): string {
  return correlationId === undefined
    ? `{"timestamp":${now},"version":"${PROTOCOL_VERSION}"}`
    : JSON.stringify({ timestamp: now, version: PROTOCOL_VERSION, correlation_id: correlationId });
}

/** A stream frame to a subscriber: `channel` and `id` at the top level, like a channel event. */
function streamEvent(type: string, channel: string, id: string, payloadJson: string, now: number): string {
  return `{"type":"${type}","channel":${JSON.stringify(channel)},"id":"${id}","payload":${payloadJson},"metadata":${meta(now)}}`;
}

export interface StreamHead {
  readonly channel: string;
  readonly streamId: string;
  /** The stream's id. */
  readonly id: string;
  readonly eventType: string;
  readonly dataJson: string;
}

export function startFrame(h: StreamHead, now: number): string {
  const payload = `{"streamId":"${h.streamId}","eventType":"${h.eventType}","data":${h.dataJson}}`;
  return streamEvent('stream.start', h.channel, h.id, payload, now);
}

export function snapshotFrame(h: StreamHead, text: string, seq: number, now: number): string {
  const payload =
    `{"streamId":"${h.streamId}","eventType":"${h.eventType}","data":${h.dataJson},` +
    `"text":${JSON.stringify(text)},"seq":${seq},"status":"streaming"}`;
  return streamEvent('stream.snapshot', h.channel, h.id, payload, now);
}

export function appendFrame(h: StreamHead, fromSeq: number, seq: number, text: string, now: number): string {
  const payload = `{"streamId":"${h.streamId}","fromSeq":${fromSeq},"seq":${seq},"text":${JSON.stringify(text)}}`;
  return streamEvent('stream.append', h.channel, h.id, payload, now);
}

/** `stream.end` to a subscriber that followed the stream: `id` is the compacted event's. */
export function endFrame(
  channel: string,
  compactedId: string,
  end: {
    readonly streamId: string;
    readonly seq: number;
    readonly status: string;
    readonly data?: unknown;
    readonly error?: unknown;
  },
  now: number,
): string {
  const payload: Record<string, unknown> = { streamId: end.streamId, seq: end.seq, status: end.status };
  if (end.data !== undefined) payload.data = end.data;
  if (end.error !== undefined) payload.error = end.error;
  return streamEvent('stream.end', channel, compactedId, JSON.stringify(payload), now);
}

/** `stream.cancel` to the publishing connection. */
export function cancelFrame(
  channel: string,
  streamId: string,
  reason: string,
  by: string,
  now: number,
): string {
  return JSON.stringify({
    type: 'stream.cancel',
    channel,
    payload: { channel, streamId, reason, by },
    metadata: { timestamp: now, version: PROTOCOL_VERSION },
  });
}

// ---- node to node, over the broker's live path (the channel's topic) ----

/** A stream opened, or appends `fromSeq..seq` were stored: what a node's mirrors are kept with. */
export type LiveStreamMessage =
  | ({ readonly kind: 'start' } & StreamHead)
  | {
      readonly kind: 'append';
      readonly channel: string;
      readonly streamId: string;
      readonly fromSeq: number;
      readonly seq: number;
      readonly text: string;
    };

export function encodeLive(message: LiveStreamMessage): string {
  return JSON.stringify(message);
}

export function parseLive(frame: string): LiveStreamMessage | undefined {
  try {
    const m = JSON.parse(frame) as LiveStreamMessage;
    return m.kind === 'start' || m.kind === 'append' ? m : undefined;
  } catch {
    return undefined;
  }
}

// ---- the stored text ----

/**
 * A stream's text as the store keeps it: plain, or on an encrypted channel one sealed box per stored
 * append window (`JSON + "\n"`: the JSON of a box has no newline), so that the text is sealed at rest.
 */
export class StoredText {
  constructor(private readonly cipher: AtRestCipher | undefined) {}

  encode(key: string, text: string, encrypted: boolean): string {
    if (!encrypted || this.cipher === undefined || text === '') return text;
    return `${JSON.stringify(this.cipher.seal(key, text))}\n`;
  }

  decode(key: string, stored: string, encrypted: boolean): string {
    if (!encrypted || this.cipher === undefined || stored === '') return stored;
    const cipher = this.cipher;
    return stored
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => cipher.open(key, JSON.parse(line) as SealedBox))
      .join('');
  }
}
