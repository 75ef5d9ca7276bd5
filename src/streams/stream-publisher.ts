/**
 * The publisher side of streams on one node (docs/protocol.md §14): `stream.start`, `stream.append`,
 * `stream.end` and `stream.cancel` from clients. Appends are buffered per stream for the flush window,
 * then stored (the StreamStore: accepted = stored) and fanned out over the broker's live path as one
 * message `fromSeq..seq`; the end writes ONE compacted event through the EventRouter (history, durable
 * records, sealing on encrypted channels). A cancel reaches the publishing connection on any node through
 * the broker's control messages. Streams without appends for the idle timeout are ended `error`.
 */
import { ApiXError, channelKey, isApiXError, parseChannel } from '@apix/protocol';
import type { ClientStreamFrame, ParsedChannel } from '@apix/protocol';
import type { Broker, ControlMessage } from '../broker/broker.ts';
import type { Clock, Random, TimerHandle } from '../clock.ts';
import type { HookBus } from '../hooks.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../log.ts';
import type { Connection } from '../connections/session.ts';
import type { Principal } from '../auth/principal.ts';
import { credentialClientType } from '../auth/client-type.ts';
import { authorize } from '../subscriptions/permissions.ts';
import type { ChannelRegistry } from '../subscriptions/channel-registry.ts';
import type { EventRouter } from '../router/event-router.ts';
import type { AtRestCipher } from '../crypto/at-rest.ts';
import { encodeControl } from '../gateway/frames.ts';
import type { StreamOwner, StreamState, StreamStore } from './stream-store.ts';
import type { StoredText } from './stream-frames.ts';
import { cancelFrame, encodeLive } from './stream-frames.ts';

export interface PublisherDeps {
  readonly config: Config;
  readonly nodeId: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly log: Logger;
  readonly broker: Broker;
  readonly router: EventRouter;
  readonly channels: ChannelRegistry;
  readonly store: StreamStore;
  readonly text: StoredText;
  readonly atRest: AtRestCipher | undefined;
  /** Counts a rate-limit refusal against the connection (abuse closes it). */
  refused(conn: Connection, scope: 'publish'): boolean;
  /** `onStreamEnded` once per ended stream, by the node that wrote its compacted event (webhooks). */
  readonly hooks?: Pick<HookBus, 'has' | 'emit'> | undefined;
}

/** A stream this node's connection publishes. */
class Owned {
  /** Appends received, not yet stored (the flush window). */
  buffer: string[] = [];
  timer: TimerHandle | undefined;
  /** The store writes of this stream, one after the other. */
  flushing: Promise<void> = Promise.resolve();
  ending = false;
  constructor(
    readonly conn: Connection,
    readonly channel: ParsedChannel,
    readonly key: string,
    readonly streamId: string,
    readonly encrypted: boolean,
    /** UTF-8 bytes accepted or buffered. */
    public bytes: number,
    public lastAt: number,
  ) {}
}

const CANCEL_KIND = 'stream.cancel';
/** Stream frames of one connection waiting for the earlier ones (the store's answers). */
const MAX_WAITING_FRAMES = 10_000;

export class StreamPublisher {
  /** By `<connection id>\n<channel name>\n<streamId>`. */
  private readonly owned = new Map<string, Owned>();
  private readonly byConn = new Map<Connection, Set<Owned>>();
  /** Each connection's stream frames, handled in the order they came. */
  private readonly chains = new Map<Connection, Promise<void>>();
  private readonly waiting = new Map<Connection, number>();
  private idCounter = 0;
  appendsAccepted = 0;
  flushes = 0;
  refusals = 0;

  constructor(private readonly deps: PublisherDeps) {}

  get ownedCount(): number {
    return this.owned.size;
  }

  /** A client's stream frame (validated), after the connection's earlier ones. */
  handle(conn: Connection, frame: ClientStreamFrame, correlationId: string | undefined): void {
    const waiting = this.waiting.get(conn) ?? 0;
    // Bounded: while the store is slow or away, a connection's stream frames wait here, up to a limit.
    if (waiting >= MAX_WAITING_FRAMES)
      return this.fail(
        conn,
        frame,
        correlationId,
        new ApiXError('RATE_LIMITED', 'too many stream frames waiting'),
      );
    this.waiting.set(conn, waiting + 1);
    const prev = this.chains.get(conn) ?? Promise.resolve();
    const next = prev
      .then(() => this.dispatch(conn, frame, correlationId))
      .catch((err: unknown) => this.fail(conn, frame, correlationId, err))
      .finally(() => {
        const n = (this.waiting.get(conn) ?? 1) - 1;
        if (n > 0) this.waiting.set(conn, n);
        else this.waiting.delete(conn);
      });
    this.chains.set(conn, next);
    void next.then(() => {
      if (this.chains.get(conn) === next) this.chains.delete(conn);
    });
  }

