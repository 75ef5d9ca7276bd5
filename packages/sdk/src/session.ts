/**
 * The client's session with the gateway and its reconnects: one transport at a time (transport.ts), the
 * `connect` handshake that resumes the same session id, backoff between attempts, the gateway list (probed,
 * rotated), heartbeats, token refresh, moving to a better gateway, and the client's state. The
 * subscriptions and the publisher (subscriptions.ts, publishing.ts) send through it (`SessionLink`); it
 * tells them when a connection is established, dropped, or the client closed (`SessionPeers`).
 */
import { CloseCode, closeCodeAllowsReconnect, ApiXError, ERRORS, ErrorCode } from '@apix/protocol/errors';
import type { ApiXConnection, ClientFrame, ServerFrameOf } from '@apix/protocol/schemas';
import { backoffDelayMs, type BackoffOptions } from './backoff.ts';
import type { Clock, Random, TimerHandle } from '@apix/protocol/clock';
import { rankGateways } from './gateway-select.ts';
import { DEFAULTS, type ApiXClientOptions } from './options.ts';
import { decodeJwtExpiryMs, tokenRefreshDelayMs } from './token.ts';
import type { ClientTransport, IncomingMessage, WebSocketConstructor } from './transport.ts';
import type { TransportFallback } from './transport-fallback.ts';
import type { ClientEvents, ClientState, EstablishedInfo } from './types.ts';

/** The client's `emit`, handed to its parts. */
export type Emit = <K extends keyof ClientEvents>(name: K, event: ClientEvents[K]) => void;

/** A request other than a publish whose failure arrives as `connection.error` with its correlation id. */
export interface PendingRequest {
  readonly onError: (error: ApiXError) => void;
}

/** What the subscriptions and the publisher use of the session. */
export interface SessionLink {
  readonly state: ClientState;
  /** A move to another gateway is in progress: new publishes wait in the buffer. */
  readonly isMoving: boolean;
  readonly requests: Map<string, PendingRequest>;
  /** Sends a frame on the current connection; false when there is none open. */
  send(frame: ClientFrame): boolean;
  nextCorrelationId(): string;
  /** A publish in flight settled: a move waiting for it may go on. */
  continueMove(): void;
}

/** What the session drives in the other parts of the client. */
export interface SessionPeers {
  readonly subscriptions: {
    /** `connect.resume`: where each subscription continues; undefined when none has a position. */
    resume(): ApiXConnection['resume'];
    onEstablished(info: EstablishedInfo): void;
    onDisconnected(): void;
    closeAll(): void;
  };
  readonly publisher: {
    readonly inFlightCount: number;
    requeueInFlight(): void;
    flushOutbox(): void;
    rejectAll(error: ApiXError): void;
  };
  /** One frame from the gateway (its text; undefined when not text). */
  receive(text: IncomingMessage): void;
}

/** What the client resolved from its options for the session. */
export interface SessionConfig {
  readonly options: ApiXClientOptions;
  readonly sessionId: string;
  /** Prefix of correlation ids: unique per client instance. */
  readonly instanceId: string;
  readonly urls: string[];
  /** The transports to try, in order, and the one remembered for the session (transport-fallback.ts). */
  readonly transports: TransportFallback;
  /** For probing the gateways; without it they are not probed. */
  readonly WebSocketImpl: WebSocketConstructor | undefined;
  readonly clock: Clock;
  readonly random: Random;
  readonly backoff: BackoffOptions | false;
}

interface Timers {
  reconnect?: TimerHandle;
  connect?: TimerHandle;
  heartbeat?: TimerHandle;
  heartbeatTimeout?: TimerHandle;
  refresh?: TimerHandle;
}

/** The error a close code stands for, from the shared registry (4004 is a late `connect`: a bad request). */
function errorFromClose(code: number, reason: string): ApiXError {
  const match = (Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].closeCode === code);
  const errorCode =
    match ?? (code === CloseCode.CONNECT_TIMEOUT ? ErrorCode.BAD_REQUEST : ErrorCode.UNAVAILABLE);
  return new ApiXError(errorCode, `connection closed (${code}${reason ? `: ${reason}` : ''})`);
}

