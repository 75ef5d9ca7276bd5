/**
 * How the client reaches a gateway. `ClientTransport` is the seam: the client's session speaks to the
 * gateway only through it (open, send a frame, close, hear frames and the close, backpressure), so another
 * transport (HTTP streaming, SSE) is one more file implementing it. `WebSocketTransport` is the first
 * implementation, over the browser's WebSocket or `ws` injected on Node (< 22 has no global).
 */
import { WS_PATH, WS_SUBPROTOCOL, WS_SUBPROTOCOL_MSGPACK } from '@apix/protocol/constants';
import type * as MsgpackModule from '@apix/protocol/msgpack';

type MsgpackCodec = typeof MsgpackModule;
let msgpackCodec: Promise<MsgpackCodec> | undefined;

/**
 * The MessagePack codec, loaded on first use: only a client with `encoding: 'msgpack'` pays for it (about
 * 40 KB of the browser bundle, which loads it as `sdk/apix-msgpack.js` beside `sdk/apix.js`).
 */
export function loadMsgpack(): Promise<MsgpackCodec> {
  msgpackCodec ??= import('@apix/protocol/msgpack').catch((err: unknown) => {
    msgpackCodec = undefined; // a failed load (network) is tried again at the next connect
    throw err;
  });
  return msgpackCodec;
}

/** A frame from the gateway: JSON text, an envelope already decoded (MessagePack), or undefined (unreadable). */
export type IncomingMessage = string | object | undefined;

/**
 * One connection attempt to a gateway, in the shape the client's session drives: `connect` once, then
 * frames both ways until it closes. Events arrive asynchronously (never from inside `connect`, `send` or
 * `close`), and not at all once their handler is set to null.
 */
export interface ClientTransport {
  /** Starts opening a connection to `url`; `onOpen` follows, or `onClose`. Throws when it cannot start. */
  connect(url: string): void;
  /** True while `send` can deliver a frame. */
  readonly isOpen: boolean;
  /** Bytes given to `send` and not yet written out (backpressure); 0 when the transport cannot tell. */
  readonly bufferedAmount: number;
  /** Sends one text frame (a JSON envelope). */
  send(text: string): void;
  /**
   * Sends one envelope as an object, in the transport's own encoding (MessagePack keeps `Uint8Array`
   * values as bytes). Optional: without it the client sends `JSON.stringify(frame)` with `send`.
   */
  sendFrame?(frame: object): void;
  /** Starts closing; `onClose` follows. May throw while the connection is still opening. */
  close(code: number, reason: string): void;
  onOpen: (() => void) | null;
  /** One frame from the gateway: its text, the decoded envelope, or undefined for a frame it cannot read. */
  onMessage: ((message: IncomingMessage) => void) | null;
  /** The connection closed, with the WebSocket close code (1006: dropped without one). */
  onClose: ((code: number, reason: string) => void) | null;
}

/** Creates the transport of one connection attempt (a new one for each). */
export type ClientTransportFactory = () => ClientTransport;

/** Method-style declaration: makes handler parameters bivariant, so DOM and `ws` event types both fit. */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

/**
 * The WebSocket the SDK needs. Only the event-handler properties are used, which the DOM WebSocket and
 * `ws` both implement.
 */
export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server selected ('' when none). */
  readonly protocol: string;
  /** Bytes queued by `send` and not yet sent (both the DOM WebSocket and `ws` have it). */
  readonly bufferedAmount?: number;
  /** Set to 'arraybuffer' for MessagePack (the DOM default is Blob, which cannot be read synchronously). */
  binaryType?: string;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string | Uint8Array): void;
  close(code?: number, reason?: string): void;
}

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** WebSocket.OPEN; not read from the constructor because injected implementations may lack the static. */
export const WS_OPEN = 1;

export function defaultWebSocket(): WebSocketConstructor | undefined {
  const ctor = (globalThis as { WebSocket?: unknown }).WebSocket;
  return typeof ctor === 'function' ? (ctor as WebSocketConstructor) : undefined;
}

/**
 * Accepts `ws(s)://host[:port][/v1/ws]` and `http(s)://...`: maps http to ws and adds the protocol's path
 * when the URL has none, so `new ApiXClient({ url: 'https://apix.example.com' })` works.
 */
