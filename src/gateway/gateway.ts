/**
 * ApiXGateway: the WebSocket front of a node (docs/protocol.md §1-8): the upgrade, frame dispatch and close.
 * The work is done by the components it wires: ConnectionManager (connections, sessions, caps, drain),
 * the Handshake (`connect`), SubscriptionManager (subscribe, replay, rooms), MessageQueueManager (offline
 * queue), PublishHandler, QosController, Heartbeat, Sanctions. They speak to clients through the
 * transport seam (src/transport/transport.ts); the WebSocket transport is src/transport/websocket/.
 * Cross-cutting concerns (audit, latency, records) attach through the HookBus.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { WebSocketServer } from 'ws';
import {
  CLIENT_CONTROL_SCHEMAS,
  formatIssues,
  isControlType,
  isStreamType,
  metadataError,
  PublishFrameSchema,
} from '@apix/protocol';
import type { ClientControlFrame } from '@apix/protocol';
import type { ControlMessage } from '../broker/broker.ts';
import type { PresenceMember } from '../presence/presence.ts';
import type { SuspensionTarget } from '../suspension/suspension-store.ts';
import { parseSuspensionControl } from '../suspension/suspension-store.ts';
import { SuspensionGuard } from '../suspension/suspension-guard.ts';
import type { Revocation } from '../auth/revocation-store.ts';
import { parseRevocationControl } from '../auth/revocation-store.ts';
import { ChannelAccess } from '../subscriptions/access.ts';
import { SubscriptionManager } from '../subscriptions/subscription-manager.ts';
import { Rooms } from '../subscriptions/rooms.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { RetryManager } from '../retry/retry-manager.ts';
import type { PendingJournal } from '../retry/pending-journal.ts';
import type { PendingEntry, PendingOwner } from '../pending/pending-store.ts';
import { MessageQueueManager } from '../queue/message-queue-manager.ts';
import { Phase } from '../connections/session.ts';
import type { Connection } from '../connections/session.ts';
import type { Session } from '../connections/session.ts';
import { ConnectionManager } from '../connections/connection-manager.ts';
import { Handshake } from '../connections/handshake.ts';
import { Heartbeat } from '../connections/heartbeat.ts';
import { QosController } from '../connections/qos-controller.ts';
import { Sanctions } from '../connections/sanctions.ts';
import { Replies } from '../connections/replies.ts';
import { DeliveryFailures } from '../connections/delivery-failures.ts';
import type { ClientTransport, IncomingFrame, TransportHost } from '../transport/transport.ts';
import { WsSockets } from '../transport/websocket/ws-transport.ts';
import { parseIncoming } from '../transport/encoding.ts';
import { UpgradeGuard } from '../transport/websocket/upgrade.ts';
import type { Peer } from '../auth/principal.ts';
import { encodeControl, encodeError } from './frames.ts';
import { PublishHandler } from './publish-handler.ts';
import type { GatewayDeps } from './gateway-deps.ts';

export type { GatewayDeps };

/** Frames buffered while `connect` is being authenticated (clients may pipeline). */
const MAX_EARLY_FRAMES = 64;

export class ApiXGateway implements TransportHost<Connection> {
  // The registries first: the internals walk (GET /v1/admin/internals) names them `gateway.<field>`.
  /** Every open connection, by id. */
  readonly connections: Map<string, Connection>;
  /** Sessions held by this node (live or waiting for their client), by session key. */
  readonly sessions: Map<string, Session>;
  /** Connection caps: open connections per address, connections past `connect` per user and per org. */
  readonly perAddress: Map<string, number>;
  readonly perUser: Map<string, number>;
  readonly perOrg: Map<string, number>;
  /** Connections in degraded mode (QoS). */
  readonly degraded: Set<Connection>;
  readonly hub: LocalHub;
  readonly retry: RetryManager;
  /** Writes the retry manager's in-flight state to the pending store, in batches; sweeps expired sessions. */
  readonly pending: PendingJournal;
  readonly connectionManager: ConnectionManager;
  readonly subscriptions: SubscriptionManager;
  readonly messageQueue: MessageQueueManager;
  readonly qos: QosController;
  readonly heartbeat: Heartbeat;
  readonly sanctions: Sanctions;
  private readonly rooms: Rooms;
  private readonly handshake: Handshake;
  private readonly publisher: PublishHandler;
  private readonly failures: DeliveryFailures;
  private readonly replies: Replies;
  private readonly upgrades: UpgradeGuard<Connection>;
  private readonly early = new WeakMap<Connection, Array<[IncomingFrame, boolean]>>();
  framesIn = 0;