export class Session implements SessionLink {
  readonly requests = new Map<string, PendingRequest>();
  private readonly options: ApiXClientOptions;
  private readonly clock: Clock;
  private readonly backoff: BackoffOptions | false;
  private peers!: SessionPeers;

  private _state: ClientState = 'idle';
  private urls: string[];
  private urlIndex = 0;
  private gatewaysRanked = false;
  private socket: ClientTransport | undefined;
  /** Bumped on every new attempt and on close, so that late callbacks of an old attempt do nothing. */
  private generation = 0;
  /** Consecutive attempts that did not reach `connection.established`. */
  private failedAttempts = 0;
  private established: EstablishedInfo | undefined;
  private currentToken: string | undefined;
  private serverDisconnect: ServerFrameOf<'connection.disconnected'>['payload'] | undefined;
  private fatalError: ApiXError | undefined;
  private seq = 0;
  private pingSentAt: number | undefined;
  private _rttMs: number | undefined;
  private timers: Timers = {};
  /** Round trips in a row above the failover threshold on the current connection. */
  private slowRtts = 0;
  /** A move to the next gateway in progress: waits for publishes in flight, then switches. */
  private moving:
    | {
        readonly socket: ClientTransport;
        readonly finish: () => void;
        readonly timer: TimerHandle;
        /** A ping went out after the publishes drained: its pong means everything sent before it was read. */
        barrier: boolean;
      }
    | undefined;
  private connectWaiters: Array<{
    resolve: (info: EstablishedInfo) => void;
    reject: (error: ApiXError) => void;
  }> = [];

  constructor(
    private readonly config: SessionConfig,
    private readonly emit: Emit,
  ) {
    this.options = config.options;
    this.clock = config.clock;
    this.backoff = config.backoff;
    this.urls = config.urls;
  }

  /** Wires the parts the session drives (they need the session first). */
  attach(peers: SessionPeers): void {
    this.peers = peers;
  }

  get state(): ClientState {
    return this._state;
  }
  get isMoving(): boolean {
    return this.moving !== undefined;
  }
  get rttMs(): number | undefined {
    return this._rttMs;
  }
  get connectionId(): string | undefined {
    return this.established?.connectionId;
  }
  get url(): string {
    return this.urls[this.urlIndex] as string;
  }
  /** The transport of the current (or next) connection: `websocket`, `http-stream` or `sse`. */
  get transport(): string {
    return this.config.transports.current;
  }