  /** Stream frames received and not yet handled, all connections (a gauge). */
  get waitingFrames(): number {
    let n = 0;
    for (const w of this.waiting.values()) n += w;
    return n;
  }

  private dispatch(
    conn: Connection,
    frame: ClientStreamFrame,
    cid: string | undefined,
  ): Promise<void> | void {
    switch (frame.type) {
      case 'stream.start':
        return this.start(conn, frame.channel, frame.payload, cid);
      case 'stream.append':
        return this.append(conn, frame.channel, frame.payload.streamId, frame.payload.text);
      case 'stream.end':
        return this.end(conn, frame.channel, frame.payload, cid);
      case 'stream.cancel':
        return this.cancel(conn, frame.channel, frame.payload);
    }
  }

  // ---------------------------------------------------------------- start

  private async start(
    conn: Connection,
    name: string,
    p: { streamId: string; eventType: string; data?: unknown },
    cid: string | undefined,
  ): Promise<void> {
    if (!this.takePublish(conn, name, cid)) return;
    const { channel, key, encrypted } = this.check(conn, name);
    const mine = this.byConn.get(conn);
    const limit = this.deps.config.streams.maxOpenPerConnection;
    if (mine !== undefined && mine.size >= limit && !this.owned.has(ownedKey(conn.id, name, p.streamId)))
      throw new ApiXError(
        'STREAM_LIMIT',
        `this connection has ${limit} streams open (APIX_MAX_OPEN_STREAMS)`,
      );
    const dataJson = JSON.stringify(p.data ?? null);
    if (dataJson.length > this.deps.config.maxMessageBytes)
      throw new ApiXError('PAYLOAD_TOO_LARGE', `data is over ${this.deps.config.maxMessageBytes} bytes`);
    // This connection starting its own open stream again: what its window holds is stored first, so
    // that the answer's seq counts it.
    const again = this.owned.get(ownedKey(conn.id, name, p.streamId));
    if (again) await this.flush(again);
    const now = this.deps.clock.now();
    const r = await this.deps.store.start({
      ...{ key, streamId: p.streamId, id: this.newId(now), eventType: p.eventType, dataJson },
      ...{ owner: this.owner(conn), userId: conn.session!.userId, now },
    });
    if (r.outcome === 'taken')
      throw new ApiXError(
        'STREAM_NOT_OPEN',
        r.state.status === 'streaming'
          ? `stream ${p.streamId} is open by another user`
          : `stream ${p.streamId} already ended; use a new streamId`,
      );
    // A resume on this node (another connection, or this one again): the old entry goes.
    for (const o of [...this.owned.values()]) if (o.key === key && o.streamId === p.streamId) this.forget(o);
    const owned = new Owned(conn, channel, key, p.streamId, encrypted, r.state.bytes, now);
    this.own(owned);
    if (r.outcome === 'created') {
      const live = { kind: 'start' as const, channel: name, streamId: p.streamId, id: r.state.id };
      await this.deps.broker.publishLive({
        key,
        type: 'stream.start',
        timestamp: now,
        frame: encodeLive({ ...live, eventType: p.eventType, dataJson }),
      });
    }
    const reply = { id: r.state.id, channel: name, streamId: p.streamId, seq: r.state.seq };
    conn.send(encodeControl('message.sent', reply, this.deps.clock.now(), cid));
  }

  /** The stream's id: `s-<ms base36>-<random>`, unique without asking the store. */
  private newId(now: number): string {
    const r = Math.floor(this.deps.random() * 2 ** 32).toString(36);
    return `s-${now.toString(36)}-${r}${(this.idCounter++ % 1296).toString(36)}`;
  }

  private owner(conn: Connection): StreamOwner {
    return { nodeId: this.deps.nodeId, connectionId: conn.id };
  }

  private own(o: Owned): void {
    this.owned.set(ownedKey(o.conn.id, o.channel.name, o.streamId), o);
    let set = this.byConn.get(o.conn);
    if (!set) this.byConn.set(o.conn, (set = new Set()));
    set.add(o);
  }

  private forget(o: Owned): void {
    o.timer?.cancel();
    o.timer = undefined;
    const k = ownedKey(o.conn.id, o.channel.name, o.streamId);
    if (this.owned.get(k) === o) this.owned.delete(k);
    const set = this.byConn.get(o.conn);
    set?.delete(o);
    if (set?.size === 0) this.byConn.delete(o.conn);
  }

