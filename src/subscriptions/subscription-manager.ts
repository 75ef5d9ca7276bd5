/**
 * SubscriptionManager: subscribe and unsubscribe, the permission checks (channel rules, the
 * per-connection limit, the organization's subscribe rate), filters, history replay on subscribe (with
 * no gap and no duplicate against live events), room membership, acks, and the revocation of
 * subscriptions that the rules or the credentials no longer allow.
 */
import { channelKey, ChannelType, compareEventIds, isEventId, parseChannel } from '@apix/protocol';
import type { ApiXSubscription, Denial, ParsedChannel } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { Broker, BrokerEvent, HistoryResult } from '../broker/broker.ts';
import type { PresenceMember } from '../presence/presence.ts';
import type { RateLimiter, RateLimitScope } from '../ratelimit/rate-limiter.ts';
import type { RateLimitedError } from '../ratelimit/rate-limiter.ts';
import type { LocalHub } from '../subscriptions/hub.ts';
import type { RetryManager } from '../retry/retry-manager.ts';
import type { HookBus } from '../hooks.ts';
import { encodeControl, EventFrames } from '../gateway/frames.ts';
import type { Connection } from '../connections/session.ts';
import type { ConnectionManager } from '../connections/connection-manager.ts';
import type { Replies } from '../connections/replies.ts';
import { Subscription } from '../connections/session.ts';
import type { Session } from '../connections/session.ts';
import type { ChannelAccess } from './access.ts';
import { compileFilter } from './filters.ts';
import type { Rooms } from './rooms.ts';
import type { BackendProxy } from '../backend/proxy.ts';
import { approveSubscribe } from '../backend/proxy-steps.ts';

/** The most events `readHistoryFrom` looks back through (a history ring holds at most this many too). */
const MAX_REPLAY_FROM = 10_000;

export interface SubscriptionManagerDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly broker: Broker;
  readonly limiter: RateLimiter;
  readonly hub: LocalHub;
  readonly retry: RetryManager;
  readonly access: ChannelAccess;
  readonly rooms: Rooms;
  readonly connections: ConnectionManager;
  readonly replies: Replies;
  readonly compressThreshold: number;
  /** Counts a rate-limit refusal against the connection (abuse closes it); true when it was closed. */
  refused(conn: Connection, scope: RateLimitScope): boolean;
  /** Cuts a connection whose send buffer is over the limit. */
  slowConsumer(conn: Connection): void;
  /** The backend's proxy calls: it decides new subscriptions when APIX_PROXY_SUBSCRIBE_URL is set. */
  readonly proxy?: BackendProxy | undefined;
  /** Streams: told of each subscription after its history replay (snapshots of the open streams). */
  readonly streams?: { joined(sub: Subscription, replayed: readonly BrokerEvent[]): void } | undefined;
}

/** What one subscribe frame (or the subscriptions asked for in `connect`) grants, denies and replays. */
export interface SubscribeOutcome {
  readonly granted: Array<{ channel: string; recovered: boolean; presence?: PresenceMember[] }>;
  readonly denied: Denial[];
  readonly replays: Replay[];
  /** The first refusal of the organization's subscribe limit: it denies the rest of the frame too. */
  limited: RateLimitedError | undefined;
}

export interface Replay {
  readonly sub: Subscription;
  readonly events: readonly BrokerEvent[];
}

export interface Attached {
  readonly sub: Subscription | undefined;
  readonly events: readonly BrokerEvent[];
  readonly recovered: boolean;
}

export class SubscriptionManager {
  constructor(private readonly deps: SubscriptionManagerDeps) {}

  /** Runs a subscription change after the connection's earlier ones, in the order the frames came. */
  inOrder(conn: Connection, op: () => Promise<void> | void): void {
    conn.inOrder(op, (err: unknown) => this.deps.replies.internalError(conn, err, false));
  }

  async subscribe(
    conn: Connection,
    payload: ApiXSubscription,
    correlationId: string | undefined,
  ): Promise<void> {
    const session = conn.session!;
    if (payload.filters) {
      try {
        compileFilter(payload.filters);
      } catch (err) {
        return this.deps.replies.fail(conn, 'BAD_REQUEST', (err as Error).message, false, correlationId);
      }
    }
    const out: SubscribeOutcome = { granted: [], denied: [], replays: [], limited: undefined };
    for (const name of new Set(payload.channels)) await this.subscribeOne(conn, session, name, payload, out);
    if (session.connection !== conn) return;
    this.deps.connections.saveSnapshot(session);
    conn.send(
      encodeControl(
        'subscription.added',
        { channels: out.granted, denied: out.denied },
        this.deps.clock.now(),
        correlationId,
      ),
    );
    const sent = new Set<string>();
    for (const r of out.replays) this.flushReplay(r.sub, r.events, sent);
    for (const r of out.replays) this.joinStreams(r.sub, r.events);
    for (const d of out.denied) this.emitSubscribeDenied(conn, d);
    if (out.limited) this.deps.refused(conn, out.limited.scope);
  }