export function normalizeGatewayUrl(url: string): string {
  const u = new URL(url);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  if (u.pathname === '' || u.pathname === '/') u.pathname = WS_PATH;
  return u.toString();
}

/** Text of a message event; undefined for binary frames, which the protocol does not use. */
export function messageText(data: unknown): string | undefined {
  return typeof data === 'string' ? data : undefined;
}

/** The envelope in a binary frame (ArrayBuffer, or a Node Buffer from `ws`); undefined when unreadable. */
export function messageFromBinary(data: unknown, codec: MsgpackCodec): object | undefined {
  const bytes =
    data instanceof ArrayBuffer ? new Uint8Array(data) : data instanceof Uint8Array ? data : undefined;
  if (bytes === undefined) return undefined;
  try {
    const frame = codec.decodeMsgpack(bytes);
    return typeof frame === 'object' && frame !== null ? frame : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The APIX WebSocket subprotocol over one socket of the given implementation: JSON text frames, or with
 * `encoding: 'msgpack'` MessagePack binary frames when the gateway selects `apix.v1.msgpack` (offered
 * first, JSON second, so an older gateway still answers in JSON).
 */
export class WebSocketTransport implements ClientTransport {
  onOpen: (() => void) | null = null;
  onMessage: ((message: IncomingMessage) => void) | null = null;
  onClose: ((code: number, reason: string) => void) | null = null;
  private socket: WebSocketLike | undefined;
  /** The MessagePack codec once loaded (`encoding: 'msgpack'` only). */
  private codec: MsgpackCodec | undefined;
  /** The gateway selected MessagePack (known once the socket is open). */
  private msgpack = false;
  /** Closed while the codec was loading: the socket is never opened. */
  private closedEarly = false;

  constructor(
    private readonly WebSocketImpl: WebSocketConstructor,
    private readonly encoding: 'json' | 'msgpack' = 'json',
  ) {}

  connect(url: string): void {
    if (this.encoding !== 'msgpack') return this.open(url);
    // The codec first, then the socket. A codec that cannot load (a network error fetching the chunk)
    // leaves JSON: the gateway answers JSON to a client that offers only JSON.
    const opened = (codec: MsgpackCodec | undefined) => {
      this.codec = codec;
      if (this.closedEarly) return;
      try {
        this.open(url);
      } catch (err) {
        this.onClose?.(1006, err instanceof Error ? err.message : String(err));
      }
    };
    loadMsgpack().then(opened, () => opened(undefined));
  }

  private open(url: string): void {
    const codec = this.codec;
    const offers = codec ? [WS_SUBPROTOCOL_MSGPACK, WS_SUBPROTOCOL] : [WS_SUBPROTOCOL];
    const socket = new this.WebSocketImpl(url, offers);
    this.socket = socket;
    if (codec) socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      this.msgpack = codec !== undefined && socket.protocol === WS_SUBPROTOCOL_MSGPACK;
      this.onOpen?.();
    };
    socket.onmessage = (event) =>
      this.onMessage?.(this.msgpack ? messageFromBinary(event.data, codec!) : messageText(event.data));
    socket.onclose = (event) => this.onClose?.(event.code, event.reason);
    // Required: `ws` throws on an 'error' event nobody listens to. The close event follows an error.
    socket.onerror = () => {};
  }

  get isOpen(): boolean {
    return this.socket?.readyState === WS_OPEN;
  }

  get bufferedAmount(): number {
    return this.socket?.bufferedAmount ?? 0;
  }

  send(text: string): void {
    this.socket?.send(this.msgpack ? this.codec!.msgpackFromJson(text) : text);
  }

  sendFrame(frame: object): void {
    this.socket?.send(this.msgpack ? this.codec!.encodeMsgpack(frame) : JSON.stringify(frame));
  }

  close(code: number, reason: string): void {
    if (this.socket) return this.socket.close(code, reason);
    // Still loading the codec: no socket will open; the close is heard as a socket's would be (later).
    if (this.closedEarly) return;
    this.closedEarly = true;
    void Promise.resolve().then(() => this.onClose?.(code, reason));
  }
}
