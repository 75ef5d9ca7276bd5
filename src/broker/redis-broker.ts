/**
 * The Redis broker: a channel's history is a Redis Stream (its ids are the event ids), and events reach
 * the nodes over pub/sub. One Lua script (src/redis/scripts/publish-3.lua) appends to the stream, trims
 * it and publishes (and checks the publisher's idempotency key), atomically, so every node sees a channel's events in id order.
 *
 * - Delivery: each node SUBSCRIBEs (SSUBSCRIBE in a sharded cluster) to the topic of every channel it
 *   has local subscribers for. Pub/sub is at most once: a node whose subscriber connection is down
 *   misses what is published meanwhile (by other nodes, whose Redis link may be fine).
 * - Reconnects: ioredis reconnects by itself; on every `ready` of the subscriber connection the broker
 *   subscribes again to every topic it wants, including those asked for while Redis was away, then
 *   catches each channel up from its stream: every event after the last one it handed on (or after the
 *   stream's top when it subscribed), with live messages held back meanwhile, so that the node's hub
 *   sees each channel's events once, in id order, with no gap (within history retention).
 * - Control messages go over one topic, as JSON; a node ignores its own (like socket.io's ClusterAdapter).
 * - The client connections are shared with the other Redis engines: `close()` releases the broker's
 *   subscriptions and listeners, and whoever created the clients closes them.
 */
import { randomBytes } from 'node:crypto';
import { ApiXError, compareEventIds, isEventId, parseEventId } from '@apix/protocol';
import type { RedisClients } from '../redis/client.ts';
import { redisFailureKind, withTimeout } from '../redis/client.ts';
import type { RedisKeys } from '../redis/keys.ts';
import { runScript } from '../redis/scripts.ts';
import type {
  Broker,
  BrokerEvent,
  BrokerEventHandler,
  ControlHandler,
  ControlMessage,
  HistoryOptions,
  HistoryQuery,
  HistoryResult,
  LiveInput,
  PublisherRef,
  PublishInput,
} from './broker.ts';
import { InternalError } from '@apix/protocol/internal-errors';

export interface RedisBrokerOptions {
  /** This node's id: control messages it sent are not handed back to it. */
  readonly nodeId: string;
  /** Defaults for history reads (cap and age), like MemoryBroker's. */
  readonly history: HistoryOptions;
  /** An idle channel's stream and meta expire after this long. Default 30 days. */
  readonly channelIdleTtlMs?: number;
  /** How long `ping()` waits for PONG. Default 1000 ms. */
  readonly pingTimeoutMs?: number;
}

const DEFAULT_CHANNEL_IDLE_TTL_MS = 30 * 24 * 3600 * 1000;
/** Most topics per SUBSCRIBE when re-subscribing after a reconnect. */
const SUBSCRIBE_BATCH = 500;
/** History reads tried per channel when catching up after a reconnect (backoff 50 ms doubling to 1 s: ~40 s). */
const CATCH_UP_ATTEMPTS = 45;

type HeaderTuple = [type: string, timestamp: number, nodeId: string | null, connectionId: string | null];

export class RedisBroker implements Broker {
  readonly name = 'redis';
  /** Topics this node wants (the truth; Redis's subscriptions follow it). */
  private readonly wanted = new Set<string>();
  private eventHandler: BrokerEventHandler = () => {};
  private controlHandler: ControlHandler = () => {};
  private closed = false;
  /** Where the id goes in the frame while it is serialized; random so no payload can contain it. */
  private readonly placeholder = `apix-id-${randomBytes(16).toString('hex')}`;
  private readonly idleTtlMs: number;
  private readonly pingTimeoutMs: number;
  private readonly subscribeCmd: 'subscribe' | 'ssubscribe';
  private readonly unsubscribeCmd: 'unsubscribe' | 'sunsubscribe';
  private readonly publishCmd: 'publish' | 'spublish';
  private readonly onMessage = (topic: string, message: string): void => this.handleMessage(topic, message);
  private readonly onReady = (): void => void this.resubscribe();
  private readonly controlSubscribed: Promise<void>;
  /** Per channel key: the last event id handed to the handler (ids only grow within a channel). */
  private readonly lastSeen = new Map<string, string>();
  /** Per channel key without an event yet: the stream's top when this node subscribed ('0-0': empty). */
  private readonly floors = new Map<string, string>();
  /** Channels being caught up from their streams after a reconnect: live events wait here. */
  private readonly catchingUp = new Map<string, BrokerEvent[]>();
  /** Whether the subscriber connection was ready before: the next `ready` is a reconnect. */
  private connectedBefore: boolean;
  /** Bumped on every `ready`: a catch-up of an older one stops (the newer one has taken over). */
  private epoch = 0;

