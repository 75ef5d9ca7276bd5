/**
 * ApiXGateway: the WebSocket side of a node (PROTOCOL.md 1-8). It owns connections and sessions,
 * runs the `connect` handshake, dispatches client frames, and drives the hub, the retry manager and the
 * offline queue. Cross-cutting concerns (audit, latency, records) attach through the HookBus.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { WebSocket, RawData } from 'ws';
import {
  ApixError,
  channelKey,
  ChannelType,
  CloseCode,
  compareEventIds,
  CLIENT_CONTROL_SCHEMAS,
  ConnectionStatus,
  ERRORS,
  formatIssues,
  isApixError,
  isControlType,
  isEventId,
  metadataError,
  parseChannel,
  PublishFrameSchema,
  WS_SUBPROTOCOL,
} from '@apix/protocol';
import type {
  ApiXConnection,
  ApiXSubscription,
  ClientControlFrame,
  Denial,
  EnvelopeMetadata,
  ErrorCode,
  ParsedChannel,
  PublishFrame,
} from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock, Random, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Broker, BrokerEvent, ControlMessage } from '../broker/broker.ts';
import type { OfflineQueue, QueuedFrame } from '../queue/queue.ts';
import type { SessionStore, SessionSnapshot } from '../sessions/session-store.ts';
import type {
  FoundSuspension,
  Suspension,
  SuspensionStore,
  SuspensionTarget,
} from '../suspension/suspension-store.ts';
import { parseSuspensionControl, suspensionControlMessage } from '../suspension/suspension-store.ts';
import { SuspensionGuard } from '../suspension/suspension-guard.ts';
import type { Presence, PresenceMember } from '../presence/presence.ts';
import type { Authenticator } from '../auth/authenticator.ts';
import type { Revocation } from '../auth/revocation-store.ts';
import { parseRevocationControl, revocationControlMessage, revokes } from '../auth/revocation-store.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import { ChannelAccess } from '../subscriptions/access.ts';
import { credentialClientType } from '../auth/client-type.ts';
import { compileFilter } from '../subscriptions/filters.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { RetryManager } from '../retry/retry-manager.ts';
import type { PendingJournal } from '../retry/pending-journal.ts';
import type { Delivery } from './delivery.ts';
import type { PendingEntry, PendingOwner } from '../pending/pending-store.ts';
import { channelNameFromKey } from '@apix/protocol';
import type { DeadLetterStore } from '../retry/dead-letter.ts';
import { localBucket, RateLimitedError } from '../ratelimit/rate-limiter.ts';
import { mayNotifyPublisher } from '../tenancy/scope-keys.ts';
import type { RateLimiter, RateLimitScope } from '../ratelimit/rate-limiter.ts';
import { Connection, Phase, Session, Subscription, sessionKey } from './session.ts';
import type { HookBus } from '../hooks.ts';
import type { Peer } from '../auth/principal.ts';
import { encodeControl, encodeError, encodePresence, EventFrames } from './frames.ts';
import { canRecover, DegradedState, degradeReason } from './qos.ts';
import { rawHttpResponse } from '../security-headers.ts';
import { PublishOrder } from '../router/publish-order.ts';
import { resumeFrom } from './resume.ts';

export interface GatewayDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly broker: Broker;
  readonly router: EventRouter;
  readonly offlineQueue: OfflineQueue;
  readonly sessionStore: SessionStore;
  readonly presence: Presence;
  readonly authenticator: Authenticator;
  readonly channels: ChannelRegistry;
  readonly deadLetters: DeadLetterStore;
  /** Rate limits: the per-connection ones (`limiter.limits`) and the shared ones. */
  readonly limiter: RateLimiter;
  /** The retry manager, pending journal and hub, built by node.ts; the gateway binds their callbacks. */
  readonly delivery: Delivery;
  /** Suspensions of sessions, users and API keys, shared by the nodes. */
  readonly suspensions: SuspensionStore;
}

/** Frames buffered while `connect` is being authenticated (clients may pipeline). */
const MAX_EARLY_FRAMES = 64;
/** Heartbeat rounds without a word from the client before it is terminated. */
const MISSED_HEARTBEATS_TO_CUT = 2;

/** The heartbeat timer's period: about 200 slices per interval, between 10 and 250 ms. */
function heartbeatTickMs(intervalMs: number): number {
  return Math.max(10, Math.min(250, Math.floor(intervalMs / 200)));
}

export class ApiXGateway {
  readonly wss: WebSocketServer;
  readonly hub: LocalHub;
  readonly retry: RetryManager;
  /** Writes the retry manager's in-flight state to the pending store, in batches; sweeps expired sessions. */
  readonly pending: PendingJournal;
  /** Every open connection, by id. */
  readonly connections = new Map<string, Connection>();
  /** Sessions held by this node (live or waiting for their client), by session key. */
  readonly sessions = new Map<string, Session>();
  /** Suspensions: the shared store, and those made here or heard from other nodes. */
  private readonly suspensions: SuspensionGuard;
  /**
   * Connection caps (APIX_MAX_CONNECTIONS_PER_ADDRESS / _USER / _ORG): open connections per remote
   * address, and connections past `connect` per user (`org/user`) and per organization, on this node.
   * A key is deleted when its count drops to 0; a map is only filled while its cap is on.
   */
  readonly perAddress = new Map<string, number>();
  readonly perUser = new Map<string, number>();
  readonly perOrg = new Map<string, number>();
  private readonly early = new WeakMap<Connection, Array<[RawData, boolean]>>();
  private sweepTimer: TimerHandle | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  /** Session snapshots being written: a draining node waits for them before its store closes. */
  private readonly snapshotsInFlight = new Set<Promise<void>>();
  /** The heartbeat round in progress: the connections still to ping, whether none are left, when it began. */
  private heartbeatRound: { rest: Iterator<Connection>; done: boolean; startedAt: number } | undefined;
  private draining = false;
  private seq = 0;
  slowConsumers = 0;
  /** Times a connection's socket stopped being read: too many of its publishes in flight (since start). */
  publishPauses = 0;
  /** Connections in degraded mode (QoS): checked at every sweep. */
  readonly degraded = new Set<Connection>();
  private readonly compressThreshold: number;
  /** Permission decisions with the credential's client type, denials audited. */
  private readonly access: ChannelAccess;
  framesIn = 0;

  constructor(private readonly deps: GatewayDeps) {
    const { config } = deps;
    this.compressThreshold = config.compression.thresholdBytes;
    this.access = new ChannelAccess(deps.channels, deps.hooks);
    this.suspensions = new SuspensionGuard(deps.suspensions, () => deps.clock.now(), deps.log);
    this.wss = new WebSocketServer({
      noServer: true,
      clientTracking: false,
      maxPayload: config.maxMessageBytes,
      perMessageDeflate: config.compression.enabled
        ? {
            threshold: config.compression.thresholdBytes,
            serverNoContextTakeover: true,
            clientNoContextTakeover: true,
            zlibDeflateOptions: { level: 1 },
            concurrencyLimit: 10,
          }
        : false,
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    });
    // A handshake ws itself refuses (method, Upgrade, key, version, malformed offers) is answered here, so
    // that it carries the security headers and the error registry's code like the gateway's own refusals.
    this.wss.on('wsClientError', (err: Error, socket: Duplex, req: IncomingMessage) => {
      const version: Record<string, string> = /Sec-WebSocket-Version/.test(err.message)
        ? { 'Sec-WebSocket-Version': '13, 8' }
        : {};
      const status = req.method === 'GET' ? 400 : 405;
      this.rejectUpgrade(socket, peerOf(req), status, 'BAD_REQUEST', err.message, { headers: version });
    });
    this.retry = deps.delivery.retry;
    this.pending = deps.delivery.pending;
    this.hub = deps.delivery.hub;
    deps.delivery.callbacks.bind({
      queueAway: (sub, event, attempts) => this.queueAway(sub, event, attempts),
      deadLettered: (sub, event, attempts) => this.onDeadLettered(sub, event, attempts),
      deadLetterStored: (owner, entries) => this.deadLetterStored(owner, entries),
      pressure: (conn) => this.pressure(conn),
      hold: (conn, sub, event, frames, key) => this.hold(conn, sub, event, frames, key),
    });
    deps.broker.onControl((msg) => this.onControl(msg));
    deps.channels.onChange?.((key) => {
      const subs = this.hub.subscribers(key);
      if (subs) this.revokeDenied([...subs], 'channel permissions changed');
    });
  }

  start(): void {
    const { heartbeatIntervalMs, connectTimeoutMs } = this.deps.config;
    const tick = Math.max(
      25,
      Math.min(1000, Math.floor(Math.min(heartbeatIntervalMs, connectTimeoutMs) / 4)),
    );
    this.sweepTimer = this.deps.clock.setInterval(() => this.sweep(), tick);
    this.heartbeatTimer = this.deps.clock.setInterval(
      () => this.heartbeatTick(),
      heartbeatTickMs(heartbeatIntervalMs),
    );
    this.pending.start();
  }

  // ---------------------------------------------------------------- handshake

