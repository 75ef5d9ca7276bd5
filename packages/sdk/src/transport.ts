/**
 * How the client reaches a gateway. `ClientTransport` is the seam: the client's session speaks to the
 * gateway only through it (open, send a frame, close, hear frames and the close, backpressure), so another
 * transport (HTTP streaming, SSE) is one more file implementing it. `WebSocketTransport` is the first
 * implementation, over the browser's WebSocket or `ws` injected on Node (< 22 has no global).
 */
import { WS_PATH, WS_SUBPROTOCOL } from '@apix/protocol/constants';

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
  /** Starts closing; `onClose` follows. May throw while the connection is still opening. */
  close(code: number, reason: string): void;
  onOpen: (() => void) | null;
  /** One frame from the gateway: its text, or undefined for a frame that is not text. */
  onMessage: ((text: string | undefined) => void) | null;
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
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
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

/** The APIX WebSocket subprotocol over one socket of the given implementation. */
export class WebSocketTransport implements ClientTransport {
  onOpen: (() => void) | null = null;
  onMessage: ((text: string | undefined) => void) | null = null;
  onClose: ((code: number, reason: string) => void) | null = null;
  private socket: WebSocketLike | undefined;

  constructor(private readonly WebSocketImpl: WebSocketConstructor) {}

  connect(url: string): void {
    const socket = new this.WebSocketImpl(url, [WS_SUBPROTOCOL]);
    this.socket = socket;
    socket.onopen = () => this.onOpen?.();
    socket.onmessage = (event) => this.onMessage?.(messageText(event.data));
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
    this.socket?.send(text);
  }

  close(code: number, reason: string): void {
    this.socket?.close(code, reason);
  }
}
