/**
 * Where sessions live while their client is away, so that a client reconnecting with the same
 * `sessionId` (and the same user) within the session TTL resumes on any node.
 */
import type { ClientType } from '@apix/protocol';

export interface SubscriptionSnapshot {
  readonly channel: string;
  readonly ack: boolean;
  readonly filters: Record<string, unknown> | undefined;
  /** The id of the last event sent on this subscription, to replay from on resume. */
  readonly lastId: string | undefined;
  /**
   * The channel's last event id when the subscription was made (`0-0`: none): where a resume replays
   * from when no event was sent yet (`lastId` undefined). Absent in snapshots of older nodes.
   */
  readonly attachedAt?: string | undefined;
}

export interface SessionSnapshot {
  readonly sessionId: string;
  readonly orgId: string;
  readonly userId: string;
  readonly clientType: ClientType;
  readonly subscriptions: readonly SubscriptionSnapshot[];
  /** The node holding the session now (live or waiting for resume). */
  readonly nodeId: string;
  /** When the session may be forgotten, ms since epoch. */
  readonly expiresAt: number;
  readonly suspended: boolean;
  /** Whether a client is connected to it now (false: it waits for a resume). Absent: not known (away). */
  readonly live?: boolean | undefined;
}

/**
 * Where the sessions of a user that receive their own `user:` channel stand, across every node: `live`
 * when one of them is connected, `away` when all of them wait for a resume (events for them are queued:
 * the publisher gets `message.queued`), `none` when there is no such session.
 */
export type PrivateChannelState = 'live' | 'away' | 'none';

export interface SessionStore {
  /** Whether sessions saved here outlive this process (Redis): a node shutting down leaves them to others. */
  readonly outlivesNode: boolean;
  save(snapshot: SessionSnapshot): Promise<void>;
  load(sessionId: string): Promise<SessionSnapshot | undefined>;
  delete(sessionId: string): Promise<void>;
  /** The state of the sessions of `userId` (organization `orgId`) subscribed to `user:<userId>`. */
  privateChannelState(orgId: string, userId: string): Promise<PrivateChannelState>;
}

/** Whether the snapshot's session receives its user's own channel (`user:<userId>`). */
export function receivesPrivateChannel(snapshot: SessionSnapshot): boolean {
  const own = `user:${snapshot.userId}`;
  return snapshot.subscriptions.some((s) => s.channel === own);
}
