/**
 * The broker moves channel events between gateway nodes and keeps each channel's history.
 *
 * Guarantees every implementation gives (tests/contracts/broker.contract.ts checks them):
 * - `publish` saves the event to the channel's history (when history is enabled for it) and delivers it
 *   to every node that subscribed to the channel, atomically: the order of ids is the order in which
 *   every node receives the channel's events. Ids are `<ms>-<seq>` and strictly increase per channel.
 * - The id order is fixed when `publish` is called: publishes to one channel that one node calls one
 *   after the other (without awaiting) get ids in call order. The router relies on it to give one
 *   connection's publishes ids in receive order while they stay pipelined (src/router/publish-order.ts).
 * - Delivery to nodes is at most once; a node that needs more (acks, resume) reads history.
 * - `history` with `since` answers every retained event after it, in order, and `recovered: false`
 *   when events after `since` may have been dropped (trimmed, expired, or `since` is not an id this
 *   channel could have given).
 * - Memory is bounded: history by count and age per channel and by the number of channels.
 * - Idempotency: a publish carrying `idempotency` whose key was used on the same channel within the window,
 *   on any node sharing the backend, adds nothing and answers the earlier event's id (`duplicate: true`),
 *   decided atomically with the append, so two racing publishes with one key give one event.
 */

/** An event as the broker stores and carries it. `frame` is the serialized delivery frame. */
export interface BrokerEvent {
  /** The channel's engine key (`<org>/<name>`, or `_/system:...`). */
  readonly key: string;
  readonly id: string;
  readonly type: string;
  /** Milliseconds since epoch when the event was published. */
  readonly timestamp: number;
  /** The complete JSON text of the frame delivered to subscribers (serialized once, at publish). */
  readonly frame: string;
  /** Who published it, so that a dead letter can tell them (`message.failed`). */
  readonly publisher: PublisherRef | undefined;
  /**
   * On an encrypted channel (src/crypto/at-rest.ts): the stored, sealed text of the frame, kept beside the
   * plaintext `frame` once opened so that queues and dead letters store it without encrypting again.
   */
  readonly sealed?: string | undefined;
  /**
   * Only on the answer to a publish whose idempotency key was already used within the window: `id` is
   * the earlier event's, nothing was appended or delivered, and `frame` is empty.
   */
  readonly duplicate?: true;
  /**
   * A live-only event (`publishLive`: room presence): it has no id (`id` is empty), is in no history, and
   * takes no place in the channel's order; subscribers with a connection get it, nobody replays it.
   */
  readonly live?: true;
}

/** A live-only event: delivered to the channel's current subscribers, never stored, given no id. */
export interface LiveInput {
  readonly key: string;
  readonly type: string;
  readonly timestamp: number;
  /** The complete frame (it carries no id). */
  readonly frame: string;
}

export interface PublisherRef {
  readonly nodeId: string;
  readonly connectionId: string;
}

export interface HistoryOptions {
  /** Events kept per channel; 0 disables history for this publish. */
  readonly size: number;
  /** Age after which events are dropped, in ms; 0 keeps them until trimmed by size. */
  readonly ttlMs: number;
}

export interface PublishInput {
  readonly key: string;
  readonly type: string;
  readonly timestamp: number;
  /** Builds the frame once the id is known. Called exactly once. */
  readonly encode: (id: string) => string;
  readonly publisher: PublisherRef | undefined;
  readonly history: HistoryOptions;
  /** The publisher's idempotency key (metadata `idempotency_key`), remembered per channel for `windowMs`. */
  readonly idempotency?: { readonly key: string; readonly windowMs: number } | undefined;
}

export interface HistoryQuery {
  /** Events strictly after this id. */
  readonly since?: string | undefined;
  /** The last `last` events (for late joiners); ignored when `since` is given. */
  readonly last?: number | undefined;
  /** At most this many events (default and cap: the channel's history size). */
  readonly limit?: number | undefined;
  /**
   * A byte budget for the answer: only the first events (oldest first) whose stored frames add up to at
   * most this many bytes are answered, and at least one; `recovered` and `top` are as without it. A bound
   * on the work of one read (HTTP history pages), not an exact size: the caller cuts its page itself.
   */
  readonly maxBytes?: number | undefined;
}

export interface HistoryResult {
  readonly events: readonly BrokerEvent[];
  /** False when events after `since` may be missing. Always true without `since`. */
  readonly recovered: boolean;
  /** The newest id in the channel, if any. */
  readonly top: string | undefined;
}

export type BrokerEventHandler = (event: BrokerEvent) => void;

/** Node-to-node control messages (session kicks, suspensions, revocations, presence). */
export interface ControlMessage {
  readonly kind: string;
  readonly from: string;
  readonly [field: string]: unknown;
}
export type ControlHandler = (message: ControlMessage) => void;

export interface Broker {
  readonly name: string;
  publish(input: PublishInput): Promise<BrokerEvent>;
  /**
   * Delivers a live-only event to every node subscribed to the channel, at most once, without saving it or
   * giving it an id: the channel's history and ids are untouched (room presence, which must never push
   * real events out of a bounded history). Handlers get it with `live: true`.
   */
  publishLive(input: LiveInput): Promise<void>;
  history(key: string, query: HistoryQuery): Promise<HistoryResult>;
  /**
   * This node wants the channel's events (called on the first local subscriber). Every event published after
   * this resolves is delivered; one published just before may be delivered too (pub/sub relayed over a Redis
   * Cluster bus lags), so whoever replays history first drops live events at or below its replay position.
   */
  subscribe(key: string): Promise<void>;
  /** This node no longer wants the channel's events (called when the last local subscriber leaves). */
  unsubscribe(key: string): Promise<void>;
  /** Sets the single handler that receives every event of the channels this node subscribed to. */
  onEvent(handler: BrokerEventHandler): void;
  /** Delivers `message` to every other node, at most once; never back to the sending node. */
  publishControl(message: ControlMessage): Promise<void>;
  onControl(handler: ControlHandler): void;
  /** Resolves when the backing store answers; rejects otherwise (used by /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}