  constructor(private readonly deps: GatewayDeps) {
    const { config, clock, log, hooks } = deps;
    const replies = (this.replies = new Replies(clock, log));
    const access = new ChannelAccess(deps.channels, hooks);
    const suspensions = new SuspensionGuard(deps.suspensions, () => clock.now(), log);
    this.retry = deps.delivery.retry;
    this.pending = deps.delivery.pending;
    this.hub = deps.delivery.hub;
    deps.delivery.callbacks.bind({
      queueAway: (sub, event, attempts) => this.messageQueue.queueAway(sub, event, attempts),
      deadLettered: (sub, event, attempts) => this.failures.deadLettered(sub, event, attempts),
      deadLetterStored: (owner, entries) => this.failures.deadLetterStored(owner, entries),
      pressure: (conn) => this.qos.pressure(conn),
      hold: (conn, sub, event, frames, key) => this.qos.hold(conn, sub, event, frames, key),
    });
    const deadLetterStored = (owner: PendingOwner, entries: readonly PendingEntry[]) =>
      this.failures.deadLetterStored(owner, entries);
    const compressThreshold = config.compression.thresholdBytes;
    const { retry, hub, pending } = this;
    const queue = (this.messageQueue = new MessageQueueManager({
      ...{ log, retry, compressThreshold, deadLetterStored },
      ...{ offlineQueue: deps.offlineQueue, maxAttempts: config.retry.maxAttempts },
    }));
    const connections = (this.connectionManager = new ConnectionManager({
      ...deps,
      ...{ hub, retry, pending, queue, replies, deadLetterStored, rooms: () => this.rooms },
    }));
    this.connections = connections.connections;
    this.sessions = connections.sessions;
    this.perAddress = connections.perAddress;
    this.perUser = connections.perUser;
    this.perOrg = connections.perOrg;
    this.failures = new DeliveryFailures({
      ...deps,
      connections: this.connections,
      countDeadLetter: () => void this.retry.deadLettered++,
    });
    const rooms = (this.rooms = new Rooms({ ...deps, sessions: this.sessions }));
    this.qos = new QosController({ ...deps, detach: (conn) => connections.detach(conn) });
    this.degraded = this.qos.degraded;
    const sanctions = (this.sanctions = new Sanctions({ ...deps, suspensions, connections, replies }));
    const refused = sanctions.refused.bind(sanctions);
    const slowConsumer = (conn: Connection) => this.qos.slowConsumer(conn);
    const subscriptions = (this.subscriptions = new SubscriptionManager({
      ...deps,
      ...{ hub, retry, access, rooms, connections, replies, compressThreshold, refused, slowConsumer },
    }));
    this.publisher = new PublishHandler({ ...deps, hub, refused });
    this.handshake = new Handshake({
      ...deps,
      ...{ suspensions, pending, connections, subscriptions, queue, rooms, replies, refused },
      replayEarly: (conn) => this.replayEarly(conn),
    });
    this.heartbeat = new Heartbeat({
      ...deps,
      connections: this.connections,
      checkDegraded: () => this.qos.checkDegraded(),
      expireToken: (conn, now) => connections.expireToken(conn, now),
    });
    this.upgrades = new UpgradeGuard(
      { ...deps, load: this.load() },
      new WsSockets<Connection>(this, deps.writes),
    );
    deps.broker.onControl((msg) => this.onControl(msg));
    deps.channels.onChange?.((key) => {
      const subs = this.hub.subscribers(key);
      if (subs) subscriptions.revokeDenied([...subs], 'channel permissions changed');
    });
  }

