/**
 * ApixClient: one logical connection to an APIX gateway that survives network failures. It reconnects
 * with backoff, resumes its session, replays what it missed, shows the application each event once and in
 * order, buffers publishes while offline, keeps its token fresh and its connection checked by heartbeats.
 *
 * Runtime imports come only from the Zod-free protocol modules; the wire types are `import type`.
 */
import { EVENT_TYPE_RE, isControlType, WS_SUBPROTOCOL, type ClientType } from '@apix/protocol/constants';
import { parseChannel } from '@apix/protocol/channels';
import {
  ApixError,
  CloseCode,
  closeCodeAllowsReconnect,
  ERRORS,
  ErrorCode,
  isApixError,
} from '@apix/protocol/errors';
import { isEventId } from '@apix/protocol/event-id';
import { E2E_VERSION, isE2ePayload } from '@apix/protocol/e2e';
import { E2eCipher } from './e2e.ts';
import type { E2eKeyMap } from './e2e.ts';
import type {
  ApiXConnection,
  ChannelEvent,
  ClientFrame,
  PublishFrame,
  ServerControlFrame,
  ServerFrameOf,
} from '@apix/protocol/schemas';
import { backoffDelayMs, DEFAULT_BACKOFF, type BackoffOptions } from './backoff.ts';
import { systemClock, type Clock, type Random, type TimerHandle } from '@apix/protocol/clock';
import { TypedEmitter } from './emitter.ts';
import { rankGateways } from './gateway-select.ts';
import { Subscription, type SubscriptionHost } from './subscription.ts';
import { decodeJwtExpiryMs, tokenRefreshDelayMs, type TokenProvider } from './token.ts';
import {
  defaultWebSocket,
  messageText,
  normalizeGatewayUrl,
  WS_OPEN,
  type WebSocketConstructor,
  type WebSocketLike,
} from './transport.ts';
import type {
  ClientEvents,
  ClientState,
  EstablishedInfo,
  PayloadOf,
  PublishableType,
  PublishOptions,
  PublishResult,
  SubscribeOptions,
} from './types.ts';

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

export interface ApixClientOptions {
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
  /** Backoff between reconnect attempts (full jitter); `false` never reconnects. Default { baseMs: 500, maxMs: 30000, factor: 2 }. */
  reconnect?: Partial<BackoffOptions> | false;
  /** Client-side pings and dead-connection detection; `false` only answers the server's pings. */
  heartbeat?: HeartbeatOptions | false;
  /** Publishes held while disconnected; one more is rejected with UNAVAILABLE. 0 disables buffering. Default 100. */
  offlineBufferSize?: number;
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
const DEFAULTS = {
  heartbeatTimeoutMs: 10_000,
  heartbeatIntervalMs: 25_000,
  offlineBufferSize: 100,
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

interface PendingPublish {
  readonly correlationId: string;
  readonly frame: PublishFrame;
  readonly timeoutMs: number;
  readonly resolve: (result: PublishResult) => void;
  readonly reject: (error: ApixError) => void;
  timer: TimerHandle | undefined;
}

/** A request other than a publish whose failure arrives as `connection.error` with its correlation id. */
interface PendingRequest {
  readonly onError: (error: ApixError) => void;
}

interface Timers {
  reconnect?: TimerHandle;
  connect?: TimerHandle;
  heartbeat?: TimerHandle;
  heartbeatTimeout?: TimerHandle;
  refresh?: TimerHandle;
}

function randomId(random: Random): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  let id = '';
  for (let i = 0; i < 24; i++) id += Math.floor(random() * 36).toString(36);
  return id;
}

/** The error a close code stands for, from the shared registry (4004 is a late `connect`: a bad request). */
function errorFromClose(code: number, reason: string): ApixError {
  const match = (Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].closeCode === code);
  const errorCode =
    match ?? (code === CloseCode.CONNECT_TIMEOUT ? ErrorCode.BAD_REQUEST : ErrorCode.UNAVAILABLE);
  return new ApixError(errorCode, `connection closed (${code}${reason ? `: ${reason}` : ''})`);
}

export class ApixClient extends TypedEmitter<ClientEvents> {
  /** Constant for the life of the client, so that every reconnect resumes the same session. */
  readonly sessionId: string;
  private readonly options: ApixClientOptions;
  private readonly WebSocketImpl: WebSocketConstructor;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly backoff: BackoffOptions | false;
  /** Prefix of correlation ids and default idempotency keys: unique per client instance. */
  private readonly instanceId: string;

