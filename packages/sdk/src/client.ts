/**
 * ApiXClient: one logical connection to an APIX gateway that survives network failures. It reconnects
 * with backoff, resumes its session, replays what it missed, shows the application each event once and in
 * order, buffers publishes while offline, keeps its token fresh and its connection checked by heartbeats.
 *
 * It composes its parts and routes the gateway's frames to them: the transport (transport.ts), the session
 * and its reconnects (session.ts), the subscriptions (subscriptions.ts) and the publishes (publishing.ts).
 * Runtime imports come only from the Zod-free protocol modules; the wire types are `import type`.
 */
import { isControlType } from '@apix/protocol/constants';
import { ApiXError, ErrorCode } from '@apix/protocol/errors';
import type { ChannelEvent, ServerControlFrame, ServerFrameOf } from '@apix/protocol/schemas';
import { DEFAULT_BACKOFF } from './backoff.ts';
import { systemClock, type Random } from '@apix/protocol/clock';
import { E2eCipher } from './e2e.ts';
import { TypedEmitter } from './emitter.ts';
import type { ApiXClientOptions } from './options.ts';
import { Publisher } from './publishing.ts';
import { Session } from './session.ts';
import type { Subscription } from './subscription.ts';
import { Subscriptions } from './subscriptions.ts';
import { StreamPublisher, type StreamHandle, type StreamOptions } from './stream-publisher.ts';
import {
  subscribeStreams,
  type StreamHandlers,
  type StreamsOptions,
  type StreamsSubscription,
} from './stream-reader.ts';
import { Rpc } from './rpc.ts';
import type { HandleOptions, RpcHandler, RpcOptions } from './rpc.ts';
import {
  defaultWebSocket,
  normalizeGatewayUrl,
  WebSocketTransport,
  type ClientTransportFactory,
  type IncomingMessage,
  type WebSocketConstructor,
} from './transport.ts';
import { defaultFetch, HttpStreamTransport } from './http-stream-transport.ts';
import { SseTransport } from './sse-transport.ts';
import { TransportFallback } from './transport-fallback.ts';
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

export type { ApiXClientOptions, FailoverOptions, HeartbeatOptions } from './options.ts';

function randomId(random: Random): string {
  const c = (globalThis as { crypto?: { randomUUID?: () => string } }).crypto;
  if (typeof c?.randomUUID === 'function') return c.randomUUID();
  let id = '';
  for (let i = 0; i < 24; i++) id += Math.floor(random() * 36).toString(36);
  return id;
}

/**
 * The transports to try, in order: the `transport` option alone, else `transports` (default
 * `['websocket']`, or HTTP streaming then SSE where there is no WebSocket) without those this runtime
 * cannot run.
 */
function transportsOf(
  options: ApiXClientOptions,
  WebSocketImpl: WebSocketConstructor | undefined,
): Array<[string, ClientTransportFactory]> {
  if (options.transport) return [['custom', options.transport]];
  const fetchImpl = options.fetch ?? defaultFetch();
  const wanted = options.transports ?? (WebSocketImpl ? ['websocket'] : ['http-stream', 'sse']);
  const made: Array<[string, ClientTransportFactory]> = [];
  for (const name of wanted) {
    if (name === 'websocket' && WebSocketImpl)
      made.push([name, () => new WebSocketTransport(WebSocketImpl, options.encoding)]);
    if (name === 'http-stream' && fetchImpl) made.push([name, () => new HttpStreamTransport(fetchImpl)]);
    if (name === 'sse' && fetchImpl) made.push([name, () => new SseTransport(fetchImpl)]);
  }
  if (made.length === 0)
    throw new Error(
      "no transport available: pass { WebSocket } (e.g. import { WebSocket } from 'ws'), or transports with fetch",
    );
  return made;
}

export class ApiXClient extends TypedEmitter<ClientEvents> {
  /** Constant for the life of the client, so that every reconnect resumes the same session. */
  readonly sessionId: string;
  private readonly session: Session;
  private readonly subscriptions: Subscriptions;
  private readonly publisher: Publisher;
  private readonly streams: StreamPublisher;
  private readonly rpcs: Rpc;

