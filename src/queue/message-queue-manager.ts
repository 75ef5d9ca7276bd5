/**
 * MessageQueueManager: what a session misses while it is away, and what it gets back on resume. Events
 * for subscriptions that queue while away (acknowledged ones, `user:` channels) go to the offline queue
 * engine; on resume the queue is drained to the new connection, after the in-flight events the session
 * had (taken from the pending store), and before history catch-up, each event sent once.
 */
import type { Logger } from '../log.ts';
import type { BrokerEvent } from '../broker/broker.ts';
import type { DrainResult, OfflineQueue, QueuedFrame } from './queue.ts';
import type { PendingEntry, PendingOwner } from '../pending/pending-store.ts';
import type { RetryManager } from '../retry/retry-manager.ts';
import { EventFrames } from '../gateway/frames.ts';
import type { Session, Subscription } from '../connections/session.ts';

export interface MessageQueueDeps {
  readonly log: Logger;
  readonly offlineQueue: OfflineQueue;
  readonly retry: RetryManager;
  /** Attempts after which a taken in-flight event is dead-lettered instead of redelivered. */
  readonly maxAttempts: number;
  readonly compressThreshold: number;
  deadLetterStored(owner: PendingOwner, entries: readonly PendingEntry[]): void;
}

export class MessageQueueManager {
  constructor(private readonly deps: MessageQueueDeps) {}

  /** An event for a session that is away: kept in its offline queue. */
  queueAway(sub: Subscription, event: BrokerEvent, attempts: number): void {
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

  /** Takes a resuming session's queue (empty when the queue engine does not answer). */
  drain(sessionKey: string): Promise<DrainResult> {
    return this.deps.offlineQueue.drain(sessionKey).catch(() => ({ frames: [], overflowed: 0 }));
  }

  /** Forgets an ended session's queue. */
  clear(sessionKey: string): void {
    this.deps.offlineQueue.clear(sessionKey).catch(() => {});
  }

  totalSize(): number {
    return this.deps.offlineQueue.totalSize();
  }

  /** Sends a resumed session what its queue held; `sent` skips events already sent in this resume. */
  sendQueued(session: Session, frames: readonly QueuedFrame[], sent: Set<string>): void {
    for (const item of frames) this.sendOne(session, item, sent);
  }

  private sendOne(session: Session, item: QueuedFrame, sent: Set<string>): void {
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
    if (item.ack && sub.ack) this.deps.retry.deliver(sub, event, undefined, item.attempts);
    else session.connection?.sendEvent(new EventFrames(item.frame, this.deps.compressThreshold));
  }

  /**
   * Entries taken from the pending store on a resume: redelivered with the attempts they had
   * (`metadata.retryCount` continues), or dead-lettered when they have none left.
   */
  sendPending(session: Session, entries: readonly PendingEntry[], sent: Set<string>): void {
    const exhausted: PendingEntry[] = [];
    for (const e of entries) {
      const k = `${e.key}\n${e.id}`;
      const sub = session.subscriptions.get(e.key);
      if (sent.has(k) || !sub?.ack) continue;
      sent.add(k);
      if (e.attempts >= this.deps.maxAttempts) {
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
      this.deps.retry.deliver(sub, event, undefined, e.attempts);
    }
    if (exhausted.length > 0)
      this.deps.deadLetterStored(
        { sessionKey: session.key, orgId: session.orgId, sessionId: session.sessionId },
        exhausted,
      );
  }
}