  private _state: ClientState = 'idle';
  private urls: string[];
  private urlIndex = 0;
  private gatewaysRanked = false;
  private socket: WebSocketLike | undefined;
  /** Bumped on every new attempt and on close, so that late callbacks of an old attempt do nothing. */
  private generation = 0;
  /** Consecutive attempts that did not reach `connection.established`. */
  private failedAttempts = 0;
  private established: EstablishedInfo | undefined;
  private currentToken: string | undefined;
  private serverDisconnect: ServerFrameOf<'connection.disconnected'>['payload'] | undefined;
  private fatalError: ApixError | undefined;
  private seq = 0;
  private pingSentAt: number | undefined;
  private _rttMs: number | undefined;
  private timers: Timers = {};
  /** Round trips in a row above the failover threshold on the current connection. */
  private slowRtts = 0;
  /** A move to the next gateway in progress: waits for publishes in flight, then switches. */
  private moving:
    | {
        readonly socket: WebSocketLike;
        readonly finish: () => void;
        readonly timer: TimerHandle;
        /** A ping went out after the publishes drained: its pong means everything sent before it was read. */
        barrier: boolean;
      }
    | undefined;

  private readonly subscriptions = new Map<string, Subscription>();
  /** End-to-end encryption (e2e.ts); without `e2eKeys`, envelopes that arrive are reported, never delivered. */
  private readonly e2e: E2eCipher;
  /** Per channel: the decrypt-then-deliver chain that keeps its events in order. */
  private readonly e2eChains = new Map<string, Promise<void>>();
  private e2ePublishes: Promise<void> = Promise.resolve();
  /** Sent publishes waiting for `message.sent` / `message.queued` / `message.failed`. */
  private readonly inFlight = new Map<string, PendingPublish>();
  /** Publishes not sent yet (offline), in order. */
  private outbox: PendingPublish[] = [];
  private readonly requests = new Map<string, PendingRequest>();
  private readonly unsubscribeWaiters = new Map<string, Array<() => void>>();
  private readonly ackQueue = new Map<string, string[]>();
  private ackFlushScheduled = false;
  private connectWaiters: Array<{
    resolve: (info: EstablishedInfo) => void;
    reject: (error: ApixError) => void;
  }> = [];

  private readonly host: SubscriptionHost = {
    unsubscribe: (sub) => this.unsubscribe(sub),
    ack: (channel, id) => this.queueAck(channel, id),
    delivered: (event) => this.emit('event', event),
    reportError: (error) => this.emit('error', error),
  };

  constructor(options: ApixClientOptions) {
    super();
    const WebSocketImpl = options.WebSocket ?? defaultWebSocket();
    if (!WebSocketImpl)
      throw new Error(
        "no WebSocket implementation: pass { WebSocket } (e.g. import { WebSocket } from 'ws')",
      );
    if (options.token === undefined && options.tokenProvider === undefined)
      throw new Error('ApixClient needs a token or a tokenProvider');
    const urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (urls.length === 0) throw new Error('ApixClient needs at least one url');
    this.options = options;
    this.e2e = new E2eCipher(options.e2eKeys ?? {});
    this.WebSocketImpl = WebSocketImpl;
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.backoff = options.reconnect === false ? false : { ...DEFAULT_BACKOFF, ...options.reconnect };
    this.urls = urls.map(normalizeGatewayUrl);
    this.instanceId = randomId(this.random);
    this.sessionId = options.sessionId ?? randomId(this.random);
  }

  get state(): ClientState {
    return this._state;
  }
  /** The latest round-trip time measured by the client's own pings, in ms. */
  get rttMs(): number | undefined {
    return this._rttMs;
  }
  get connectionId(): string | undefined {
    return this.established?.connectionId;
  }
  /** The gateway the client uses (or will try next). */
  get url(): string {
    return this.urls[this.urlIndex] as string;
  }
  /** Publishes waiting for a connection. */
  get bufferedPublishes(): number {
    return this.outbox.length;
  }
  subscription(channel: string): Subscription | undefined {
    return this.subscriptions.get(channel);
  }

  /**
   * Connects (and keeps reconnecting). Resolves on the first `connection.established`; rejects when the
   * server refuses for good (bad token, suspended...: a close code that forbids reconnecting) or on `close()`.
   */
  connect(): Promise<EstablishedInfo> {
    if (this._state === 'closed')
      return Promise.reject(new ApixError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    if (this._state === 'connected' && this.established) return Promise.resolve(this.established);
    const promise = new Promise<EstablishedInfo>((resolve, reject) =>
      this.connectWaiters.push({ resolve, reject }),
    );
    if (this._state === 'idle') void this.openSocket();
    return promise;
  }

  /**
   * Subscribes now if connected, else as soon as the connection is up, and again after every reconnect
   * (resuming after the last delivered event). Throws BAD_REQUEST for an invalid channel name and CONFLICT
   * when this client already has a subscription to the channel.
   */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    if (this._state === 'closed') throw new ApixError(ErrorCode.UNAVAILABLE, 'the client is closed');
    const parsed = parseChannel(channel);
    if (!parsed.ok) throw new ApixError(ErrorCode.BAD_REQUEST, parsed.reason);
    if (this.subscriptions.has(channel))
      throw new ApixError(
        ErrorCode.CONFLICT,
        `already subscribed to ${channel}; use client.subscription(channel)`,
      );
    if (options.since !== undefined && !isEventId(options.since))
      throw new ApixError(ErrorCode.BAD_REQUEST, `since: not an event id: ${options.since}`);
    const sub = new Subscription(this.host, channel, options);
    this.subscriptions.set(channel, sub);
    if (this._state === 'connected') this.sendSubscribe(sub);
    return sub;
  }

