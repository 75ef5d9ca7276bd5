/**
 * A client's publish frame: the connection's publish rate, its publish order (ids in receive order; its
 * transport stops being read while too many are in flight), the router, and the answer
 * (`message.sent`, `message.queued` for a target that is away, or `message.failed`).
 */
import { ApiXError, ChannelType, isApiXError } from '@apix/protocol';
import type { EnvelopeMetadata, ParsedChannel, PublishFrame } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { SessionStore } from '../sessions/session-store.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import { PublishOrder } from '../router/publish-order.ts';
import { RateLimitedError } from '../ratelimit/rate-limiter.ts';
import type { RateLimitScope } from '../ratelimit/rate-limiter.ts';
import { credentialClientType } from '../auth/client-type.ts';
import type { Connection } from '../connections/session.ts';
import type { HookBus } from '../hooks.ts';
import { encodeControl } from './frames.ts';

export interface PublishDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly router: EventRouter;
  readonly hub: LocalHub;
  readonly sessionStore: SessionStore;
  /** Counts a rate-limit refusal against the connection (abuse closes it). */
  refused(conn: Connection, scope: RateLimitScope): boolean;
}

export class PublishHandler {
  /** Times a connection's transport stopped being read: too many of its publishes in flight (since start). */
  publishPauses = 0;

  constructor(private readonly deps: PublishDeps) {}

  handle(conn: Connection, frame: PublishFrame, correlationId: string | undefined): void {
    const session = conn.session!;
    const now = this.deps.clock.now();
    const bucket = conn.publishBucket;
    if (!bucket.take(now)) return this.rateLimited(conn, frame, correlationId, now);
    conn.publishAdmitted();
    const order = conn.publishOrderOr(() => this.newPublishOrder(conn));
    const ticket = order.enter();
    this.deps.router
      .publish(
        {
          principal: session.principal,
          clientType: credentialClientType(session.principal),
          peer: conn.peer,
          connection: this.deps.hooks.has('onPublish') ? conn.info() : undefined,
          publisher: { nodeId: this.deps.nodeId, connectionId: conn.id },
          channel: frame.channel,
          type: frame.type,
          payload: frame.payload,
          metadata: frame.metadata as EnvelopeMetadata | undefined,
        },
        order,
        ticket,
      )
      .then(
        (r) => {
          order.settle(ticket);
          const reply = (queued: boolean) =>
            conn.send(
              encodeControl(
                queued ? 'message.queued' : 'message.sent',
                { id: r.id, channel: frame.channel },
                this.deps.clock.now(),
                correlationId,
              ),
            );
          if (r.channel.type !== ChannelType.PRIVATE_USER) return reply(this.isHeldForOfflineTarget(r.key));
          void this.isPrivateTargetAway(session.orgId, r.key, r.channel).then(reply);
        },
        (err) => {
          order.settle(ticket);
          this.failed(conn, frame, correlationId, err);
        },
      );
  }

  /** The connection's publish rate refused the frame: `message.failed` RATE_LIMITED, counted as a refusal. */
  private rateLimited(
    conn: Connection,
    frame: PublishFrame,
    correlationId: string | undefined,
    now: number,
  ): void {
    const retryAfterMs = conn.publishBucket.retryAfterMs(now);
    if (conn.publishRefused())
      this.deps.hooks.emit('onRateLimited', {
        principal: conn.principal,
        peer: conn.peer,
        scope: 'publish',
      });
    conn.send(
      encodeControl(
        'message.failed',
        {
          code: 'RATE_LIMITED',
          message: `too many publishes on this connection; retry after ${retryAfterMs} ms`,
          channel: frame.channel,
          retryAfterMs,
        },
        now,
        correlationId,
      ),
    );
    this.deps.refused(conn, 'publish');
  }

  private failed(
    conn: Connection,
    frame: PublishFrame,
    correlationId: string | undefined,
    err: unknown,
  ): void {
    const e = isApiXError(err) ? err : new ApiXError('INTERNAL', 'publish failed');
    if (!isApiXError(err)) this.deps.log.error({ err }, 'publish failed');
    conn.send(
      encodeControl(
        'message.failed',
        {
          code: e.code,
          message: e.message,
          channel: frame.channel,
          ...(e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
        },
        this.deps.clock.now(),
        correlationId,
      ),
    );
    if (err instanceof RateLimitedError) this.deps.refused(conn, err.scope);
  }

  /**
   * The connection's publish order (ids in receive order), made at its first publish; its transport stops
   * being read while too many of its publishes are in flight.
   */
  private newPublishOrder(conn: Connection): PublishOrder {
    return new PublishOrder({
      maxInFlight: this.deps.config.maxPublishesInFlight,
      pause: () => {
        this.publishPauses++;
        conn.transport.pauseReading();
      },
      resume: () => conn.transport.resumeReading(),
    });
  }

  /** A `user:` channel whose only subscribers here are away: the event waits in their queues. */
  private isHeldForOfflineTarget(key: string): boolean {
    const subs = this.deps.hub.subscribers(key);
    if (!subs || subs.size === 0) return false;
    for (const sub of subs) if (sub.session.isLive) return false;
    for (const sub of subs) if (sub.queuesWhileAway) return true;
    return false;
  }

  /**
   * A `user:` channel's target may wait on another node: queued when no subscriber is live here and the
   * session store (shared by the nodes) says every session receiving the channel is away. If the store
   * does not answer, or does not know yet (a snapshot being written), what this node knows decides.
   */
  private async isPrivateTargetAway(orgId: string, key: string, channel: ParsedChannel): Promise<boolean> {
    const subs = this.deps.hub.subscribers(key);
    if (subs) for (const sub of subs) if (sub.session.isLive) return false;
    const local = this.isHeldForOfflineTarget(key);
    if (channel.subject === undefined) return local;
    try {
      const state = await this.deps.sessionStore.privateChannelState(orgId, channel.subject);
      return state === 'away' || (state === 'none' && local);
    } catch {
      return local;
    }
  }
}
