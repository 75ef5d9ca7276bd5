/**
 * Where sessions live while their client is away, so that a client reconnecting with the same
 * `sessionId` (and the same user) within the session TTL resumes on any node.
 */
import type { ClientType } from '../protocol/index.ts';

export interface SubscriptionSnapshot {
  readonly channel: string;
  readonly ack: boolean;
  readonly filters: Record<string, unknown> | undefined;
  /** The id of the last event sent on this subscription, to replay from on resume. */
  readonly lastId: string | undefined;
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
}

export interface SessionStore {
  save(snapshot: SessionSnapshot): Promise<void>;
  load(sessionId: string): Promise<SessionSnapshot | undefined>;
  delete(sessionId: string): Promise<void>;
}