  /**
   * Publishes an event. Settles on the server's reply: resolves on `message.sent` / `message.queued`,
   * rejects with the `message.failed` code. While disconnected the publish waits in a bounded buffer and
   * goes out on reconnect; a publish in flight when the connection dropped is sent again with the same
   * idempotency key, so the server keeps one event.
   */
  publish<T extends string>(
    channel: string,
    type: PublishableType<T>,
    payload: PayloadOf<T>,
    options: PublishOptions = {},
  ): Promise<PublishResult> {
    if (this.e2e.has(channel)) {
      // Encrypted in publish order (WebCrypto is asynchronous), then published like any other.
      const encrypted = this.e2ePublishes.then(() => this.e2e.encrypt(channel, type, payload));
      this.e2ePublishes = encrypted.then(
        () => undefined,
        () => undefined,
      );
      return encrypted.then((envelope) =>
        this.publishNow(channel, type, envelope as PayloadOf<T>, {
          ...options,
          metadata: { ...options.metadata, e2e: E2E_VERSION },
        }),
      );
    }
    return this.publishNow(channel, type, payload, options);
  }

  private publishNow<T extends string>(
    channel: string,
    type: PublishableType<T>,
    payload: PayloadOf<T>,
    options: PublishOptions,
  ): Promise<PublishResult> {
    if (this._state === 'closed')
      return Promise.reject(new ApixError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    const parsed = parseChannel(channel);
    if (!parsed.ok) return Promise.reject(new ApixError(ErrorCode.BAD_REQUEST, parsed.reason));
    if (!EVENT_TYPE_RE.test(type) || isControlType(type))
      return Promise.reject(new ApixError(ErrorCode.BAD_REQUEST, `not a publishable event type: ${type}`));
    const correlationId = this.nextCorrelationId();
    const frame: PublishFrame = {
      type,
      channel,
      payload,
      metadata: {
        ...options.metadata,
        correlation_id: correlationId,
        idempotency_key: options.idempotencyKey ?? correlationId,
      },
    };
    return new Promise<PublishResult>((resolve, reject) => {
      const entry: PendingPublish = {
        correlationId,
        frame,
        timeoutMs: options.timeoutMs ?? this.options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs,
        resolve,
        reject,
        timer: undefined,
      };
      if (this._state === 'connected' && this.moving === undefined) this.sendPublish(entry);
      else if (this.outbox.length >= (this.options.offlineBufferSize ?? DEFAULTS.offlineBufferSize))
        reject(new ApixError(ErrorCode.UNAVAILABLE, 'offline: the publish buffer is full'));
      else this.outbox.push(entry);
    });
  }

  /**
   * Closes for good: no reconnect; pending publishes and buffered ones reject with UNAVAILABLE. Settles
   * when the socket finished closing.
   */
  close(): Promise<void> {
    if (this._state === 'closed') return Promise.resolve();
    this.shutdown(new ApixError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const fallback = this.clock.setTimeout(resolve, DEFAULTS.closeWaitMs);
      socket.onmessage = null;
      socket.onclose = () => {
        fallback.cancel();
        resolve();
      };
      try {
        socket.close(1000, 'client closed');
      } catch {
        fallback.cancel();
        resolve();
      }
      this.emit('connection.disconnected', {
        code: 1000,
        reason: 'client closed',
        serverCode: undefined,
        willReconnect: false,
      });
    });
  }

  protected override onListenerError(name: keyof ClientEvents, err: unknown): void {
    if (name === 'error') return;
    this.emit(
      'error',
      new ApixError(ErrorCode.INTERNAL, `a "${String(name)}" listener threw`, { cause: err }),
    );
  }

  // ---- Connection lifecycle ----

  private setState(state: ClientState): void {
    const previous = this._state;
    if (previous === state) return;
    this._state = state;
    this.emit('state', { state, previous });
  }

