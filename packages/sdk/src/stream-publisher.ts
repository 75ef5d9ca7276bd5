/**
 * The publisher side of streams (docs/streams.md, docs/protocol.md §14): `client.stream(channel, ...)`
 * opens a stream and returns a {@link StreamHandle}; its appends go out as `stream.append` frames, its end
 * as `stream.end`, and a subscriber's `stream.cancel` fires its `signal`.
 *
 * What survives what:
 * - A dropped connection (or node): on reconnect every open stream is started again with its id, which the
 *   server answers with the `seq` of the last append it accepted; the handle sends what came after, merged
 *   into one append. So no piece is lost or doubled, whichever node the client lands on.
 * - Rate limits: appends count against the connection's frame rate, so the handle sends at most
 *   `streamAppendsPerSec` append frames per second for the whole client, merging what waits into one
 *   frame per stream. A `RATE_LIMITED` frame refusal (frames dropped: possibly appends) fails the open
 *   streams instead of letting them end with a hole (onFramesRefused).
 */
import { STREAM_ID_RE_SOURCE } from '@apix/protocol/constants';
import { parseChannel } from '@apix/protocol/channels';
import { ApiXError, ErrorCode } from '@apix/protocol/errors';
import type { Clock, Random, TimerHandle } from '@apix/protocol/clock';
import type { ServerFrameOf } from '@apix/protocol/schemas';
import { DEFAULTS, type ApiXClientOptions } from './options.ts';
import type { SessionLink } from './session.ts';

const STREAM_ID_RE = new RegExp(STREAM_ID_RE_SOURCE);
const EVENT_TYPE_RE = /^[a-z][a-z0-9_.]{0,63}$/;

export type StreamEndStatus = 'complete' | 'cancelled' | 'error';

export interface StreamOptions {
  /** The event type the finished stream stands for in the channel's history (e.g. `agent_message`). */
  eventType: string;
  /** Any JSON, shown to subscribers from the start (e.g. `{agentId, role}`). */
  data?: unknown;
  /** Unique in the channel; default: random. Reuse one to resume a stream this user left open. */
  streamId?: string;
}

export interface StreamEndOptions {
  /** Merged over the start's `data` in the compacted event. */
  data?: unknown;
  error?: { code: string; message: string };
}

export interface StreamEndResult {
  /** The compacted event's id (a position in the channel); undefined when the end's answer was lost. */
  readonly id: string | undefined;
  /** The stream's last `seq`. */
  readonly seq: number;
}

/** The `signal.reason` of a stream a subscriber cancelled. */
export class StreamCancelledError extends Error {
  constructor(
    readonly reason: string,
    /** The user id of the subscriber who asked. */
    readonly by: string,
  ) {
    super(`stream cancelled by ${by}${reason ? `: ${reason}` : ''}`);
    this.name = 'AbortError';
  }
}

type Phase = 'starting' | 'open' | 'ending' | 'ended';
type Reply = ServerFrameOf<'message.sent' | 'message.failed'>;

/** What a handle needs from the client's stream registry. */
interface StreamHost {
  readonly session: SessionLink;
  /** Sends the handle's waiting text now or at the next slot of the append rate. */
  requestFlush(handle: StreamHandle): void;
  /** Sends a request with a correlation id; `onReply` gets its `message.sent` / `message.failed`. */
  request(frame: object, onReply: (reply: Reply) => void): void;
  forget(handle: StreamHandle): void;
  readonly maxChars: number;
}

