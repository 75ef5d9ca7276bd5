/**
 * A session outlives its connections: it holds the subscriptions, the in-flight (un-acked) events and
 * the client's identity, and waits `sessionTtlMs` for its client to come back after a disconnect.
 *
 * One client connection (`Connection`, below): its transport, its state in the connect handshake, and the
 * fast write path. Kept small on purpose (100k of these per node): no timers of its own (the sweeper
 * visits them all) and no closures per message. A session and the connection serving it point at each
 * other, so they share this module (no import cycle).
 */
import { ConnectionStatus } from '@apix/protocol';
import type { ChannelType, ClientType, ParsedChannel } from '@apix/protocol';
import type { TimerHandle } from '../clock.ts';
import type { BrokerEvent } from '../broker/broker.ts';
import type { ConnectionInfo } from '../hooks.ts';
import type { Peer, Principal } from '../auth/principal.ts';
import type { TokenBucket } from '../ratelimit/token-bucket.ts';
import type { EventFrames } from '../gateway/frames.ts';
import type { ClientTransport } from '../transport/transport.ts';
import type { DegradedState } from './qos.ts';
import type { PublishOrder } from '../router/publish-order.ts';
import type { EventFilter } from '../subscriptions/filters.ts';

export class Subscription {
  /** Id of the last event sent (or queued) on this subscription: where a resume replays from. */
  lastId: string | undefined;
  /**
   * The first event missed while away by a subscription that had been sent none (no `lastId` to replay
   * after): a resume replays from it (inclusive), so that an event published while away is not lost.
   */
  missedFrom: string | undefined;
  /**
   * The channel's last event id when this subscription joined the hub (`0-0`: none), read after it joined:
   * every later event was sent to it or missed. Kept in the session snapshot, so that a resume on another
   * node (which has no `missedFrom`) replays after it when nothing was sent yet (no `lastId`).
   */
  attachedAt: string | undefined;
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

/** The connection caps a connection counts under (released when it closes). */
export type CapKind = 'address' | 'user' | 'org';

export class Connection {
  private _phase: Phase = Phase.AWAITING_CONNECT;
  private _session: Session | undefined;
  private _principal: Principal | undefined;
  private _clientType: ClientType | undefined;
  /**
   * `connect.metadata` (bounded at the edge), kept with the connection only: the session, which outlives it
   * while it waits for a resume, does not hold it.
   */
  private _metadata: Record<string, unknown> | undefined;
  /** Heartbeat rounds since the client was last heard from (any frame or pong resets it). */
  private _missedHeartbeats = 0;
  /** When the last app-level ping was sent, for RTT. */
  private pingSentAt = 0;
  private _rttMs: number | undefined;
  /** Frames refused by the inbound rate limit in a row (their replies are thinned out). */
  private violations = 0;
  /** Its publishes' turns (ids in receive order), made at its first publish. */
  private publishOrder: PublishOrder | undefined;
  /** In a burst of refused publishes (`onRateLimited` is emitted once per burst). */
  private publishLimited = false;
  /** Refusals of any rate limit since `refusalsSince`: too many in the window is abuse. */
  private refusals = 0;
  private refusalsSince = 0;
  private _closingSince = 0;
  /** The subscription changes (subscribe, and unsubscribe behind one) still running, chained in order. */
  private _subscribing: Promise<void> | undefined = undefined;
  /** Set while the connection is in degraded mode (QoS): its held events. Undefined when healthy. */
  private _qos: DegradedState<Subscription> | undefined = undefined;
  /** The keys this connection counts under in the connection caps (released when it closes). */
  private countedAddress: string | undefined;
  private countedUser: string | undefined;
  private countedOrg: string | undefined;

  constructor(
    readonly id: string,
    readonly transport: ClientTransport,
    readonly peer: Peer,
    readonly openedAt: number,
    /** Frames per connection. */
    readonly inbound: TokenBucket,
    /** Publishes per connection. */
    readonly publishBucket: TokenBucket,
  ) {}

  get phase(): Phase {
    return this._phase;
  }
  get session(): Session | undefined {
    return this._session;
  }
  get principal(): Principal | undefined {
    return this._principal;
  }
  get clientType(): ClientType | undefined {
    return this._clientType;
  }
  get metadata(): Record<string, unknown> | undefined {
    return this._metadata;
  }
  get missedHeartbeats(): number {
    return this._missedHeartbeats;
  }
  /** The last heartbeat round trip, in ms (undefined before the first pong). */
  get rttMs(): number | undefined {
    return this._rttMs;
  }
  get closingSince(): number {
    return this._closingSince;
  }
  /** The subscription changes still running (an unsubscribe waits behind them). */
  get subscribing(): Promise<void> | undefined {
    return this._subscribing;
  }
  /** Its QoS state while degraded: the events held for it. Undefined when healthy. */
  get qos(): DegradedState<Subscription> | undefined {
    return this._qos;
  }

  get isOpen(): boolean {
    return this.transport.isOpen && this._phase !== Phase.CLOSING && this._phase !== Phase.CLOSED;
  }

  /** Bytes waiting to be sent. */
  get bufferedBytes(): number {
    return this.transport.bufferedBytes;
  }

  // ---------------------------------------------------------------- the handshake

  /** `connect` arrived: it is being authenticated (frames that follow wait for it). */
  connecting(): void {
    this._phase = Phase.CONNECTING;
  }

  /** `connect`'s credentials are good: who is on the other end. */
  authenticated(principal: Principal, clientType: ClientType): void {
    this._principal = principal;
    this._clientType = clientType;
  }