  /**
   * Handles an HTTP upgrade on the gateway's path: the per-address rate limit before any other work
   * (429 with Retry-After), then origin, subprotocol and capacity checks.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const peer = peerOf(req);
    if (!this.deps.limiter.limitsAddresses) return this.upgrade(req, socket, head, peer);
    this.deps.limiter.checkAddress(peer).then(
      (r) => {
        if (socket.destroyed) return;
        if (r.allowed) return this.upgrade(req, socket, head, peer);
        const retryAfterMs = r.retryAfterMs;
        this.rejectUpgrade(
          socket,
          peer,
          429,
          'RATE_LIMITED',
          `too many connection attempts from this address; retry after ${retryAfterMs} ms`,
          { retryAfterMs },
        );
      },
      () => socket.destroy(),
    );
  }

  private rejectUpgrade(
    socket: Duplex,
    peer: Peer,
    status: number,
    code: ErrorCode | 'ORIGIN' | 'PROTOCOL',
    reason: string,
    extra: { retryAfterMs?: number; headers?: Record<string, string> } = {},
  ): void {
    this.deps.hooks.emit('onConnectRefused', { peer, code, reason });
    const { headers: more, ...fields } = extra;
    const body = JSON.stringify({
      code: code === 'ORIGIN' ? 'FORBIDDEN' : code === 'PROTOCOL' ? 'BAD_REQUEST' : code,
      message: reason,
      ...fields,
    });
    const headers = {
      ...more,
      ...(extra.retryAfterMs !== undefined ? { 'Retry-After': Math.ceil(extra.retryAfterMs / 1000) } : {}),
    };
    socket.end(rawHttpResponse(status, { headers, json: body }));
    socket.destroy();
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, peer: Peer): void {
    const reject = (status: number, code: ErrorCode | 'ORIGIN' | 'PROTOCOL', reason: string) =>
      this.rejectUpgrade(socket, peer, status, code, reason);
    if (this.draining) return reject(503, 'UNAVAILABLE', 'server is draining');
    const allowed = this.deps.config.allowedOrigins;
    if (allowed && peer.origin !== undefined && !allowed.includes(peer.origin) && !allowed.includes('*'))
      return reject(403, 'ORIGIN', `origin ${peer.origin} is not allowed`);
    const offered = req.headers['sec-websocket-protocol'];
    if (offered !== undefined) {
      const list = offered.split(',').map((p) => p.trim());
      if (!list.includes(WS_SUBPROTOCOL))
        return reject(400, 'PROTOCOL', `unsupported subprotocol; offer ${WS_SUBPROTOCOL}`);
    }
    if (this.connections.size >= this.deps.config.maxConnections)
      return reject(503, 'UNAVAILABLE', 'connection limit reached');
    const perAddress = this.deps.config.connectionCaps.perAddress;
    const address = peer.remoteAddress;
    if (perAddress > 0 && address !== undefined && (this.perAddress.get(address) ?? 0) >= perAddress)
      return reject(429, 'RATE_LIMITED', `too many open connections from this address (limit ${perAddress})`);
    this.wss.handleUpgrade(req, socket, head, (ws) => this.onOpen(ws, peer));
  }

  private onOpen(ws: WebSocket, peer: Peer): void {
    const now = this.deps.clock.now();
    const limits = this.deps.limiter.limits;
    const conn = new Connection(
      `${this.deps.nodeId}-${(++this.seq).toString(36)}`,
      ws,
      peer,
      now,
      localBucket(limits.connection, now),
    );
    conn.publishBucket = localBucket(limits.publish, now);
    this.connections.set(conn.id, conn);
    // Counted here, in the same tick as the check in upgrade() (ws completes the upgrade synchronously).
    if (this.deps.config.connectionCaps.perAddress > 0 && peer.remoteAddress !== undefined) {
      conn.countedAddress = peer.remoteAddress;
      increment(this.perAddress, peer.remoteAddress);
    }
    conn.socket.setNoDelay(true);
    // The listeners are shared by every socket of this gateway (ws calls them with `this` = the socket):
    // no closures per connection.
    (ws as TaggedSocket)[kConnection] = conn;
    ws.on('message', this.socketListeners.message);
    ws.on('pong', onSocketPong);
    ws.on('error', onSocketError);
    ws.on('close', this.socketListeners.close);
  }

  private readonly socketListeners = ApiXGateway.socketListenersOf(this);

  private static socketListenersOf(gateway: ApiXGateway) {
    return {
      message(this: WebSocket, data: RawData, isBinary: boolean): void {
        gateway.onMessage((this as TaggedSocket)[kConnection], data, isBinary);
      },
      close(this: WebSocket, code: number, reason: Buffer): void {
        gateway.onClose((this as TaggedSocket)[kConnection], code, reason.toString());
      },
    };
  }

  // ---------------------------------------------------------------- frames

  private onMessage(conn: Connection, data: RawData, isBinary: boolean): void {
    conn.missedHeartbeats = 0;
    this.framesIn++;
    if (conn.phase === Phase.CONNECTING) {
      const early = this.early.get(conn) ?? [];
      if (early.length >= MAX_EARLY_FRAMES)
        return this.fail(conn, 'RATE_LIMITED', 'too many frames before connect completed', true);
      early.push([data, isBinary]);
      this.early.set(conn, early);
      return;
    }
    if (conn.phase !== Phase.AWAITING_CONNECT && conn.phase !== Phase.CONNECTED) return;
    const now = this.deps.clock.now();
    if (!conn.inbound.take(now)) {
      conn.violations++;
      // One hook call per burst (its first refusal), not per refused frame: a flood must not flood the audit.
      if (conn.violations === 1)
        this.deps.hooks.emit('onRateLimited', {
          principal: conn.principal,
          peer: conn.peer,
          scope: 'connection',
        });
      if (this.refused(conn, 'connection')) return;
      if (conn.violations === 1 || conn.violations % 10 === 0)
        conn.send(
          encodeError('RATE_LIMITED', 'too many frames', false, now, undefined, {
            retryAfterMs: conn.inbound.retryAfterMs(now),
          }),
        );
      return;
    }
    conn.violations = 0;
    // No frame is served on an expired token, even before the sweeper's next pass.
    if (conn.phase === Phase.CONNECTED && this.expireToken(conn, now)) return;
    if (isBinary) return this.fail(conn, 'BAD_REQUEST', 'binary frames are not accepted; send JSON text');
    let frame: unknown;
    try {
      frame = JSON.parse(typeof data === 'string' ? data : (data as Buffer).toString('utf8'));
    } catch {
      return this.fail(conn, 'BAD_REQUEST', 'frame is not valid JSON');
    }
    if (frame === null || typeof frame !== 'object' || Array.isArray(frame))
      return this.fail(conn, 'BAD_REQUEST', 'frame must be a JSON object');
    const type = (frame as { type?: unknown }).type;
    const correlationId = correlationOf(frame);
    if (typeof type !== 'string')
      return this.fail(conn, 'BAD_REQUEST', 'frame.type must be a string', false, correlationId);

    if (conn.phase === Phase.AWAITING_CONNECT) {
      if (type !== 'connect')
        return this.fail(conn, 'BAD_REQUEST', 'the first frame must be "connect"', true, correlationId);
      const r = CLIENT_CONTROL_SCHEMAS.connect.safeParse(frame);
      if (!r.success) return this.fail(conn, 'BAD_REQUEST', formatIssues(r.error), true, correlationId);
      const b = this.deps.config.jsonBounds;
      const tooLarge = metadataError(r.data.payload.metadata, {
        maxBytes: b.metadataMaxBytes,
        maxDepth: b.metadataMaxDepth,
        maxKeys: b.metadataMaxKeys,
      });
      if (tooLarge !== undefined) return this.fail(conn, 'PAYLOAD_TOO_LARGE', tooLarge, true, correlationId);
      conn.phase = Phase.CONNECTING;
      this.handleConnect(conn, r.data.payload, correlationId).catch((err) =>
        this.internalError(conn, err, true),
      );
      return;
    }
    if (type === 'connect') return this.fail(conn, 'BAD_REQUEST', 'already connected', false, correlationId);
    const schema = Object.prototype.hasOwnProperty.call(CLIENT_CONTROL_SCHEMAS, type)
      ? CLIENT_CONTROL_SCHEMAS[type as keyof typeof CLIENT_CONTROL_SCHEMAS]
      : undefined;
    if (schema) {
      const r = schema.safeParse(frame);
      if (!r.success) return this.fail(conn, 'BAD_REQUEST', formatIssues(r.error), false, correlationId);
      this.dispatch(conn, r.data as ClientControlFrame, correlationId);
      return;
    }
    const channel = (frame as { channel?: unknown }).channel;
    if (typeof channel !== 'string')
      return this.fail(
        conn,
        'BAD_REQUEST',
        `unknown frame type "${type.slice(0, 64)}" (a publish needs a channel)`,
        false,
        correlationId,
      );
    // A publish attempt: its errors answer message.failed, like every other publish error.
    const r = PublishFrameSchema.safeParse(frame);
    if (!r.success) {
      const message = isControlType(type) ? `"${type}" is a reserved control type` : formatIssues(r.error);
      conn.send(
        encodeControl(
          'message.failed',
          { code: 'BAD_REQUEST', message, channel: channel.slice(0, 200) },
          this.deps.clock.now(),
          correlationId,
        ),
      );
      return;
    }
    this.handlePublish(conn, r.data, correlationId);
  }

  private dispatch(conn: Connection, frame: ClientControlFrame, correlationId: string | undefined): void {
    switch (frame.type) {
      case 'subscribe': {
        const payload = frame.payload;
        this.inOrder(conn, () => this.handleSubscribe(conn, payload, correlationId));
        return;
      }
      case 'unsubscribe': {
        const channels = frame.payload.channels;
        // Behind a subscribe still in progress (it awaits limits, history, presence), an unsubscribe
        // waits for it: otherwise it would find nothing to remove, and the subscribe would win.
        if (conn.subscribing) this.inOrder(conn, () => this.handleUnsubscribe(conn, channels, correlationId));
        else this.handleUnsubscribe(conn, channels, correlationId);
        return;
      }
      case 'ack':
        this.handleAck(conn, frame.payload.channel, frame.payload.ids);
        return;
      case 'heartbeat.ping': {
        const now = this.deps.clock.now();
        conn.send(
          encodeControl(
            'heartbeat.pong',
            { ts: frame.payload?.ts ?? now, serverTime: now },
            now,
            correlationId,
          ),
        );
        return;
      }
      case 'heartbeat.pong': {
        const now = this.deps.clock.now();
        if (frame.payload.ts === conn.pingSentAt && conn.pingSentAt > 0) {
          conn.rttMs = now - conn.pingSentAt;
          this.checkQos(conn);
        }
        if (this.deps.hooks.has('onHeartbeat'))
          this.deps.hooks.emit('onHeartbeat', {
            connectionId: conn.id,
            sessionId: conn.session?.sessionId ?? '',
            rttMs: conn.rttMs,
            at: now,
          });
        return;
      }
      case 'auth.refresh':
        this.handleRefresh(conn, frame.payload.token, correlationId).catch((err) =>
          this.internalError(conn, err, false),
        );
        return;
      case 'connect':
        return;
    }
  }

  // ---------------------------------------------------------------- connect

  private async handleConnect(
    conn: Connection,
    payload: ApiXConnection,
    correlationId: string | undefined,
  ): Promise<void> {
    const { hooks, clock } = this.deps;
    let principal;
    let suspension: FoundSuspension | undefined;
    try {
      principal = await this.deps.authenticator.authenticate(
        payload.authentication.token,
        payload.authentication.organizationId,
      );
      suspension = await this.suspensions.find(principal.orgId, principal.userId, payload.sessionId);
    } catch (err) {
      const e = isApixError(err) ? err : new ApixError('UNAUTHORIZED', 'authentication failed');
      hooks.emit('onAuthFailure', { peer: conn.peer, code: e.code, reason: e.message, via: 'ws' });
      hooks.emit('onConnectRefused', { peer: conn.peer, code: e.code, reason: e.message });
      return this.fail(conn, e.code, e.message, true, correlationId);
    }
    if (!conn.isOpen && conn.phase !== Phase.CONNECTING) return;
    conn.principal = principal;
    conn.clientType = payload.clientType;
    const key = sessionKey(principal.orgId, principal.userId, payload.sessionId);
    if (suspension) {
      hooks.emit('onConnectRefused', {
        peer: conn.peer,
        code: 'FORBIDDEN',
        reason: `${suspension.scope} suspended`,
        orgId: principal.orgId,
        userId: principal.userId,
      });
      return this.disconnect(
        conn,
        'FORBIDDEN',
        suspension.scope === 'user' ? 'this user is suspended' : 'session is suspended',
        CloseCode.SUSPENDED,
        false,
        correlationId,
      );
    }
    const capped = this.claimConnectionSlot(conn, principal.orgId, principal.userId, key);
    if (capped) {
      hooks.emit('onConnectRefused', {
        peer: conn.peer,
        code: 'RATE_LIMITED',
        reason: capped,
        orgId: principal.orgId,
        userId: principal.userId,
      });
      return this.fail(conn, 'RATE_LIMITED', capped, true, correlationId);
    }

    // Find the session: held here, held by another node (store), or new.
    let session = this.sessions.get(key);
    let resumed: boolean;
    let snapshot: SessionSnapshot | undefined;
    if (session) {
      resumed = true;
      session.expiryTimer?.cancel();
      session.expiryTimer = undefined;
      const previous = session.connection;
      if (previous && previous !== conn) {
        this.detach(previous);
        this.disconnect(
          previous,
          'CONFLICT',
          'session taken over by a newer connection',
          CloseCode.SESSION_TAKEN_OVER,
          false,
        );
      }
      session.principal = principal;
    } else {
      snapshot = await this.deps.sessionStore.load(key).catch(() => undefined);
      if (snapshot?.suspended)
        return this.disconnect(
          conn,
          'FORBIDDEN',
          'session is suspended',
          CloseCode.SUSPENDED,
          false,
          correlationId,
        );
      session = new Session(key, payload.sessionId, principal, payload.clientType);
      resumed = snapshot !== undefined;
      this.sessions.set(key, session);
      if (snapshot && snapshot.nodeId !== this.deps.nodeId)
        this.deps.broker
          .publishControl({ kind: 'session.taken', from: this.deps.nodeId, key })
          .catch(() => {});
    }
    if (!conn.isOpen) {
      // The client left (or is closing) while we were authenticating or loading its session. A session
      // made here is forgotten (a snapshot stays in the store for its TTL); one held here before waits for
      // a resume again, its expiry timer having been cancelled above (the soak found such sessions held
      // forever, with their subscriptions).
      if (snapshot !== undefined || !resumed) {
        if (this.sessions.get(key) === session) this.sessions.delete(key);
      } else if (!session.isLive) this.awaitResume(session);
      return;
    }
    conn.metadata = payload.metadata;
    session.connection = conn;
    session.status = ConnectionStatus.CONNECTED;
    conn.session = session;
    conn.phase = Phase.CONNECTED;

    const lastIds = payload.resume?.lastEventIds ?? {};
    // Where each channel replays from: the client's last id; else the replay it asked for when it has no
    // position (a reloaded page: the session's own position is where its previous page stopped); else the
    // session's position. The replays the client asked for go out first, before queued and in-flight events.
    const { from, asked } = resumeFrom(lastIds, payload.resume?.replay);
    const denied: Denial[] = [];
    const recovered: Record<string, boolean> = {};
    const replays: Array<{ sub: Subscription; events: readonly BrokerEvent[] }> = [];
    // Subscriptions of the session that the new credentials do not allow (resume, takeover): dropped.
    const revoked: string[] = [];

    // Restore a session from another node's snapshot, as far as the new credentials allow.
    if (snapshot) {
      for (const s of snapshot.subscriptions) {
        const parsed = parseChannel(s.channel);
        if (!parsed.ok) continue;
        const check = this.checkSubscribe(conn, session, parsed.channel, false);
        if (check) {
          denied.push(check);
          revoked.push(s.channel);
          continue;
        }
        const f = from(s.channel, s.lastId);
        const wants = f.since !== undefined || f.last !== undefined;
        const may = wants && this.mayReplay(conn, session, parsed.channel);
        const r = await this.attach(
          session,
          parsed.channel,
          s.ack,
          s.filters,
          may ? f.since : undefined,
          may ? f.last : undefined,
          true,
        );
        if (r.sub) {
          recovered[s.channel] = (!wants || may) && r.recovered;
          replays.push({ sub: r.sub, events: r.events });
        }
      }
    } else if (resumed) {
      // Same node (a resume or a takeover): the new credentials decide which subscriptions stay.
      for (const sub of [...session.subscriptions.values()]) {
        const check = this.checkSubscribe(conn, session, sub.channel, false);
        if (!check) continue;
        this.removeSubscription(sub, 'resumed with credentials that do not allow it');
        denied.push(check);
        revoked.push(sub.name);
      }
      // The others are still in the hub; catch up plain ones from history.
      for (const sub of session.subscriptions.values()) {
        if (sub.queuesWhileAway && !asked(sub.name)) continue;
        const f = from(sub.name, sub.lastId);
        if (f.since === undefined && f.last === undefined) continue;
        if (!this.mayReplay(conn, session, sub.channel)) {
          recovered[sub.name] = false;
          continue;
        }
        sub.pending = [];
        const h = await this.readHistory(sub.key, f.since, f.last);
        recovered[sub.name] = h.recovered;
        replays.push({ sub, events: h.events });
      }
    }
    // Subscriptions asked for in `connect`.
    let limited: RateLimitedError | undefined;
    for (const name of payload.subscriptions) {
      const parsed = parseChannel(name);
      if (!parsed.ok) {
        denied.push({ channel: name, code: 'BAD_REQUEST', message: parsed.reason });
        continue;
      }
      if (session.subscriptions.has(channelKey(principal.orgId, parsed.channel))) continue;
      if (revoked.includes(name)) continue;
      const check = this.checkSubscribe(conn, session, parsed.channel);
      if (check) {
        denied.push(check);
        continue;
      }
      limited ??= await this.deps.limiter.checkSubscribe(principal, conn.peer);
      if (limited) {
        denied.push(rateLimitedDenial(name, limited));
        continue;
      }
      const f = from(name, undefined);
      const may =
        (f.since !== undefined || f.last !== undefined) && this.mayReplay(conn, session, parsed.channel);
      const r = await this.attach(
        session,
        parsed.channel,
        false,
        undefined,
        may ? f.since : undefined,
        may ? f.last : undefined,
        false,
      );
      if (r.sub) {
        if (f.since !== undefined) recovered[name] = may && r.recovered;
        replays.push({ sub: r.sub, events: r.events });
      }
    }
    if (limited && this.refused(conn, limited.scope)) return;
    if (!conn.isOpen) return;
    // In-flight events the session had when its node died (or left): taken over, redelivered first.
    const taken =
      resumed && [...session.subscriptions.values()].some((s) => s.ack)
        ? await this.pending.take(key).catch(() => undefined)
        : undefined;
    const queued = resumed
      ? await this.deps.offlineQueue.drain(key).catch(() => ({ frames: [], overflowed: 0 }))
      : undefined;
    this.saveSnapshot(session);

    const now = clock.now();
    conn.send(
      encodeControl(
        'connection.established',
        {
          connectionId: conn.id,
          sessionId: session.sessionId,
          resumed,
          heartbeatIntervalMs: this.deps.config.heartbeatIntervalMs,
          subscriptions: [...session.subscriptions.values()].map((s) => s.name),
          denied,
          recovered,
          userId: principal.userId,
          organizationId: principal.orgId,
          ...(principal.expiresAt !== undefined ? { expiresAt: principal.expiresAt * 1000 } : {}),
        },
        now,
        correlationId,
      ),
    );
    if (revoked.length > 0) {
      const reason = 'the credentials of this connection do not allow it';
      conn.send(encodeControl('subscription.removed', { channels: revoked, reason }, now));
      for (const channel of revoked)
        hooks.emit('onUnsubscribe', { connection: conn.info(), channel, reason });
    }
    const sent = new Set<string>();
    const first = replays.filter((r) => asked(r.sub.name));
    for (const r of first) this.flushReplay(r.sub, r.events, sent);
    if (taken && taken.entries.length > 0) this.sendPending(session, taken.entries, sent);
    if (queued) {
      for (const item of queued.frames) this.sendQueued(session, item, sent);
    }
    for (const r of replays) if (!asked(r.sub.name)) this.flushReplay(r.sub, r.events, sent);
    for (const sub of session.subscriptions.values())
      if (sub.type === ChannelType.ROOM) void this.joinRoom(conn, sub);
    // Not when the client already left during the awaits above: onClose has emitted onDisconnect, and a
    // late onConnect would leave it counted as connected (the latency tracker, the records).
    if ((conn.phase as Phase) !== Phase.CLOSED) hooks.emit('onConnect', { connection: conn.info(), resumed });
    for (const d of denied) this.emitSubscribeDenied(conn, d);
    const early = this.early.get(conn);
    if (early) {
      this.early.delete(conn);
      for (const [data, isBinary] of early) this.onMessage(conn, data, isBinary);
    }
  }

  /**
   * Counts an authenticated connection against its user's and organization's caps, or says why it is
   * refused. A connection resuming a session that is live here replaces that session's connection (closed
   * with 4009 right after): it is not refused, so a client whose old socket the server has not yet seen die
   * can always come back. The counts are released in onClose, whatever the path to it.
   */
  private claimConnectionSlot(
    conn: Connection,
    orgId: string,
    userId: string,
    key: string,
  ): string | undefined {
    const { perUser, perOrg } = this.deps.config.connectionCaps;
    if (perUser <= 0 && perOrg <= 0) return undefined;
    const takesOver = this.sessions.get(key)?.connection !== undefined;
    const userKey = `${orgId}/${userId}`;
    if (!takesOver) {
      if (perUser > 0 && (this.perUser.get(userKey) ?? 0) >= perUser)
        return `too many connections for this user (limit ${perUser} per node)`;
      if (perOrg > 0 && (this.perOrg.get(orgId) ?? 0) >= perOrg)
        return `too many connections for this organization (limit ${perOrg} per node)`;
    }
    if (perUser > 0) {
      conn.countedUser = userKey;
      increment(this.perUser, userKey);
    }
    if (perOrg > 0) {
      conn.countedOrg = orgId;
      increment(this.perOrg, orgId);
    }
    return undefined;
  }

