/**
 * The client's subscriptions: one `Subscription` per channel (subscription.ts), subscribed again after
 * every reconnect from its last delivered id, unsubscribes, batched acks, the server's `subscription.*`
 * frames, and delivery of channel events in order (end-to-end encrypted ones decrypted first).
 */
import { parseChannel } from '@apix/protocol/channels';
import { ApiXError, ErrorCode, isApiXError } from '@apix/protocol/errors';
import { isEventId } from '@apix/protocol/event-id';
import { isE2ePayload } from '@apix/protocol/e2e';
import type { ApiXConnection, ChannelEvent, ServerFrameOf } from '@apix/protocol/schemas';
import type { E2eCipher } from './e2e.ts';
import { DEFAULTS } from './options.ts';
import type { Emit, SessionLink } from './session.ts';
import { Subscription, type SubscriptionHost } from './subscription.ts';
import type { EstablishedInfo, SubscribeOptions } from './types.ts';

export class Subscriptions {
  private readonly subscriptions = new Map<string, Subscription>();
  /** Per channel: the decrypt-then-deliver chain that keeps its events in order. */
  private readonly e2eChains = new Map<string, Promise<void>>();
  private readonly unsubscribeWaiters = new Map<string, Array<() => void>>();
  private readonly ackQueue = new Map<string, string[]>();
  private ackFlushScheduled = false;

  private readonly host: SubscriptionHost = {
    unsubscribe: (sub) => this.unsubscribe(sub),
    ack: (channel, id) => this.queueAck(channel, id),
    delivered: (event) => this.emit('event', event),
    reportError: (error) => this.emit('error', error),
  };

  constructor(
    private readonly session: SessionLink,
    private readonly e2e: E2eCipher,
    private readonly emit: Emit,
  ) {}

  get(channel: string): Subscription | undefined {
    return this.subscriptions.get(channel);
  }

  /** `ApiXClient.subscribe`: see there. */
  subscribe(channel: string, options: SubscribeOptions): Subscription {
    if (this.session.state === 'closed') throw new ApiXError(ErrorCode.UNAVAILABLE, 'the client is closed');
    const parsed = parseChannel(channel);
    if (!parsed.ok) throw new ApiXError(ErrorCode.BAD_REQUEST, parsed.reason);
    if (this.subscriptions.has(channel))
      throw new ApiXError(
        ErrorCode.CONFLICT,
        `already subscribed to ${channel}; use client.subscription(channel)`,
      );
    if (options.since !== undefined && !isEventId(options.since))
      throw new ApiXError(ErrorCode.BAD_REQUEST, `since: not an event id: ${options.since}`);
    const sub = new Subscription(this.host, channel, options);
    this.subscriptions.set(channel, sub);
    if (this.session.state === 'connected') this.sendSubscribe(sub);
    return sub;
  }

  // ---- Driven by the session ----

  resume(): ApiXConnection['resume'] {
    // Per channel, where a resumed session continues: after the last event this client delivered; with
    // none (a reloaded page resuming its stored session), the replay its subscription asked for.
    const lastEventIds: Record<string, string> = {};
    const replay: Record<string, { last: number }> = {};
    for (const sub of this.subscriptions.values()) {
      if (sub.lastEventId !== undefined) lastEventIds[sub.channel] = sub.lastEventId;
      else if (sub.replayWanted) replay[sub.channel] = sub.replayWanted;
    }
    if (Object.keys(replay).length > 0) return { lastEventIds, replay };
    if (Object.keys(lastEventIds).length > 0) return { lastEventIds };
    return undefined;
  }

  onEstablished(info: EstablishedInfo): void {
    // On a resumed session the server restored its subscriptions; subscribe the others (all of them on a
    // new session), from the last delivered id so that the server replays what was missed.
    const granted = new Set(info.subscriptions);
    const denied = new Map(info.denied.map((d) => [d.channel, d]));
    for (const channel of granted)
      if (!this.subscriptions.has(channel))
        this.session.send({ type: 'unsubscribe', payload: { channels: [channel] } });
    for (const sub of [...this.subscriptions.values()]) {
      const denial = denied.get(sub.channel);
      if (denial) this.denySubscription(sub.channel, new ApiXError(denial.code, denial.message));
      else if (granted.has(sub.channel)) {
        const recovered = info.recovered?.[sub.channel] ?? true;
        sub.markAdded(recovered);
        this.emit('subscription.added', { channel: sub.channel, recovered });
      } else this.sendSubscribe(sub);
    }
  }

  onDisconnected(): void {
    this.ackQueue.clear();
    this.resolveUnsubscribeWaiters();
    for (const sub of this.subscriptions.values()) sub.markPending();
  }

  closeAll(): void {
    this.ackQueue.clear();
    this.resolveUnsubscribeWaiters();
    for (const sub of this.subscriptions.values()) sub.markUnsubscribed('client closed');
    this.subscriptions.clear();
  }

  // ---- Incoming frames ----

