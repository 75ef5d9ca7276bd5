/**
 * A session outlives its connections: it holds the subscriptions, the in-flight (un-acked) events and
 * the client's identity, and waits `sessionTtlMs` for its client to come back after a disconnect.
 */
import { ConnectionStatus } from '@apix/protocol';
import type { ChannelType, ClientType, ParsedChannel } from '@apix/protocol';
import type { TimerHandle } from '../clock.ts';
import type { BrokerEvent } from '../broker/broker.ts';
import type { Connection } from './connection.ts';
import type { Principal } from '../auth/principal.ts';
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
