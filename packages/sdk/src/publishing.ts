/**
 * The client's publishes: validated, end-to-end encrypted in publish order where the channel has keys,
 * sent with a correlation id and an idempotency key, settled by the server's reply (or a timeout), held in a
 * bounded buffer while offline, and resent first after a reconnect with the same idempotency key.
 *
 * A `RATE_LIMITED` refusal does not fail the publish: it goes back to the queue, and the client paces every
 * publish by the refusal's `retryAfterMs` (one per that interval) until the queue has drained, so that a
 * producer faster than its limit is slowed down instead of collecting the refusals that close a connection.
 */
import { EVENT_TYPE_RE, isControlType } from '@apix/protocol/constants';
import { parseChannel } from '@apix/protocol/channels';
import { ApiXError, ErrorCode, isApiXError } from '@apix/protocol/errors';
import { E2E_VERSION } from '@apix/protocol/e2e';
import type { PublishFrame, ServerFrameOf } from '@apix/protocol/schemas';
import type { Clock, TimerHandle } from '@apix/protocol/clock';
import type { E2eCipher } from './e2e.ts';
import { DEFAULTS, type ApiXClientOptions } from './options.ts';
import type { Emit, SessionLink } from './session.ts';
import type { PayloadOf, PublishableType, PublishOptions, PublishResult } from './types.ts';

export interface PendingPublish {
  readonly correlationId: string;
  readonly frame: PublishFrame;
  readonly timeoutMs: number;
  readonly resolve: (result: PublishResult) => void;
  readonly reject: (error: ApiXError) => void;
  timer: TimerHandle | undefined;
  /** Publish order: a refused publish goes back to the queue at its place. */
  readonly order: number;
  /** `RATE_LIMITED` refusals of this publish so far. */
  refusals: number;
}

/** Pacing after a `RATE_LIMITED` refusal: one publish per `intervalMs` until the queue is empty. */
interface Pace {
  intervalMs: number;
  timer: TimerHandle | undefined;
}

/** The server's replies to a publish. */
export type PublishReplyFrame = ServerFrameOf<'message.sent' | 'message.queued' | 'message.failed'>;

export class Publisher {
  private e2ePublishes: Promise<void> = Promise.resolve();
  /** Sent publishes waiting for `message.sent` / `message.queued` / `message.failed`. */
  private readonly inFlight = new Map<string, PendingPublish>();
  /** Publishes not sent yet (offline, or paced after a rate-limit refusal), in order. */
  private outbox: PendingPublish[] = [];
  private pace: Pace | undefined;
  private nextOrder = 0;

  constructor(
    private readonly session: SessionLink,
    private readonly options: ApiXClientOptions,
    private readonly clock: Clock,
    private readonly e2e: E2eCipher,
    private readonly emit: Emit,
  ) {}

  /** Publishes waiting for a connection. */
  get buffered(): number {
    return this.outbox.length;
  }
  get inFlightCount(): number {
    return this.inFlight.size;
  }
  /** The publish in flight with this correlation id. */
  pending(correlationId: string | undefined): PendingPublish | undefined {
    return correlationId === undefined ? undefined : this.inFlight.get(correlationId);
  }

  /** `ApiXClient.publish`: see there. */
  publish<T extends string>(
    channel: string,
    type: PublishableType<T>,
    payload: PayloadOf<T>,
    options: PublishOptions,
  ): Promise<PublishResult> {
    if (this.e2e.has(channel)) {
      // Encrypted in publish order (WebCrypto is asynchronous), then published like any other.
      const encrypted = this.e2ePublishes.then(() => this.e2e.encrypt(channel, type, payload));
      this.e2ePublishes = encrypted.then(
        () => undefined,
        () => undefined,
      );
      return encrypted.then((envelope) =>
        this.publishNow(channel, type, envelope as PayloadOf<T>, {
          ...options,
          metadata: { ...options.metadata, e2e: E2E_VERSION },
        }),
      );
    }
    return this.publishNow(channel, type, payload, options);
  }

  private publishNow<T extends string>(
    channel: string,
    type: PublishableType<T>,
    payload: PayloadOf<T>,
    options: PublishOptions,
  ): Promise<PublishResult> {
    if (this.session.state === 'closed')
      return Promise.reject(new ApiXError(ErrorCode.UNAVAILABLE, 'the client is closed'));
    const parsed = parseChannel(channel);
    if (!parsed.ok) return Promise.reject(new ApiXError(ErrorCode.BAD_REQUEST, parsed.reason));
    if (!EVENT_TYPE_RE.test(type) || isControlType(type))
      return Promise.reject(new ApiXError(ErrorCode.BAD_REQUEST, `not a publishable event type: ${type}`));
    const correlationId = this.session.nextCorrelationId();
    const frame: PublishFrame = {
      type,
      channel,
      payload,
      metadata: {
        ...options.metadata,
        correlation_id: correlationId,
        idempotency_key: options.idempotencyKey ?? correlationId,
      },
    };
    return new Promise<PublishResult>((resolve, reject) => {
      const entry: PendingPublish = {
        correlationId,
        frame,
        timeoutMs: options.timeoutMs ?? this.options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs,
        resolve,
        reject,
        timer: undefined,
        order: this.nextOrder++,
        refusals: 0,
      };
      if (this.session.state === 'connected' && !this.session.isMoving && this.pace === undefined)
        this.sendPublish(entry);
      else if (this.pace !== undefined) {
        if (this.outbox.length >= (this.options.pacedBufferSize ?? DEFAULTS.pacedBufferSize))
          reject(new ApiXError(ErrorCode.RATE_LIMITED, 'rate limited: the queue of paced publishes is full'));
        else this.outbox.push(entry);
      } else if (this.outbox.length >= (this.options.offlineBufferSize ?? DEFAULTS.offlineBufferSize))
        reject(new ApiXError(ErrorCode.UNAVAILABLE, 'offline: the publish buffer is full'));
      else this.outbox.push(entry);
    });
  }

