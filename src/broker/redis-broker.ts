/**
 * The Redis broker: a channel's history is a Redis Stream (its ids are the event ids), and events reach
 * the nodes over pub/sub. One Lua script (src/redis/scripts/publish-2.lua) appends to the stream, trims
 * it and publishes, atomically, so every node sees a channel's events in id order.
 *
 * - Delivery: each node SUBSCRIBEs (SSUBSCRIBE in a sharded cluster) to the topic of every channel it
 *   has local subscribers for; a node that is disconnected from Redis misses events (at most once) and
 *   its connections catch up from history.
 * - Reconnects: ioredis reconnects by itself; on every `ready` of the subscriber connection the broker
 *   subscribes again to every topic it wants, including those asked for while Redis was away.
 * - Control messages go over one topic, as JSON; a node ignores its own (like socket.io's ClusterAdapter).
 * - The client connections are shared with the other Redis engines: `close()` releases the broker's
 *   subscriptions and listeners, and whoever created the clients closes them.
 */
import { randomBytes } from 'node:crypto';
import { parseEventId } from '../protocol/index.ts';
import type { RedisClients } from '../redis/client.ts';
import { withTimeout } from '../redis/client.ts';
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
  PublisherRef,
  PublishInput,
} from './broker.ts';

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
    this.controlSubscribed =
      sub.status === 'ready' ? this.sendSubscribe([keys.control()]).catch(() => {}) : Promise.resolve();
  }

  /** Resolves once the node listens to control messages (await it before announcing the node). */
  ready(): Promise<void> {
    return this.controlSubscribed;
  }

  async publish(input: PublishInput): Promise<BrokerEvent> {
    if (this.closed) throw new Error('broker closed');
    const text = input.encode(this.placeholder);
    const at = text.indexOf(this.placeholder);
    if (at === -1 || text.indexOf(this.placeholder, at + 1) !== -1)
      throw new Error('encode(id) must put the id in the frame exactly once');
    const before = text.slice(0, at);
    const after = text.slice(at + this.placeholder.length);
    const p = input.publisher;
    const header: HeaderTuple = [input.type, input.timestamp, p?.nodeId ?? null, p?.connectionId ?? null];
    const id = (await runScript(
      this.clients.command,
      'publish',
      [this.keys.stream(input.key), this.keys.meta(input.key)],
      [
        this.keys.topic(input.key),
        Math.max(0, Math.floor(input.history.size)),
        Math.max(0, Math.floor(input.history.ttlMs)),
        this.idleTtlMs,
        JSON.stringify(header),
        before,
        after,
        this.publishCmd,
      ],
    )) as string;
    return {
      key: input.key,
      id,
      type: input.type,
      timestamp: input.timestamp,
      frame: before + id + after,
      publisher: p,
    };
  }

  async history(key: string, query: HistoryQuery): Promise<HistoryResult> {
    const opts = this.options.history;
    const cap = Math.max(0, Math.min(query.limit ?? opts.size, opts.size || 0, 10_000));
    let since = '';
    if (query.since !== undefined) since = parseEventId(query.since) === undefined ? '-' : query.since;
    const last = query.last === undefined ? -1 : Math.max(0, Math.floor(query.last));
    const reply = (await runScript(
      this.clients.command,
      'history',
      [this.keys.stream(key), this.keys.meta(key)],
      [since, last, cap, Math.max(0, opts.ttlMs)],
    )) as [string | null, number, [string, string[]][]];
    const [top, recovered, entries] = reply;
    return {
      events: entries.map(([id, fields]) => decodeEntry(key, id, fields)),
      recovered: recovered === 1,
      top: top ?? undefined,
    };
  }

  async subscribe(key: string): Promise<void> {
    if (this.closed) throw new Error('broker closed');
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
  }

  async unsubscribe(key: string): Promise<void> {
    const topic = this.keys.topic(key);
    if (!this.wanted.delete(topic)) return;
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
    if (this.closed) throw new Error('broker closed');
    const msg = message.from === this.options.nodeId ? message : { ...message, from: this.options.nodeId };
    await this.clients.command.publish(this.keys.control(), JSON.stringify(msg));
  }

  onControl(handler: ControlHandler): void {
    this.controlHandler = handler;
  }

  async ping(): Promise<void> {
    for (const c of [this.clients.command, this.clients.subscriber]) {
      if (c.status !== 'ready') throw new Error(`Redis connection is ${c.status}`);
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
    try {
      await this.sendSubscribe([...this.wanted]);
    } catch {
      // The connection dropped again; the next 'ready' retries.
    }
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
    this.eventHandler({
      key,
      id,
      type,
      timestamp,
      frame: message.slice(nl2 + 1),
      publisher: publisherRef(nodeId, connectionId),
    });
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