export class StreamHandle {
  readonly channel: string;
  readonly streamId: string;
  readonly eventType: string;
  /** Fired by a subscriber's `stream.cancel` (reason: a {@link StreamCancelledError}). */
  readonly signal: AbortSignal;
  /** Settles when the server accepted the start (with the stream's id); rejects when it refused it. */
  readonly started: Promise<{ id: string }>;
  private readonly abort = new AbortController();
  private phase: Phase = 'starting';
  private _id: string | undefined;
  /** Text of every append frame sent, by seq - 1 (kept to resend what the server did not accept). */
  private readonly frames: string[] = [];
  /** Appended, not sent yet. */
  private pending = '';
  private chars = 0;
  private failure: ApiXError | undefined;
  private endRequest: { status: StreamEndStatus; options: StreamEndOptions } | undefined;
  private endWaiters: Array<{ resolve: (r: StreamEndResult) => void; reject: (e: ApiXError) => void }> = [];
  private settleStart!: { resolve: (r: { id: string }) => void; reject: (e: ApiXError) => void };

  /** @internal Created by `ApiXClient.stream`. */
  constructor(
    private readonly host: StreamHost,
    channel: string,
    streamId: string,
    private readonly options: StreamOptions,
  ) {
    this.channel = channel;
    this.streamId = streamId;
    this.eventType = options.eventType;
    this.signal = this.abort.signal;
    this.started = new Promise((resolve, reject) => (this.settleStart = { resolve, reject }));
    this.started.catch(() => {});
  }

  /** The stream's id (the `stream.start` answer's), once started. */
  get id(): string | undefined {
    return this._id;
  }
  /** Appends so far (the last `seq` once all are sent). */
  get seq(): number {
    return this.frames.length + (this.pending === '' ? 0 : 1);
  }
  get ended(): boolean {
    return this.phase === 'ended' || this.endRequest !== undefined;
  }

  /**
   * Appends `text` to the stream. Returns at once: the text goes out now, or merged with the next pieces
   * when the client is offline or at its append rate. Throws after `end()`, after a refused append, and
   * past `streamMaxBytes` characters (STREAM_TOO_LARGE).
   */
  append(text: string): void {
    if (this.failure) throw this.failure;
    if (this.ended) throw new ApiXError(ErrorCode.STREAM_NOT_OPEN, `stream ${this.streamId} has ended`);
    if (text === '') return;
    if (this.chars + text.length > this.host.maxChars)
      throw new ApiXError(
        ErrorCode.STREAM_TOO_LARGE,
        `stream ${this.streamId} would pass ${this.host.maxChars} characters`,
      );
    this.chars += text.length;
    this.pending += text;
    if (this.phase === 'open') this.host.requestFlush(this);
  }

  /**
   * Ends the stream (after every appended piece): resolves with the compacted event's id and the last seq.
   * Calling it again returns the same outcome.
   */
  end(status: StreamEndStatus = 'complete', options: StreamEndOptions = {}): Promise<StreamEndResult> {
    const done = new Promise<StreamEndResult>((resolve, reject) => this.endWaiters.push({ resolve, reject }));
    if (this.endRequest === undefined && this.phase !== 'ended') {
      this.endRequest = { status, options };
      if (this.phase === 'open') this.sendEnd();
    }
    return done;
  }

  /**
   * Appends every string of `source` (an AI SDK `textStream`, a generator...), then ends the stream:
   * `complete`, `cancelled` when a subscriber cancelled it meanwhile (`signal`), or `error` with the
   * source's error (which is not rethrown: the stream's subscribers see it as the end status).
   */
  async pipe(source: AsyncIterable<string>): Promise<StreamEndResult> {
    try {
      for await (const text of source) {
        if (this.signal.aborted) break;
        this.append(text);
      }
    } catch (err) {
      // A source stopped by our own signal (e.g. the AI SDK's abortSignal) throws: that is a cancel.
      if (!this.ended && !this.signal.aborted) {
        const e = err instanceof ApiXError ? err : undefined;
        return this.end('error', {
          error: {
            code: e?.code ?? 'SOURCE_FAILED',
            message: err instanceof Error ? err.message : String(err),
          },
        });
      }
    }
    return this.end(this.signal.aborted ? 'cancelled' : 'complete');
  }

  // ---- Driven by the registry ----