  constructor(options: ApiXClientOptions) {
    super();
    const WebSocketImpl = options.WebSocket ?? defaultWebSocket();
    const transports = new TransportFallback(transportsOf(options, WebSocketImpl));
    if (options.token === undefined && options.tokenProvider === undefined)
      throw new Error('ApiXClient needs a token or a tokenProvider');
    const urls = typeof options.url === 'string' ? [options.url] : [...options.url];
    if (urls.length === 0) throw new Error('ApiXClient needs at least one url');
    const e2e = new E2eCipher(options.e2eKeys ?? {});
    const clock = options.clock ?? systemClock;
    const random = options.random ?? Math.random;
    // Prefix of correlation ids and default idempotency keys: unique per client instance.
    const instanceId = randomId(random);
    this.sessionId = options.sessionId ?? randomId(random);
    const emit = this.emit.bind(this);
    this.session = new Session(
      {
        options,
        sessionId: this.sessionId,
        instanceId,
        urls: urls.map(normalizeGatewayUrl),
        transports,
        WebSocketImpl,
        clock,
        random,
        backoff: options.reconnect === false ? false : { ...DEFAULT_BACKOFF, ...options.reconnect },
      },
      emit,
    );
    this.subscriptions = new Subscriptions(this.session, e2e, emit);
    this.publisher = new Publisher(this.session, options, clock, e2e, emit);
    this.streams = new StreamPublisher(this.session, options, clock, random);
    // The streams follow the connection through the client's own events (the session drives the rest).
    this.on('connection.established', () => this.streams.onEstablished());
    this.on('connection.disconnected', () => this.streams.onDisconnected());
    this.on('state', ({ state }) => {
      if (state === 'closed')
        this.streams.closeAll(new ApiXError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    });
    this.session.attach({
      subscriptions: this.subscriptions,
      publisher: this.publisher,
      receive: (text) => this.onMessage(text),
    });
    const rpcs = (this.rpcs = new Rpc(this.session, clock));
    this.on('connection.established', () => rpcs.onEstablished());
    this.on('connection.disconnected', () => rpcs.onDisconnected());
  }

  get state(): ClientState {
    return this.session.state;
  }
  /** The latest round-trip time measured by the client's own pings, in ms. */
  get rttMs(): number | undefined {
    return this.session.rttMs;
  }
  get connectionId(): string | undefined {
    return this.session.connectionId;
  }
  /** The transport of the current (or next) connection: `websocket`, `http-stream` or `sse` (`custom`). */
  get transport(): string {
    return this.session.transport;
  }
  /** The gateway the client uses (or will try next). */
  get url(): string {
    return this.session.url;
  }
  /** Publishes waiting for a connection. */
  get bufferedPublishes(): number {
    return this.publisher.buffered;
  }
  subscription(channel: string): Subscription | undefined {
    return this.subscriptions.get(channel);
  }

  /**
   * Connects (and keeps reconnecting). Resolves on the first `connection.established`; rejects when the
   * server refuses for good (bad token, suspended...: a close code that forbids reconnecting) or on `close()`.
   */
  connect(): Promise<EstablishedInfo> {
    return this.session.connect();
  }

  /**
   * Subscribes now if connected, else as soon as the connection is up, and again after every reconnect
   * (resuming after the last delivered event). Throws BAD_REQUEST for an invalid channel name and CONFLICT
   * when this client already has a subscription to the channel.
   */
  subscribe(channel: string, options: SubscribeOptions = {}): Subscription {
    return this.subscriptions.subscribe(channel, options);
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
    return this.publisher.publish(channel, type, payload, options);
  }

  /**
   * Opens a stream on `channel` (docs/streams.md): one message built from appends, which live subscribers
   * get piece by piece and later ones as one snapshot, then one compacted event in the history. The
   * handle's `append(text)` returns at once; `end(status)` settles with the compacted event's id; `signal`
   * fires when a subscriber cancels; `pipe(asyncIterable)` appends a whole source (e.g. an AI SDK
   * `textStream`) and ends. Started now if connected, else on connect; resumed after every reconnect.
   */
  stream(channel: string, options: StreamOptions): StreamHandle {
    return this.streams.open(channel, options);
  }

  /**
   * Asks the publisher of a stream to stop it (`stream.cancel`; needs the right to publish on the channel).
   * The publisher decides: the SDK fires its handle's `signal`, and `pipe` ends the stream `cancelled`.
   * False when offline (not sent).
   */
  cancelStream(channel: string, streamId: string, reason?: string): boolean {
    const payload = reason === undefined ? { streamId } : { streamId, reason };
    return this.session.send({ type: 'stream.cancel', channel, payload } as never);
  }

  /**
   * The streams of `channel` as they build up (docs/streams.md): handlers get each stream's state after
   * every start, append, snapshot (late join, resume) and end, or the compacted event of one that ended
   * while away. Uses this client's subscription of the channel when it has one, else subscribes.
   */
  subscribeStreams(
    channel: string,
    handlers: StreamHandlers,
    options: StreamsOptions = {},
  ): StreamsSubscription {
    return subscribeStreams(this, channel, handlers, options);
  }

  /**
   * Calls a method served by a backend service (`handle` on its client, or the gateway's HTTP fallback).
   * Resolves with its result; rejects with an ApiXError: UNAVAILABLE (no service, or the connection or
   * the service dropped), TIMEOUT, FORBIDDEN (the method needs a role), or the service's own error code.
   */
  rpc(method: string, payload?: unknown, options: RpcOptions = {}): Promise<unknown> {
    return this.rpcs.call(method, payload ?? null, options);
  }

  /**
   * Serves a method (this client needs service credentials: an API key or a token with the `service`
   * role). Registered now if connected, and again after every reconnect.
   */
  handle(method: string, fn: RpcHandler, options: HandleOptions = {}): void {
    this.rpcs.handle(method, fn, options);
  }

  /**
   * Closes for good: no reconnect; pending publishes and buffered ones reject with UNAVAILABLE. Settles
   * when the socket finished closing.
   */
  close(): Promise<void> {
    this.rpcs.rejectAll(new ApiXError(ErrorCode.UNAVAILABLE, 'the client was closed'));
    return this.session.close();
  }

  protected override onListenerError(name: keyof ClientEvents, err: unknown): void {
    if (name === 'error') return;
    this.emit(
      'error',
      new ApiXError(ErrorCode.INTERNAL, `a "${String(name)}" listener threw`, { cause: err }),
    );
  }

  // ---- Incoming frames: each to the part that owns it ----

  private onMessage(text: IncomingMessage): void {
    let frame: unknown;
    try {
      frame = typeof text === 'string' ? JSON.parse(text) : text;
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
        new ApiXError(ErrorCode.BAD_REQUEST, 'the server sent a frame that is not an APIX envelope'),
      );
      return;
    }
    // The server validated what it sends; the SDK checks only what it branches on (no Zod in browsers).
    const { type } = frame as { type: string };
    if (type === 'stream.cancel') {
      const p = (frame as { payload?: { channel: string; streamId: string; reason: string; by: string } })
        .payload;
      if (p) this.streams.onCancel(p);
      return;
    }
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
    this.subscriptions.deliver(event);
  }