  /** `message.sent`, `message.queued` or `message.failed`. */
  onReply(frame: PublishReplyFrame, correlationId: string | undefined): void {
    const entry = this.pending(correlationId);
    if (frame.type === 'message.failed') {
      const { code, message, retryAfterMs } = frame.payload;
      if (entry && code === ErrorCode.RATE_LIMITED && retryAfterMs !== undefined && this.retryLater(entry))
        this.paceFor(retryAfterMs);
      else if (entry)
        this.settlePublish(
          entry,
          new ApiXError(code, message, retryAfterMs === undefined ? undefined : { retryAfterMs }),
        );
      else this.emit('message.failed', frame.payload);
    } else if (entry) {
      this.settlePublish(entry, {
        status: frame.type === 'message.sent' ? 'sent' : 'queued',
        id: frame.payload.id,
      });
    }
  }

  /** A rate-limited publish back to the queue at its place; false when it was refused too often. */
  private retryLater(entry: PendingPublish): boolean {
    if (++entry.refusals > (this.options.rateLimitRetries ?? DEFAULTS.rateLimitRetries)) return false;
    if (!this.inFlight.delete(entry.correlationId)) return false;
    entry.timer?.cancel();
    entry.timer = undefined;
    const at = this.outbox.findIndex((e) => e.order > entry.order);
    if (at < 0) this.outbox.push(entry);
    else this.outbox.splice(at, 0, entry);
    return true;
  }

  /**
   * Pauses publishing for `retryAfterMs` (a `RATE_LIMITED` refusal, of a publish or of the connection's
   * frame rate), then sends the queue one publish per `retryAfterMs`: the time the server's bucket takes to
   * refill one token, so the client's pace follows the limit it was given.
   */
  paceFor(retryAfterMs: number): void {
    const intervalMs = Math.max(1, retryAfterMs);
    const pace = (this.pace ??= { intervalMs, timer: undefined });
    pace.intervalMs = intervalMs;
    pace.timer?.cancel();
    pace.timer = this.clock.setTimeout(() => this.paceTick(), intervalMs);
  }

  private paceTick(): void {
    const pace = this.pace;
    if (pace === undefined) return;
    pace.timer = undefined;
    // Offline: the reconnect's flushOutbox goes on pacing.
    if (this.session.state !== 'connected' || this.session.isMoving) return;
    const entry = this.outbox.shift();
    if (entry === undefined) {
      this.pace = undefined;
      return;
    }
    pace.timer = this.clock.setTimeout(() => this.paceTick(), pace.intervalMs);
    this.sendPublish(entry);
  }

  private sendPublish(entry: PendingPublish): void {
    this.inFlight.set(entry.correlationId, entry);
    entry.timer = this.clock.setTimeout(() => {
      this.settlePublish(
        entry,
        new ApiXError(ErrorCode.UNAVAILABLE, `no reply to the publish within ${entry.timeoutMs} ms`),
      );
    }, entry.timeoutMs);
    this.session.send(entry.frame);
  }

  settlePublish(entry: PendingPublish, outcome: PublishResult | ApiXError): void {
    if (!this.inFlight.delete(entry.correlationId)) return;
    this.session.continueMove();
    entry.timer?.cancel();
    entry.timer = undefined;
    if (isApiXError(outcome)) entry.reject(outcome);
    else entry.resolve(outcome);
  }

  /** Publishes sent on the dropped connection go first on the next one (same idempotency key). */
  requeueInFlight(): void {
    const requeued = [...this.inFlight.values()];
    for (const entry of requeued) {
      entry.timer?.cancel();
      entry.timer = undefined;
    }
    this.inFlight.clear();
    this.outbox = [...requeued, ...this.outbox].sort((a, b) => a.order - b.order);
  }

  flushOutbox(): void {
    if (this.pace !== undefined) {
      if (this.pace.timer === undefined) this.paceTick();
      return;
    }
    const pending = this.outbox;
    this.outbox = [];
    for (const entry of pending) this.sendPublish(entry);
  }

  /** The client closed: every publish in flight or buffered rejects with `error`. */
  rejectAll(error: ApiXError): void {
    for (const entry of [...this.inFlight.values(), ...this.outbox]) {
      entry.timer?.cancel();
      entry.reject(error);
    }
    this.inFlight.clear();
    this.outbox = [];
    this.pace?.timer?.cancel();
    this.pace = undefined;
  }
}