  /**
   * Denial for a subscribe, or undefined when allowed. `counting`: a new subscription, so the per-connection
   * limit applies (a subscription kept or restored is only re-checked against the permissions).
   */
  private checkSubscribe(
    conn: Connection,
    session: Session,
    channel: ParsedChannel,
    counting = true,
  ): Denial | undefined {
    if (counting && session.subscriptions.size >= this.deps.config.maxChannelsPerConnection)
      return {
        channel: channel.name,
        code: 'FORBIDDEN',
        message: `subscription limit of ${this.deps.config.maxChannelsPerConnection} channels reached`,
      };
    const decision = this.access.check('subscribe', session.principal, conn.peer, channel);
    if (!decision.allowed) {
      return {
        channel: channel.name,
        code: 'FORBIDDEN',
        message: `subscribe to ${channel.name} denied: ${decision.reason}`,
      };
    }
    return undefined;
  }

  /**
   * Whether the channel's history rule lets the session's credentials have past events (replay, `since`,
   * `resume.lastEventIds`, catch-up): when it does not, a subscription is served live only.
   */
  private mayReplay(conn: Connection, session: Session, channel: ParsedChannel): boolean {
    return this.access.check('history', session.principal, conn.peer, channel).allowed;
  }

  /**
   * Subscribes a session to a channel and reads the history it asked for. Live events that arrive while
   * history is read wait in `sub.pending`; `flushReplay` sends history then those, with no gap and no
   * duplicate.
   */
  private async attach(
    session: Session,
    channel: ParsedChannel,
    ack: boolean,
    filters: Record<string, unknown> | undefined,
    since: string | undefined,
    last: number | undefined,
    restoring: boolean,
  ): Promise<{ sub: Subscription | undefined; events: readonly BrokerEvent[]; recovered: boolean }> {
    // The session ended (taken over on another node) while this connect or subscribe was awaiting: a
    // subscription attached now would stay in the hub with no session to remove it (found by the soak).
    if (this.sessions.get(session.key) !== session) return { sub: undefined, events: [], recovered: false };
    const key = channelKey(session.orgId, channel);
    let sub = session.subscriptions.get(key);
    if (!sub || sub.ack !== ack || filters !== undefined) {
      if (sub) this.removeSubscription(sub, 'replaced');
      sub = new Subscription(session, key, channel, ack, compileFilter(filters), filters);
      session.subscriptions.set(key, sub);
    }
    if (since === undefined && last === undefined) {
      await this.hub.add(sub);
      return { sub, events: [], recovered: true };
    }
    sub.pending = [];
    await this.hub.add(sub);
    const h = await this.readHistory(key, since, last);
    if (restoring && since !== undefined && !isEventId(since)) return { sub, events: [], recovered: false };
    return { sub, events: h.events, recovered: h.recovered };
  }

