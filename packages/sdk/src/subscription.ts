/**
 * One channel subscription: its handlers per event type, its place in the channel's event sequence (the
 * last id delivered, used to drop duplicates and to resume), and its acknowledgment mode.
 */
import { ApiXError, ErrorCode } from '@apix/protocol/errors';
import { compareEventIds, isEventId } from '@apix/protocol/event-id';
import type { ApiXSubscription, ChannelEvent } from '@apix/protocol/schemas';
import type { ApiXEvent, EventHandler, SubscribeOptions, SubscriptionFilters } from './types.ts';

/** What a subscription needs from its client. Internal: keeps subscription.ts free of client.ts. */
export interface SubscriptionHost {
  unsubscribe(subscription: Subscription): Promise<void>;
  /** Queues an ack of `id` on `channel` (batched; dropped while offline, the server then redelivers). */
  ack(channel: string, id: string): void;
  /** Every delivered event, for the client's `event` listeners. */
  delivered(event: ApiXEvent): void;
  reportError(error: ApiXError): void;
}

export type SubscriptionState = 'pending' | 'subscribed' | 'denied' | 'unsubscribed';

export type SubscriptionStatus =
  | { readonly state: 'pending' }
  | { readonly state: 'subscribed'; readonly recovered: boolean }
  | { readonly state: 'denied'; readonly error: ApiXError }
  | { readonly state: 'unsubscribed'; readonly reason: string | undefined };

export type AckMode = 'none' | 'auto' | 'manual';

/** Stream frames whose `id` is the stream's, not a position in the channel (docs/protocol.md §14). */
const TRANSIENT_STREAM_TYPES: ReadonlySet<string> = new Set([
  'stream.start',
  'stream.append',
  'stream.snapshot',
]);

