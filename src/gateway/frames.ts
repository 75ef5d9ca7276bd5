/**
 * Server frames, serialized once. Channel events are encoded by `encodeChannelEvent` when they are
 * published (once for every subscriber on every node), and `textFrame` builds the WebSocket frame bytes
 * once so the same Buffer is written to every subscriber's socket.
 */
import { constants as zlibConstants, deflateRawSync } from 'node:zlib';
import { PROTOCOL_VERSION } from '@apix/protocol';
import type { ErrorCode, ServerControlFrame } from '@apix/protocol';

type ControlPayload<T extends ServerControlFrame['type']> = Extract<
  ServerControlFrame,
  { type: T }
>['payload'];

export function encodeControl<T extends ServerControlFrame['type']>(
  type: T,
  payload: ControlPayload<T>,
  now: number,
  correlationId?: string,
): string {
  const metadata =
    correlationId === undefined
      ? { timestamp: now, version: PROTOCOL_VERSION }
      : { timestamp: now, version: PROTOCOL_VERSION, correlation_id: correlationId };
  return JSON.stringify({ type, payload, metadata });
}

export function encodeError(
  code: ErrorCode,
  message: string,
  fatal: boolean,
  now: number,
  correlationId?: string,
  extra?: { retryAfterMs?: number; channel?: string },
): string {
  return encodeControl('connection.error', { code, message, fatal, ...extra }, now, correlationId);
}

/**
 * The delivery frame of a channel event. `payloadJson` is the payload already serialized; the channel
 * name, type and id are grammar-checked (no character needs escaping), and `extraMetadata` is the
 * publisher's custom metadata members, already JSON.
 */
export function encodeChannelEvent(
  type: string,
  channel: string,
  id: string,
  payloadJson: string,
  timestamp: number,
  extraMetadata: string | undefined,
): string {
  const meta =
    extraMetadata === undefined
      ? `{"timestamp":${timestamp},"version":"${PROTOCOL_VERSION}"}`
      : `{"timestamp":${timestamp},"version":"${PROTOCOL_VERSION}",${extraMetadata}}`;
  return `{"type":"${type}","channel":"${channel}","id":"${id}","payload":${payloadJson},"metadata":${meta}}`;
}

/**
 * A room's `presence.join` / `presence.leave` frame: like a channel event but without an id, since it is
 * live only (never in history, no place in the channel's order).
 */
export function encodePresence(
  type: string,
  channel: string,
  payloadJson: string,
  timestamp: number,
): string {
  return `{"type":"${type}","channel":"${channel}","payload":${payloadJson},"metadata":{"timestamp":${timestamp},"version":"${PROTOCOL_VERSION}"}}`;
}

/** Re-encodes an event frame for a redelivery, with `metadata.retryCount` set. */
export function withRetryCount(frame: string, retryCount: number): string {
  const obj = JSON.parse(frame) as { metadata: Record<string, unknown> };
  obj.metadata.retryCount = retryCount;
  return JSON.stringify(obj);
}

/** An unmasked, final WebSocket text frame (RFC 6455 5.2) holding `text`: header and payload in one Buffer. */
export function textFrame(text: string): Buffer {
  const len = Buffer.byteLength(text);
  const buf = frameWithHeader(0x81, len); // FIN + opcode 1 (text)
  buf.write(text, buf.length - len);
  return buf;
}

/** An unmasked, final WebSocket binary frame (opcode 2) holding `bytes`: header and payload in one Buffer. */
export function binaryFrame(bytes: Uint8Array): Buffer {
  const buf = frameWithHeader(0x82, bytes.length); // FIN + opcode 2 (binary)
  buf.set(bytes, buf.length - bytes.length);
  return buf;
}

/** A Buffer of the right size with the frame header written (first byte, then the length encoding). */
function frameWithHeader(firstByte: number, len: number): Buffer {
  const headerLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const buf = Buffer.allocUnsafe(headerLen + len);
  buf[0] = firstByte;
  if (len < 126) buf[1] = len;
  else if (len < 65536) {
    buf[1] = 126;
    buf.writeUInt16BE(len, 2);
  } else {
    buf[1] = 127;
    buf.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    buf.writeUInt32BE(len >>> 0, 6);
  }
  return buf;
}

/** Up to this many characters a message is compressed with a 4 KB window (see deflatedTextFrame). */
const SMALL_MESSAGE_CHARS = 4096;

/**
 * The same text frame compressed for permessage-deflate (RFC 7692), built once per event and written to
 * every subscriber that negotiated the extension (the technique uWebSockets calls a shared compressor).
 * Each message is compressed on its own (a fresh raw deflate stream, sync-flushed, the 00 00 ff ff tail
 * removed), so it is valid for any receiver window: the server negotiates server_no_context_takeover,
 * and ws's own per-connection compressor is never used (see Connection.send).
 */
export function deflatedTextFrame(text: string): Buffer {
  // Most of the cost of a small message is setting up the stream (zlib's window and hash tables, ~270 KB
  // at the defaults): a 4 KB window and memLevel 4 compress a 2 KB event as well (816 against 813 bytes)
  // in less than half the time (46 against 104 µs here). Any inflater with a larger window reads it.
  const small = text.length <= SMALL_MESSAGE_CHARS;
  const raw = deflateRawSync(Buffer.from(text), {
    finishFlush: zlibConstants.Z_SYNC_FLUSH,
    level: 1,
    memLevel: small ? 4 : 8,
    windowBits: small ? 12 : 15,
  });
  const len = raw.length - 4; // drop the 00 00 ff ff of the sync flush
  const buf = frameWithHeader(0xc1, len); // FIN + RSV1 (compressed) + opcode 1 (text)
  raw.copy(buf, buf.length - len, 0, len);
  return buf;
}

/**
 * The frames of one event, built lazily and at most once: the plain frame, and the compressed one for
 * subscribers that negotiated permessage-deflate when the event is at least `threshold` bytes.
 */
export class EventFrames {
  private plainFrame: Buffer | undefined;
  private deflatedFrame: Buffer | null | undefined;
  /** The event as other transports write it (an HTTP stream's line, an SSE event), by encoding. */
  private otherEncodings: Map<string, Buffer> | undefined;
  constructor(
    readonly text: string,
    private readonly threshold: number,
  ) {}
  get plain(): Buffer {
    return (this.plainFrame ??= textFrame(this.text));
  }
  /** The frame for a connection: compressed when it negotiated permessage-deflate and it pays. */
  forConnection(deflate: boolean): Buffer {
    if (!deflate) return this.plain;
    if (this.deflatedFrame === undefined)
      this.deflatedFrame = this.text.length >= this.threshold ? deflatedTextFrame(this.text) : null;
    return this.deflatedFrame ?? this.plain;
  }
  /** The event as a transport other than WebSocket writes it: built by `build` once per `encoding`. */
  encoded(encoding: string, build: (text: string) => Buffer): Buffer {
    this.otherEncodings ??= new Map();
    let bytes = this.otherEncodings.get(encoding);
    if (bytes === undefined) this.otherEncodings.set(encoding, (bytes = build(this.text)));
    return bytes;
  }
  /** Bytes of the plain frame (for throughput metrics). */
  get size(): number {
    return this.plain.length;
  }
}