  private async openSocket(): Promise<void> {
    const generation = ++this.generation;
    this.setState('connecting');
    let token: string;
    try {
      if (!this.gatewaysRanked && this.urls.length > 1 && this.options.probeGateways !== false) {
        this.gatewaysRanked = true;
        const timeoutMs = Math.min(this.options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, 3000);
        const ranked = await rankGateways(this.urls, {
          WebSocket: this.WebSocketImpl,
          clock: this.clock,
          timeoutMs,
        });
        this.urls = ranked.map((r) => r.url);
        this.urlIndex = 0;
      }
      token = this.options.tokenProvider
        ? await this.options.tokenProvider()
        : (this.options.token as string);
    } catch (err) {
      if (generation !== this.generation) return;
      this.attemptFailed(new ApixError(ErrorCode.UNAUTHORIZED, 'the token provider failed', { cause: err }));
      return;
    }
    if (generation !== this.generation) return;
    this.currentToken = token;
    let socket: WebSocketLike;
    try {
      socket = new this.WebSocketImpl(this.url, [WS_SUBPROTOCOL]);
    } catch (err) {
      this.attemptFailed(new ApixError(ErrorCode.UNAVAILABLE, `cannot open ${this.url}`, { cause: err }));
      return;
    }
    this.socket = socket;
    this.timers.connect = this.clock.setTimeout(
      () => this.dropSocket(socket, 'no connection.established in time'),
      this.options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    );
    socket.onopen = () => {
      if (this.socket === socket) this.sendConnect(token);
    };
    socket.onmessage = (event) => {
      if (this.socket === socket) this.onMessage(event.data);
    };
    socket.onclose = (event) => {
      if (this.socket === socket) this.onSocketClosed(event.code, event.reason);
    };
    // Required: `ws` throws on an 'error' event nobody listens to. The close event follows an error.
    socket.onerror = () => {};
  }

  private sendConnect(token: string): void {
    // Per channel, where a resumed session continues: after the last event this client delivered; with
    // none (a reloaded page resuming its stored session), the replay its subscription asked for.
    const lastEventIds: Record<string, string> = {};
    const replay: Record<string, { last: number }> = {};
    for (const sub of this.subscriptions.values()) {
      if (sub.lastEventId !== undefined) lastEventIds[sub.channel] = sub.lastEventId;
      else if (sub.replayWanted) replay[sub.channel] = sub.replayWanted;
    }
    const payload: ApiXConnection = {
      sessionId: this.sessionId,
      clientType: this.options.clientType,
      authentication: { token },
      // Subscriptions go out as `subscribe` frames after `connection.established`: those carry the
      // options (ack, filters, since) that this list cannot.
      subscriptions: [],
    };
    if (this.options.organizationId !== undefined)
      payload.authentication.organizationId = this.options.organizationId;
    if (this.options.metadata !== undefined) payload.metadata = this.options.metadata;
    if (Object.keys(replay).length > 0) payload.resume = { lastEventIds, replay };
    else if (Object.keys(lastEventIds).length > 0) payload.resume = { lastEventIds };
    this.send({ type: 'connect', payload, metadata: { correlation_id: this.nextCorrelationId() } });
  }

  /** A connection that failed before `connection.established`, or a token provider that failed. */
  private attemptFailed(error: ApixError): void {
    this.rotateUrl();
    if (this.backoff === false) {
      this.fail(error);
      return;
    }
    this.emit('error', error);
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    if (this.backoff === false) return;
    const delayMs = backoffDelayMs(this.failedAttempts, this.backoff, this.random);
    this.failedAttempts++;
    this.setState('reconnecting');
    this.emit('reconnection.attempt', { attempt: this.failedAttempts, delayMs, url: this.url });
    this.timers.reconnect = this.clock.setTimeout(() => {
      this.timers.reconnect = undefined;
      void this.openSocket();
    }, delayMs);
  }

  private rotateUrl(): void {
    if (this.urls.length > 1) this.urlIndex = (this.urlIndex + 1) % this.urls.length;
  }

  /** Declares a socket dead without waiting for its closing handshake (which a dead peer never sends). */
  private dropSocket(socket: WebSocketLike, reason: string): void {
    if (this.socket !== socket) return;
    socket.onmessage = null;
    socket.onclose = null;
    try {
      socket.close(1000, reason);
    } catch {
      // Closing a socket that is still connecting throws in some implementations.
    }
    this.onSocketClosed(1006, reason);
  }

