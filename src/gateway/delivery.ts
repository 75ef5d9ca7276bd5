/**
 * The delivery components the gateway receives from node.ts (it no longer builds them): the retry manager
 * (acknowledged subscriptions), the pending journal (their in-flight state, written to the pending store)
 * and the local hub (fan-out). Their callbacks into the gateway are late-bound: node.ts builds them before
 * the gateway, and the gateway's constructor binds `callbacks`.
 */
import type { BrokerEvent } from '../broker/broker.ts';
import type { PendingEntry, PendingOwner } from '../pending/pending-store.ts';
import type { RetryManager } from '../retry/retry-manager.ts';
import type { PendingJournal } from '../retry/pending-journal.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { Late } from '../late.ts';
import type { EventFrames } from './frames.ts';
import type { Connection, Subscription } from '../connections/session.ts';

/** What the retry manager, the pending journal and the hub call the gateway for. */
export interface GatewayCallbacks {
  /** An event for a session whose client is away: into the offline queue. */
  queueAway(sub: Subscription, event: BrokerEvent, attempts: number): void;
  /** The retry manager gave up on an event. */
  deadLettered(sub: Subscription, event: BrokerEvent, attempts: number): void;
  /** Pending entries of an expired session, found in the pending store. */
  deadLetterStored(owner: PendingOwner, entries: readonly PendingEntry[]): void;
  /** A connection's send buffer crossed the QoS threshold. */
  pressure(conn: Connection): void;
  /** An event held for a degraded connection (the latest per coalescing key). */
  hold(conn: Connection, sub: Subscription, event: BrokerEvent, frames: EventFrames, key: string): void;
}

export interface Delivery {
  readonly retry: RetryManager;
  readonly pending: PendingJournal;
  readonly hub: LocalHub;
  /** Bound by the gateway's constructor. */
  readonly callbacks: Late<GatewayCallbacks>;
}