/** Why handler results are checked this way: a handler may return a promise from any realm or library. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' && value !== null && typeof (value as { then?: unknown }).then === 'function'
  );
}

export class Subscription {
  readonly channel: string;
  readonly ackMode: AckMode;
  readonly filters: SubscriptionFilters | undefined;
  private _state: SubscriptionState = 'pending';
  private _recovered: boolean | undefined;
  private _lastEventId: string | undefined;
  private readonly replay: { last: number } | undefined;
  private readonly handlers = new Map<string, Set<EventHandler<never>>>();
  private readonly statusListeners = new Set<(status: SubscriptionStatus) => void>();
  /** Manual mode: delivered, not yet acked by the application. A redelivery of one of these is skipped. */
  private readonly awaitingAck = new Set<string>();
  /** Auto mode: ids whose handler failed; their redelivery must get through the duplicate check. */
  private readonly retryIds = new Set<string>();
  private settleReady:
    { resolve: (r: { recovered: boolean }) => void; reject: (e: ApiXError) => void } | undefined;

  /**
   * Settles on the first `subscription.added` (with its `recovered` flag), or rejects with the denial
   * (FORBIDDEN, BAD_REQUEST...). Never an unhandled rejection when nobody awaits it.
   */
  readonly ready: Promise<{ recovered: boolean }>;

  /** @internal Created by `ApiXClient.subscribe`. */
  constructor(
    private readonly host: SubscriptionHost,
    channel: string,
    options: SubscribeOptions = {},
  ) {
    this.channel = channel;
    this.ackMode = options.ack === 'manual' ? 'manual' : options.ack ? 'auto' : 'none';
    this.filters = options.filters;
    this.replay = options.replay;
    this._lastEventId = options.since;
    this.ready = new Promise((resolve, reject) => (this.settleReady = { resolve, reject }));
    this.ready.catch(() => {});
  }

  get state(): SubscriptionState {
    return this._state;
  }
  /** The `recovered` flag of the latest `subscription.added`; false means events were missed. */
  get recovered(): boolean | undefined {
    return this._recovered;
  }
  /** The last event id delivered to the application (resume point). */
  get lastEventId(): string | undefined {
    return this._lastEventId;
  }

  /** Handles events of one type (typed payload for the seed's types), or of every type with '*'. */
  on(type: '*', handler: EventHandler): () => void;
  on<T extends string>(type: T, handler: EventHandler<T>): () => void;
  on(type: string, handler: EventHandler<never>): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => this.off(type, handler);
  }

  off(type: string, handler: EventHandler<never>): void {
    this.handlers.get(type)?.delete(handler);
  }

  /** Status changes: subscribed (again, after each reconnect), denied, unsubscribed, pending (offline). */
  onStatus(listener: (status: SubscriptionStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  /** Stops the subscription; settles when the server confirmed (or at once while offline). */
  unsubscribe(): Promise<void> {
    if (this._state === 'unsubscribed') return Promise.resolve();
    return this.host.unsubscribe(this);
  }

  // ---- Internal: driven by the client ----

  /**
   * @internal The replay asked for (`replay: {last}`) while nothing was delivered yet: a resumed session
   * (a reloaded page) must still catch this page up, not continue where its previous page stopped.
   */
  get replayWanted(): { last: number } | undefined {
    return this._lastEventId === undefined ? this.replay : undefined;
  }

  /** @internal The `subscribe` payload: resume from the last delivered id when there is one. */
  subscribePayload(): ApiXSubscription {
    const payload: ApiXSubscription = { channels: [this.channel], acknowledgment: this.ackMode !== 'none' };
    if (this.filters) payload.filters = this.filters;
    if (this._lastEventId !== undefined) payload.since = { [this.channel]: this._lastEventId };
    else if (this.replay) payload.replay = this.replay;
    return payload;
  }

  /** @internal */
  markAdded(recovered: boolean): void {
    this._state = 'subscribed';
    this._recovered = recovered;
    this.settleReady?.resolve({ recovered });
    this.settleReady = undefined;
    this.notify({ state: 'subscribed', recovered });
  }

  /** @internal */
  markDenied(error: ApiXError): void {
    this._state = 'denied';
    this.settleReady?.reject(error);
    this.settleReady = undefined;
    this.notify({ state: 'denied', error });
  }

  /** @internal The connection dropped: subscribed again once the client reconnects. */
  markPending(): void {
    if (this._state !== 'subscribed') return;
    this._state = 'pending';
    this.notify({ state: 'pending' });
  }

  /** @internal */
  markUnsubscribed(reason: string | undefined): void {
    if (this._state === 'unsubscribed') return;
    this._state = 'unsubscribed';
    this.settleReady?.reject(
      new ApiXError(ErrorCode.CONFLICT, `unsubscribed from ${this.channel} before it was added`),
    );
    this.settleReady = undefined;
    this.notify({ state: 'unsubscribed', reason });
  }

  /**
   * @internal Delivers a channel event unless it is a duplicate (id at or before the last delivered one).
   * Returns whether the application saw it.
   */
  deliver(frame: ChannelEvent): boolean {
    if (this._state === 'unsubscribed' || this._state === 'denied') return false;
    if (TRANSIENT_STREAM_TYPES.has(frame.type)) return this.deliverTransient(frame);
    const { id } = frame;
    const valid = isEventId(id);
    if (valid && this._lastEventId !== undefined && compareEventIds(id, this._lastEventId) <= 0) {
      if (!this.retryIds.delete(id)) {
        // A duplicate (replay overlap or redelivery). Re-ack it unless the application still holds it,
        // or the server keeps redelivering an event whose ack it lost.
        if (this.ackMode !== 'none' && !this.awaitingAck.has(id)) this.host.ack(this.channel, id);
        return false;
      }
    } else if (valid) {
      this._lastEventId = id;
    }
    const event = this.toEvent(frame);
    if (this.ackMode === 'manual') this.awaitingAck.add(id);
    const handlers = [...(this.handlers.get(frame.type) ?? []), ...(this.handlers.get('*') ?? [])];
    const pending: PromiseLike<unknown>[] = [];
    let failure: { error: unknown } | undefined;
    for (const handler of handlers) {
      try {
        const result: unknown = (handler as EventHandler)(event);
        if (isThenable(result)) pending.push(result);
      } catch (error) {
        failure ??= { error };
      }
    }
    this.host.delivered(event);
    if (failure) this.handlerFailed(frame, failure.error);
    else if (this.ackMode === 'auto') {
      if (pending.length === 0) this.host.ack(this.channel, id);
      else
        Promise.all(pending).then(
          () => this.host.ack(this.channel, id),
          (error: unknown) => this.handlerFailed(frame, error),
        );
    } else if (pending.length > 0) {
      Promise.all(pending).catch((error: unknown) => this.handlerFailed(frame, error));
    }
    return true;
  }

  /**
   * A stream's start, append or snapshot: its `id` names the stream, not a place in the channel, so it
   * neither moves the resume point nor is acknowledged (the stream is, once, by its `stream.end`).
   */
  private deliverTransient(frame: ChannelEvent): boolean {
    const event = { ...this.toEvent(frame), ack: () => {} };
    for (const handler of [...(this.handlers.get(frame.type) ?? []), ...(this.handlers.get('*') ?? [])]) {
      try {
        const result: unknown = (handler as EventHandler)(event);
        if (isThenable(result))
          Promise.resolve(result).catch((error: unknown) => this.handlerFailed(frame, error));
      } catch (error) {
        this.handlerFailed(frame, error);
      }
    }
    this.host.delivered(event);
    return true;
  }

  private toEvent(frame: ChannelEvent): ApiXEvent {
    const { id } = frame;
    return {
      type: frame.type,
      channel: this.channel,
      id,
      payload: frame.payload,
      metadata: frame.metadata,
      retryCount: frame.metadata.retryCount ?? 0,
      ack: () => {
        if (this.awaitingAck.delete(id)) this.host.ack(this.channel, id);
      },
    };
  }

  private handlerFailed(frame: ChannelEvent, cause: unknown): void {
    // Unacked on purpose: the server redelivers it, and the duplicate check lets that redelivery through.
    if (this.ackMode === 'auto' && !TRANSIENT_STREAM_TYPES.has(frame.type)) this.retryIds.add(frame.id);
    const detail = cause instanceof Error ? cause.message : String(cause);
    this.host.reportError(
      new ApiXError(ErrorCode.INTERNAL, `handler for ${frame.type} on ${this.channel} failed: ${detail}`, {
        cause,
      }),
    );
  }

  private notify(status: SubscriptionStatus): void {
    for (const listener of [...this.statusListeners]) {
      try {
        listener(status);
      } catch (error) {
        this.host.reportError(
          new ApiXError(ErrorCode.INTERNAL, 'subscription status listener threw', { cause: error }),
        );
      }
    }
  }
}