  connect(): Promise<EstablishedInfo> {
    if (this._state === 'closed')
      return Promise.reject(new ApiXError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    if (this._state === 'connected' && this.established) return Promise.resolve(this.established);
    const promise = new Promise<EstablishedInfo>((resolve, reject) =>
      this.connectWaiters.push({ resolve, reject }),
    );
    if (this._state === 'idle') void this.openSocket();
    return promise;
  }

  close(): Promise<void> {
    if (this._state === 'closed') return Promise.resolve();
    this.shutdown(new ApiXError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const fallback = this.clock.setTimeout(resolve, DEFAULTS.closeWaitMs);
      socket.onMessage = null;
      socket.onClose = () => {
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
        await this.rankUrls();
      }
      token = this.options.tokenProvider
        ? await this.options.tokenProvider()
        : (this.options.token as string);
    } catch (err) {
      if (generation !== this.generation) return;
      this.attemptFailed(new ApiXError(ErrorCode.UNAUTHORIZED, 'the token provider failed', { cause: err }));
      return;
    }
    if (generation !== this.generation) return;
    this.currentToken = token;
    let socket: ClientTransport;
    try {
      socket = this.config.transports.create();
      socket.connect(this.url);
    } catch (err) {
      this.attemptFailed(new ApiXError(ErrorCode.UNAVAILABLE, `cannot open ${this.url}`, { cause: err }));
      return;
    }
    this.socket = socket;
    this.timers.connect = this.clock.setTimeout(
      () => this.dropSocket(socket, 'no connection.established in time'),
      this.options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs,
    );
    socket.onOpen = () => {
      if (this.socket === socket) this.sendConnect(token);
    };
    socket.onMessage = (text) => {
      if (this.socket === socket) this.peers.receive(text);
    };
    socket.onClose = (code, reason) => {
      if (this.socket === socket) this.onSocketClosed(code, reason);
    };
  }

  /** Orders the gateways fastest first by their WebSocket handshake time (gateway-select.ts). */
  private async rankUrls(): Promise<void> {
    const WebSocketImpl = this.config.WebSocketImpl;
    if (WebSocketImpl === undefined) return;
    const timeoutMs = Math.min(this.options.connectTimeoutMs ?? DEFAULTS.connectTimeoutMs, 3000);
    const ranked = await rankGateways(this.urls, { WebSocket: WebSocketImpl, clock: this.clock, timeoutMs });
    this.urls = ranked.map((r) => r.url);
    this.urlIndex = 0;
  }

  private sendConnect(token: string): void {
    const resume = this.peers.subscriptions.resume();
    const payload: ApiXConnection = {
      sessionId: this.config.sessionId,
      clientType: this.options.clientType,
      authentication: { token },
      // Subscriptions go out as `subscribe` frames after `connection.established`: those carry the
      // options (ack, filters, since) that this list cannot.
      subscriptions: [],
    };
    if (this.options.organizationId !== undefined)
      payload.authentication.organizationId = this.options.organizationId;
    if (this.options.metadata !== undefined) payload.metadata = this.options.metadata;
    if (resume !== undefined) payload.resume = resume;
    this.send({ type: 'connect', payload, metadata: { correlation_id: this.nextCorrelationId() } });
  }

  /** A connection that failed before `connection.established`, or a token provider that failed. */
  private attemptFailed(error: ApiXError): void {
    this.config.transports.ended(false, 1006);
    this.rotateUrl();
    if (this.backoff === false) {
      this.fail(error);
      return;
    }
    this.emit('error', error);
    this.scheduleReconnect();
  }

  private scheduleReconnect(minDelayMs = 0): void {
    if (this.backoff === false) return;
    const delayMs = Math.max(
      minDelayMs,
      backoffDelayMs(this.failedAttempts, this.backoff, this.config.random),
    );
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
  private dropSocket(socket: ClientTransport, reason: string): void {
    if (this.socket !== socket) return;
    socket.onMessage = null;
    socket.onClose = null;
    try {
      socket.close(1000, reason);
    } catch {
      // Closing a socket that is still connecting throws in some implementations.
    }
    this.onSocketClosed(1006, reason);
  }

  private onSocketClosed(code: number, reason: string): void {
    const wasConnected = this.established !== undefined;
    this.config.transports.ended(wasConnected, code);
    // A socket that closed while a move was pending: the client moves on all the same.
    const wasMoving = this.moving !== undefined;
    this.moving?.timer.cancel();
    this.moving = undefined;
    this.slowRtts = 0;
    this.socket = undefined;
    this.established = undefined;
    this.stopConnectionTimers();
    this.peers.publisher.requeueInFlight();
    this.requests.clear();
    this.peers.subscriptions.onDisconnected();
    const serverDisconnect = this.serverDisconnect;
    const fatalError = this.fatalError;
    this.serverDisconnect = undefined;
    this.fatalError = undefined;
    if (this._state === 'closed') return;

    // A token provider can mint a new token, so an expired one is worth another attempt.
    const tokenExpiredAndRenewable =
      code === CloseCode.TOKEN_EXPIRED && this.options.tokenProvider !== undefined;
    // A close for rate-limit abuse (4008 after too many refusals) is a pause, not the end of a service's
    // client: it comes back after a backoff, and its publishes are paced from then on.
    const rateLimited =
      code === CloseCode.POLICY_VIOLATION &&
      (serverDisconnect?.code === ErrorCode.RATE_LIMITED || fatalError?.code === ErrorCode.RATE_LIMITED);
    const willReconnect =
      this.backoff !== false && (closeCodeAllowsReconnect(code) || tokenExpiredAndRenewable || rateLimited);
    this.emit('connection.disconnected', { code, reason, serverCode: serverDisconnect?.code, willReconnect });
    if (!willReconnect) {
      this.fail(fatalError ?? errorFromClose(code, reason));
      return;
    }
    // A node going away (drain) or an attempt that never got established: try the next gateway.
    if (code === CloseCode.GOING_AWAY || !wasConnected || wasMoving) this.rotateUrl();
    // Not at once (a full-jitter delay can be 0): the limit needs time to refill.
    this.scheduleReconnect(rateLimited ? this.backoff.baseMs : 0);
  }

  /** Ends the client after an unrecoverable close: everything pending rejects with `error`. */
  private fail(error: ApiXError): void {
    if (this._state === 'closed') return;
    this.shutdown(error);
    this.emit('error', error);
  }

  private shutdown(error: ApiXError): void {
    this.generation++;
    this.setState('closed');
    this.stopConnectionTimers();
    this.timers.reconnect?.cancel();
    this.timers = {};
    const connectWaiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of connectWaiters) w.reject(error);
    this.peers.publisher.rejectAll(error);
    this.requests.clear();
    this.peers.subscriptions.closeAll();
  }

  private stopConnectionTimers(): void {
    for (const key of ['connect', 'heartbeat', 'heartbeatTimeout', 'refresh'] as const) {
      this.timers[key]?.cancel();
      this.timers[key] = undefined;
    }
    this.pingSentAt = undefined;
  }

  // ---- Frames of the session ----

  onEstablished(info: EstablishedInfo): void {
    this.timers.connect?.cancel();
    this.timers.connect = undefined;
    this.established = info;
    this.failedAttempts = 0;
    this.config.transports.established();
    this.setState('connected');
    this.emit('connection.established', info);
    this.peers.subscriptions.onEstablished(info);
    this.startHeartbeat(info.heartbeatIntervalMs);
    this.scheduleTokenRefresh();
    this.peers.publisher.flushOutbox();
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const w of waiters) w.resolve(info);
  }

