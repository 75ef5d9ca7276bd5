/**
 * A fake APIX gateway for SDK tests: a `ws` server on port 0 speaking docs/protocol.md (connect, subscribe with
 * since/replay and recovery, publish replies, acks, heartbeats, auth.refresh, session resume), with knobs
 * to misbehave (drop connections, duplicate on resume, deny channels, answer publishes as told).
 * Not a gateway: one process, no tenancy, no permissions beyond `deny`.
 */
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { WS_PATH, WS_SUBPROTOCOL } from '@apix/protocol/constants';
import { compareEventIds, formatEventId } from '@apix/protocol/event-id';
import type { ErrorCode } from '@apix/protocol/errors';

/** A type alias, not an interface: it must fit `send`'s index signature. */
export type FakeEvent = {
  type: string;
  channel: string;
  id: string;
  payload: unknown;
  metadata: { timestamp: number; version: string; retryCount?: number };
};

interface SubState {
  ack: boolean;
  filters: Record<string, unknown> | undefined;
}

interface Session {
  subs: Map<string, SubState>;
}

export type PublishReply =
  | { kind: 'sent' }
  | { kind: 'queued' }
  | { kind: 'failed'; code: ErrorCode; message: string }
  | { kind: 'ignore' };

export interface FakeConnection {
  readonly index: number;
  readonly ws: WebSocket;
  sessionId: string | undefined;
  subs: Map<string, SubState>;
}

export interface ReceivedFrame {
  connection: number;
  frame: { type: string; channel?: string; payload?: any; metadata?: any };
}

export interface FakeGatewayOptions {
  heartbeatIntervalMs?: number;
  /** Events kept per channel; a `since` older than the oldest kept one is `recovered: false`. */
  retain?: number;
  /** Channels refused with FORBIDDEN. */
  deny?: (channel: string) => boolean;
  /** Tokens refused at connect, with the close code to use. */
  rejectToken?: (token: string) => { code: ErrorCode; close: number } | undefined;
  /** On resume, resend this many already-delivered events before the missed ones (at-least-once overlap). */
  duplicateOnResume?: number;
}

const BASE_MS = 1_700_000_000_000;

export class FakeGateway {
  readonly wss: WebSocketServer;
  readonly received: ReceivedFrame[] = [];
  readonly connections: FakeConnection[] = [];
  readonly sessions = new Map<string, Session>();
  readonly history = new Map<string, FakeEvent[]>();
  /** What the next publishes get; shifted per publish, then `sent`. */
  readonly publishReplies: PublishReply[] = [];
  /** Every publish accepted, by idempotency key, to show that retries do not duplicate. */
  readonly idempotency = new Map<string, string>();
  /** Streams by `channel \n streamId` (onStreamFrame). */
  readonly streams = new Map<
    string,
    {
      id: string;
      seq: number;
      text: string;
      open: boolean;
      eventType: string;
      data: unknown;
      publisher: FakeConnection;
    }
  >();
  private streamSeq = 0;
  /** Appends still to drop silently (a frame lost on the way). */
  dropAppends = 0;
  answerPings = true;
  private seq = 0;
  private waiters: Array<() => void> = [];

  private constructor(
    wss: WebSocketServer,
    readonly options: FakeGatewayOptions,
  ) {
    this.wss = wss;
    wss.on('connection', (ws) => this.onConnection(ws));
  }

  static start(options: FakeGatewayOptions = {}): Promise<FakeGateway> {
    return FakeGateway.startOn(0, options);
  }