  /** What the upgrade's caps look at. */
  private load() {
    const connections = this.connectionManager;
    return {
      get draining() {
        return connections.draining;
      },
      get connectionCount() {
        return connections.connections.size;
      },
      connectionsFrom: (address: string) => connections.perAddress.get(address) ?? 0,
    };
  }

  get wss(): WebSocketServer {
    return this.upgrades.wss;
  }

  get slowConsumers(): number {
    return this.qos.slowConsumers;
  }

  /** Times a connection's socket stopped being read: too many of its publishes in flight (since start). */
  get publishPauses(): number {
    return this.publisher.publishPauses;
  }

  start(): void {
    this.heartbeat.start();
    this.pending.start();
    this.deps.streams?.start();
  }

  /**
   * Handles an HTTP upgrade on the gateway's path: the per-address rate limit before any other work
   * (429 with Retry-After), then origin, subprotocol and capacity checks.
   */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.upgrades.handleUpgrade(req, socket, head);
  }

  // ---------------------------------------------------------------- the transport's events

  onOpen(transport: ClientTransport, peer: Peer): Connection {
    return this.connectionManager.open(transport, peer);
  }

  onPong(conn: Connection): void {
    conn.heard();
  }

  onClose(conn: Connection, code: number, reason: string): void {
    this.qos.leave(conn);
    this.early.delete(conn);
    this.deps.streams?.connectionClosed(conn);
    this.connectionManager.closed(conn, code, reason);
  }

  onFrame(conn: Connection, data: IncomingFrame, isBinary: boolean): void {
    conn.heard();
    this.framesIn++;
    if (!this.admit(conn, data, isBinary)) return;
    const parsed = parseIncoming(data, isBinary, conn.transport.encoding ?? 'json');
    if ('error' in parsed) return this.replies.fail(conn, 'BAD_REQUEST', parsed.error);
    const frame = parsed.frame;
    const type = (frame as { type?: unknown }).type;
    const correlationId = correlationOf(frame);
    if (typeof type !== 'string')
      return this.replies.fail(conn, 'BAD_REQUEST', 'frame.type must be a string', false, correlationId);
    if (conn.phase === Phase.AWAITING_CONNECT) return this.onConnectFrame(conn, frame, type, correlationId);
    if (type === 'connect')
      return this.replies.fail(conn, 'BAD_REQUEST', 'already connected', false, correlationId);
    if (isStreamType(type) && this.deps.streams)
      return this.deps.streams.onFrame(conn, type, frame, correlationId);
    const schema = Object.prototype.hasOwnProperty.call(CLIENT_CONTROL_SCHEMAS, type)
      ? CLIENT_CONTROL_SCHEMAS[type as keyof typeof CLIENT_CONTROL_SCHEMAS]
      : undefined;
    if (schema) {
      const r = schema.safeParse(frame);
      if (!r.success)
        return this.replies.fail(conn, 'BAD_REQUEST', formatIssues(r.error), false, correlationId);
      this.dispatch(conn, r.data as ClientControlFrame, correlationId);
      return;
    }
    this.onPublishFrame(conn, frame, type, correlationId);
  }

  /**
   * Whether a frame is read now: buffered while `connect` runs, dropped in the wrong phase, refused by the
   * connection's inbound rate, or refused because the token expired (even before the sweeper's next pass).
   */
  private admit(conn: Connection, data: IncomingFrame, isBinary: boolean): boolean {
    if (conn.phase === Phase.CONNECTING) {
      const early = this.early.get(conn) ?? [];
      if (early.length >= MAX_EARLY_FRAMES) {
        this.replies.fail(conn, 'RATE_LIMITED', 'too many frames before connect completed', true);
        return false;
      }
      early.push([data, isBinary]);
      this.early.set(conn, early);
      return false;
    }
    if (conn.phase !== Phase.AWAITING_CONNECT && conn.phase !== Phase.CONNECTED) return false;
    const now = this.deps.clock.now();
    if (!conn.inbound.take(now)) {
      const violations = conn.inboundRefused();
      // One hook call per burst (its first refusal), not per refused frame: a flood must not flood the audit.
      if (violations === 1)
        this.deps.hooks.emit('onRateLimited', {
          principal: conn.principal,
          peer: conn.peer,
          scope: 'connection',
        });
      if (this.sanctions.refused(conn, 'connection')) return false;
      if (violations === 1 || violations % 10 === 0)
        conn.send(
          encodeError('RATE_LIMITED', 'too many frames', false, now, undefined, {
            retryAfterMs: conn.inbound.retryAfterMs(now),
          }),
        );
      return false;
    }
    conn.inboundAdmitted();
    return !(conn.phase === Phase.CONNECTED && this.connectionManager.expireToken(conn, now));
  }

  private onConnectFrame(
    conn: Connection,
    frame: object,
    type: string,
    correlationId: string | undefined,
  ): void {
    if (type !== 'connect')
      return this.replies.fail(conn, 'BAD_REQUEST', 'the first frame must be "connect"', true, correlationId);
    const r = CLIENT_CONTROL_SCHEMAS.connect.safeParse(frame);
    if (!r.success) return this.replies.fail(conn, 'BAD_REQUEST', formatIssues(r.error), true, correlationId);
    const b = this.deps.config.jsonBounds;
    const tooLarge = metadataError(r.data.payload.metadata, {
      maxBytes: b.metadataMaxBytes,
      maxDepth: b.metadataMaxDepth,
      maxKeys: b.metadataMaxKeys,
    });
    if (tooLarge !== undefined)
      return this.replies.fail(conn, 'PAYLOAD_TOO_LARGE', tooLarge, true, correlationId);
    conn.connecting();
    this.handshake
      .connect(conn, r.data.payload, correlationId)
      .catch((err) => this.replies.internalError(conn, err, true));
  }

  /** The frames that came while `connect` ran, handled in order once it is established. */
  private replayEarly(conn: Connection): void {
    const early = this.early.get(conn);
    if (!early) return;
    this.early.delete(conn);
    for (const [data, isBinary] of early) this.onFrame(conn, data, isBinary);
  }

  /** A frame that is not a control frame is a publish attempt: its errors answer `message.failed`. */
  private onPublishFrame(
    conn: Connection,
    frame: object,
    type: string,
    correlationId: string | undefined,
  ): void {
    const channel = (frame as { channel?: unknown }).channel;
    if (typeof channel !== 'string')
      return this.replies.fail(
        conn,
        'BAD_REQUEST',
        `unknown frame type "${type.slice(0, 64)}" (a publish needs a channel)`,
        false,
        correlationId,
      );
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
    this.publisher.handle(conn, r.data, correlationId);
  }

  private dispatch(conn: Connection, frame: ClientControlFrame, correlationId: string | undefined): void {
    const subscriptions = this.subscriptions;
    switch (frame.type) {
      case 'subscribe': {
        const payload = frame.payload;
        subscriptions.inOrder(conn, () => subscriptions.subscribe(conn, payload, correlationId));
        return;
      }
      case 'unsubscribe': {
        const channels = frame.payload.channels;
        // Behind a subscribe still in progress (it awaits limits, history, presence), an unsubscribe
        // waits for it: otherwise it would find nothing to remove, and the subscribe would win.
        if (conn.subscribing)
          subscriptions.inOrder(conn, () => subscriptions.unsubscribe(conn, channels, correlationId));
        else subscriptions.unsubscribe(conn, channels, correlationId);
        return;
      }
      case 'ack':
        subscriptions.ack(conn, frame.payload.channel, frame.payload.ids);
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
      case 'heartbeat.pong':
        return this.onHeartbeatPong(conn, frame.payload.ts);
      case 'auth.refresh':
        this.handshake
          .refresh(conn, frame.payload.token, correlationId)
          .catch((err) => this.replies.internalError(conn, err, false));
        return;
      case 'rpc.register':
      case 'rpc':
      case 'rpc.response':
        return this.deps.rpc?.onFrame(conn, frame, correlationId);
      case 'connect':
        return;
    }
  }

  private onHeartbeatPong(conn: Connection, ts: number): void {
    const now = this.deps.clock.now();
    if (conn.ponged(ts, now)) this.qos.check(conn);
    if (this.deps.hooks.has('onHeartbeat'))
      this.deps.hooks.emit('onHeartbeat', {
        connectionId: conn.id,
        sessionId: conn.session?.sessionId ?? '',
        rttMs: conn.rttMs,
        at: now,
      });
  }

  // ---------------------------------------------------------------- control messages from other nodes

  private onControl(msg: ControlMessage): void {
    if (msg.from === this.deps.nodeId) return;
    switch (msg.kind) {
      case 'session.taken':
        this.connectionManager.takenElsewhere(String(msg.key));
        return;
      case 'message.failed':
        return this.failures.notifyFailedControl(msg);
      default: {
        this.deps.streams?.onControl(msg);
        const revoked = parseRevocationControl(msg);
        if (revoked) this.sanctions.applyRevocation(revoked.revocation, revoked.reason);
        const suspension = parseSuspensionControl(msg);
        if (suspension) this.sanctions.applySuspension(suspension.suspension, suspension.suspended);
        if (!revoked && !suspension) this.deps.hooks.emit('onClusterControl', { message: msg });
      }
    }
  }

  // ---------------------------------------------------------------- operator actions, shutdown, stats

  /** Cuts the live connections authenticated with revoked credentials, on every node (sanctions.ts). */
  revokeCredentials(revocation: Revocation, reason: string): Promise<number> {
    return this.sanctions.revokeCredentials(revocation, reason);
  }

  /** Suspends (or lifts the suspension of) a session, a user or an API key, on every node (sanctions.ts). */
  suspend(target: SuspensionTarget, suspended: boolean, reason: string, ttlMs?: number): Promise<number> {
    return this.sanctions.suspend(target, suspended, reason, ttlMs);
  }

  /** The live members of a room channel (for the HTTP API). */
  roomMembers(key: string): Promise<PresenceMember[]> {
    return this.rooms.members(key);
  }

  /** One pass over all connections: connect timeouts, token expiry, stuck closes. */
  sweep(): void {
    this.heartbeat.sweep();
  }

  heartbeatTick(): void {
    this.heartbeat.tick();
  }

  /**
   * Graceful shutdown: refuse new connections, tell every client to go elsewhere
   * (`connection.disconnected`, close 1001), wait for them to leave up to the drain timeout, then cut.
   */
  async drain(): Promise<void> {
    this.deps.streams?.stop();
    await this.connectionManager.drain(() => this.heartbeat.stop());
    this.upgrades.close();
  }

  stats() {
    return {
      connections: this.connections.size,
      sessions: this.sessions.size,
      subscriptions: this.hub.subscriptionCount,
      channels: this.hub.channelCount,
      inflight: this.retry.inflightCount,
      offlineQueued: this.messageQueue.totalSize(),
      slowConsumers: this.qos.slowConsumers,
      degradedConnections: this.degraded.size,
    };
  }
}

function correlationOf(frame: object): string | undefined {
  const meta = (frame as { metadata?: unknown }).metadata;
  if (meta === null || typeof meta !== 'object') return undefined;
  const c = (meta as { correlation_id?: unknown }).correlation_id;
  return typeof c === 'string' && c.length <= 200 ? c : undefined;
}

export { sessionKey } from '../connections/session.ts';