  /** @internal Sends `stream.start` (first time, and to resume after a reconnect or a dropped frame). */
  sendStart(): void {
    if (this.phase === 'ended') return;
    const payload: Record<string, unknown> = { streamId: this.streamId, eventType: this.eventType };
    if (this.options.data !== undefined) payload.data = this.options.data;
    this.host.request({ type: 'stream.start', channel: this.channel, payload }, (reply) =>
      this.onStartReply(reply),
    );
  }

  /** @internal The connection dropped: everything goes again after the next `stream.start` answer. */
  pause(): void {
    if (this.phase === 'open' || this.phase === 'ending') this.phase = 'starting';
  }

  /** @internal The client closed: waiters reject. */
  close(error: ApiXError): void {
    this.phase = 'ended';
    this.settleStart.reject(error);
    this.rejectEnd(error);
  }

  /** @internal The pending text as one append frame (nothing when there is none or the stream is not open). */
  flush(): void {
    if (this.phase !== 'open' || this.pending === '') return;
    const text = this.pending;
    if (!this.host.session.send(this.appendFrame(text) as never)) return;
    this.pending = '';
    this.frames.push(text);
  }

  /**
   * @internal A refused append (`message.failed` naming this stream): the next `append` throws it, so a
   * `pipe` ends the stream `error` with its code.
   */
  onAppendFailed(error: ApiXError): void {
    this.failure ??= error;
  }

  /** @internal A subscriber's `stream.cancel`. */
  onCancel(reason: string, by: string): void {
    if (!this.abort.signal.aborted) this.abort.abort(new StreamCancelledError(reason, by));
  }

  private appendFrame(text: string): object {
    return { type: 'stream.append', channel: this.channel, payload: { streamId: this.streamId, text } };
  }

  private onStartReply(reply: Reply): void {
    if (this.phase === 'ended') return;
    if (reply.type === 'message.failed') {
      const error = new ApiXError(reply.payload.code, reply.payload.message);
      // Resuming a stream whose end was applied before its answer was lost: it ended as asked.
      if (this.endRequest && this._id !== undefined && error.code === ErrorCode.STREAM_NOT_OPEN) {
        this.finish({ id: undefined, seq: this.frames.length });
        return;
      }
      this.phase = 'ended';
      this.host.forget(this);
      this.settleStart.reject(error);
      this.rejectEnd(error);
      return;
    }
    this._id ??= reply.payload.id;
    this.settleStart.resolve({ id: this._id });
    // What the server did not accept goes again, merged in front of what waits.
    const accepted = Math.min(reply.payload.seq ?? 0, this.frames.length);
    this.pending = this.frames.splice(accepted).join('') + this.pending;
    this.phase = 'open';
    this.flush();
    if (this.pending !== '') this.host.requestFlush(this);
    else if (this.endRequest) this.sendEnd();
  }

  /** @internal The rate-limited flush got its slot, or `sendEnd` waits for the last append. */
  afterFlush(): void {
    if (this.phase === 'open' && this.pending === '' && this.endRequest) this.sendEnd();
  }

  private sendEnd(): void {
    if (this.pending !== '') {
      this.host.requestFlush(this);
      return;
    }
    const request = this.endRequest;
    if (request === undefined || this.phase !== 'open') return;
    this.phase = 'ending';
    const payload: Record<string, unknown> = { streamId: this.streamId, status: request.status };
    if (request.options.data !== undefined) payload.data = request.options.data;
    if (request.options.error !== undefined) payload.error = request.options.error;
    this.host.request({ type: 'stream.end', channel: this.channel, payload }, (reply) => {
      if (this.phase !== 'ending') return;
      // STREAM_NOT_OPEN: an end asked again (its answer was lost) after the first one was applied.
      if (reply.type === 'message.failed' && reply.payload.code !== ErrorCode.STREAM_NOT_OPEN) {
        this.phase = 'ended';
        this.host.forget(this);
        this.rejectEnd(new ApiXError(reply.payload.code, reply.payload.message));
      } else if (reply.type === 'message.failed') this.finish({ id: undefined, seq: this.frames.length });
      else this.finish({ id: reply.payload.id, seq: reply.payload.seq ?? this.frames.length });
    });
  }