  /** A fatal `connection.error`: the close that follows decides what happens; this error explains it. */
  onFatalError(error: ApiXError): void {
    this.fatalError = error;
  }

  onServerDisconnect(payload: ServerFrameOf<'connection.disconnected'>['payload']): void {
    this.serverDisconnect = payload;
  }

  onPong(ts: number): void {
    if (this.pingSentAt !== undefined && ts === this.pingSentAt) {
      const rttMs = this.clock.now() - this.pingSentAt;
      this._rttMs = rttMs;
      this.pingSentAt = undefined;
      this.timers.heartbeatTimeout?.cancel();
      this.timers.heartbeatTimeout = undefined;
      this.emit('heartbeat.rtt', { rttMs });
      this.onRttSample(rttMs);
      this.continueMove();
    }
  }

  onQos(payload: ServerFrameOf<'qos'>['payload']): void {
    const { state, reason, coalesced } = payload;
    this.emit('qos', { state, reason, coalesced });
    const failover = this.options.failover;
    if (state === 'degraded' && failover !== false && failover?.onQosDegraded !== false)
      this.moveGateway(`the gateway degraded this connection: ${reason}`);
  }

  onAuthRefreshed(
    payload: ServerFrameOf<'auth.refreshed'>['payload'],
    correlationId: string | undefined,
  ): void {
    if (correlationId !== undefined) this.requests.delete(correlationId);
    this.scheduleTokenRefresh();
    this.emit('auth.refreshed', { expiresAt: payload.expiresAt });
  }

  // ---- Outgoing frames ----

  nextCorrelationId(): string {
    return `${this.config.instanceId}-${++this.seq}`;
  }

  send(frame: ClientFrame): boolean {
    const socket = this.socket;
    if (!socket || !socket.isOpen) return false;
    if (socket.sendFrame) socket.sendFrame(frame);
    else socket.send(JSON.stringify(frame));
    return true;
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
  continueMove(): void {
    const moving = this.moving;
    if (moving === undefined || this.peers.publisher.inFlightCount > 0) return;
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
        new ApiXError(ErrorCode.UNAUTHORIZED, 'the token provider failed; retrying', { cause: err }),
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
