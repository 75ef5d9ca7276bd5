/**
 * The client's options and every default in one place.
 */
import type { ClientType } from '@apix/protocol/constants';
import type { BackoffOptions } from './backoff.ts';
import type { Clock, Random } from '@apix/protocol/clock';
import type { E2eKeyMap } from './e2e.ts';
import type { TokenProvider } from './token.ts';
import type { ClientTransportFactory, WebSocketConstructor } from './transport.ts';
import type { FetchLike } from './http-stream-transport.ts';
import type { TransportName } from './transport-fallback.ts';

export interface HeartbeatOptions {
  /** How often the client sends its own `heartbeat.ping`. Default: the server's `heartbeatIntervalMs`. */
  intervalMs?: number;
  /** No `heartbeat.pong` within this time: the connection is dead and the client reconnects. Default 10000. */
  timeoutMs?: number;
}

export interface FailoverOptions {
  /** Move when the server says this connection is degraded (`qos` frame). Default true. */
  onQosDegraded?: boolean;
  /** A heartbeat round trip above this counts as slow. Default 1000 ms. */
  rttThresholdMs?: number;
  /** Slow round trips in a row that make the client move. Default 3. */
  rttSamples?: number;
  /** How long a move waits for the replies to publishes in flight (new ones wait in the buffer). Default 2000 ms. */
  drainMs?: number;
}

export interface ApiXClientOptions {
  /**
   * The gateway: `wss://host` (the path `/v1/ws` is added when absent; http(s) maps to ws(s)). Given
   * several, the client measures each handshake before its first connect, prefers the fastest, and moves
   * to the next one when an attempt fails or a node goes away (1001).
   */
  url: string | readonly string[];
  /** A fixed token (JWT or API key). Give `tokenProvider` instead to have it refreshed. */
  token?: string;
  /** Called before every connect and again before the current JWT's `exp`; the new token goes out as `auth.refresh`. */
  tokenProvider?: TokenProvider;
  /** Sent as `authentication.organizationId`; must agree with the token's `org` claim. */
  organizationId?: string;
  /** Keep it across reconnects (the client does) and across page reloads (store it) to resume the session. Default: random. */
  sessionId?: string;
  clientType: ClientType;
  /** `metadata` of the `connect` payload. */
  metadata?: Record<string, unknown>;
  /** The WebSocket implementation: the global one by default; pass `ws` on Node < 22. */
  WebSocket?: WebSocketConstructor;
  /**
   * How the client reaches the gateway: a new transport per connection attempt (transport.ts). Default:
   * WebSocket (`WebSocketTransport` over the `WebSocket` option). Probing several gateways before the
   * first connect uses WebSocket, and is skipped when none is available.
   */
  transport?: ClientTransportFactory;
  /**
   * The transports to try, in order (docs/transports.md): `'websocket'`, `'http-stream'` (`POST
   * /v1/stream`), `'sse'` (`GET /v1/sse`). An attempt that fails before `connection.established` moves
   * to the next; the first one established is kept for the session, and left only when its connections
   * are cut three times in a row. Default `['websocket']`, or `['http-stream', 'sse']` without a
   * WebSocket. Ignored when `transport` is given.
   */
  transports?: readonly TransportName[];
  /**
   * The encoding over WebSocket: `'json'` (default, `apix.v1.json`) or `'msgpack'` (`apix.v1.msgpack`:
   * MessagePack binary frames; `Uint8Array` values in a payload travel as bytes). With `'msgpack'` the
   * client offers both subprotocols, MessagePack first, and speaks whichever the gateway selects. The
   * HTTP transports always speak JSON.
   */
  encoding?: 'json' | 'msgpack';
  /** The `fetch` of the HTTP transports: the global one by default. */
  fetch?: FetchLike;
  /** Backoff between reconnect attempts (full jitter); `false` never reconnects. Default { baseMs: 250, maxMs: 5000, factor: 2 }. */
  reconnect?: Partial<BackoffOptions> | false;
  /** Client-side pings and dead-connection detection; `false` only answers the server's pings. */
  heartbeat?: HeartbeatOptions | false;
  /** Publishes held while disconnected; one more is rejected with UNAVAILABLE. 0 disables buffering. Default 100. */
  offlineBufferSize?: number;
  /**
   * Publishes queued while the client paces after a `RATE_LIMITED` refusal (it sends one per the refusal's
   * `retryAfterMs` until the queue drains); one more is rejected with RATE_LIMITED. Default 10000.
   */
  pacedBufferSize?: number;
  /** `RATE_LIMITED` refusals of one publish before it rejects with RATE_LIMITED. Default 20. */
  rateLimitRetries?: number;
  /**
   * Streams: append frames per second for the whole client (they count against the gateway's frame rate
   * per connection, 200/s by default); what waits is merged into one frame per stream. 0: no limit. Default 100.
   */
  streamAppendsPerSec?: number;
  /** Streams: text one stream may accumulate, in characters (the server counts UTF-8 bytes). Default 1 MiB. */
  streamMaxBytes?: number;
  /** Streams this client may have open at once (the gateway's APIX_MAX_OPEN_STREAMS). Default 100. */
  maxOpenStreams?: number;
  /** A sent publish without a reply in this time rejects with UNAVAILABLE. Default 10000. */
  publishTimeoutMs?: number;
  /** No `connection.established` in this time after opening: the attempt fails. Default 10000. */
  connectTimeoutMs?: number;
  /** Refresh a JWT this long before it expires (or half-way, for shorter-lived tokens). Default 30000. */
  tokenRefreshMarginMs?: number;
  /** Measure the gateways' handshake time before the first connect when `url` lists several. Default true. */
  probeGateways?: boolean;
  /**
   * With several gateway URLs: move to the next one (resuming the session there) when the current one
   * degrades: on the server's `qos: degraded` frame, or when the client's measured round trip stays above
   * `rttThresholdMs` for `rttSamples` heartbeats in a row. `false` never moves for quality.
   */
  failover?: FailoverOptions | false;
  /**
   * End-to-end encryption (AES-256-GCM, WebCrypto): channel -> its keys. Publishes to these channels are
   * encrypted before they leave; their events are decrypted before handlers see them (an event that does
   * not decrypt is an `error` event, never delivered). The gateway cannot read them.
   */
  e2eKeys?: E2eKeyMap;
  clock?: Clock;
  random?: Random;
}

/** Every default in one place. */
export const DEFAULTS = {
  heartbeatTimeoutMs: 10_000,
  heartbeatIntervalMs: 25_000,
  offlineBufferSize: 100,
  pacedBufferSize: 10_000,
  rateLimitRetries: 20,
  streamAppendsPerSec: 100,
  streamMaxBytes: 1024 * 1024,
  maxOpenStreams: 100,
  publishTimeoutMs: 10_000,
  connectTimeoutMs: 10_000,
  tokenRefreshMarginMs: 30_000,
  /** Retry delay after a token provider failed during a refresh. */
  tokenRetryMs: 5_000,
  /** How long `close()` waits for the closing handshake before settling anyway. */
  closeWaitMs: 2_000,
  failoverRttThresholdMs: 1000,
  failoverRttSamples: 3,
  failoverDrainMs: 2000,
  /** The protocol's maximum ids per `ack` frame. */
  maxAckIds: 1000,
} as const;