  // ---------------------------------------------------------------- append and the flush window

  private async append(conn: Connection, name: string, streamId: string, text: string): Promise<void> {
    const o = this.owned.get(ownedKey(conn.id, name, streamId));
    if (o === undefined || o.ending)
      throw new ApiXError('STREAM_NOT_OPEN', `no open stream ${streamId} of this connection on ${name}`);
    const bytes = Buffer.byteLength(text);
    const max = this.deps.config.streams.maxBytes;
    if (o.bytes + bytes > max)
      throw new ApiXError(
        'STREAM_TOO_LARGE',
        `stream ${streamId} would pass ${max} bytes (APIX_STREAM_MAX_BYTES)`,
      );
    o.bytes += bytes;
    o.buffer.push(text);
    o.lastAt = this.deps.clock.now();
    const windowMs = this.deps.config.streams.flushMs;
    if (windowMs === 0) return this.flush(o);
    o.timer ??= this.deps.clock.setTimeout(() => void this.flush(o), windowMs);
  }

  /** Stores what the window holds, then fans it out; resolves when every earlier write is done. */
  private flush(o: Owned): Promise<void> {
    o.timer?.cancel();
    o.timer = undefined;
    if (o.buffer.length === 0) return o.flushing;
    const pieces = o.buffer;
    o.buffer = [];
    o.flushing = o.flushing.then(() => this.store(o, pieces));
    return o.flushing;
  }

  private async store(o: Owned, pieces: readonly string[]): Promise<void> {
    const text = pieces.join('');
    const bytes = Buffer.byteLength(text);
    const now = this.deps.clock.now();
    const name = o.channel.name;
    let r;
    try {
      r = await this.deps.store.append(o.key, o.streamId, {
        ...{ owner: this.owner(o.conn), text: this.deps.text.encode(o.key, text, o.encrypted) },
        ...{ count: pieces.length, bytes, maxBytes: this.deps.config.streams.maxBytes, now },
      });
    } catch (err) {
      o.bytes -= bytes;
      return this.failStream(o, err, `${pieces.length} appends were not accepted`);
    }
    if (!r.ok) {
      o.bytes -= bytes;
      if (r.reason !== 'too_large') this.forget(o);
      const code = r.reason === 'too_large' ? 'STREAM_TOO_LARGE' : 'STREAM_NOT_OPEN';
      return this.failStream(o, new ApiXError(code, `${pieces.length} appends refused: ${r.reason}`), '');
    }
    this.flushes++;
    this.appendsAccepted += pieces.length;
    const live = { kind: 'append' as const, channel: name, streamId: o.streamId, fromSeq: r.fromSeq };
    await this.deps.broker
      .publishLive({
        key: o.key,
        type: 'stream.append',
        timestamp: now,
        frame: encodeLive({ ...live, seq: r.seq, text }),
      })
      // Stored is accepted: subscribers' nodes repair a missed live message from the store.
      .catch((err: unknown) => this.deps.log.warn({ err, key: o.key }, 'stream append fan-out failed'));
  }

  private failStream(o: Owned, err: unknown, what: string): void {
    const e = isApiXError(err) ? err : new ApiXError('UNAVAILABLE', `stream store failed: ${what}`);
    if (!isApiXError(err)) this.deps.log.warn({ err, key: o.key }, 'stream append not stored');
    this.refusals++;
    o.conn.send(
      encodeControl(
        'message.failed',
        { code: e.code, message: e.message, channel: o.channel.name, id: o.streamId },
        this.deps.clock.now(),
      ),
    );
  }

  // ---------------------------------------------------------------- end

  private async end(
    conn: Connection,
    name: string,
    p: { streamId: string; status: 'complete' | 'cancelled' | 'error'; data?: unknown; error?: unknown },
    cid: string | undefined,
  ): Promise<void> {
    if (!this.takePublish(conn, name, cid)) return;
    const o = this.owned.get(ownedKey(conn.id, name, p.streamId));
    if (o === undefined || o.ending)
      throw new ApiXError('STREAM_NOT_OPEN', `no open stream ${p.streamId} of this connection on ${name}`);
    o.ending = true;
    try {
      await this.flush(o);
      const ended = await this.deps.store.end(o.key, o.streamId, {
        status: p.status,
        ...(p.data !== undefined ? { endDataJson: JSON.stringify(p.data) } : {}),
        ...(p.error !== undefined ? { errorJson: JSON.stringify(p.error) } : {}),
        now: this.deps.clock.now(),
        owner: this.owner(conn),
      });
      if (!ended.ok)
        throw new ApiXError('STREAM_NOT_OPEN', `stream ${p.streamId} is not open (${ended.reason})`);
      const id = await this.compactRetrying(ended.state, conn.session!.principal, conn);
      const reply = { id, channel: name, streamId: p.streamId, seq: ended.state.seq };
      conn.send(encodeControl('message.sent', reply, this.deps.clock.now(), cid));
    } finally {
      this.forget(o);
    }
  }