  private async subscribeOne(
    conn: Connection,
    session: Session,
    name: string,
    payload: ApiXSubscription,
    out: SubscribeOutcome,
  ): Promise<void> {
    const parsed = parseChannel(name);
    if (!parsed.ok) {
      out.denied.push({ channel: name, code: 'BAD_REQUEST', message: parsed.reason });
      return;
    }
    const existing = session.subscriptions.get(channelKey(session.orgId, parsed.channel));
    // An existing subscription is checked too (a re-subscribe with a replay reads history).
    const check = this.checkSubscribe(conn, session, parsed.channel, !existing);
    if (check) {
      if (existing) this.revokeDenied([existing], 'no longer allowed');
      out.denied.push(check);
      return;
    }
    if (!existing) {
      const refusal = await this.approve(conn, name);
      if (refusal) {
        out.denied.push(refusal);
        return;
      }
      out.limited ??= await this.deps.limiter.checkSubscribe(session.principal, conn.peer);
      if (out.limited) {
        out.denied.push(rateLimitedDenial(name, out.limited));
        return;
      }
    }
    const since = payload.since?.[name];
    const last = payload.replay?.last;
    const wantsReplay = since !== undefined || last !== undefined;
    const replay = wantsReplay && this.mayReplay(conn, session, parsed.channel);
    const r = await this.attach(
      session,
      parsed.channel,
      payload.acknowledgment,
      payload.filters,
      replay ? since : undefined,
      replay ? last : undefined,
      false,
    );
    if (!r.sub) return;
    const recovered = r.recovered && replay === wantsReplay;
    const members = r.sub.type === ChannelType.ROOM ? await this.deps.rooms.join(conn, r.sub) : undefined;
    out.granted.push(
      members ? { channel: name, recovered, presence: members } : { channel: name, recovered },
    );
    out.replays.push({ sub: r.sub, events: r.events });
    this.deps.hooks.emit('onSubscribe', {
      connection: conn.info(),
      channel: name,
      channelType: parsed.channel.type,
      granted: true,
    });
  }

  /** The backend's say on a new subscription (its subscribe proxy): a refusal, or undefined. */
  approve(conn: Connection, name: string): Promise<Denial | undefined> {
    return approveSubscribe(this.deps.proxy, conn, name);
  }

  emitSubscribeDenied(conn: Connection, d: Denial): void {
    const parsed = parseChannel(d.channel);
    this.deps.hooks.emit('onSubscribe', {
      connection: conn.info(),
      channel: d.channel,
      channelType: parsed.ok ? parsed.channel.type : 'AGENT_EVENTS',
      granted: false,
      code: d.code,
      reason: d.message,
    });
  }

  /** `reason`: `client` (its own unsubscribe) or `server` (POST /v1/admin/subscriptions). */
  unsubscribe(
    conn: Connection,
    channels: readonly string[],
    correlationId: string | undefined,
    reason: 'client' | 'server' = 'client',
  ): void {
    const session = conn.session!;
    const removed: string[] = [];
    for (const name of new Set(channels)) {
      const parsed = parseChannel(name);
      if (!parsed.ok) continue;
      const sub = session.subscriptions.get(channelKey(session.orgId, parsed.channel));
      if (!sub) continue;
      this.remove(sub, reason);
      removed.push(name);
      this.deps.hooks.emit('onUnsubscribe', { connection: conn.info(), channel: name, reason });
    }
    this.deps.connections.saveSnapshot(session);
    conn.send(
      encodeControl('subscription.removed', { channels: removed }, this.deps.clock.now(), correlationId),
    );
  }

  /**
   * A server-side subscribe (POST /v1/admin/subscriptions) of a session whose client is away: checked
   * against the session's credentials like a client's subscribe, attached (its events wait in the session's
   * queue), saved. Channels it holds already are left as they are. Answers the channels granted.
   */
  async subscribeAway(session: Session, names: readonly string[]): Promise<string[]> {
    const granted: string[] = [];
    for (const name of new Set(names)) {
      const parsed = parseChannel(name);
      if (!parsed.ok) continue;
      if (session.subscriptions.has(channelKey(session.orgId, parsed.channel))) continue;
      if (session.subscriptions.size >= this.deps.config.maxChannelsPerConnection) break;
      if (!this.deps.access.decide('subscribe', session.principal, parsed.channel).allowed) continue;
      const r = await this.attach(session, parsed.channel, false, undefined, undefined, undefined, false);
      if (r.sub) granted.push(name);
    }
    this.deps.connections.saveSnapshot(session);
    return granted;
  }

