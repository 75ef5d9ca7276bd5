/**
 * The encodings a client's frames travel in: JSON text (`apix.v1.json`, and the HTTP transports) or
 * MessagePack in binary frames (`apix.v1.msgpack`, WebSocket only). Incoming frames of either become the
 * same object, which the gateway validates with the same schemas; a binary value in a MessagePack frame
 * becomes `{"$binary": "<base64>"}` so the rest of the pipeline stays JSON.
 */
import { WS_SUBPROTOCOL, WS_SUBPROTOCOL_MSGPACK } from '@apix/protocol';
import { binaryToJson, decodeMsgpack } from '@apix/protocol/msgpack';

export type WireEncoding = 'json' | 'msgpack';

/** The WebSocket subprotocols the gateway speaks, with their encodings. */
const SUBPROTOCOLS: ReadonlyMap<string, WireEncoding> = new Map([
  [WS_SUBPROTOCOL, 'json'],
  [WS_SUBPROTOCOL_MSGPACK, 'msgpack'],
]);

export const SUPPORTED_SUBPROTOCOLS = [...SUBPROTOCOLS.keys()];

/** The subprotocol to select: the first of the client's offers (in its order) that the gateway speaks. */
export function selectSubprotocol(offered: Iterable<string>): string | undefined {
  for (const p of offered) if (SUBPROTOCOLS.has(p)) return p;
  return undefined;
}

/** The encoding of a negotiated subprotocol ('' or unknown: JSON, the default). */
export function encodingOf(subprotocol: string): WireEncoding {
  return SUBPROTOCOLS.get(subprotocol) ?? 'json';
}

/** A client frame decoded, or why it cannot be (the message of a BAD_REQUEST). */
export type ParsedFrame = { readonly frame: object } | { readonly error: string };

/** Decodes one client frame in its connection's encoding into a plain object (not yet validated). */
export function parseIncoming(data: string | Buffer, isBinary: boolean, encoding: WireEncoding): ParsedFrame {
  let frame: unknown;
  if (encoding === 'msgpack') {
    if (!isBinary) return { error: 'this connection speaks MessagePack: send one map per binary frame' };
    try {
      frame = binaryToJson(decodeMsgpack(typeof data === 'string' ? Buffer.from(data) : data));
    } catch (err) {
      return { error: `frame is not valid MessagePack (${(err as Error).message.slice(0, 120)})` };
    }
    if (!isPlainObject(frame)) return { error: 'frame must be a MessagePack map' };
    return { frame };
  }
  if (isBinary) return { error: 'binary frames are not accepted; send JSON text' };
  try {
    frame = JSON.parse(typeof data === 'string' ? data : data.toString('utf8'));
  } catch {
    return { error: 'frame is not valid JSON' };
  }
  if (!isPlainObject(frame)) return { error: 'frame must be a JSON object' };
  return { frame };
}

function isPlainObject(value: unknown): value is object {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