  private async readHistory(key: string, since: string | undefined, last: number | undefined) {
    if (since !== undefined && !isEventId(since)) return { events: [] as BrokerEvent[], recovered: false };
    try {
      return await this.deps.broker.history(key, { since, last });
    } catch (err) {
      this.deps.log.warn({ err, key }, 'history read failed');
      return { events: [] as BrokerEvent[], recovered: false };
    }
  }

  private flushReplay(sub: Subscription, events: readonly BrokerEvent[], sent: Set<string>): void {
    const pending = sub.pending ?? [];
    sub.pending = undefined;
    if (sub.session.subscriptions.get(sub.key) !== sub) return;
    let lastId: string | undefined;
    const emit = (ev: BrokerEvent) => {
      const k = `${ev.key}\n${ev.id}`;
      if (sent.has(k)) return;
      sent.add(k);
      lastId = ev.id;
      sub.lastId = ev.id;
      if (sub.filter && !sub.filter({ type: ev.type, payload: () => parsePayload(ev.frame) })) return;
      if (sub.ack) this.retry.deliver(sub, ev, undefined);
      else sub.session.connection?.sendEvent(new EventFrames(ev.frame, this.compressThreshold));
      // A replay writes up to the whole history at once: a client that asks for replays and never reads
      // is cut like any slow consumer (the rest of the replay then waits in its queue or history).
      const conn = sub.session.connection;
      if (conn && conn.bufferedBytes > this.deps.config.maxBufferedBytes) this.slowConsumer(conn);
    };
    for (const ev of events) emit(ev);
    for (const ev of pending) if (lastId === undefined || compareEventIds(ev.id, lastId) > 0) emit(ev);
    if (lastId !== undefined) sub.replayFloor = lastId;
  }

  private sendQueued(session: Session, item: QueuedFrame, sent: Set<string>): void {
    const k = `${item.key}\n${item.id}`;
    if (sent.has(k)) return;
    sent.add(k);
    const sub = session.subscriptions.get(item.key);
    if (!sub) return;
    const event: BrokerEvent = {
      key: item.key,
      id: item.id,
      type: item.type,
      timestamp: item.timestamp,
      frame: item.frame,
      publisher: undefined,
      sealed: item.sealed,
    };
    if (item.ack && sub.ack) this.retry.deliver(sub, event, undefined, item.attempts);
    else session.connection?.sendEvent(new EventFrames(item.frame, this.compressThreshold));
  }

  // ---------------------------------------------------------------- subscribe / unsubscribe / ack

  /** Runs a subscription change after the connection's earlier ones, in the order the frames came. */
  private inOrder(conn: Connection, op: () => Promise<void> | void): void {
    const run = async (): Promise<void> => op();
    const done: Promise<void> = (conn.subscribing ? conn.subscribing.then(run) : run())
      .catch((err: unknown) => this.internalError(conn, err, false))
      .finally(() => {
        if (conn.subscribing === done) conn.subscribing = undefined;
      });
    conn.subscribing = done;
  }

  private async handleSubscribe(
    conn: Connection,
    payload: ApiXSubscription,
    correlationId: string | undefined,
  ): Promise<void> {
    const session = conn.session!;
    if (payload.filters) {
      try {
        compileFilter(payload.filters);
      } catch (err) {
        return this.fail(conn, 'BAD_REQUEST', (err as Error).message, false, correlationId);
      }
    }
    const granted: Array<{ channel: string; recovered: boolean; presence?: PresenceMember[] }> = [];
    const denied: Denial[] = [];
    const replays: Array<{ sub: Subscription; events: readonly BrokerEvent[] }> = [];
    // The first refusal of the organization's subscribe limit denies the rest of the frame too.
    let limited: RateLimitedError | undefined;
    for (const name of new Set(payload.channels)) {
      const parsed = parseChannel(name);
      if (!parsed.ok) {
        denied.push({ channel: name, code: 'BAD_REQUEST', message: parsed.reason });
        continue;
      }
      const existing = session.subscriptions.get(channelKey(session.orgId, parsed.channel));
      // An existing subscription is checked too (a re-subscribe with a replay reads history).
      const check = this.checkSubscribe(conn, session, parsed.channel, !existing);
      if (check) {
        if (existing) this.revokeDenied([existing], 'no longer allowed');
        denied.push(check);
        continue;
      }
      if (!existing) {
        limited ??= await this.deps.limiter.checkSubscribe(session.principal, conn.peer);
        if (limited) {
          denied.push(rateLimitedDenial(name, limited));
          continue;
        }
      }
      const since = payload.since?.[name];
      const last = payload.replay?.last;
      const wantsReplay = since !== undefined || last !== undefined;
      const replay = wantsReplay && this.mayReplay(conn, session, parsed.channel);
      const r = await this.attach(
        session,
        parsed.channel,
        payload.acknowledgment,
        payload.filters,
        replay ? since : undefined,
        replay ? last : undefined,
        false,
      );
      if (!r.sub) continue;
      const recovered = r.recovered && replay === wantsReplay;
      const members = r.sub.type === ChannelType.ROOM ? await this.joinRoom(conn, r.sub) : undefined;
      granted.push(members ? { channel: name, recovered, presence: members } : { channel: name, recovered });
      replays.push({ sub: r.sub, events: r.events });
      this.deps.hooks.emit('onSubscribe', {
        connection: conn.info(),
        channel: name,
        channelType: parsed.channel.type,
        granted: true,
      });
    }
    if (session.connection !== conn) return;
    this.saveSnapshot(session);
    conn.send(
      encodeControl(
        'subscription.added',
        { channels: granted, denied },
        this.deps.clock.now(),
        correlationId,
      ),
    );
    const sent = new Set<string>();
    for (const r of replays) this.flushReplay(r.sub, r.events, sent);
    for (const d of denied) this.emitSubscribeDenied(conn, d);
    if (limited) this.refused(conn, limited.scope);
  }

  private emitSubscribeDenied(conn: Connection, d: Denial): void {
    const parsed = parseChannel(d.channel);
    this.deps.hooks.emit('onSubscribe', {
      connection: conn.info(),
      channel: d.channel,
      channelType: parsed.ok ? parsed.channel.type : 'AGENT_EVENTS',
      granted: false,
      code: d.code,
      reason: d.message,
    });
  }

