/**
 * RetryManager: at-least-once delivery for acknowledged subscriptions. Every event sent on such a
 * subscription stays in flight until acked; an event not acked within `ackTimeoutMs` (+ backoff with
 * full jitter) is sent again with `metadata.retryCount`, up to `maxAttempts` deliveries, then it is
 * dead-lettered and its publisher told (`message.failed`). The in-flight window per session is bounded
 * (`maxInflight`); beyond it events wait in a bounded queue, and overflow dead-letters at once.
 */
import type { Clock, Random } from '../clock.ts';
import type { BrokerEvent } from '../broker/broker.ts';
import { channelNameFromKey } from '@apix/protocol';
import type { Session, Subscription, InflightEntry } from '../connections/session.ts';
import { EventFrames, withRetryCount } from '../gateway/frames.ts';
import { backoffDelay } from './backoff.ts';
import type { BackoffPolicy } from './backoff.ts';
import type { DeadLetterStore } from './dead-letter.ts';
import type { PendingJournal } from './pending-journal.ts';
import type { PendingOwner } from '../pending/pending-store.ts';

export interface RetryOptions extends BackoffPolicy {
  readonly ackTimeoutMs: number;
  readonly maxAttempts: number;
  readonly maxInflight: number;
  readonly maxWaiting: number;
  readonly compressThresholdBytes: number;
}

export interface RetryCallbacks {
  /** A session's event could not be delivered: store it away (offline queue) while the session is away. */
  queueAway(sub: Subscription, event: BrokerEvent, attempts: number): void;
  deadLettered(sub: Subscription, event: BrokerEvent, attempts: number): void;
  acked(sub: Subscription, event: BrokerEvent): void;
}

export class RetryManager {
  /** In-flight entries across all sessions (a gauge). */
  inflightCount = 0;
  redeliveries = 0;
  deadLettered = 0;
  /** Where in-flight state is written so that it survives this process (src/retry/pending-journal.ts). */
  pending: PendingJournal | undefined;
  /** The journal generation of an entry's first put (an ack within it writes nothing). */
  private readonly putGeneration = new WeakMap<InflightEntry, number>();
  private readonly owners = new WeakMap<Session, PendingOwner>();

  constructor(
    private readonly options: RetryOptions,
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly deadLetters: DeadLetterStore,
    private readonly callbacks: RetryCallbacks,
  ) {}

  /** Called by the fan-out for an event on an acknowledged subscription. */
  deliver(sub: Subscription, event: BrokerEvent, frames: EventFrames | undefined, attempts = 0): void {
    const session = sub.session;
    if (!session.isLive) {
      this.callbacks.queueAway(sub, event, attempts);
      return;
    }
    if (session.inflight.size >= this.options.maxInflight) {
      if (session.waiting.length >= this.options.maxWaiting) {
        this.deadLetter(sub, event, attempts);
        return;
      }
      session.waiting.push({ sub, event, attempts });
      return;
    }
    this.send(sub, event, frames, attempts);
  }

  ack(session: Session, key: string, ids: readonly string[]): number {
    let n = 0;
    for (const id of ids) {
      const k = `${key}\n${id}`;
      const entry = session.inflight.get(k);
      if (!entry) continue;
      entry.timer?.cancel();
      session.inflight.delete(k);
      this.inflightCount--;
      this.pending?.remove(session.key, key, id, this.putGeneration.get(entry));
      n++;
      this.callbacks.acked(entry.sub, entry.event);
    }
    if (n > 0) {
      this.pump(session);
      if (session.inflight.size === 0) this.pending?.idle(session.key);
    }
    return n;
  }

  /**
   * The session's connection went away: stop the timers and hand every in-flight then waiting event,
   * in order, to the offline queue, so that a resume redelivers them first.
   */
  suspend(session: Session): void {
    this.pending?.away(this.owner(session));
    for (const entry of session.inflight.values()) {
      entry.timer?.cancel();
      this.callbacks.queueAway(entry.sub, entry.event, entry.attempts);
    }
    this.inflightCount -= session.inflight.size;
    session.inflight.clear();
    for (const w of session.waiting) this.callbacks.queueAway(w.sub, w.event, w.attempts);
    session.waiting.length = 0;
  }

  /** Forget a session's state (closed for good, or taken elsewhere). */
  drop(session: Session): void {
    this.pending?.forget(session.key);
    for (const entry of session.inflight.values()) entry.timer?.cancel();
    this.inflightCount -= session.inflight.size;
    session.inflight.clear();
    session.waiting.length = 0;
  }