  /** `auth.refresh`: new credentials for the same user. */
  refreshed(principal: Principal): void {
    this._principal = principal;
  }

  /** The connection holds its session now: connected. */
  established(session: Session, metadata: Record<string, unknown> | undefined): void {
    this._metadata = metadata;
    this._session = session;
    this._phase = Phase.CONNECTED;
  }

  /** The transport closed. Answers whether it had been connected (or held a session). */
  closed(): boolean {
    const wasConnected = this._phase === Phase.CONNECTED || this._session !== undefined;
    this._phase = Phase.CLOSED;
    return wasConnected;
  }

  // ---------------------------------------------------------------- heartbeat

  /** The client was heard from (a frame, a pong): its missed heartbeats start again from 0. */
  heard(): void {
    this._missedHeartbeats = 0;
  }

  /** A heartbeat ping was sent at `now`: one more missed until the client is heard from. */
  pinged(now: number): void {
    this._missedHeartbeats++;
    this.pingSentAt = now;
  }

  /** A `heartbeat.pong` with `ts`: true when it answers the last ping (the round trip is measured). */
  ponged(ts: number, now: number): boolean {
    if (ts !== this.pingSentAt || this.pingSentAt <= 0) return false;
    this._rttMs = now - this.pingSentAt;
    return true;
  }

  // ---------------------------------------------------------------- rate limits

  /** A frame refused by the inbound rate: how many in a row now. */
  inboundRefused(): number {
    return ++this.violations;
  }

  /** A frame admitted by the inbound rate: the run of refusals ends. */
  inboundAdmitted(): void {
    this.violations = 0;
  }

  /** A publish refused by the connection's publish rate: true for the first of a burst. */
  publishRefused(): boolean {
    if (this.publishLimited) return false;
    this.publishLimited = true;
    return true;
  }

  /** A publish admitted by the connection's publish rate: a burst of refusals ends. */
  publishAdmitted(): void {
    this.publishLimited = false;
  }

  /** Its publish order, made by `make` at its first publish. */
  publishOrderOr(make: () => PublishOrder): PublishOrder {
    return (this.publishOrder ??= make());
  }

  /** Counts a refusal of any rate limit at `now`: how many within the last `windowMs` (abuse past a bound). */
  countRefusal(now: number, windowMs: number): number {
    if (this.refusals === 0 || now - this.refusalsSince > windowMs) {
      this.refusalsSince = now;
      this.refusals = 0;
    }
    return ++this.refusals;
  }

  // ---------------------------------------------------------------- caps, subscriptions, QoS

  /** Counts the connection under a cap's key (released by `releaseCaps`). */
  countUnder(kind: CapKind, key: string): void {
    if (kind === 'address') this.countedAddress = key;
    else if (kind === 'user') this.countedUser = key;
    else this.countedOrg = key;
  }

  /** The keys it counted under, forgotten: each is released once. */
  releaseCaps(): { address?: string; user?: string; org?: string } {
    const counted = { address: this.countedAddress, user: this.countedUser, org: this.countedOrg };
    this.countedAddress = this.countedUser = this.countedOrg = undefined;
    return counted;
  }

  /** Runs a subscription change after the connection's earlier ones, in the order the frames came. */
  inOrder(op: () => Promise<void> | void, onError: (err: unknown) => void): void {
    const run = async (): Promise<void> => op();
    const done: Promise<void> = (this._subscribing ? this._subscribing.then(run) : run())
      .catch(onError)
      .finally(() => {
        if (this._subscribing === done) this._subscribing = undefined;
      });
    this._subscribing = done;
  }

  /** Enters degraded mode (QoS) with its state. */
  degrade(state: DegradedState<Subscription>): void {
    this._qos = state;
  }

  /** Leaves degraded mode: the state it had, if any. */
  recover(): DegradedState<Subscription> | undefined {
    const state = this._qos;
    this._qos = undefined;
    return state;
  }

  // ---------------------------------------------------------------- writing and closing

  /** Sends a control frame (JSON text), uncompressed, in order with the event frames. */
  send(text: string): void {
    this.transport.send(text);
  }

  /** Writes an event whose frames were built once for all subscribers. */
  sendEvent(frames: EventFrames): void {
    this.transport.sendEvent(frames);
  }

  /** Frees what an idle client holds in its transport (called by the heartbeat, between frames). */
  releaseInflate(): void {
    this.transport.releaseIdle();
  }

  /** Sends `connection.disconnected`-style reasoning is up to the caller; this closes with a code. */
  close(code: number, reason: string, now: number): void {
    if (this._phase === Phase.CLOSING || this._phase === Phase.CLOSED) return;
    this._phase = Phase.CLOSING;
    this._closingSince = now;
    this.transport.close(code, reason.length > 120 ? reason.slice(0, 120) : reason);
  }

  /** Closes without waiting for the buffered bytes (a slow consumer): closing from `now`. */
  cut(code: number, reason: string, now: number): void {
    this._phase = Phase.CLOSING;
    this._closingSince = now;
    this.transport.cut(code, reason);
  }

  /** Drops the client at once. */
  terminate(): void {
    this.transport.terminate();
  }

  info(): ConnectionInfo {
    const s = this._session;
    return {
      connectionId: this.id,
      sessionId: s?.sessionId ?? '',
      clientType: this._clientType ?? 'API_CLIENT',
      principal: this._principal!,
      peer: this.peer,
      status: s?.status ?? ConnectionStatus.DISCONNECTED,
      connectedAt: this.openedAt,
      channels: s ? [...s.subscriptions.values()].map((sub) => sub.name) : [],
      metadata: this._metadata,
    };
  }
}