  onAdded(payload: ServerFrameOf<'subscription.added'>['payload'], correlationId: string | undefined): void {
    if (correlationId !== undefined) this.session.requests.delete(correlationId);
    for (const { channel, recovered } of payload.channels) {
      const sub = this.subscriptions.get(channel);
      if (!sub) continue;
      sub.markAdded(recovered);
      this.emit('subscription.added', { channel, recovered });
    }
    for (const denial of payload.denied)
      this.denySubscription(denial.channel, new ApiXError(denial.code, denial.message));
  }

  onRemoved(payload: ServerFrameOf<'subscription.removed'>['payload']): void {
    for (const channel of payload.channels) {
      const waiters = this.unsubscribeWaiters.get(channel);
      this.unsubscribeWaiters.delete(channel);
      for (const resolve of waiters ?? []) resolve();
      const sub = this.subscriptions.get(channel);
      if (!sub) continue;
      // Still in our map: the server revoked it (permissions changed, channel deleted...).
      this.subscriptions.delete(channel);
      sub.markUnsubscribed(payload.reason);
      this.emit('subscription.removed', { channel, reason: payload.reason });
    }
  }

  /** A channel event: to its subscription (dropped without one: unsubscribed, not yet confirmed). */
  deliver(event: ChannelEvent): void {
    const chain = this.e2eChains.get(event.channel);
    if (chain === undefined && !isE2ePayload(event.payload)) {
      this.subscriptions.get(event.channel)?.deliver(event);
      return;
    }
    // End-to-end encrypted (or behind one on its channel): decrypted in order, then delivered.
    const next = (chain ?? Promise.resolve()).then(() => this.deliverE2e(event));
    this.e2eChains.set(event.channel, next);
    void next.then(() => {
      if (this.e2eChains.get(event.channel) === next) this.e2eChains.delete(event.channel);
    });
  }

  private async deliverE2e(event: ChannelEvent): Promise<void> {
    if (isE2ePayload(event.payload)) {
      try {
        (event as { payload: unknown }).payload = await this.e2e.decrypt(
          event.channel,
          event.type,
          event.payload,
        );
      } catch (err) {
        this.emit('error', isApiXError(err) ? err : new ApiXError(ErrorCode.INTERNAL, String(err)));
        return;
      }
      // The gateway could not apply payload-field filters to the envelope: apply them now.
      const filters = this.subscriptions.get(event.channel)?.filters;
      if (filters) {
        const p = event.payload as Record<string, unknown> | null;
        for (const [k, v] of Object.entries(filters)) {
          if (k === 'types') continue;
          if (p === null || typeof p !== 'object' || p[k] !== v) return;
        }
      }
    }
    this.subscriptions.get(event.channel)?.deliver(event);
  }

  private denySubscription(channel: string, error: ApiXError): void {
    const sub = this.subscriptions.get(channel);
    if (!sub) return;
    this.subscriptions.delete(channel);
    sub.markDenied(error);
    this.emit('subscription.denied', { channel, error });
  }

  // ---- Outgoing frames ----

  private sendSubscribe(sub: Subscription): void {
    const correlationId = this.session.nextCorrelationId();
    this.session.requests.set(correlationId, {
      onError: (error) => this.denySubscription(sub.channel, error),
    });
    this.session.send({
      type: 'subscribe',
      payload: sub.subscribePayload(),
      metadata: { correlation_id: correlationId },
    });
  }

  private unsubscribe(sub: Subscription): Promise<void> {
    if (this.subscriptions.get(sub.channel) !== sub) return Promise.resolve();
    this.subscriptions.delete(sub.channel);
    sub.markUnsubscribed(undefined);
    this.emit('subscription.removed', { channel: sub.channel, reason: undefined });
    if (this.session.state !== 'connected') return Promise.resolve();
    return new Promise<void>((resolve) => {
      const waiters = this.unsubscribeWaiters.get(sub.channel) ?? [];
      waiters.push(resolve);
      this.unsubscribeWaiters.set(sub.channel, waiters);
      if (!this.session.send({ type: 'unsubscribe', payload: { channels: [sub.channel] } })) resolve();
    });
  }

  private resolveUnsubscribeWaiters(): void {
    for (const waiters of this.unsubscribeWaiters.values()) for (const resolve of waiters) resolve();
    this.unsubscribeWaiters.clear();
  }

  /** Acks are batched per channel within a tick: one frame for a burst of handled events. */
  private queueAck(channel: string, id: string): void {
    if (this.session.state !== 'connected') return;
    const ids = this.ackQueue.get(channel) ?? [];
    ids.push(id);
    this.ackQueue.set(channel, ids);
    if (this.ackFlushScheduled) return;
    this.ackFlushScheduled = true;
    queueMicrotask(() => {
      this.ackFlushScheduled = false;
      for (const [ch, all] of this.ackQueue)
        for (let i = 0; i < all.length; i += DEFAULTS.maxAckIds)
          this.session.send({
            type: 'ack',
            payload: { channel: ch, ids: all.slice(i, i + DEFAULTS.maxAckIds) },
          });
      this.ackQueue.clear();
    });
  }
}