  private finish(result: StreamEndResult): void {
    this.phase = 'ended';
    this.host.forget(this);
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w.resolve(result);
  }

  private rejectEnd(error: ApiXError): void {
    const waiters = this.endWaiters;
    this.endWaiters = [];
    for (const w of waiters) w.reject(error);
  }
}

/** The client's open streams: creation, replies, cancels, the append rate, resume after reconnects. */
export class StreamPublisher {
  /** Open streams by `channel \n streamId`; bounded by `maxOpenStreams`. */
  private readonly handles = new Map<string, StreamHandle>();
  /** Requests (`stream.start` / `stream.end`) waiting for their answer, by correlation id. */
  private readonly requests = new Map<string, { onReply: (reply: Reply) => void; timer: TimerHandle }>();
  /** Streams with text waiting for an append slot, in order. */
  private readonly waiting = new Set<StreamHandle>();
  private slotTimer: TimerHandle | undefined;
  private tokens: number;
  private tokensAt: number;
  private pausedUntil = 0;
  private readonly host: StreamHost;

  constructor(
    private readonly session: SessionLink,
    private readonly options: ApiXClientOptions,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {
    this.tokens = this.ratePerSec;
    this.tokensAt = clock.now();
    this.host = {
      session,
      requestFlush: (handle) => this.requestFlush(handle),
      request: (frame, onReply) => this.request(frame, onReply),
      forget: (handle) => {
        this.handles.delete(key(handle.channel, handle.streamId));
        this.waiting.delete(handle);
      },
      maxChars: options.streamMaxBytes ?? DEFAULTS.streamMaxBytes,
    };
  }

  private get ratePerSec(): number {
    return this.options.streamAppendsPerSec ?? DEFAULTS.streamAppendsPerSec;
  }

  /** `ApiXClient.stream`: see there. */
  open(channel: string, options: StreamOptions): StreamHandle {
    if (this.session.state === 'closed') throw new ApiXError(ErrorCode.UNAVAILABLE, 'the client is closed');
    const parsed = parseChannel(channel);
    if (!parsed.ok) throw new ApiXError(ErrorCode.BAD_REQUEST, parsed.reason);
    if (!EVENT_TYPE_RE.test(options.eventType))
      throw new ApiXError(ErrorCode.BAD_REQUEST, `not an event type: ${options.eventType}`);
    const streamId = options.streamId ?? randomStreamId(this.random);
    if (!STREAM_ID_RE.test(streamId))
      throw new ApiXError(ErrorCode.BAD_REQUEST, `not a stream id (${STREAM_ID_RE_SOURCE}): ${streamId}`);
    const k = key(channel, streamId);
    if (this.handles.has(k))
      throw new ApiXError(ErrorCode.CONFLICT, `stream ${streamId} is already open on ${channel}`);
    const max = this.options.maxOpenStreams ?? DEFAULTS.maxOpenStreams;
    if (this.handles.size >= max)
      throw new ApiXError(ErrorCode.STREAM_LIMIT, `this client has ${max} streams open; end one first`);
    const handle = new StreamHandle(this.host, channel, streamId, options);
    this.handles.set(k, handle);
    if (this.session.state === 'connected') handle.sendStart();
    return handle;
  }

  get openCount(): number {
    return this.handles.size;
  }

  /** The connection is (again) established: every stream starts or resumes. */
  onEstablished(): void {
    for (const handle of this.handles.values()) handle.sendStart();
  }

  onDisconnected(): void {
    for (const { timer } of this.requests.values()) timer.cancel();
    this.requests.clear();
    for (const handle of this.handles.values()) handle.pause();
  }

  closeAll(error: ApiXError): void {
    this.onDisconnected();
    this.slotTimer?.cancel();
    this.slotTimer = undefined;
    for (const handle of [...this.handles.values()]) handle.close(error);
    this.handles.clear();
    this.waiting.clear();
  }

  /** A `message.sent` / `message.failed` of a stream request or append: true when it was one. */
  onReply(frame: Reply, correlationId: string | undefined): boolean {
    const request = correlationId === undefined ? undefined : this.requests.get(correlationId);
    if (request !== undefined) {
      this.requests.delete(correlationId as string);
      request.timer.cancel();
      request.onReply(frame);
      return true;
    }
    if (frame.type !== 'message.failed' || frame.payload.id === undefined) return false;
    const handle = this.handles.get(key(frame.payload.channel ?? '', frame.payload.id));
    if (handle === undefined) return false;
    handle.onAppendFailed(new ApiXError(frame.payload.code, frame.payload.message));
    return true;
  }

  /** The server's `stream.cancel` to this publisher. */
  onCancel(payload: { channel: string; streamId: string; reason: string; by: string }): void {
    this.handles.get(key(payload.channel, payload.streamId))?.onCancel(payload.reason, payload.by);
  }

  /**
   * The connection's frame rate dropped frames. Appends among them leave holes that no resume can mend
   * (the server's seq counts what it took, not where), so every open stream is marked failed: its next
   * append throws RATE_LIMITED and `pipe` ends it `error`. Appends pause for the hint meanwhile. The
   * client's own append rate (`streamAppendsPerSec`, under the gateway's frame rate) prevents this.
   */
  onFramesRefused(retryAfterMs: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + retryAfterMs);
    const error = new ApiXError(
      ErrorCode.RATE_LIMITED,
      'the gateway dropped frames over its frame rate: appends may be missing from the stream',
      { retryAfterMs },
    );
    for (const handle of this.handles.values()) handle.onAppendFailed(error);
  }