  /**
   * `compact`, tried again while the engine is unavailable (the stream has ended in the store: its
   * compacted event must follow): 4 attempts over about 3 s.
   */
  private async compactRetrying(
    s: StreamState,
    principal: Principal,
    conn: Connection | undefined,
  ): Promise<string> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.compact(s, principal, conn);
      } catch (err) {
        if (attempt >= 3 || !isApiXError(err) || err.code !== 'UNAVAILABLE') throw err;
        this.deps.log.warn({ err, key: s.key, streamId: s.streamId }, 'compacted event not written; again');
        await new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, 200 * 2 ** attempt));
      }
    }
  }

  /**
   * Writes the stream's ONE compacted event (history, durable records, sealed when encrypted) and takes
   * it off the open list. Its live delivery is what ends the stream for subscribers (`stream.end`).
   */
  private async compact(s: StreamState, principal: Principal, conn: Connection | undefined): Promise<string> {
    const name = s.key.slice(s.key.indexOf('/') + 1);
    const encrypted = this.isEncrypted(s.key, name);
    const payload: Record<string, unknown> = {
      ...asObject(s.dataJson),
      ...asObject(s.endDataJson),
      streamId: s.streamId,
      text: this.deps.text.decode(s.key, s.text, encrypted),
      seq: s.seq,
      status: s.status,
    };
    if (s.errorJson !== undefined) payload.error = JSON.parse(s.errorJson) as unknown;
    const r = await this.deps.router.publish({
      principal,
      clientType: credentialClientType(principal),
      peer: conn?.peer ?? { remoteAddress: undefined, userAgent: undefined, origin: undefined },
      connection: undefined,
      publisher: conn ? { nodeId: this.deps.nodeId, connectionId: conn.id } : undefined,
      channel: name,
      type: s.eventType,
      payload,
      metadata: { stream: s.streamId },
      maxPayloadBytes: this.deps.config.streams.maxBytes * 2 + this.deps.config.maxMessageBytes,
      limited: false,
    });
    await this.deps.store.compacted(s.key, s.streamId, r.id);
    if (this.deps.hooks?.has('onStreamEnded'))
      this.deps.hooks.emit('onStreamEnded', {
        orgId: s.key.slice(0, s.key.indexOf('/')),
        channel: name,
        streamId: s.streamId,
        status: s.status,
        bytes: Buffer.byteLength(payload.text as string),
        appends: s.seq,
      });
    return r.id;
  }

  // ---------------------------------------------------------------- cancel

  private async cancel(
    conn: Connection,
    name: string,
    p: { streamId: string; reason?: string },
  ): Promise<void> {
    const { key } = this.check(conn, name);
    const s = await this.deps.store.get(key, p.streamId);
    if (!s || s.status !== 'streaming')
      throw new ApiXError('STREAM_NOT_OPEN', `no open stream ${p.streamId} on ${name}`);
    const msg = {
      kind: CANCEL_KIND,
      from: this.deps.nodeId,
      to: s.owner.nodeId,
      connectionId: s.owner.connectionId,
      channel: name,
      streamId: p.streamId,
      reason: p.reason ?? '',
      by: conn.session!.userId,
    };
    if (s.owner.nodeId === this.deps.nodeId) this.onControl(msg);
    else await this.deps.broker.publishControl(msg);
  }

  /** A control message from another node (or this one): a cancel for a stream published here. */
  onControl(msg: ControlMessage): void {
    if (msg.kind !== CANCEL_KIND || msg.to !== this.deps.nodeId) return;
    const o = this.owned.get(ownedKey(String(msg.connectionId), String(msg.channel), String(msg.streamId)));
    if (!o) return;
    const frame = cancelFrame(
      o.channel.name,
      o.streamId,
      String(msg.reason),
      String(msg.by),
      this.deps.clock.now(),
    );
    o.conn.send(frame);
  }

  // ---------------------------------------------------------------- connections and the idle sweep

  /** The connection closed: its streams stay open for it to resume (else the idle sweep ends them). */
  connectionClosed(conn: Connection): void {
    const set = this.byConn.get(conn);
    if (!set) return;
    for (const o of [...set]) {
      void this.flush(o);
      this.forget(o);
    }
    this.chains.delete(conn);
    this.waiting.delete(conn);
  }

  /** Ends `error` a stream (this node's or one it mirrors) with no append since `idleBefore`. */
  async endIdle(key: string, streamId: string, idleBefore: number): Promise<boolean> {
    const errorJson = JSON.stringify({
      code: 'STREAM_IDLE_TIMEOUT',
      message: `no append for ${this.deps.config.streams.idleTimeoutMs} ms`,
    });
    const r = await this.deps.store.end(key, streamId, {
      ...{ status: 'error', errorJson, now: this.deps.clock.now(), idleBefore },
    });
    if (!r.ok) return false;
    const s = r.state;
    const orgId = key.slice(0, key.indexOf('/'));
    await this.compactRetrying(s, serverPrincipal(orgId, s.userId), undefined);
    for (const o of [...this.owned.values()])
      if (o.key === key && o.streamId === streamId) {
        this.failStream(o, new ApiXError('STREAM_IDLE_TIMEOUT', `stream ${streamId} ended: idle`), '');
        this.forget(o);
      }
    return true;
  }

  /** This node's streams idle since `idleBefore` (their appends are all stored or buffered here). */
  idleOwned(idleBefore: number): Array<{ key: string; streamId: string }> {
    const out: Array<{ key: string; streamId: string }> = [];
    for (const o of this.owned.values())
      if (o.lastAt < idleBefore && o.buffer.length === 0) out.push({ key: o.key, streamId: o.streamId });
    return out;
  }

  // ---------------------------------------------------------------- checks and errors

  /** The channel, its key and whether it is sealed, if this connection may publish on it. */
  private check(conn: Connection, name: string): { channel: ParsedChannel; key: string; encrypted: boolean } {
    const parsed = parseChannel(name);
    if (!parsed.ok) throw new ApiXError('BAD_REQUEST', parsed.reason);
    const principal = conn.session!.principal;
    const settings = this.deps.channels.get(principal.orgId, parsed.channel.name);
    const d = authorize(
      'publish',
      principal,
      credentialClientType(principal),
      parsed.channel,
      settings?.permissions,
    );
    if (!d.allowed) throw new ApiXError('FORBIDDEN', `publish to ${name} denied: ${d.reason}`);
    const encrypted = settings?.encrypted === true;
    if (encrypted && this.deps.atRest === undefined)
      throw new ApiXError(
        'UNAVAILABLE',
        `${name} is configured encrypted, but this gateway has no encryption keys`,
      );
    return { channel: parsed.channel, key: channelKey(principal.orgId, parsed.channel), encrypted };
  }

  isEncrypted(key: string, name: string): boolean {
    return this.deps.channels.get(key.slice(0, key.indexOf('/')), name)?.encrypted === true;
  }

  /** `stream.start` and `stream.end` count as publishes (the connection's publish rate). */
  private takePublish(conn: Connection, name: string, cid: string | undefined): boolean {
    const now = this.deps.clock.now();
    if (conn.publishBucket.take(now)) {
      conn.publishAdmitted();
      return true;
    }
    const retryAfterMs = conn.publishBucket.retryAfterMs(now);
    conn.publishRefused();
    const failed = {
      code: 'RATE_LIMITED' as const,
      message: 'too many publishes on this connection',
      channel: name,
      retryAfterMs,
    };
    conn.send(encodeControl('message.failed', failed, now, cid));
    this.deps.refused(conn, 'publish');
    return false;
  }

  private fail(conn: Connection, frame: ClientStreamFrame, cid: string | undefined, err: unknown): void {
    const e = isApiXError(err) ? err : new ApiXError('INTERNAL', 'stream frame failed');
    if (!isApiXError(err)) this.deps.log.error({ err }, 'stream frame failed');
    this.refusals++;
    const failed = { code: e.code, message: e.message, channel: frame.channel, id: frame.payload.streamId };
    conn.send(encodeControl('message.failed', failed, this.deps.clock.now(), cid));
  }
}

function ownedKey(connectionId: string, channel: string, streamId: string): string {
  return `${connectionId}\n${channel}\n${streamId}`;
}

function asObject(json: string | undefined): Record<string, unknown> {
  if (json === undefined) return {};
  const v = JSON.parse(json) as unknown;
  return v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Who writes the compacted event of a stream the server ends (idle): the stream's user, as a service. */
function serverPrincipal(orgId: string, userId: string): Principal {
  return {
    ...{ orgId, userId, roles: [], kind: 'apiKey', scopes: ['*'], isService: true, isPlatform: true },
    ...{ expiresAt: undefined, keyId: undefined },
  };
}
