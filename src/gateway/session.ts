/**
 * A session outlives its connections: it holds the subscriptions, the in-flight (un-acked) events and
 * the client's identity, and waits `sessionTtlMs` for its client to come back after a disconnect.
 *
 * One client connection (`Connection`, below): the socket, its state in the connect handshake, and the
 * fast write path. Kept small on purpose (100k of these per node): no timers of its own (the sweeper
 * visits them all) and no closures per message. A session and the connection serving it point at each
 * other, so they share this module (no import cycle).
 */
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import { ConnectionStatus } from '@apix/protocol';
import type { ChannelType, ClientType, ParsedChannel } from '@apix/protocol';
import type { TimerHandle } from '../clock.ts';
import type { BrokerEvent } from '../broker/broker.ts';
import type { ConnectionInfo } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import type { TokenBucket } from '../ratelimit/token-bucket.ts';
import type { EventFrames } from './frames.ts';
import type { DegradedState } from './qos.ts';
import type { PublishOrder } from '../router/publish-order.ts';
import type { EventFilter } from '../subscriptions/filters.ts';

export class Subscription {
  /** Id of the last event sent (or queued) on this subscription: where a resume replays from. */
  lastId: string | undefined;
  /** While replaying history, live events wait here so that none is lost or doubled. */
  pending: BrokerEvent[] | undefined;
  /**
   * After a replay: live events at or below this id were already sent (a broker may deliver an event
   * published just before the node subscribed after the history read). Cleared by the first newer one.
   */
  replayFloor: string | undefined;
  /** For room channels: the connection this subscription is a presence member as. */
  presenceConnectionId: string | undefined;
  constructor(
    readonly session: Session,
    readonly key: string,
    readonly channel: ParsedChannel,
    readonly ack: boolean,
    readonly filter: EventFilter | undefined,
    readonly filters: Record<string, unknown> | undefined,
  ) {}
  get name(): string {
    return this.channel.name;
  }
  get type(): ChannelType {
    return this.channel.type;
  }
  /** Events for it are held in the offline queue while the session is away. */
  get queuesWhileAway(): boolean {
    return this.ack || this.channel.type === 'PRIVATE_USER';
  }
}

export interface InflightEntry {
  readonly sub: Subscription;
  readonly event: BrokerEvent;
  /** Deliveries so far (1 = the first delivery). */
  attempts: number;
  timer: TimerHandle | undefined;
}

export class Session {
  status: ConnectionStatus = ConnectionStatus.CONNECTED;
  connection: Connection | undefined;
  readonly subscriptions = new Map<string, Subscription>();
  /** Un-acked events in delivery order, keyed `<channelKey>\n<id>`. */
  readonly inflight = new Map<string, InflightEntry>();
  /** Events of acknowledged subscriptions waiting for room in the in-flight window. */
  readonly waiting: Array<{ sub: Subscription; event: BrokerEvent; attempts: number }> = [];
  expiryTimer: TimerHandle | undefined;

  constructor(
    /** `<org>/<user>/<sessionId>`: sessions are scoped per user, so nobody can claim another's. */
    readonly key: string,
    readonly sessionId: string,
    public principal: Principal,
    readonly clientType: ClientType,
  ) {}

  get orgId(): string {
    return this.principal.orgId;
  }
  get userId(): string {
    return this.principal.userId;
  }
  get isLive(): boolean {
    return this.connection !== undefined;
  }
}

export function sessionKey(orgId: string, userId: string, sessionId: string): string {
  // '/' (and '%') escaped in the parts a client or an issuer chooses: user "team" with session "alice/s1"
  // must not get the key of user "team/alice" with session "s1".
  return `${orgId}/${keyPart(userId)}/${keyPart(sessionId)}`;
}