  private handleUnsubscribe(
    conn: Connection,
    channels: readonly string[],
    correlationId: string | undefined,
  ): void {
    const session = conn.session!;
    const removed: string[] = [];
    for (const name of new Set(channels)) {
      const parsed = parseChannel(name);
      if (!parsed.ok) continue;
      const sub = session.subscriptions.get(channelKey(session.orgId, parsed.channel));
      if (!sub) continue;
      this.removeSubscription(sub, 'client');
      removed.push(name);
      this.deps.hooks.emit('onUnsubscribe', { connection: conn.info(), channel: name, reason: 'client' });
    }
    this.saveSnapshot(session);
    conn.send(
      encodeControl('subscription.removed', { channels: removed }, this.deps.clock.now(), correlationId),
    );
  }

  private removeSubscription(sub: Subscription, _reason: string): void {
    const session = sub.session;
    if (session.subscriptions.get(sub.key) === sub) session.subscriptions.delete(sub.key);
    this.hub.remove(sub);
    if (sub.ack) this.retry.dropSubscription(sub);
    this.leaveRoom(sub);
  }

  // ---------------------------------------------------------------- presence (room: channels)

  /**
   * A connection subscribed to a room is a member of it: joined in the presence store (refreshed by
   * this node, so a dead node's members expire) and announced with a `presence.join` event on the room
   * channel. Returns the room's members.
   */
  private async joinRoom(conn: Connection, sub: Subscription): Promise<PresenceMember[] | undefined> {
    if (sub.presenceConnectionId === conn.id) return undefined;
    // Only for a connection still holding its session: one that left already would never leave the room.
    if (!this.holdsRoom(conn, sub, false)) return undefined;
    const member: PresenceMember = {
      connectionId: conn.id,
      clientId: sub.session.sessionId,
      userId: sub.session.userId,
      nodeId: this.deps.nodeId,
      info: { clientType: sub.session.clientType },
    };
    sub.presenceConnectionId = conn.id;
    try {
      await this.deps.presence.join(sub.key, member);
      if (!this.holdsRoom(conn, sub, true)) {
        // Left (disconnected, unsubscribed, taken over) while joining: the leave ran first, or never will,
        // so undo the join, or the member would stay in the room (refreshed by this node) forever.
        if (sub.presenceConnectionId === conn.id) sub.presenceConnectionId = undefined;
        await this.deps.presence.leave(sub.key, conn.id);
        return undefined;
      }
      this.publishPresence(sub, 'presence.join', member);
      return await this.deps.presence.list(sub.key);
    } catch (err) {
      this.deps.log.warn({ err }, 'presence join failed');
      return undefined;
    }
  }

  /** Whether `conn` is still the live connection of the subscription's session (and, `joined`, its member). */
  private holdsRoom(conn: Connection, sub: Subscription, joined: boolean): boolean {
    return (
      (!joined || sub.presenceConnectionId === conn.id) &&
      conn.phase !== Phase.CLOSED &&
      sub.session.connection === conn &&
      sub.session.subscriptions.get(sub.key) === sub &&
      this.sessions.get(sub.session.key) === sub.session
    );
  }

  private leaveRoom(sub: Subscription): void {
    const connectionId = sub.presenceConnectionId;
    if (connectionId === undefined) return;
    sub.presenceConnectionId = undefined;
    this.deps.presence.leave(sub.key, connectionId).catch(() => {});
    this.publishPresence(sub, 'presence.leave', {
      connectionId,
      clientId: sub.session.sessionId,
      userId: sub.session.userId,
      nodeId: this.deps.nodeId,
    });
  }

  private publishPresence(
    sub: Subscription,
    type: 'presence.join' | 'presence.leave',
    member: PresenceMember,
  ): void {
    const timestamp = this.deps.clock.now();
    const payload = JSON.stringify({
      userId: member.userId,
      clientId: member.clientId,
      connectionId: member.connectionId,
      ...(member.info ? { info: member.info } : {}),
    });
    // Live only: never in history (a room's churn must not push its events out), no id, no replay.
    this.deps.broker
      .publishLive({
        key: sub.key,
        type,
        timestamp,
        frame: encodePresence(type, sub.name, payload, timestamp),
      })
      .catch((err) => this.deps.log.warn({ err }, 'presence event failed'));
  }

  /** The live members of a room channel (for the HTTP API). */
  roomMembers(key: string): Promise<PresenceMember[]> {
    return this.deps.presence.list(key);
  }

  /**
   * Re-checks subscriptions against the current rules (channel settings, the session's token) and removes
   * those now denied, telling their clients with `subscription.removed` (PROTOCOL.md 4).
   */
  private revokeDenied(subs: readonly Subscription[], reason: string): void {
    const removedBySession = new Map<Session, string[]>();
    for (const sub of subs) {
      const session = sub.session;
      if (session.subscriptions.get(sub.key) !== sub) continue;
      if (this.access.decide('subscribe', session.principal, sub.channel).allowed) continue;
      this.removeSubscription(sub, reason);
      const list = removedBySession.get(session) ?? [];
      list.push(sub.name);
      removedBySession.set(session, list);
    }
    const now = this.deps.clock.now();
    for (const [session, channels] of removedBySession) {
      this.saveSnapshot(session);
      const conn = session.connection;
      if (!conn) continue;
      conn.send(encodeControl('subscription.removed', { channels, reason }, now));
      for (const channel of channels)
        this.deps.hooks.emit('onUnsubscribe', { connection: conn.info(), channel, reason });
    }
  }

  private handleAck(conn: Connection, channel: string, ids: readonly string[]): void {
    const session = conn.session!;
    const parsed = parseChannel(channel);
    if (!parsed.ok) return this.fail(conn, 'BAD_REQUEST', parsed.reason);
    this.retry.ack(session, channelKey(session.orgId, parsed.channel), ids);
  }

  // ---------------------------------------------------------------- publish

  private handlePublish(conn: Connection, frame: PublishFrame, correlationId: string | undefined): void {
    const session = conn.session!;
    const now = this.deps.clock.now();
    const bucket = conn.publishBucket!;
    if (!bucket.take(now)) {
      const retryAfterMs = bucket.retryAfterMs(now);
      if (!conn.publishLimited) {
        conn.publishLimited = true;
        this.deps.hooks.emit('onRateLimited', {
          principal: conn.principal,
          peer: conn.peer,
          scope: 'publish',
        });
      }
      conn.send(
        encodeControl(
          'message.failed',
          {
            code: 'RATE_LIMITED',
            message: `too many publishes on this connection; retry after ${retryAfterMs} ms`,
            channel: frame.channel,
            retryAfterMs,
          },
          now,
          correlationId,
        ),
      );
      this.refused(conn, 'publish');
      return;
    }
    conn.publishLimited = false;
    const order = conn.publishOrder ?? this.publishOrderOf(conn);
    const ticket = order.enter();
    this.deps.router
      .publish(
        {
          principal: session.principal,
          clientType: credentialClientType(session.principal),
          peer: conn.peer,
          connection: this.deps.hooks.has('onPublish') ? conn.info() : undefined,
          publisher: { nodeId: this.deps.nodeId, connectionId: conn.id },
          channel: frame.channel,
          type: frame.type,
          payload: frame.payload,
          metadata: frame.metadata as EnvelopeMetadata | undefined,
        },
        order,
        ticket,
      )
      .then(
        (r) => {
          order.settle(ticket);
          const reply = (queued: boolean) =>
            conn.send(
              encodeControl(
                queued ? 'message.queued' : 'message.sent',
                { id: r.id, channel: frame.channel },
                this.deps.clock.now(),
                correlationId,
              ),
            );
          if (r.channel.type !== ChannelType.PRIVATE_USER) return reply(this.isHeldForOfflineTarget(r.key));
          void this.isPrivateTargetAway(session.orgId, r.key, r.channel).then(reply);
        },
        (err) => {
          order.settle(ticket);
          const e = isApixError(err) ? err : new ApixError('INTERNAL', 'publish failed');
          if (!isApixError(err)) this.deps.log.error({ err }, 'publish failed');
          conn.send(
            encodeControl(
              'message.failed',
              {
                code: e.code,
                message: e.message,
                channel: frame.channel,
                ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
              },
              this.deps.clock.now(),
              correlationId,
            ),
          );
          if (err instanceof RateLimitedError) this.refused(conn, err.scope);
        },
      );
  }

  /**
   * The connection's publish order (ids in receive order), made at its first publish; its socket stops
   * being read while too many of its publishes are in flight.
   */
  private publishOrderOf(conn: Connection): PublishOrder {
    return (conn.publishOrder = new PublishOrder({
      maxInFlight: this.deps.config.maxPublishesInFlight,
      pause: () => {
        this.publishPauses++;
        conn.ws.pause();
      },
      resume: () => conn.ws.resume(),
    }));
  }

  /** A `user:` channel whose only subscribers here are away: the event waits in their queues. */
  private isHeldForOfflineTarget(key: string): boolean {
    const subs = this.hub.subscribers(key);
    if (!subs || subs.size === 0) return false;
    for (const sub of subs) if (sub.session.isLive) return false;
    for (const sub of subs) if (sub.queuesWhileAway) return true;
    return false;
  }

  /**
   * A `user:` channel's target may wait on another node: queued when no subscriber is live here and the
   * session store (shared by the nodes) says every session receiving the channel is away. If the store
   * does not answer, or does not know yet (a snapshot being written), what this node knows decides.
   */
  private async isPrivateTargetAway(orgId: string, key: string, channel: ParsedChannel): Promise<boolean> {
    const subs = this.hub.subscribers(key);
    if (subs) for (const sub of subs) if (sub.session.isLive) return false;
    const local = this.isHeldForOfflineTarget(key);
    if (channel.subject === undefined) return local;
    try {
      const state = await this.deps.sessionStore.privateChannelState(orgId, channel.subject);
      return state === 'away' || (state === 'none' && local);
    } catch {
      return local;
    }
  }

  // ---------------------------------------------------------------- auth refresh, expiry