  constructor(
    private readonly clients: RedisClients,
    private readonly keys: RedisKeys,
    private readonly options: RedisBrokerOptions,
  ) {
    this.idleTtlMs = options.channelIdleTtlMs ?? DEFAULT_CHANNEL_IDLE_TTL_MS;
    this.pingTimeoutMs = options.pingTimeoutMs ?? 1000;
    this.subscribeCmd = clients.sharded ? 'ssubscribe' : 'subscribe';
    this.unsubscribeCmd = clients.sharded ? 'sunsubscribe' : 'unsubscribe';
    this.publishCmd = clients.sharded ? 'spublish' : 'publish';
    const sub = clients.subscriber;
    sub.on('message', this.onMessage);
    if (clients.sharded) sub.on('smessage', this.onMessage);
    sub.on('ready', this.onReady);
    this.wanted.add(keys.control());
    this.connectedBefore = sub.status === 'ready';
    this.controlSubscribed =
      sub.status === 'ready' ? this.sendSubscribe([keys.control()]).catch(() => {}) : Promise.resolve();
  }

  /** Resolves once the node listens to control messages (await it before announcing the node). */
  ready(): Promise<void> {
    return this.controlSubscribed;
  }

  async publish(input: PublishInput): Promise<BrokerEvent> {
    if (this.closed) throw new InternalError('APIX_ERR_CLOSED', 'broker closed');
    const text = input.encode(this.placeholder);
    const at = text.indexOf(this.placeholder);
    if (at === -1 || text.indexOf(this.placeholder, at + 1) !== -1)
      throw new InternalError(
        'APIX_ERR_INVALID_ARGUMENT',
        'encode(id) must put the id in the frame exactly once',
      );
    const before = text.slice(0, at);
    const after = text.slice(at + this.placeholder.length);
    const p = input.publisher;
    const header: HeaderTuple = [input.type, input.timestamp, p?.nodeId ?? null, p?.connectionId ?? null];
    const idem = input.idempotency && input.idempotency.windowMs > 0 ? input.idempotency : undefined;
    const [id, duplicate] = (await unavailableOnFailure(
      'publish',
      runScript(
        this.clients.command,
        'publish',
        [
          this.keys.stream(input.key),
          this.keys.meta(input.key),
          this.keys.idempotency(input.key, idem?.key ?? ''),
        ],
        [
          this.keys.topic(input.key),
          Math.max(0, Math.floor(input.history.size)),
          Math.max(0, Math.floor(input.history.ttlMs)),
          this.idleTtlMs,
          JSON.stringify(header),
          before,
          after,
          this.publishCmd,
          idem ? Math.max(1, Math.floor(idem.windowMs)) : 0,
        ],
      ),
    )) as [string, number];
    if (duplicate === 1)
      return {
        key: input.key,
        id,
        type: input.type,
        timestamp: input.timestamp,
        frame: '',
        publisher: p,
        duplicate: true,
      };
    return {
      key: input.key,
      id,
      type: input.type,
      timestamp: input.timestamp,
      frame: before + id + after,
      publisher: p,
    };
  }

  /** Published on the channel's topic with an empty id: not in the stream, so not in history. */
  async publishLive(input: LiveInput): Promise<void> {
    if (this.closed) throw new InternalError('APIX_ERR_CLOSED', 'broker closed');
    const header: HeaderTuple = [input.type, input.timestamp, null, null];
    const message = `\n${JSON.stringify(header)}\n${input.frame}`;
    const topic = this.keys.topic(input.key);
    await unavailableOnFailure(
      'live publish',
      runScript(
        this.clients.command,
        'publish-live',
        [this.keys.stream(input.key)],
        [topic, message, this.publishCmd],
      ),
    );
  }

  async history(key: string, query: HistoryQuery): Promise<HistoryResult> {
    const opts = this.options.history;
    const cap = Math.max(0, Math.min(query.limit ?? opts.size, opts.size || 0, 10_000));
    let since = '';
    if (query.since !== undefined) since = parseEventId(query.since) === undefined ? '-' : query.since;
    const last = query.last === undefined ? -1 : Math.max(0, Math.floor(query.last));
    const reply = (await unavailableOnFailure(
      'history read',
      runScript(
        this.clients.command,
        'history',
        [this.keys.stream(key), this.keys.meta(key)],
        [since, last, cap, Math.max(0, opts.ttlMs), Math.max(0, Math.floor(query.maxBytes ?? 0))],
      ),
    )) as [string | null, number, [string, string[]][]];
    const [top, recovered, entries] = reply;
    return {
      events: entries.map(([id, fields]) => decodeEntry(key, id, fields)),
      recovered: recovered === 1,
      top: top ?? undefined,
    };
  }