  /** A server-side unsubscribe of a session whose client is away; answers the channels removed. */
  unsubscribeAway(session: Session, names: readonly string[]): string[] {
    const removed: string[] = [];
    for (const name of new Set(names)) {
      const parsed = parseChannel(name);
      const sub = parsed.ok
        ? session.subscriptions.get(channelKey(session.orgId, parsed.channel))
        : undefined;
      if (!sub) continue;
      this.remove(sub, 'server');
      removed.push(name);
    }
    this.deps.connections.saveSnapshot(session);
    return removed;
  }

  remove(sub: Subscription, _reason: string): void {
    const session = sub.session;
    if (session.subscriptions.get(sub.key) === sub) session.subscriptions.delete(sub.key);
    this.deps.hub.remove(sub);
    if (sub.ack) this.deps.retry.dropSubscription(sub);
    this.deps.rooms.leave(sub);
  }

  ack(conn: Connection, channel: string, ids: readonly string[]): void {
    const session = conn.session!;
    const parsed = parseChannel(channel);
    if (!parsed.ok) return this.deps.replies.fail(conn, 'BAD_REQUEST', parsed.reason);
    this.deps.retry.ack(session, channelKey(session.orgId, parsed.channel), ids);
  }

  // ---------------------------------------------------------------- permissions

  /**
   * Denial for a subscribe, or undefined when allowed. `counting`: a new subscription, so the per-connection
   * limit applies (a subscription kept or restored is only re-checked against the permissions).
   */
  checkSubscribe(
    conn: Connection,
    session: Session,
    channel: ParsedChannel,
    counting = true,
  ): Denial | undefined {
    if (counting && session.subscriptions.size >= this.deps.config.maxChannelsPerConnection)
      return {
        channel: channel.name,
        code: 'FORBIDDEN',
        message: `subscription limit of ${this.deps.config.maxChannelsPerConnection} channels reached`,
      };
    const decision = this.deps.access.check('subscribe', session.principal, conn.peer, channel);
    if (!decision.allowed) {
      return {
        channel: channel.name,
        code: 'FORBIDDEN',
        message: `subscribe to ${channel.name} denied: ${decision.reason}`,
      };
    }
    return undefined;
  }

  /**
   * Whether the channel's history rule lets the session's credentials have past events (replay, `since`,
   * `resume.lastEventIds`, catch-up): when it does not, a subscription is served live only.
   */
  mayReplay(conn: Connection, session: Session, channel: ParsedChannel): boolean {
    return this.deps.access.check('history', session.principal, conn.peer, channel).allowed;
  }

  /**
   * Re-checks subscriptions against the current rules (channel settings, the session's token) and removes
   * those now denied, telling their clients with `subscription.removed` (docs/protocol.md §4).
   */
  revokeDenied(subs: readonly Subscription[], reason: string): void {
    const removedBySession = new Map<Session, string[]>();
    for (const sub of subs) {
      const session = sub.session;
      if (session.subscriptions.get(sub.key) !== sub) continue;
      if (this.deps.access.decide('subscribe', session.principal, sub.channel).allowed) continue;
      this.remove(sub, reason);
      const list = removedBySession.get(session) ?? [];
      list.push(sub.name);
      removedBySession.set(session, list);
    }
    const now = this.deps.clock.now();
    for (const [session, channels] of removedBySession) {
      this.deps.connections.saveSnapshot(session);
      const conn = session.connection;
      if (!conn) continue;
      conn.send(encodeControl('subscription.removed', { channels, reason }, now));
      for (const channel of channels)
        this.deps.hooks.emit('onUnsubscribe', { connection: conn.info(), channel, reason });
    }
  }

  // ---------------------------------------------------------------- attach and replay