  private async handleRefresh(
    conn: Connection,
    token: string,
    correlationId: string | undefined,
  ): Promise<void> {
    const session = conn.session!;
    try {
      const p = await this.deps.authenticator.authenticate(token);
      if (p.orgId !== session.orgId || p.userId !== session.userId)
        throw new ApixError('UNAUTHORIZED', 'refreshed token is for another user or organization');
      session.principal = p;
      conn.principal = p;
      conn.send(
        encodeControl(
          'auth.refreshed',
          { expiresAt: (p.expiresAt ?? 0) * 1000 },
          this.deps.clock.now(),
          correlationId,
        ),
      );
      // The new token may carry other roles: what it no longer allows is revoked.
      this.revokeDenied([...session.subscriptions.values()], 'refreshed token no longer allows it');
    } catch (err) {
      const e = isApixError(err) ? err : new ApixError('UNAUTHORIZED', 'refresh failed');
      this.deps.hooks.emit('onAuthFailure', {
        peer: conn.peer,
        code: e.code,
        reason: e.message,
        via: 'refresh',
      });
      this.fail(conn, e.code, e.message, false, correlationId);
    }
  }

  // ---------------------------------------------------------------- close, sessions

  private onClose(conn: Connection, code: number, reason: string): void {
    const wasConnected = conn.phase === Phase.CONNECTED || conn.session !== undefined;
    conn.phase = Phase.CLOSED;
    this.connections.delete(conn.id);
    this.leaveQos(conn);
    if (conn.countedAddress !== undefined) decrement(this.perAddress, conn.countedAddress);
    if (conn.countedUser !== undefined) decrement(this.perUser, conn.countedUser);
    if (conn.countedOrg !== undefined) decrement(this.perOrg, conn.countedOrg);
    conn.countedAddress = conn.countedUser = conn.countedOrg = undefined;
    this.early.delete(conn);
    const session = conn.session;
    if (session && session.connection === conn) this.detach(conn);
    if (wasConnected && conn.principal && this.deps.hooks.has('onDisconnect'))
      this.deps.hooks.emit('onDisconnect', {
        connection: conn.info(),
        code,
        reason,
        status: session?.status ?? ConnectionStatus.DISCONNECTED,
      });
  }

  /** The connection leaves its session; the session waits `sessionTtlMs` for a resume. */
  private detach(conn: Connection): void {
    const session = conn.session;
    if (!session || session.connection !== conn) return;
    session.connection = undefined;
    for (const sub of session.subscriptions.values())
      if (sub.presenceConnectionId !== undefined) this.leaveRoom(sub);
    this.retry.suspend(session);
    if (session.status === ConnectionStatus.SUSPENDED) {
      this.endSession(session, true);
      return;
    }
    session.status = ConnectionStatus.RECONNECTING;
    if (this.draining) {
      // Leaving with the node: the session lives on in a shared store for another node; in this node's
      // memory it ends here.
      if (!this.deps.sessionStore.outlivesNode) return this.endSession(session, true);
      this.saveSnapshot(session);
      this.endSession(session, false);
      return;
    }
    const ttl = this.deps.config.sessionTtlMs;
    if (ttl <= 0) return this.endSession(session, true);
    this.saveSnapshot(session);
    session.expiryTimer = this.deps.clock.setTimeout(() => {
      if (!session.isLive) this.endSession(session, true);
    }, ttl);
  }

  /** A session without a connection waits `sessionTtlMs` for a resume, then ends. */
  private awaitResume(session: Session): void {
    const ttl = this.deps.config.sessionTtlMs;
    if (ttl <= 0) return this.endSession(session, true);
    session.expiryTimer?.cancel();
    session.expiryTimer = this.deps.clock.setTimeout(() => {
      if (!session.isLive) this.endSession(session, true);
    }, ttl);
  }

  /** Forgets a session on this node; `forget` also deletes it from the shared store and its queue. */
  private endSession(session: Session, forget: boolean): void {
    session.expiryTimer?.cancel();
    session.expiryTimer = undefined;
    for (const sub of session.subscriptions.values()) this.hub.remove(sub);
    session.subscriptions.clear();
    this.retry.drop(session);
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    if (session.status !== ConnectionStatus.SUSPENDED) session.status = ConnectionStatus.DISCONNECTED;
    if (forget) {
      this.deps.hooks.emit('onSessionEnd', {
        orgId: session.orgId,
        userId: session.userId,
        sessionId: session.sessionId,
        status: session.status,
      });
      this.deps.sessionStore.delete(session.key).catch(() => {});
      this.deps.offlineQueue.clear(session.key).catch(() => {});
      // Its un-acked events are dead letters now, not silently gone.
      const owner = { sessionKey: session.key, orgId: session.orgId, sessionId: session.sessionId };
      this.pending
        .take(session.key)
        .then((t) => t.entries.length > 0 && this.deadLetterStored(owner, t.entries))
        .catch((err) => this.deps.log.warn({ err }, 'pending entries of an ended session not dead-lettered'));
    }
  }

  /**
   * Entries taken from the pending store on a resume: redelivered with the attempts they had
   * (`metadata.retryCount` continues), or dead-lettered when they have none left.
   */
  private sendPending(session: Session, entries: readonly PendingEntry[], sent: Set<string>): void {
    const exhausted: PendingEntry[] = [];
    for (const e of entries) {
      const k = `${e.key}\n${e.id}`;
      const sub = session.subscriptions.get(e.key);
      if (sent.has(k) || !sub?.ack) continue;
      sent.add(k);
      if (e.attempts >= this.deps.config.retry.maxAttempts) {
        exhausted.push(e);
        continue;
      }
      const event: BrokerEvent = {
        key: e.key,
        id: e.id,
        type: e.type,
        timestamp: e.timestamp,
        frame: e.frame,
        publisher: e.publisher,
      };
      this.retry.deliver(sub, event, undefined, e.attempts);
    }
    if (exhausted.length > 0)
      this.deadLetterStored(
        { sessionKey: session.key, orgId: session.orgId, sessionId: session.sessionId },
        exhausted,
      );
  }

  /** Dead-letters stored pending entries (their session expired, or they ran out of attempts). */
  private deadLetterStored(owner: PendingOwner, entries: readonly PendingEntry[]): void {
    const now = this.deps.clock.now();
    for (const e of entries) {
      const channel = channelNameFromKey(e.key);
      this.retry.deadLettered++;
      this.deps.deadLetters.add({
        orgId: owner.orgId,
        channel,
        eventId: e.id,
        type: e.type,
        sessionId: owner.sessionId,
        attempts: e.attempts,
        frame: e.frame,
        failedAt: now,
      });
      this.deps.hooks.emit('onDeadLetter', {
        orgId: owner.orgId,
        channel,
        eventId: e.id,
        sessionId: owner.sessionId,
        attempts: e.attempts,
      });
      const pub = e.publisher;
      if (!pub) continue;
      const message = `event ${e.id} was not acknowledged by session ${owner.sessionId} after ${e.attempts} attempts`;
      if (pub.nodeId === this.deps.nodeId)
        this.notifyFailed(pub.connectionId, e.id, channel, message, owner.orgId);
      else
        this.deps.broker
          .publishControl({
            kind: 'message.failed',
            from: this.deps.nodeId,
            connectionId: pub.connectionId,
            id: e.id,
            channel,
            message,
            orgId: owner.orgId,
          })
          .catch(() => {});
    }
  }

  private saveSnapshot(session: Session): void {
    const ttl = this.deps.config.sessionTtlMs;
    if (ttl <= 0) return;
    const saving: Promise<void> = this.deps.sessionStore
      .save({
        sessionId: session.key,
        orgId: session.orgId,
        userId: session.userId,
        clientType: session.clientType,
        subscriptions: [...session.subscriptions.values()].map((s) => ({
          channel: s.name,
          ack: s.ack,
          filters: s.filters,
          lastId: s.lastId,
        })),
        nodeId: this.deps.nodeId,
        expiresAt: this.deps.clock.now() + ttl + (session.isLive ? 86_400_000 : 0),
        suspended: session.status === ConnectionStatus.SUSPENDED,
        live: session.isLive,
      })
      .catch((err) => this.deps.log.warn({ err }, 'session snapshot failed'))
      .finally(() => this.snapshotsInFlight.delete(saving));
    this.snapshotsInFlight.add(saving);
  }

  private queueAway(sub: Subscription, event: BrokerEvent, attempts: number): void {
    this.deps.offlineQueue
      .push(sub.session.key, {
        key: event.key,
        id: event.id,
        type: event.type,
        timestamp: event.timestamp,
        attempts,
        frame: event.frame,
        ack: sub.ack,
        // Encrypted at rest: the queue stores the event's sealed text (no second encryption).
        sealed: event.sealed,
      })
      .catch((err) => this.deps.log.warn({ err }, 'offline queue push failed'));
  }

  private onDeadLettered(sub: Subscription, event: BrokerEvent, attempts: number): void {
    const channel = sub.name;
    this.deps.hooks.emit('onDeadLetter', {
      orgId: sub.session.orgId,
      channel,
      eventId: event.id,
      sessionId: sub.session.sessionId,
      attempts,
    });
    const pub = event.publisher;
    if (!pub) return;
    const message = `event ${event.id} was not acknowledged by session ${sub.session.sessionId} after ${attempts} attempts`;
    const orgId = sub.session.orgId;
    if (pub.nodeId === this.deps.nodeId)
      this.notifyFailed(pub.connectionId, event.id, channel, message, orgId);
    else
      this.deps.broker
        .publishControl({
          kind: 'message.failed',
          from: this.deps.nodeId,
          connectionId: pub.connectionId,
          id: event.id,
          channel,
          message,
          orgId,
        })
        .catch(() => {});
  }

  /**
   * Tells a publisher its event was dead-lettered by a session of `subscriberOrgId`: only a publisher of
   * that organization (on a shared channel, another organization's publisher hears nothing of it).
   */
  private notifyFailed(
    connectionId: string,
    id: string,
    channel: string,
    message: string,
    subscriberOrgId: string,
  ): void {
    const conn = this.connections.get(connectionId);
    if (conn?.phase === Phase.CONNECTED && mayNotifyPublisher(conn.principal!.orgId, subscriberOrgId))
      conn.send(
        encodeControl('message.failed', { code: 'UNAVAILABLE', message, id, channel }, this.deps.clock.now()),
      );
  }