  private request(frame: object, onReply: (reply: Reply) => void): void {
    const correlationId = this.session.nextCorrelationId();
    const timeoutMs = this.options.publishTimeoutMs ?? DEFAULTS.publishTimeoutMs;
    // No answer in time (a dropped frame): ask again; a resent start or end is idempotent per stream.
    const timer = this.clock.setTimeout(() => {
      if (this.requests.delete(correlationId)) this.request(frame, onReply);
    }, timeoutMs);
    this.requests.set(correlationId, { onReply, timer });
    this.session.send({ ...frame, metadata: { correlation_id: correlationId } } as never);
  }

  private requestFlush(handle: StreamHandle): void {
    this.waiting.add(handle);
    this.drain();
  }

  /** Sends waiting streams' text while the client-wide append rate allows, then waits for the next slot. */
  private drain(): void {
    if (this.slotTimer !== undefined) return;
    const now = this.clock.now();
    const rate = this.ratePerSec;
    if (rate > 0) {
      this.tokens = Math.min(rate, this.tokens + ((now - this.tokensAt) * rate) / 1000);
      this.tokensAt = now;
    }
    for (const handle of this.waiting) {
      if (now < this.pausedUntil || (rate > 0 && this.tokens < 1)) break;
      this.waiting.delete(handle);
      handle.flush();
      if (rate > 0) this.tokens -= 1;
      handle.afterFlush();
    }
    if (this.waiting.size === 0) return;
    const waitMs = Math.max(
      this.pausedUntil - now,
      rate > 0 ? Math.ceil(((1 - this.tokens) * 1000) / rate) : 0,
    );
    this.slotTimer = this.clock.setTimeout(
      () => {
        this.slotTimer = undefined;
        this.drain();
      },
      Math.max(1, waitMs),
    );
  }
}

function key(channel: string, streamId: string): string {
  return `${channel}\n${streamId}`;
}

function randomStreamId(random: Random): string {
  let id = 's';
  for (let i = 0; i < 20; i++) id += Math.floor(random() * 36).toString(36);
  return id;
}