  async subscribe(key: string): Promise<void> {
    if (this.closed) throw new InternalError('APIX_ERR_CLOSED', 'broker closed');
    const topic = this.keys.topic(key);
    if (this.wanted.has(topic)) return;
    this.wanted.add(topic);
    // While Redis is away the interest is kept and sent on the next 'ready'.
    if (this.clients.subscriber.status !== 'ready') return;
    try {
      await this.sendSubscribe([topic]);
    } catch (err) {
      // A connection error: the next 'ready' subscribes. Redis refusing (ACL...) is a real failure.
      if ((err as Error).name !== 'ReplyError') return;
      this.wanted.delete(topic);
      throw err;
    }
    // Where a catch-up after a reconnect starts if no event arrives before (not awaited: off the path).
    this.history(key, { last: 0 }).then(
      (h) => {
        if (this.wanted.has(topic) && !this.lastSeen.has(key)) this.floors.set(key, h.top ?? '0-0');
      },
      () => {},
    );
  }

  async unsubscribe(key: string): Promise<void> {
    const topic = this.keys.topic(key);
    if (!this.wanted.delete(topic)) return;
    this.lastSeen.delete(key);
    this.floors.delete(key);
    this.catchingUp.delete(key);
    if (this.clients.subscriber.status !== 'ready') return;
    try {
      await this.clients.subscriber[this.unsubscribeCmd](topic);
    } catch {
      // Disconnected meanwhile: the next 'ready' re-subscribes only what is still wanted.
    }
  }

  onEvent(handler: BrokerEventHandler): void {
    this.eventHandler = handler;
  }

  async publishControl(message: ControlMessage): Promise<void> {
    if (this.closed) throw new InternalError('APIX_ERR_CLOSED', 'broker closed');
    const msg = message.from === this.options.nodeId ? message : { ...message, from: this.options.nodeId };
    await this.clients.command.publish(this.keys.control(), JSON.stringify(msg));
  }

  onControl(handler: ControlHandler): void {
    this.controlHandler = handler;
  }

  async ping(): Promise<void> {
    for (const c of [this.clients.command, this.clients.subscriber]) {
      if (c.status !== 'ready')
        throw new InternalError('APIX_ERR_REDIS_UNAVAILABLE', `Redis connection is ${c.status}`);
    }
    await withTimeout(this.clients.command.ping(), this.pingTimeoutMs);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const sub = this.clients.subscriber;
    sub.off('message', this.onMessage);
    sub.off('smessage', this.onMessage);
    sub.off('ready', this.onReady);
    const channelTopics = [...this.wanted].filter((t) => t !== this.keys.control());
    this.wanted.clear();
    this.lastSeen.clear();
    this.floors.clear();
    this.catchingUp.clear();
    if (sub.status !== 'ready') return;
    try {
      await Promise.all([
        sub.unsubscribe(this.keys.control()),
        ...chunks(channelTopics, SUBSCRIBE_BATCH).map((c) => sub[this.unsubscribeCmd](...c)),
      ]);
    } catch {
      // Connection gone: nothing left to release.
    }
  }

  /** Topics this node is subscribed to, control topic excluded (for metrics and leak checks). */
  get subscriptionCount(): number {
    return this.wanted.size - 1;
  }

  private async resubscribe(): Promise<void> {
    if (this.closed) return;
    const reconnect = this.connectedBefore;
    this.connectedBefore = true;
    const epoch = ++this.epoch;
    const keys: string[] = [];
    if (reconnect)
      for (const topic of this.wanted) {
        const key = this.keys.channelOfTopic(topic);
        if (key === undefined) continue;
        keys.push(key);
        if (!this.catchingUp.has(key)) this.catchingUp.set(key, []);
      }
    try {
      await this.sendSubscribe([...this.wanted]);
    } catch {
      // The connection dropped again; the next 'ready' retries (and catches up again).
    }
    await Promise.all(keys.map((key) => this.catchUp(key, epoch)));
  }

  /**
   * After a reconnect: hands on the events of `key` published while the node was not subscribed (from
   * the stream, after the last id handed on), then the live ones held back meanwhile. The history read
   * is retried while the command connection is not back yet (it reconnects on its own schedule); a newer
   * reconnect takes the catch-up over; after CATCH_UP_ATTEMPTS the held events go on, with the gap.
   */
  private async catchUp(key: string, epoch: number): Promise<void> {
    let events: readonly BrokerEvent[] = [];
    for (let attempt = 0; attempt < CATCH_UP_ATTEMPTS; attempt++) {
      if (this.closed || epoch !== this.epoch || !this.catchingUp.has(key)) return;
      const since = this.lastSeen.get(key) ?? this.floors.get(key);
      if (since === undefined) break;
      try {
        let h = await this.history(key, { since });
        // `since` is no longer in the stream (trimmed, or lost by a Redis restart): take what is retained.
        if (!h.recovered && h.events.length === 0) h = await this.history(key, {});
        events = h.events;
        break;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
      }
    }
    if (epoch !== this.epoch) return;
    const held = this.catchingUp.get(key);
    this.catchingUp.delete(key);
    if (this.closed || !this.wanted.has(this.keys.topic(key))) return;
    for (const event of events) this.emit(event);
    for (const event of held ?? []) this.emit(event);
  }