  private onControl(msg: ControlMessage): void {
    if (msg.from === this.deps.nodeId) return;
    switch (msg.kind) {
      case 'session.taken': {
        const session = this.sessions.get(String(msg.key));
        if (!session) return;
        const conn = session.connection;
        if (conn) {
          this.detach(conn);
          this.disconnect(
            conn,
            'CONFLICT',
            'session taken over by a newer connection',
            CloseCode.SESSION_TAKEN_OVER,
            false,
          );
        }
        this.endSession(session, false);
        return;
      }
      case 'message.failed':
        this.notifyFailed(
          String(msg.connectionId),
          String(msg.id),
          String(msg.channel),
          String(msg.message),
          String(msg.orgId),
        );
        return;
      default: {
        const revoked = parseRevocationControl(msg);
        if (revoked) this.applyRevocation(revoked.revocation, revoked.reason);
        const suspension = parseSuspensionControl(msg);
        if (suspension) this.applySuspension(suspension.suspension, suspension.suspended);
      }
    }
  }

  /**
   * Cuts, on every node, the live connections authenticated with revoked credentials (store them first:
   * the store refuses them at the next connect). Answers how many were cut on this node.
   */
  async revokeCredentials(revocation: Revocation, reason: string): Promise<number> {
    const cut = this.applyRevocation(revocation, reason);
    await this.deps.broker.publishControl(revocationControlMessage(revocation, this.deps.nodeId, reason));
    return cut;
  }

  /** `connection.disconnected` UNAUTHORIZED and close 4001 for every connection the revocation covers. */
  private applyRevocation(revocation: Revocation, reason: string): number {
    this.deps.authenticator.noteRevocation(revocation);
    let cut = 0;
    for (const conn of this.connections.values()) {
      if (conn.phase === Phase.CLOSING || conn.phase === Phase.CLOSED) continue;
      if (conn.principal === undefined || !revokes(revocation, conn.principal)) continue;
      this.deps.hooks.emit('onAuthFailure', { peer: conn.peer, code: 'UNAUTHORIZED', reason, via: 'ws' });
      this.disconnect(conn, 'UNAUTHORIZED', reason, CloseCode.UNAUTHORIZED, false);
      cut++;
    }
    return cut;
  }

  /**
   * Suspends (or lifts the suspension of) a session, or of every session of a user or an API key
   * (`sessionId` absent), on every node: stored (every node refuses it at connect) and broadcast (every
   * node cuts the connections it covers, 4011). Answers how many were cut on this node.
   */
  async suspend(
    target: SuspensionTarget,
    suspended: boolean,
    reason: string,
    ttlMs: number = this.deps.config.suspensionTtlMs,
  ): Promise<number> {
    const expiresAt = this.deps.clock.now() + ttlMs;
    const s: Suspension = { ...target, reason, expiresAt };
    // Here first (cut, and remembered: a reconnect here is refused even if the store fails), then stored
    // (nodes that did not hear of it read it at connect), then told to the other nodes, even if storing failed.
    const cut = this.applySuspension(s, suspended);
    try {
      await this.suspensions.record(s, suspended);
    } finally {
      await this.deps.broker.publishControl(
        suspensionControlMessage(this.deps.nodeId, target, suspended, reason, expiresAt),
      );
    }
    return cut;
  }

  /** Remembers (or forgets) a suspension and cuts what it covers on this node; answers how many were cut. */
  private applySuspension(s: Suspension, suspended: boolean): number {
    this.suspensions.heardOf(s, suspended);
    if (!suspended) return 0;
    const hit: Session[] = [];
    if (s.sessionId !== undefined) {
      const session = this.sessions.get(sessionKey(s.orgId, s.userId, s.sessionId));
      if (session) hit.push(session);
    } else
      for (const session of this.sessions.values())
        if (session.orgId === s.orgId && session.userId === s.userId) hit.push(session);
    let cut = 0;
    for (const session of hit) {
      session.status = ConnectionStatus.SUSPENDED;
      const conn = session.connection;
      if (conn) {
        this.disconnect(conn, 'FORBIDDEN', s.reason, CloseCode.SUSPENDED, false);
        cut++;
      } else this.endSession(session, true);
    }
    // A user's connections still in `connect` (their session not made yet) go too.
    if (s.sessionId === undefined)
      for (const conn of this.connections.values()) {
        const p = conn.principal;
        if (conn.phase !== Phase.CONNECTING || p?.orgId !== s.orgId || p.userId !== s.userId) continue;
        this.disconnect(conn, 'FORBIDDEN', s.reason, CloseCode.SUSPENDED, false);
        cut++;
      }
    return cut;
  }

  // ---------------------------------------------------------------- rate-limit abuse

  /**
   * Counts a refusal of a rate limit against the connection. `APIX_RATE_ABUSE_REFUSALS` of them within
   * `APIX_RATE_ABUSE_WINDOW_MS` are abuse: the connection is closed with 4008, or, with
   * `APIX_SUSPEND_ON_ABUSE`, its session is suspended on every node (4011). True when it was closed.
   */
  private refused(conn: Connection, scope: RateLimitScope): boolean {
    if (conn.phase === Phase.CLOSING || conn.phase === Phase.CLOSED) return true;
    const { refusals, windowMs, suspend } = this.deps.config.rateLimits.abuse;
    const now = this.deps.clock.now();
    if (conn.refusals === 0 || now - conn.refusalsSince > windowMs) {
      conn.refusalsSince = now;
      conn.refusals = 0;
    }
    if (++conn.refusals < refusals) return false;
    const reason = `rate limit (${scope}) exceeded repeatedly: ${conn.refusals} refusals in ${windowMs} ms`;
    const session = conn.session;
    if (suspend && session && session.connection === conn) {
      this.deps.log.warn({ sessionKey: session.key, scope }, 'session suspended for rate-limit abuse');
      this.deps.hooks.emit('onSuspend', {
        orgId: session.orgId,
        userId: session.userId,
        sessionId: session.sessionId,
        by: 'rate-limit',
        reason,
        suspended: true,
      });
      const target = { orgId: session.orgId, userId: session.userId, sessionId: session.sessionId };
      this.suspend(target, true, `suspended for abuse: ${reason}`).catch((err) =>
        this.deps.log.warn({ err }, 'suspension not sent to the other nodes'),
      );
      return true;
    }
    this.disconnect(conn, 'RATE_LIMITED', reason, CloseCode.POLICY_VIOLATION, false);
    return true;
  }

  // ---------------------------------------------------------------- errors and closing

  /** Answers a bad frame: `connection.error`; fatal ones (before connect) close with the code's close code. */
  private fail(
    conn: Connection,
    code: ErrorCode,
    message: string,
    fatal = false,
    correlationId?: string,
  ): void {
    const isFatal = fatal || conn.phase === Phase.AWAITING_CONNECT || conn.phase === Phase.CONNECTING;
    const now = this.deps.clock.now();
    conn.send(encodeError(code, message, isFatal, now, correlationId));
    if (isFatal) {
      const closeCode = code === 'INTERNAL' ? CloseCode.INTERNAL_ERROR : ERRORS[code].closeCode;
      conn.close(closeCode, message, now);
    }
  }

  /** A server-initiated close: `connection.disconnected` first, then the close code. */
  private disconnect(
    conn: Connection,
    code: ErrorCode | string,
    reason: string,
    closeCode: number,
    reconnect: boolean,
    correlationId?: string,
  ): void {
    const now = this.deps.clock.now();
    conn.send(encodeControl('connection.disconnected', { code, reason, reconnect }, now, correlationId));
    conn.close(closeCode, reason, now);
  }

  private internalError(conn: Connection, err: unknown, fatal: boolean): void {
    if (isApixError(err)) return this.fail(conn, err.code, err.message, fatal);
    this.deps.log.error({ err, connectionId: conn.id }, 'unexpected error handling a frame');
    this.fail(conn, 'INTERNAL', 'internal error', fatal);
  }

  /** A connected client whose token expired: `connection.disconnected` TOKEN_EXPIRED, close 4002. */
  private expireToken(conn: Connection, now: number): boolean {
    const exp = conn.principal?.expiresAt;
    if (exp === undefined || exp * 1000 > now) return false;
    this.deps.hooks.emit('onAuthFailure', {
      peer: conn.peer,
      code: 'TOKEN_EXPIRED',
      reason: 'token expired in session',
      via: 'ws',
    });
    this.disconnect(
      conn,
      'TOKEN_EXPIRED',
      'token expired; refresh it and reconnect',
      CloseCode.TOKEN_EXPIRED,
      true,
    );
    return true;
  }

  private slowConsumer(conn: Connection): void {
    if (conn.phase === Phase.CLOSING || conn.phase === Phase.CLOSED) return;
    this.leaveQos(conn);
    this.slowConsumers++;
    if (this.deps.hooks.has('onSlowConsumer'))
      this.deps.hooks.emit('onSlowConsumer', { connection: conn.info(), bufferedBytes: conn.bufferedBytes });
    this.deps.log.warn(
      { connectionId: conn.id, bufferedBytes: conn.bufferedBytes },
      'slow consumer disconnected',
    );
    // Its buffer is full: a close frame would wait behind megabytes. Cut it; it resumes on reconnect.
    const session = conn.session;
    if (session && session.connection === conn) this.detach(conn);
    conn.phase = Phase.CLOSING;
    conn.closingSince = this.deps.clock.now();
    conn.ws.close(CloseCode.SLOW_CONSUMER, 'slow consumer: send buffer over the limit');
    conn.socket.destroySoon?.();
    setImmediate(() => conn.ws.terminate());
  }

  // ---------------------------------------------------------------- sweeper