  private onSocketClosed(code: number, reason: string): void {
    const wasConnected = this.established !== undefined;
    // A socket that closed while a move was pending: the client moves on all the same.
    const wasMoving = this.moving !== undefined;
    this.moving?.timer.cancel();
    this.moving = undefined;
    this.slowRtts = 0;
    this.socket = undefined;
    this.established = undefined;
    this.stopConnectionTimers();
    this.requeueInFlight();
    this.requests.clear();
    this.ackQueue.clear();
    this.resolveUnsubscribeWaiters();
    for (const sub of this.subscriptions.values()) sub.markPending();
    const serverDisconnect = this.serverDisconnect;
    const fatalError = this.fatalError;
    this.serverDisconnect = undefined;
    this.fatalError = undefined;
    if (this._state === 'closed') return;

    // A token provider can mint a new token, so an expired one is worth another attempt.
    const tokenExpiredAndRenewable =
      code === CloseCode.TOKEN_EXPIRED && this.options.tokenProvider !== undefined;
    const willReconnect =
      this.backoff !== false && (closeCodeAllowsReconnect(code) || tokenExpiredAndRenewable);
    this.emit('connection.disconnected', { code, reason, serverCode: serverDisconnect?.code, willReconnect });
    if (!willReconnect) {
      this.fail(fatalError ?? errorFromClose(code, reason));
      return;
    }
    // A node going away (drain) or an attempt that never got established: try the next gateway.
    if (code === CloseCode.GOING_AWAY || !wasConnected || wasMoving) this.rotateUrl();
    this.scheduleReconnect();
  }

  /** Ends the client after an unrecoverable close: everything pending rejects with `error`. */
  private fail(error: ApixError): void {
    if (this._state === 'closed') return;
    this.shutdown(error);
    this.emit('error', error);
  }