function keyPart(s: string): string {
  return s.replace(/%/g, '%25').replace(/\//g, '%2F');
}

export const enum Phase {
  /** Upgraded, waiting for `connect`. */
  AWAITING_CONNECT,
  /** `connect` received, being authenticated. */
  CONNECTING,
  CONNECTED,
  CLOSING,
  CLOSED,
}

export class Connection {
  phase: Phase = Phase.AWAITING_CONNECT;
  session: Session | undefined;
  principal: Principal | undefined;
  clientType: ClientType | undefined;
  /**
   * `connect.metadata` (bounded at the edge), kept with the connection only: the session, which outlives it
   * while it waits for a resume, does not hold it.
   */
  metadata: Record<string, unknown> | undefined;
  /** Heartbeat rounds since the client was last heard from (any frame or pong resets it). */
  missedHeartbeats = 0;
  /** When the last app-level ping was sent, for RTT. */
  pingSentAt = 0;
  rttMs: number | undefined;
  /** Frames refused by the inbound rate limit in a row (their replies are thinned out). */
  violations = 0;
  /** Publishes per connection (set when the connection opens). */
  publishBucket: TokenBucket | undefined;
  /** Its publishes' turns (ids in receive order), made at its first publish. */
  publishOrder: PublishOrder | undefined;
  /** In a burst of refused publishes (`onRateLimited` is emitted once per burst). */
  publishLimited = false;
  /** Refusals of any rate limit since `refusalsSince`: too many in the window is abuse. */
  refusals = 0;
  refusalsSince = 0;
  closingSince = 0;
  /** The subscription changes (subscribe, and unsubscribe behind one) still running, chained in order. */
  subscribing: Promise<void> | undefined = undefined;
  /** Set while the connection is in degraded mode (QoS): its held events. Undefined when healthy. */
  qos: DegradedState<Subscription> | undefined = undefined;
  /** The keys this connection counts under in the gateway's connection caps (released when it closes). */
  countedAddress: string | undefined;
  countedUser: string | undefined;
  countedOrg: string | undefined;
  readonly socket: Socket;
  /** Whether permessage-deflate was negotiated: such sockets must go through ws's sender. */
  readonly deflate: boolean;

  constructor(
    readonly id: string,
    readonly ws: WebSocket,
    readonly peer: Peer,
    readonly openedAt: number,
    readonly inbound: TokenBucket,
  ) {
    this.socket = (ws as unknown as { _socket: Socket })._socket;
    this.deflate = ws.extensions.includes('permessage-deflate');
  }

  get isOpen(): boolean {
    return this.ws.readyState === 1 && this.phase !== Phase.CLOSING && this.phase !== Phase.CLOSED;
  }

  /** Bytes waiting to be sent (ws never queues: every send below is synchronous). */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Sends a control frame (JSON text), uncompressed: ws's own compressor is never used, so ws never
   * queues a frame while deflating and the raw event writes below stay in order with these.
   */
  send(text: string): void {
    if (this.ws.readyState === 1) this.ws.send(text, { compress: false });
  }

  /**
   * Writes an event whose frames were built once for all subscribers: the compressed frame to a
   * connection that negotiated permessage-deflate, else the plain one. One socket write, no copy.
   */
  sendEvent(frames: EventFrames): void {
    if (this.ws.readyState === 1) this.socket.write(frames.forConnection(this.deflate));
  }

  /**
   * Frees the zlib inflate stream ws keeps for a connection whose client compresses what it sends (as
   * browsers do): ws resets it between messages instead of closing it, which holds about 16 KB per idle
   * connection. Called by the heartbeat sweep, only between messages (no frame being read or inflated);
   * ws creates a new stream at the next compressed message.
   */
  releaseInflate(): void {
    if (!this.deflate) return;
    const ws = this.ws as unknown as WsInternals;
    const pmd = ws._extensions?.['permessage-deflate'];
    const receiver = ws._receiver;
    if (!pmd?._inflate || !receiver || receiver._state !== 0 || receiver._fragmented !== 0) return;
    pmd._inflate.close();
    pmd._inflate = null;
  }

  /** Sends `connection.disconnected`-style reasoning is up to the caller; this closes with a code. */
  close(code: number, reason: string, now: number): void {
    if (this.phase === Phase.CLOSING || this.phase === Phase.CLOSED) return;
    this.phase = Phase.CLOSING;
    this.closingSince = now;
    try {
      this.ws.close(code, reason.length > 120 ? reason.slice(0, 120) : reason);
    } catch {
      this.ws.terminate();
    }
  }

  info(): ConnectionInfo {
    const s = this.session;
    return {
      connectionId: this.id,
      sessionId: s?.sessionId ?? '',
      clientType: this.clientType ?? 'API_CLIENT',
      principal: this.principal!,
      peer: this.peer,
      status: s?.status ?? ConnectionStatus.DISCONNECTED,
      connectedAt: this.openedAt,
      channels: s ? [...s.subscriptions.values()].map((sub) => sub.name) : [],
      metadata: this.metadata,
    };
  }
}

/** The parts of ws's internals that releaseInflate() reads (ws 8: lib/websocket.js, receiver.js). */
interface WsInternals {
  _extensions?: Record<string, { _inflate: { close(): void } | null } | undefined>;
  _receiver?: { _state: number; _fragmented: number } | null;
}