  /** On a given port: to bring a stopped gateway back where its clients reconnect. */
  static async startOn(port: number, options: FakeGatewayOptions = {}): Promise<FakeGateway> {
    const wss = new WebSocketServer({
      port,
      host: '127.0.0.1',
      path: WS_PATH,
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    return new FakeGateway(wss, options);
  }

  get url(): string {
    const { port } = this.wss.address() as AddressInfo;
    return `ws://127.0.0.1:${port}${WS_PATH}`;
  }

  /** Open connections (the latest last). */
  get open(): FakeConnection[] {
    return this.connections.filter((c) => c.ws.readyState === c.ws.OPEN);
  }

  framesOf(type: string): ReceivedFrame['frame'][] {
    return this.received.filter((r) => r.frame.type === type).map((r) => r.frame);
  }

  /** Resolves when `predicate` holds, checked after every frame and connection change. */
  async until(predicate: () => boolean, timeoutMs = 3000): Promise<void> {
    const started = Date.now();
    while (!predicate()) {
      if (Date.now() - started > timeoutMs) throw new Error('FakeGateway.until: timed out');
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 20);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** A server-side publish (as from another client), fanned out to every matching subscriber. */
  publish(channel: string, type: string, payload: unknown): FakeEvent {
    const event: FakeEvent = {
      type,
      channel,
      id: formatEventId(BASE_MS, ++this.seq),
      payload,
      metadata: { timestamp: Date.now(), version: '1' },
    };
    const kept = this.history.get(channel) ?? [];
    kept.push(event);
    const retain = this.options.retain ?? 1000;
    while (kept.length > retain) kept.shift();
    this.history.set(channel, kept);
    for (const c of this.open) {
      const sub = c.subs.get(channel);
      if (sub && matches(sub.filters, event)) this.send(c, event);
    }
    return event;
  }

  /** Sends any frame to a connection (metadata added when absent). */
  send(c: FakeConnection, frame: { type: string; [k: string]: unknown }): void {
    const out = { ...frame, metadata: frame.metadata ?? { timestamp: Date.now(), version: '1' } };
    c.ws.send(JSON.stringify(out));
  }

  /** Drops every connection without a close frame, as a network failure would (client sees 1006). */
  dropAll(): void {
    for (const c of this.open) c.ws.terminate();
  }

  /** Closes every connection with `code`, after a `connection.disconnected` frame. */
  closeAll(code: number, reason: string, errorCode = 'UNAVAILABLE', reconnect = true): void {
    for (const c of this.open) {
      this.send(c, { type: 'connection.disconnected', payload: { code: errorCode, reason, reconnect } });
      c.ws.close(code, reason);
    }
  }

  async stop(): Promise<void> {
    for (const c of this.connections) c.ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }

  private onConnection(ws: WebSocket): void {
    const c: FakeConnection = { index: this.connections.length, ws, sessionId: undefined, subs: new Map() };
    this.connections.push(c);
    ws.on('message', (data) => {
      const frame = JSON.parse(String(data)) as ReceivedFrame['frame'];
      this.received.push({ connection: c.index, frame });
      this.onFrame(c, frame);
      this.wake();
    });
    ws.on('close', () => this.wake());
    this.wake();
  }

  private reply(c: FakeConnection, request: ReceivedFrame['frame'], type: string, payload: unknown): void {
    const correlation_id = request.metadata?.correlation_id as string | undefined;
    this.send(c, {
      type,
      payload,
      metadata: { timestamp: Date.now(), version: '1', ...(correlation_id ? { correlation_id } : {}) },
    });
  }

  private onFrame(c: FakeConnection, frame: ReceivedFrame['frame']): void {
    const p = frame.payload;
    switch (frame.type) {
      case 'connect': {
        const refusal = this.options.rejectToken?.(p.authentication.token);
        if (refusal) {
          this.reply(c, frame, 'connection.error', {
            code: refusal.code,
            message: 'token refused',
            fatal: true,
          });
          c.ws.close(refusal.close, refusal.code);
          return;
        }
        c.sessionId = p.sessionId;
        const existing = this.sessions.get(p.sessionId);
        const session = existing ?? { subs: new Map<string, SubState>() };
        this.sessions.set(p.sessionId, session);
        // A newer connection takes the session over.
        for (const other of this.open)
          if (other !== c && other.sessionId === p.sessionId) other.ws.close(4009, 'session taken over');
        c.subs = session.subs;
        const lastEventIds: Record<string, string> = p.resume?.lastEventIds ?? {};
        const recovered: Record<string, boolean> = {};
        for (const channel of c.subs.keys())
          recovered[channel] = this.isRecoverable(channel, lastEventIds[channel]);
        this.reply(c, frame, 'connection.established', {
          connectionId: `conn-${c.index}`,
          sessionId: p.sessionId,
          resumed: existing !== undefined,
          heartbeatIntervalMs: this.options.heartbeatIntervalMs ?? 25_000,
          subscriptions: [...c.subs.keys()],
          denied: [],
          recovered,
        });
        for (const channel of c.subs.keys()) {
          const since = lastEventIds[channel];
          if (since !== undefined) this.replay(c, channel, since, true);
        }
        return;
      }
      case 'subscribe': {
        const added: Array<{ channel: string; recovered: boolean }> = [];
        const denied: Array<{ channel: string; code: string; message: string }> = [];
        for (const channel of p.channels as string[]) {
          if (this.options.deny?.(channel)) {
            denied.push({ channel, code: 'FORBIDDEN', message: `not allowed to subscribe to ${channel}` });
            continue;
          }
          c.subs.set(channel, { ack: p.acknowledgment === true, filters: p.filters });
          added.push({ channel, recovered: this.isRecoverable(channel, p.since?.[channel]) });
        }
        this.reply(c, frame, 'subscription.added', { channels: added, denied });
        for (const { channel } of added) {
          const since = p.since?.[channel] as string | undefined;
          if (since !== undefined) this.replay(c, channel, since, false);
          else if (p.replay?.last)
            for (const e of (this.history.get(channel) ?? []).slice(-p.replay.last)) this.send(c, e);
          this.sendSnapshots(c, channel);
        }
        return;
      }
      case 'unsubscribe':
        for (const channel of p.channels as string[]) c.subs.delete(channel);
        this.reply(c, frame, 'subscription.removed', { channels: p.channels });
        return;
      case 'heartbeat.ping':
        if (this.answerPings)
          this.reply(c, frame, 'heartbeat.pong', { ts: p?.ts ?? 0, serverTime: Date.now() });
        return;
      case 'auth.refresh':
        this.reply(c, frame, 'auth.refreshed', { expiresAt: Date.now() + 60_000 });
        return;
      case 'ack':
      case 'heartbeat.pong':
        return;
      case 'stream.start':
      case 'stream.append':
      case 'stream.end':
      case 'stream.cancel':
        this.onStreamFrame(c, frame);
        return;
      default:
        this.onPublish(c, frame);
    }
  }

  /**
   * A minimal stream model (docs/protocol.md §13): start (or resume, answering the last seq), appends
   * (each its own seq, fanned out as `fromSeq..seq`), end (one compacted event in the history), cancel
   * (to the publishing connection). `dropAppends` > 0 drops that many appends silently, as a lost frame.
   */
  /** A subscriber arriving while streams are open: one `stream.snapshot` for each. */
  private sendSnapshots(c: FakeConnection, channel: string): void {
    for (const [key, s] of this.streams) {
      const [ch, streamId] = key.split('\n');
      if (ch !== channel || !s.open) continue;
      this.send(c, {
        type: 'stream.snapshot',
        channel,
        id: s.id,
        payload: {
          streamId,
          eventType: s.eventType,
          data: s.data,
          text: s.text,
          seq: s.seq,
          status: 'streaming',
        },
      });
    }
  }

  private onStreamFrame(c: FakeConnection, frame: ReceivedFrame['frame']): void {
    const p = frame.payload;
    const channel = frame.channel as string;
    const key = `${channel}\n${p.streamId}`;
    const stream = this.streams.get(key);
    const fanOut = (type: string, payload: unknown, id: string): void => {
      for (const other of this.open)
        if (other.subs.has(channel)) this.send(other, { type, channel, id, payload });
    };
    if (frame.type === 'stream.start') {
      if (stream && !stream.open) {
        this.reply(c, frame, 'message.failed', { code: 'STREAM_NOT_OPEN', message: 'ended' });
        return;
      }
      const s = stream ?? {
        id: `s-${++this.streamSeq}`,
        seq: 0,
        text: '',
        open: true,
        eventType: p.eventType as string,
        data: p.data,
        publisher: c,
      };
      s.publisher = c;
      if (!stream) {
        this.streams.set(key, s);
        fanOut('stream.start', { streamId: p.streamId, eventType: p.eventType, data: p.data }, s.id);
      }
      this.reply(c, frame, 'message.sent', { id: s.id, channel, streamId: p.streamId, seq: s.seq });
    } else if (frame.type === 'stream.append') {
      if (!stream?.open) {
        this.send(c, {
          type: 'message.failed',
          payload: { code: 'STREAM_NOT_OPEN', message: 'no', channel, id: p.streamId },
        });
        return;
      }
      if (this.dropAppends > 0) {
        this.dropAppends--;
        return;
      }
      stream.seq++;
      stream.text += p.text;
      fanOut(
        'stream.append',
        { streamId: p.streamId, fromSeq: stream.seq, seq: stream.seq, text: p.text },
        stream.id,
      );
    } else if (frame.type === 'stream.end') {
      if (!stream?.open) {
        this.reply(c, frame, 'message.failed', { code: 'STREAM_NOT_OPEN', message: 'ended' });
        return;
      }
      stream.open = false;
      // Live subscribers get stream.end; the history (replays) the compacted event, with the same id.
      const event: FakeEvent = {
        type: stream.eventType,
        channel,
        id: formatEventId(BASE_MS, ++this.seq),
        payload: {
          ...(stream.data as object),
          streamId: p.streamId,
          text: stream.text,
          seq: stream.seq,
          status: p.status,
        },
        metadata: { timestamp: Date.now(), version: '1' },
      };
      this.history.set(channel, [...(this.history.get(channel) ?? []), event]);
      fanOut('stream.end', { streamId: p.streamId, seq: stream.seq, status: p.status }, event.id);
      this.reply(c, frame, 'message.sent', { id: event.id, channel, streamId: p.streamId, seq: stream.seq });
    } else if (stream?.open) {
      this.send(stream.publisher, {
        type: 'stream.cancel',
        channel,
        payload: { channel, streamId: p.streamId, reason: p.reason ?? '', by: 'someone' },
      });
    }
  }

  private onPublish(c: FakeConnection, frame: ReceivedFrame['frame']): void {
    const reply = this.publishReplies.shift() ?? { kind: 'sent' };
    if (reply.kind === 'ignore') return;
    if (reply.kind === 'failed') {
      this.reply(c, frame, 'message.failed', { code: reply.code, message: reply.message });
      return;
    }
    const key = frame.metadata?.idempotency_key as string | undefined;
    let id = key === undefined ? undefined : this.idempotency.get(key);
    if (id === undefined) {
      id = this.publish(frame.channel as string, frame.type, frame.payload).id;
      if (key !== undefined) this.idempotency.set(key, id);
    }
    this.reply(c, frame, reply.kind === 'sent' ? 'message.sent' : 'message.queued', {
      id,
      channel: frame.channel,
    });
  }

  private isRecoverable(channel: string, since: string | undefined): boolean {
    if (since === undefined) return true;
    const kept = this.history.get(channel) ?? [];
    const oldest = kept[0];
    if (!oldest) return true;
    // Recoverable when the event right after `since` is still kept: `since` is at or after the one before the oldest.
    return compareEventIds(since, formatEventId(BASE_MS, Number(oldest.id.split('-')[1]) - 1)) >= 0;
  }

  /** Sends the kept events after `since`; on resume, with `duplicateOnResume` already-delivered ones first. */
  private replay(c: FakeConnection, channel: string, since: string, resuming: boolean): void {
    const kept = this.history.get(channel) ?? [];
    let from = kept.findIndex((e) => compareEventIds(e.id, since) > 0);
    if (from === -1) from = kept.length;
    if (resuming) from = Math.max(0, from - (this.options.duplicateOnResume ?? 0));
    for (const e of kept.slice(from)) if (matches(c.subs.get(channel)?.filters, e)) this.send(c, e);
  }
}

function matches(filters: Record<string, unknown> | undefined, event: FakeEvent): boolean {
  if (!filters) return true;
  for (const [key, value] of Object.entries(filters)) {
    if (key === 'types') {
      if (Array.isArray(value) && !value.includes(event.type)) return false;
    } else if ((event.payload as Record<string, unknown> | undefined)?.[key] !== value) return false;
  }
  return true;
}
