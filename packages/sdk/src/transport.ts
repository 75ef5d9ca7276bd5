/**
 * The WebSocket the SDK needs: the browser's global, or `ws` injected on Node (< 22 has no global).
 * Only the event-handler properties are used, which the DOM WebSocket and `ws` both implement.
 */
import { WS_PATH } from '@apix/protocol/constants';

/** Method-style declaration: makes handler parameters bivariant, so DOM and `ws` event types both fit. */
type Handler<E> = { bivarianceHack(event: E): void }['bivarianceHack'];

export interface WebSocketLike {
  readonly readyState: number;
  /** The subprotocol the server selected ('' when none). */
  readonly protocol: string;
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
 * when the URL has none, so `new ApixClient({ url: 'https://apix.example.com' })` works.
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