  /** One pass over all connections: connect timeouts, token expiry, stuck closes. */
  sweep(): void {
    const now = this.deps.clock.now();
    const { connectTimeoutMs } = this.deps.config;
    for (const conn of this.degraded) this.checkQos(conn);
    for (const conn of this.connections.values()) {
      switch (conn.phase) {
        case Phase.AWAITING_CONNECT:
        case Phase.CONNECTING:
          if (now - conn.openedAt >= connectTimeoutMs) {
            this.deps.hooks.emit('onConnectRefused', {
              peer: conn.peer,
              code: 'BAD_REQUEST',
              reason: 'no connect in time',
            });
            conn.send(encodeError('BAD_REQUEST', 'no connect frame in time', true, now));
            conn.close(CloseCode.CONNECT_TIMEOUT, 'no connect in time', now);
          }
          continue;
        case Phase.CLOSING:
          if (now - conn.closingSince > 5000) conn.ws.terminate();
          continue;
        case Phase.CONNECTED:
          this.expireToken(conn, now);
      }
    }
  }

  /**
   * The heartbeat round, spread over the interval: every tick pings the next slice of the connections, so
   * that each one is pinged once per interval and no tick writes more than a few dozen sockets. (Pinging
   * them all at once stalled every delivery for the length of 20,000 socket writes: hundreds of
   * milliseconds at 10,000 connections, every interval.)
   */
  heartbeatTick(): void {
    const now = this.deps.clock.now();
    const interval = this.deps.config.heartbeatIntervalMs;
    this.heartbeatRound ??= { rest: this.connections.values(), done: false, startedAt: now };
    const round = this.heartbeatRound;
    if (round.done) {
      // This round's connections are all pinged: the next round starts one interval after this one did.
      if (now - round.startedAt >= interval) this.heartbeatRound = undefined;
      return;
    }
    // The slice follows the number of connections now: connections that arrive during a round join its
    // end (the iterator is live), and a round begun with few must not crawl through a storm's thousands.
    const slices = Math.max(1, Math.floor(interval / heartbeatTickMs(interval)));
    const perTick = Math.max(1, Math.ceil(this.connections.size / slices));
    let frames: EventFrames | undefined;
    for (let n = 0; n < perTick; n++) {
      const next = round.rest.next();
      if (next.done) {
        round.done = true;
        break;
      }
      const conn = next.value;
      // (Expired tokens are cut by the sweep, which runs at least every second.)
      if (conn.phase !== Phase.CONNECTED) continue;
      // Two silent rounds in a row: a client busy for one interval (GC, a loaded machine) survives, a
      // dead one is cut within two to three intervals.
      if (conn.missedHeartbeats >= MISSED_HEARTBEATS_TO_CUT) {
        this.deps.log.debug({ connectionId: conn.id }, 'heartbeats missed: terminating');
        conn.ws.terminate();
        continue;
      }
      frames ??= new EventFrames(encodeControl('heartbeat.ping', { ts: now }, now), Infinity);
      conn.missedHeartbeats++;
      conn.pingSentAt = now;
      conn.releaseInflate();
      // Both pings in one write.
      conn.socket.cork();
      conn.sendEvent(frames);
      try {
        conn.ws.ping();
      } catch {
        // socket already closing
      }
      conn.socket.uncork();
    }
  }

  // ---------------------------------------------------------------- shutdown

  /** Resolves once every connection has closed, or after `ms`. */
  private async connectionsGone(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  }

  /**
   * Graceful shutdown: refuse new connections, tell every client to go elsewhere
   * (`connection.disconnected`, close 1001), wait for them to leave up to the drain timeout, then cut.
   */
  async drain(): Promise<void> {
    this.draining = true;
    const now = this.deps.clock.now();
    for (const conn of this.connections.values()) {
      if (conn.phase === Phase.CONNECTED)
        this.disconnect(conn, 'UNAVAILABLE', 'server shutting down; reconnect', CloseCode.GOING_AWAY, true);
      else conn.close(CloseCode.GOING_AWAY, 'server shutting down', now);
    }
    await this.connectionsGone(this.deps.config.drainTimeoutMs);
    for (const conn of this.connections.values()) conn.ws.terminate();
    // A terminated socket's close (and so its session's snapshot) comes a moment later: wait for it, so
    // that every session is saved before the node closes its store (they were lost with the Redis client).
    await this.connectionsGone(2_000);
    await Promise.all([...this.snapshotsInFlight]);
    this.sweepTimer?.cancel();
    this.heartbeatTimer?.cancel();
    // The detached sessions' in-flight entries are written before the sessions are let go.
    await this.pending.flush();
    // Sessions waiting for a resume live on in a shared store (another node resumes them); in this node's
    // memory they end here, and their records say so.
    const outlive = this.deps.sessionStore.outlivesNode;
    for (const session of [...this.sessions.values()]) this.endSession(session, !outlive);
    await this.pending.close();
    this.wss.close();
  }

  // ---------------------------------------------------------------- quality of service (qos.ts)

  /** The hub saw a connection's send buffer over the QoS threshold (or the ceiling). */
  private pressure(conn: Connection): void {
    if (conn.bufferedBytes > this.deps.config.maxBufferedBytes) this.slowConsumer(conn);
    else if (conn.qos === undefined) this.checkQos(conn);
  }

  /**
   * Re-evaluates a connection's QoS (after a heartbeat round trip, on its socket's drain, at each sweep
   * while degraded, and on buffer pressure): degrades a healthy one that crossed a threshold; writes a
   * degraded one's held events once its buffer is under the low-water mark, and returns it to normal when
   * it recovered.
   */
  private checkQos(conn: Connection): void {
    if (conn.phase !== Phase.CONNECTED) return this.leaveQos(conn);
    const options = this.deps.config.qos;
    const now = this.deps.clock.now();
    const state = conn.qos;
    if (state === undefined) {
      const reason = degradeReason({ bufferedBytes: conn.bufferedBytes, rttMs: conn.rttMs }, options);
      if (reason !== undefined) this.enterQos(conn, reason, now);
      return;
    }
    if (conn.bufferedBytes > options.lowWaterBytes) return;
    // Drained: write the held events (in id order per channel), then see whether it recovered.
    for (const { sub, event, frames } of state.take()) {
      if (sub.session.connection !== conn || sub.session.subscriptions.get(sub.key) !== sub) continue;
      sub.lastId = event.id;
      conn.sendEvent(frames);
    }
    if (conn.bufferedBytes > this.deps.config.maxBufferedBytes) return this.slowConsumer(conn);
    if (!canRecover({ bufferedBytes: conn.bufferedBytes, rttMs: conn.rttMs }, state.since, now, options))
      return;
    this.leaveQos(conn);
    conn.send(
      encodeControl(
        'qos',
        { state: 'normal', reason: 'the client keeps up again', coalesced: state.coalesced },
        now,
      ),
    );
    this.emitQos(conn, 'normal', 'recovered');
  }

  private enterQos(conn: Connection, reason: string, now: number): void {
    const state = new DegradedState<Subscription>(now, reason, this.deps.config.qos.maxCoalescedKeys);
    conn.qos = state;
    this.degraded.add(conn);
    state.onDrain = () => this.checkQos(conn);
    conn.socket.on('drain', state.onDrain);
    conn.send(encodeControl('qos', { state: 'degraded', reason }, now));
    this.deps.log.info({ connectionId: conn.id, reason }, 'connection degraded');
    this.emitQos(conn, 'degraded', reason);
  }

  /** Leaves degraded mode without writing what is held (a resume replays it from history). */
  private leaveQos(conn: Connection): void {
    const state = conn.qos;
    if (state === undefined) return;
    conn.qos = undefined;
    this.degraded.delete(conn);
    if (state.onDrain) conn.socket.off('drain', state.onDrain);
  }

  private emitQos(conn: Connection, state: 'degraded' | 'normal', reason: string): void {
    if (this.deps.hooks.has('onQos'))
      this.deps.hooks.emit('onQos', { connection: conn.info(), state, reason });
  }

  /** An event for a degraded connection on a coalescible channel: held, the latest per key. */
  private hold(
    conn: Connection,
    sub: Subscription,
    event: BrokerEvent,
    frames: EventFrames,
    key: string,
  ): void {
    const result = conn.qos!.hold(sub, key, event, frames);
    if (result === 'superseded') {
      if (this.deps.hooks.has('onCoalesced')) this.deps.hooks.emit('onCoalesced', { channelType: sub.type });
    } else if (result === 'overflow') {
      this.deps.log.warn({ connectionId: conn.id }, 'degraded connection holds too many keys');
      this.slowConsumer(conn);
    }
  }

  stats() {
    return {
      connections: this.connections.size,
      sessions: this.sessions.size,
      subscriptions: this.hub.subscriptionCount,
      channels: this.hub.channelCount,
      inflight: this.retry.inflightCount,
      offlineQueued: this.deps.offlineQueue.totalSize(),
      slowConsumers: this.slowConsumers,
      degradedConnections: this.degraded.size,
    };
  }
}

const kConnection = Symbol('apix.connection');
type TaggedSocket = WebSocket & { [kConnection]: Connection };

function onSocketPong(this: WebSocket): void {
  (this as TaggedSocket)[kConnection].missedHeartbeats = 0;
}

function onSocketError(): void {
  // ws reports protocol errors (bad frames, invalid UTF-8, oversize) here and closes the socket itself.
}

function peerOf(req: IncomingMessage): Peer {
  const ua = req.headers['user-agent'];
  const origin = req.headers.origin;
  return {
    remoteAddress: req.socket.remoteAddress,
    userAgent: typeof ua === 'string' ? ua.slice(0, 256) : undefined,
    origin: typeof origin === 'string' ? origin : undefined,
  };
}

function increment(counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

function decrement(counts: Map<string, number>, key: string): void {
  const n = (counts.get(key) ?? 0) - 1;
  if (n > 0) counts.set(key, n);
  else counts.delete(key);
}

function rateLimitedDenial(channel: string, err: RateLimitedError): Denial {
  return { channel, code: 'RATE_LIMITED', message: err.message, retryAfterMs: err.retryAfterMs ?? 0 };
}

function correlationOf(frame: object): string | undefined {
  const meta = (frame as { metadata?: unknown }).metadata;
  if (meta === null || typeof meta !== 'object') return undefined;
  const c = (meta as { correlation_id?: unknown }).correlation_id;
  return typeof c === 'string' && c.length <= 200 ? c : undefined;
}

function parsePayload(frame: string): unknown {
  try {
    return (JSON.parse(frame) as { payload?: unknown }).payload;
  } catch {
    return undefined;
  }
}

export { sessionKey };