  private onControl(frame: ServerControlFrame): void {
    const correlationId = frame.metadata?.correlation_id;
    switch (frame.type) {
      case 'connection.established':
        this.session.onEstablished(frame.payload);
        return;
      case 'connection.error':
        this.onConnectionError(frame.payload, correlationId);
        return;
      case 'connection.disconnected':
        this.session.onServerDisconnect(frame.payload);
        return;
      case 'subscription.added':
        this.subscriptions.onAdded(frame.payload, correlationId);
        return;
      case 'subscription.removed':
        this.subscriptions.onRemoved(frame.payload);
        return;
      case 'heartbeat.ping':
        this.session.send({ type: 'heartbeat.pong', payload: { ts: frame.payload.ts } });
        return;
      case 'heartbeat.pong':
        this.session.onPong(frame.payload.ts);
        return;
      case 'qos':
        this.session.onQos(frame.payload);
        return;
      case 'auth.refreshed':
        this.session.onAuthRefreshed(frame.payload, correlationId);
        return;
      case 'message.sent':
      case 'message.queued':
      case 'message.failed':
        if (frame.type !== 'message.queued' && this.streams.onReply(frame, correlationId)) return;
        this.publisher.onReply(frame, correlationId);
        return;
      case 'rpc.result':
        return this.rpcs.onResult(frame, correlationId);
      case 'rpc.error':
        if (!this.rpcs.onError(frame, correlationId))
          this.emit('error', new ApiXError(frame.payload.code, frame.payload.message));
        return;
      case 'rpc.request':
        void this.rpcs.onRequest(frame);
        return;
      case 'rpc.registered':
        return;
    }
  }

  /** To the request or publish it answers; else the application's `connection.error`. */
  private onConnectionError(
    payload: ServerFrameOf<'connection.error'>['payload'],
    correlationId: string | undefined,
  ): void {
    const { code, message, fatal, retryAfterMs } = payload;
    const error = new ApiXError(code, message, retryAfterMs === undefined ? undefined : { retryAfterMs });
    if (fatal) {
      // The close that follows decides what happens; this error explains it.
      this.session.onFatalError(error);
      return;
    }
    // The connection's frame rate refused a frame: slow every publish down to the hint.
    if (code === ErrorCode.RATE_LIMITED && retryAfterMs !== undefined) {
      this.publisher.paceFor(retryAfterMs);
      this.streams.onFramesRefused(retryAfterMs);
    }
    const request = correlationId === undefined ? undefined : this.session.requests.get(correlationId);
    const publish = this.publisher.pending(correlationId);
    if (request) {
      this.session.requests.delete(correlationId as string);
      request.onError(error);
    } else if (publish) this.publisher.settlePublish(publish, error);
    else this.emit('connection.error', payload);
  }
}