  private shutdown(error: ApixError): void {
    this.generation++;
    this.setState('closed');
    this.stopConnectionTimers();
    this.timers.reconnect?.cancel();
    this.timers = {};
    const connectWaiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of connectWaiters) w.reject(error);
    for (const entry of [...this.inFlight.values(), ...this.outbox]) {
      entry.timer?.cancel();
      entry.reject(error);
    }
    this.inFlight.clear();
    this.outbox = [];
    this.requests.clear();
    this.ackQueue.clear();
    this.resolveUnsubscribeWaiters();
    for (const sub of this.subscriptions.values()) sub.markUnsubscribed('client closed');
    this.subscriptions.clear();
  }

  private stopConnectionTimers(): void {
    for (const key of ['connect', 'heartbeat', 'heartbeatTimeout', 'refresh'] as const) {
      this.timers[key]?.cancel();
      this.timers[key] = undefined;
    }
    this.pingSentAt = undefined;
  }

  // ---- Incoming frames ----

  private onMessage(data: unknown): void {
    const text = messageText(data);
    let frame: unknown;
    try {
      frame = text === undefined ? undefined : JSON.parse(text);
    } catch {
      frame = undefined;
    }
    if (
      typeof frame !== 'object' ||
      frame === null ||
      typeof (frame as { type?: unknown }).type !== 'string'
    ) {
      this.emit(
        'error',
        new ApixError(ErrorCode.BAD_REQUEST, 'the server sent a frame that is not an APIX envelope'),
      );
      return;
    }
    // The server validated what it sends; the SDK checks only what it branches on (no Zod in browsers).
    const { type } = frame as { type: string };
    if (isControlType(type)) {
      if (type.startsWith('presence.')) {
        const p = frame as { channel?: string; payload?: unknown };
        this.emit('presence', { type, channel: p.channel ?? '', payload: p.payload });
      } else this.onControl(frame as ServerControlFrame);
      return;
    }
    const event = frame as ChannelEvent;
    if (typeof event.channel !== 'string' || typeof event.id !== 'string') return;
    if (event.metadata === undefined)
      (event as { metadata: ChannelEvent['metadata'] }).metadata = { timestamp: 0, version: '1' };
    // Events of a channel without a local subscription (unsubscribed, not yet confirmed) are dropped.
    const chain = this.e2eChains.get(event.channel);
    if (chain === undefined && !isE2ePayload(event.payload)) {
      this.subscriptions.get(event.channel)?.deliver(event);
      return;
    }
    // End-to-end encrypted (or behind one on its channel): decrypted in order, then delivered.
    const next = (chain ?? Promise.resolve()).then(() => this.deliverE2e(event));
    this.e2eChains.set(event.channel, next);
    void next.then(() => {
      if (this.e2eChains.get(event.channel) === next) this.e2eChains.delete(event.channel);
    });
  }

  private async deliverE2e(event: ChannelEvent): Promise<void> {
    if (isE2ePayload(event.payload)) {
      try {
        (event as { payload: unknown }).payload = await this.e2e.decrypt(
          event.channel,
          event.type,
          event.payload,
        );
      } catch (err) {
        this.emit('error', isApixError(err) ? err : new ApixError(ErrorCode.INTERNAL, String(err)));
        return;
      }
      // The gateway could not apply payload-field filters to the envelope: apply them now.
      const filters = this.subscriptions.get(event.channel)?.filters;
      if (filters) {
        const p = event.payload as Record<string, unknown> | null;
        for (const [k, v] of Object.entries(filters)) {
          if (k === 'types') continue;
          if (p === null || typeof p !== 'object' || p[k] !== v) return;
        }
      }
    }
    this.subscriptions.get(event.channel)?.deliver(event);
  }

  private onControl(frame: ServerControlFrame): void {
    const correlationId = frame.metadata?.correlation_id;
    switch (frame.type) {
      case 'connection.established':
        this.onEstablished(frame.payload);
        return;
      case 'connection.error': {
        const { code, message, fatal, retryAfterMs } = frame.payload;
        const error = new ApixError(code, message, retryAfterMs === undefined ? undefined : { retryAfterMs });
        if (fatal) {
          // The close that follows decides what happens; this error explains it.
          this.fatalError = error;
          return;
        }
        const request = correlationId === undefined ? undefined : this.requests.get(correlationId);
        const publish = correlationId === undefined ? undefined : this.inFlight.get(correlationId);
        if (request) {
          this.requests.delete(correlationId as string);
          request.onError(error);
        } else if (publish) this.settlePublish(publish, error);
        else this.emit('connection.error', frame.payload);
        return;
      }
      case 'connection.disconnected':
        this.serverDisconnect = frame.payload;
        return;
      case 'subscription.added':
        if (correlationId !== undefined) this.requests.delete(correlationId);
        for (const { channel, recovered } of frame.payload.channels) {
          const sub = this.subscriptions.get(channel);
          if (!sub) continue;
          sub.markAdded(recovered);
          this.emit('subscription.added', { channel, recovered });
        }
        for (const denial of frame.payload.denied)
          this.denySubscription(denial.channel, new ApixError(denial.code, denial.message));
        return;
      case 'subscription.removed':
        for (const channel of frame.payload.channels) {
          const waiters = this.unsubscribeWaiters.get(channel);
          this.unsubscribeWaiters.delete(channel);
          for (const resolve of waiters ?? []) resolve();
          const sub = this.subscriptions.get(channel);
          if (!sub) continue;
          // Still in our map: the server revoked it (permissions changed, channel deleted...).
          this.subscriptions.delete(channel);
          sub.markUnsubscribed(frame.payload.reason);
          this.emit('subscription.removed', { channel, reason: frame.payload.reason });
        }
        return;
      case 'heartbeat.ping':
        this.send({ type: 'heartbeat.pong', payload: { ts: frame.payload.ts } });
        return;
      case 'heartbeat.pong':
        if (this.pingSentAt !== undefined && frame.payload.ts === this.pingSentAt) {
          const rttMs = this.clock.now() - this.pingSentAt;
          this._rttMs = rttMs;
          this.pingSentAt = undefined;
          this.timers.heartbeatTimeout?.cancel();
          this.timers.heartbeatTimeout = undefined;
          this.emit('heartbeat.rtt', { rttMs });
          this.onRttSample(rttMs);
          this.continueMove();
        }
        return;
      case 'qos': {
        const { state, reason, coalesced } = frame.payload;
        this.emit('qos', { state, reason, coalesced });
        const failover = this.options.failover;
        if (state === 'degraded' && failover !== false && failover?.onQosDegraded !== false)
          this.moveGateway(`the gateway degraded this connection: ${reason}`);
        return;
      }
      case 'auth.refreshed':
        if (correlationId !== undefined) this.requests.delete(correlationId);
        this.scheduleTokenRefresh();
        this.emit('auth.refreshed', { expiresAt: frame.payload.expiresAt });
        return;
      case 'message.sent':
      case 'message.queued':
      case 'message.failed': {
        const entry = correlationId === undefined ? undefined : this.inFlight.get(correlationId);
        if (frame.type === 'message.failed') {
          const { code, message, retryAfterMs } = frame.payload;
          if (entry)
            this.settlePublish(
              entry,
              new ApixError(code, message, retryAfterMs === undefined ? undefined : { retryAfterMs }),
            );
          else this.emit('message.failed', frame.payload);
        } else if (entry) {
          this.settlePublish(entry, {
            status: frame.type === 'message.sent' ? 'sent' : 'queued',
            id: frame.payload.id,
          });
        }
        return;
      }
    }
  }

  private onEstablished(info: EstablishedInfo): void {
    this.timers.connect?.cancel();
    this.timers.connect = undefined;
    this.established = info;
    this.failedAttempts = 0;
    this.setState('connected');
    this.emit('connection.established', info);

    // On a resumed session the server restored its subscriptions; subscribe the others (all of them on a
    // new session), from the last delivered id so that the server replays what was missed.
    const granted = new Set(info.subscriptions);
    const denied = new Map(info.denied.map((d) => [d.channel, d]));
    for (const channel of granted)
      if (!this.subscriptions.has(channel))
        this.send({ type: 'unsubscribe', payload: { channels: [channel] } });
    for (const sub of [...this.subscriptions.values()]) {
      const denial = denied.get(sub.channel);
      if (denial) this.denySubscription(sub.channel, new ApixError(denial.code, denial.message));
      else if (granted.has(sub.channel)) {
        const recovered = info.recovered?.[sub.channel] ?? true;
        sub.markAdded(recovered);
        this.emit('subscription.added', { channel: sub.channel, recovered });
      } else this.sendSubscribe(sub);
    }
    this.startHeartbeat(info.heartbeatIntervalMs);
    this.scheduleTokenRefresh();
    this.flushOutbox();
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve(info);
  }

  private denySubscription(channel: string, error: ApixError): void {
    const sub = this.subscriptions.get(channel);
    if (!sub) return;
    this.subscriptions.delete(channel);
    sub.markDenied(error);
    this.emit('subscription.denied', { channel, error });
  }

  // ---- Outgoing frames ----

  private nextCorrelationId(): string {
    return `${this.instanceId}-${++this.seq}`;
  }

  private send(frame: ClientFrame): boolean {
    const socket = this.socket;
    if (!socket || socket.readyState !== WS_OPEN) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  private sendSubscribe(sub: Subscription): void {
    const correlationId = this.nextCorrelationId();
    this.requests.set(correlationId, { onError: (error) => this.denySubscription(sub.channel, error) });
    this.send({
      type: 'subscribe',
      payload: sub.subscribePayload(),
      metadata: { correlation_id: correlationId },
    });
  }

  private unsubscribe(sub: Subscription): Promise<void> {
    if (this.subscriptions.get(sub.channel) !== sub) return Promise.resolve();
    this.subscriptions.delete(sub.channel);
    sub.markUnsubscribed(undefined);
    this.emit('subscription.removed', { channel: sub.channel, reason: undefined });
    if (this._state !== 'connected') return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiters = this.unsubscribeWaiters.get(sub.channel) ?? [];
      waiters.push(resolve);
      this.unsubscribeWaiters.set(sub.channel, waiters);
      if (!this.send({ type: 'unsubscribe', payload: { channels: [sub.channel] } })) resolve();
    });
  }

  private resolveUnsubscribeWaiters(): void {
    for (const waiters of this.unsubscribeWaiters.values()) for (const resolve of waiters) resolve();
    this.unsubscribeWaiters.clear();
  }

  /** Acks are batched per channel within a tick: one frame for a burst of handled events. */
  private queueAck(channel: string, id: string): void {
    if (this._state !== 'connected') return;
    const ids = this.ackQueue.get(channel) ?? [];
    ids.push(id);
    this.ackQueue.set(channel, ids);
    if (this.ackFlushScheduled) return;
    this.ackFlushScheduled = true;
    queueMicrotask(() => {
      this.ackFlushScheduled = false;
      for (const [ch, all] of this.ackQueue)
        for (let i = 0; i < all.length; i += DEFAULTS.maxAckIds)
          this.send({ type: 'ack', payload: { channel: ch, ids: all.slice(i, i + DEFAULTS.maxAckIds) } });
      this.ackQueue.clear();
    });
  }

  private sendPublish(entry: PendingPublish): void {
    this.inFlight.set(entry.correlationId, entry);
    entry.timer = this.clock.setTimeout(() => {
      this.settlePublish(
        entry,
        new ApixError(ErrorCode.UNAVAILABLE, `no reply to the publish within ${entry.timeoutMs} ms`),
      );
    }, entry.timeoutMs);
    this.send(entry.frame);
  }

  private settlePublish(entry: PendingPublish, outcome: PublishResult | ApixError): void {
    if (!this.inFlight.delete(entry.correlationId)) return;
    this.continueMove();
    entry.timer?.cancel();
    entry.timer = undefined;
    if (isApixError(outcome)) entry.reject(outcome);
    else entry.resolve(outcome);
  }

  /** Publishes sent on the dropped connection go first on the next one (same idempotency key). */
  private requeueInFlight(): void {
    const requeued = [...this.inFlight.values()];
    for (const entry of requeued) {
      entry.timer?.cancel();
      entry.timer = undefined;
    }
    this.inFlight.clear();
    this.outbox = [...requeued, ...this.outbox];
  }

  private flushOutbox(): void {
    const pending = this.outbox;
    this.outbox = [];
    for (const entry of pending) this.sendPublish(entry);
  }

  // ---- Moving to a better gateway ----

  private onRttSample(rttMs: number): void {
    const failover = this.options.failover;
    if (failover === false || this.urls.length < 2) return;
    const threshold = failover?.rttThresholdMs ?? DEFAULTS.failoverRttThresholdMs;
    if (rttMs <= threshold) {
      this.slowRtts = 0;
      return;
    }
    if (++this.slowRtts >= (failover?.rttSamples ?? DEFAULTS.failoverRttSamples))
      this.moveGateway(`round trip over ${threshold} ms for ${this.slowRtts} heartbeats (last ${rttMs} ms)`);
  }

  /**
   * Leaves the current gateway for the next one in the ranking (the URLs are kept fastest first) and
   * resumes the session there: new publishes wait in the buffer, those in flight get their replies first
   * (else they are resent with their idempotency keys), then a ping's pong shows that everything the
   * gateway wrote before it was read; then the socket is closed (after `drainMs` at the latest) and the
   * client reconnects at once with `resume.lastEventIds`; deduplication by id keeps delivery exactly once.
   */
  private moveGateway(reason: string): void {
    const socket = this.socket;
    if (socket === undefined || this.moving !== undefined || this.urls.length < 2) return;
    if (this._state !== 'connected') return;
    const finish = (): void => {
      if (this.moving?.socket !== socket) return;
      this.moving.timer.cancel();
      this.moving = undefined;
      if (this.socket !== socket) return;
      const from = this.url;
      this.rotateUrl();
      this.emit('gateway.moving', { from, to: this.url, reason });
      this.dropSocket(socket, 'moving to another gateway');
    };
    const failover = this.options.failover;
    const drainMs = (failover === false ? undefined : failover?.drainMs) ?? DEFAULTS.failoverDrainMs;
    this.moving = { socket, finish, timer: this.clock.setTimeout(finish, drainMs), barrier: false };
    this.continueMove();
  }

  /** The next step of a move: publishes in flight answered, then a ping answered, then switch. */
  private continueMove(): void {
    const moving = this.moving;
    if (moving === undefined || this.inFlight.size > 0) return;
    if (!moving.barrier) {
      moving.barrier = true;
      if (this.pingSentAt === undefined) {
        const ts = this.clock.now();
        this.pingSentAt = ts;
        this.send({ type: 'heartbeat.ping', payload: { ts } });
      }
      return;
    }
    if (this.pingSentAt === undefined) moving.finish();
  }

  // ---- Heartbeat and token refresh ----

  private startHeartbeat(serverIntervalMs: number): void {
    const heartbeat = this.options.heartbeat;
    if (heartbeat === false) return;
    const intervalMs =
      heartbeat?.intervalMs ?? (serverIntervalMs > 0 ? serverIntervalMs : DEFAULTS.heartbeatIntervalMs);
    const timeoutMs = heartbeat?.timeoutMs ?? DEFAULTS.heartbeatTimeoutMs;
    const socket = this.socket;
    this.timers.heartbeat = this.clock.setInterval(() => {
      if (!socket || this.socket !== socket || this.pingSentAt !== undefined) return;
      const ts = this.clock.now();
      this.pingSentAt = ts;
      this.send({ type: 'heartbeat.ping', payload: { ts } });
      this.timers.heartbeatTimeout = this.clock.setTimeout(
        () => this.dropSocket(socket, 'heartbeat timeout'),
        timeoutMs,
      );
    }, intervalMs);
  }

  private scheduleTokenRefresh(): void {
    this.timers.refresh?.cancel();
    this.timers.refresh = undefined;
    if (!this.options.tokenProvider || this.currentToken === undefined) return;
    const expiresAtMs = decodeJwtExpiryMs(this.currentToken);
    if (expiresAtMs === undefined) return;
    const marginMs = this.options.tokenRefreshMarginMs ?? DEFAULTS.tokenRefreshMarginMs;
    this.timers.refresh = this.clock.setTimeout(
      () => void this.refreshToken(),
      tokenRefreshDelayMs(expiresAtMs, this.clock.now(), marginMs),
    );
  }

  private async refreshToken(): Promise<void> {
    const socket = this.socket;
    const provider = this.options.tokenProvider;
    if (!socket || !provider) return;
    let token: string;
    try {
      token = await provider();
    } catch (err) {
      if (this.socket !== socket) return;
      this.emit(
        'error',
        new ApixError(ErrorCode.UNAUTHORIZED, 'the token provider failed; retrying', { cause: err }),
      );
      this.timers.refresh = this.clock.setTimeout(() => void this.refreshToken(), DEFAULTS.tokenRetryMs);
      return;
    }
    // Reconnected meanwhile: that connect fetched its own token.
    if (this.socket !== socket || this._state !== 'connected') return;
    this.currentToken = token;
    const correlationId = this.nextCorrelationId();
    this.requests.set(correlationId, {
      onError: (error) => this.emit('error', error),
    });
    this.send({ type: 'auth.refresh', payload: { token }, metadata: { correlation_id: correlationId } });
  }
}