  /** Hands an event on unless it is held back (catch-up) or already handed on (at or below the last id). */
  private emit(event: BrokerEvent): void {
    const held = this.catchingUp.get(event.key);
    if (held !== undefined) {
      held.push(event);
      return;
    }
    if (isEventId(event.id)) {
      const last = this.lastSeen.get(event.key);
      if (last !== undefined && compareEventIds(event.id, last) <= 0) return;
      this.lastSeen.set(event.key, event.id);
      this.floors.delete(event.key);
    }
    this.eventHandler(event);
  }

  private async sendSubscribe(topics: readonly string[]): Promise<void> {
    const sub = this.clients.subscriber;
    const control = this.keys.control();
    const channels = topics.filter((t) => t !== control);
    const jobs: Promise<unknown>[] = [];
    if (channels.length !== topics.length) jobs.push(sub.subscribe(control));
    if (this.clients.sharded) {
      // Sharded topics of one SSUBSCRIBE must share a slot: one call per topic.
      for (const t of channels) jobs.push(sub.ssubscribe(t));
    } else {
      for (const c of chunks(channels, SUBSCRIBE_BATCH)) jobs.push(sub.subscribe(...c));
    }
    await Promise.all(jobs);
  }

  private handleMessage(topic: string, message: string): void {
    if (this.closed) return;
    if (topic === this.keys.control()) {
      let msg: ControlMessage;
      try {
        msg = JSON.parse(message) as ControlMessage;
      } catch {
        return;
      }
      if (msg.from === this.options.nodeId) return;
      this.controlHandler(msg);
      return;
    }
    // A message may still arrive after unsubscribe(): the node no longer wants it.
    if (!this.wanted.has(topic)) return;
    const key = this.keys.channelOfTopic(topic);
    if (key === undefined) return;
    const nl1 = message.indexOf('\n');
    const nl2 = message.indexOf('\n', nl1 + 1);
    if (nl1 === -1 || nl2 === -1) return;
    const id = message.slice(0, nl1);
    let header: HeaderTuple;
    try {
      header = JSON.parse(message.slice(nl1 + 1, nl2)) as HeaderTuple;
    } catch {
      return; // not written by the publish script: never let it throw inside the client's event loop
    }
    const [type, timestamp, nodeId, connectionId] = header;
    if (id === '') {
      // Live-only (publishLive): no place in the channel's order, so never held back or deduplicated.
      this.eventHandler({
        key,
        id,
        type,
        timestamp,
        frame: message.slice(nl2 + 1),
        publisher: undefined,
        live: true,
      });
      return;
    }
    this.emit({
      key,
      id,
      type,
      timestamp,
      frame: message.slice(nl2 + 1),
      publisher: publisherRef(nodeId, connectionId),
    });
  }
}

/**
 * A Redis connection failure (not connected, connection closed, command timeout) becomes UNAVAILABLE (HTTP
 * 503, `message.failed` UNAVAILABLE): the client may retry elsewhere or later. A reply error (Redis refused
 * the command) stays what it is. On a timeout the command may still have been applied.
 */
async function unavailableOnFailure<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    const kind = redisFailureKind(err);
    if (kind === 'reply' || kind === 'internal') throw err;
    const message = (err as Error)?.message ?? '';
    // A command ioredis never wrote failed cleanly; any other failure (the connection closed under a
    // command in flight, a timeout) may come after Redis applied it.
    const notSent = kind === 'not-sent';
    throw new ApiXError(
      'UNAVAILABLE',
      notSent
        ? `${what} failed: Redis unavailable (${message})`
        : `${what} outcome unknown: Redis became unavailable while it was in flight (${message}); it may have been applied: retry with the same idempotency_key`,
      { cause: err },
    );
  }
}

function decodeEntry(key: string, id: string, fields: readonly string[]): BrokerEvent {
  let header = '';
  let before = '';
  let after = '';
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const v = fields[i + 1]!;
    if (fields[i] === 'h') header = v;
    else if (fields[i] === 'b') before = v;
    else if (fields[i] === 'a') after = v;
  }
  const [type, timestamp, nodeId, connectionId] = JSON.parse(header) as HeaderTuple;
  return {
    key,
    id,
    type,
    timestamp,
    frame: before + id + after,
    publisher: publisherRef(nodeId, connectionId),
  };
}

function publisherRef(nodeId: string | null, connectionId: string | null): PublisherRef | undefined {
  return nodeId === null || connectionId === null ? undefined : { nodeId, connectionId };
}

function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