  /** Drops in-flight and waiting events of one subscription (unsubscribed). */
  dropSubscription(sub: Subscription): void {
    const session = sub.session;
    for (const [k, entry] of session.inflight) {
      if (entry.sub !== sub) continue;
      entry.timer?.cancel();
      session.inflight.delete(k);
      this.inflightCount--;
      this.pending?.remove(session.key, entry.event.key, entry.event.id);
    }
    for (let i = session.waiting.length - 1; i >= 0; i--)
      if (session.waiting[i]!.sub === sub) session.waiting.splice(i, 1);
    this.pump(session);
  }

  private send(
    sub: Subscription,
    event: BrokerEvent,
    frames: EventFrames | undefined,
    attempts: number,
  ): void {
    const session = sub.session;
    const conn = session.connection!;
    conn.sendEvent(
      attempts > 0
        ? new EventFrames(withRetryCount(event.frame, attempts), this.options.compressThresholdBytes)
        : (frames ?? new EventFrames(event.frame, this.options.compressThresholdBytes)),
    );
    const entry: InflightEntry = { sub, event, attempts: attempts + 1, timer: undefined };
    const k = `${event.key}\n${event.id}`;
    const previous = session.inflight.get(k);
    if (previous) {
      previous.timer?.cancel();
      this.inflightCount--;
    }
    session.inflight.set(k, entry);
    this.inflightCount++;
    const delay = this.delay(entry.attempts);
    entry.timer = this.clock.setTimeout(() => this.expire(session, k, entry), delay);
    // Persisted (batched) so that a resume on another node after a crash continues the schedule. An
    // event sealed at rest is not: its plain frame must not be stored (it is replayed from history).
    if (this.pending && (event as { sealed?: string }).sealed === undefined) {
      const generation = this.pending.put(this.owner(session), {
        key: event.key,
        id: event.id,
        type: event.type,
        timestamp: event.timestamp,
        frame: event.frame,
        publisher: event.publisher,
        attempts: entry.attempts,
        dueAt: this.clock.now() + delay,
      });
      if (entry.attempts === 1) this.putGeneration.set(entry, generation);
    }
  }

  private delay(attemptsSoFar: number): number {
    return this.options.ackTimeoutMs + backoffDelay(attemptsSoFar - 1, this.options, this.random);
  }

  private expire(session: Session, k: string, entry: InflightEntry): void {
    if (session.inflight.get(k) !== entry) return;
    session.inflight.delete(k);
    this.inflightCount--;
    if (entry.attempts >= this.options.maxAttempts) {
      this.pending?.remove(session.key, entry.event.key, entry.event.id);
      this.deadLetter(entry.sub, entry.event, entry.attempts);
      this.pump(session);
      if (session.inflight.size === 0) this.pending?.idle(session.key);
      return;
    }
    if (!session.isLive) {
      this.callbacks.queueAway(entry.sub, entry.event, entry.attempts);
      return;
    }
    this.redeliveries++;
    this.send(entry.sub, entry.event, undefined, entry.attempts);
  }

  private deadLetter(sub: Subscription, event: BrokerEvent, attempts: number): void {
    this.deadLettered++;
    this.deadLetters.add({
      orgId: sub.session.orgId,
      channel: channelNameFromKey(event.key),
      eventId: event.id,
      type: event.type,
      sessionId: sub.session.sessionId,
      attempts,
      // Encrypted at rest: the dead letter keeps the sealed text, as history does.
      frame: event.sealed ?? event.frame,
      failedAt: this.clock.now(),
    });
    this.callbacks.deadLettered(sub, event, attempts);
  }

  private owner(session: Session): PendingOwner {
    let o = this.owners.get(session);
    if (!o)
      this.owners.set(
        session,
        (o = { sessionKey: session.key, orgId: session.orgId, sessionId: session.sessionId }),
      );
    return o;
  }

  /** Moves waiting events into the window as it frees up. */
  private pump(session: Session): void {
    while (session.isLive && session.waiting.length > 0 && session.inflight.size < this.options.maxInflight) {
      const w = session.waiting.shift()!;
      if (session.subscriptions.get(w.sub.key) !== w.sub) continue;
      this.send(w.sub, w.event, undefined, w.attempts);
    }
  }
}