  /**
   * Subscribes a session to a channel and reads the history it asked for. Live events that arrive while
   * history is read wait in `sub.pending`; `flushReplay` sends history then those, with no gap and no
   * duplicate.
   */
  async attach(
    session: Session,
    channel: ParsedChannel,
    ack: boolean,
    filters: Record<string, unknown> | undefined,
    since: string | undefined,
    last: number | undefined,
    restoring: boolean,
  ): Promise<Attached> {
    // The session ended (taken over on another node) while this connect or subscribe was awaiting: a
    // subscription attached now would stay in the hub with no session to remove it (found by the soak).
    if (this.deps.connections.sessions.get(session.key) !== session)
      return { sub: undefined, events: [], recovered: false };
    const key = channelKey(session.orgId, channel);
    let sub = session.subscriptions.get(key);
    if (!sub || sub.ack !== ack || filters !== undefined) {
      if (sub) this.remove(sub, 'replaced');
      sub = new Subscription(session, key, channel, ack, compileFilter(filters), filters);
      session.subscriptions.set(key, sub);
    }
    if (since === undefined && last === undefined) {
      await this.deps.hub.add(sub);
      sub.attachedAt = SubscriptionManager.attachedAt(await this.readHistory(key, undefined, 0));
      return { sub, events: [], recovered: true };
    }
    sub.pending = [];
    await this.deps.hub.add(sub);
    const h = await this.readHistory(key, since, last);
    sub.attachedAt = SubscriptionManager.attachedAt(h);
    if (restoring && since !== undefined && !isEventId(since)) return { sub, events: [], recovered: false };
    return { sub, events: h.events, recovered: h.recovered };
  }

  async readHistory(
    key: string,
    since: string | undefined,
    last: number | undefined,
  ): Promise<HistoryResult & { failed?: true }> {
    const none = { events: [] as BrokerEvent[], recovered: false, top: undefined };
    if (since !== undefined && !isEventId(since)) return none;
    try {
      return await this.deps.broker.history(key, { since, last });
    } catch (err) {
      this.deps.log.warn({ err, key }, 'history read failed');
      return { ...none, failed: true };
    }
  }

  /** `Subscription.attachedAt` from a history read made after it joined the hub (unknown if it failed). */
  private static attachedAt(h: { top: string | undefined; failed?: true }): string | undefined {
    return h.failed ? undefined : (h.top ?? '0-0');
  }

  /**
   * The retained events from `first` on (inclusive): the replay of a subscription that was sent nothing
   * before it went away. Not recovered when `first` is no longer retained.
   */
  async readHistoryFrom(key: string, first: string) {
    const h = await this.readHistory(key, undefined, MAX_REPLAY_FROM);
    const at = h.events.findIndex((e) => compareEventIds(e.id, first) >= 0);
    if (at < 0) return { events: [] as BrokerEvent[], recovered: false };
    return { events: h.events.slice(at), recovered: h.recovered && h.events[at]!.id === first };
  }

  /** After the subscription's replay (`flushReplay`): the open streams of its channel, as snapshots. */
  joinStreams(sub: Subscription, replayed: readonly BrokerEvent[]): void {
    if (sub.session.subscriptions.get(sub.key) === sub) this.deps.streams?.joined(sub, replayed);
  }

  flushReplay(sub: Subscription, events: readonly BrokerEvent[], sent: Set<string>): void {
    const pending = sub.pending ?? [];
    sub.pending = undefined;
    if (sub.session.subscriptions.get(sub.key) !== sub) return;
    let lastId: string | undefined;
    const emit = (ev: BrokerEvent) => {
      const k = `${ev.key}\n${ev.id}`;
      if (sent.has(k)) return;
      sent.add(k);
      lastId = ev.id;
      sub.lastId = ev.id;
      if (sub.filter && !sub.filter({ type: ev.type, payload: () => parsePayload(ev.frame) })) return;
      if (sub.ack) this.deps.retry.deliver(sub, ev, undefined);
      else sub.session.connection?.sendEvent(new EventFrames(ev.frame, this.deps.compressThreshold));
      // A replay writes up to the whole history at once: a client that asks for replays and never reads
      // is cut like any slow consumer (the rest of the replay then waits in its queue or history).
      const conn = sub.session.connection;
      if (conn && conn.bufferedBytes > this.deps.config.maxBufferedBytes) this.deps.slowConsumer(conn);
    };
    for (const ev of events) emit(ev);
    for (const ev of pending) if (lastId === undefined || compareEventIds(ev.id, lastId) > 0) emit(ev);
    if (lastId !== undefined) sub.replayFloor = lastId;
  }
}

export function rateLimitedDenial(channel: string, err: RateLimitedError): Denial {
  return { channel, code: 'RATE_LIMITED', message: err.message, retryAfterMs: err.retryAfterMs ?? 0 };
}

function parsePayload(frame: string): unknown {
  try {
    return (JSON.parse(frame) as { payload?: unknown }).payload;
  } catch {
    return undefined;
  }
}
