/**
 * Public types of the SDK. Wire shapes come from the protocol's Zod contracts as TYPES only (`import
 * type` is erased), so the bundle carries no Zod at run time.
 */
import type { ControlType } from '@apix/protocol/constants';
import type { ApiXError } from '@apix/protocol/errors';
import type { DomainPayloads } from '@apix/protocol/events';
import type { ChannelEvent, ServerFrameOf } from '@apix/protocol/schemas';

/** The payload of an event type: the domain schema's for the seed's types, `unknown` for any other. */
export type PayloadOf<T extends string> = T extends keyof DomainPayloads ? DomainPayloads[T] : unknown;

/** An event type a client may publish: anything but the reserved control types. */
export type PublishableType<T extends string> = T extends ControlType ? never : T;

/** `metadata` of a delivered event: timestamp, version, optional correlation_id and retryCount, extra keys. */
export type DeliveredMetadata = ChannelEvent['metadata'];

/** A channel event as the application sees it: once, in order, with its acknowledgment handle. */
export interface ApiXEvent<T extends string = string> {
  readonly type: T;
  readonly channel: string;
  /** The server-assigned id, `<ms>-<seq>`, ordered within the channel. */
  readonly id: string;
  readonly payload: PayloadOf<T>;
  readonly metadata: DeliveredMetadata;
  /** How many times the server redelivered this event (metadata.retryCount), 0 on first delivery. */
  readonly retryCount: number;
  /**
   * Acknowledges the event. Needed on `ack: 'manual'` subscriptions; a no-op on others, and when called
   * again. While offline the ack is dropped and the server redelivers, which the SDK then acks for you.
   */
  ack(): void;
}

/** A handler of one event type; a returned promise delays the automatic ack until it resolves. */
export type EventHandler<T extends string = string> = (event: ApiXEvent<T>) => void | Promise<void>;

export type EstablishedInfo = ServerFrameOf<'connection.established'>['payload'];
export type ConnectionErrorInfo = ServerFrameOf<'connection.error'>['payload'];

/** Where the client is in its lifecycle. */
export type ClientState =
  /** Created; `connect()` not called yet. */
  | 'idle'
  /** A socket is opening or waiting for `connection.established`. */
  | 'connecting'
  /** Established: frames flow. */
  | 'connected'
  /** Waiting out a backoff delay before the next attempt. */
  | 'reconnecting'
  /** Closed by `close()` or by a close code that forbids reconnecting. Terminal. */
  | 'closed';

/** Events of the client (`client.on(name, listener)`); protocol names where the protocol has one. */
export interface ClientEvents {
  state: { state: ClientState; previous: ClientState };
  'connection.established': EstablishedInfo;
  /** A non-fatal `connection.error` not tied to one of your requests (fatal ones end in `connection.disconnected`). */
  'connection.error': ConnectionErrorInfo;
  'connection.disconnected': {
    /** The WebSocket close code (1006 when the connection dropped without one). */
    code: number;
    reason: string;
    /** The error code of the server's `connection.disconnected` frame, when it sent one. */
    serverCode: string | undefined;
    willReconnect: boolean;
  };
  /** Local (never on the wire): a reconnect is scheduled in `delayMs`. `attempt` counts from 1. */
  'reconnection.attempt': { attempt: number; delayMs: number; url: string };
  /** `recovered: false` means events were missed: the server no longer retained everything since your last id. */
  'subscription.added': { channel: string; recovered: boolean };
  /** The server refused a subscription (FORBIDDEN, BAD_REQUEST, ...). The connection stays up. */
  'subscription.denied': { channel: string; error: ApiXError };
  /** Unsubscribed by you, or revoked by the server (then `reason` says why). */
  'subscription.removed': { channel: string; reason: string | undefined };
  'auth.refreshed': { expiresAt: number };
  /** The server's `qos` frame: the connection was degraded (it reads too slowly) or is back to normal. */
  qos: { state: 'degraded' | 'normal'; reason: string; coalesced: number | undefined };
  /** Local: the client leaves a degraded gateway for the next one (`failover`), resuming its session there. */
  'gateway.moving': { from: string; to: string; reason: string };
  /** A round-trip time sample from the client's own `heartbeat.ping`. */
  'heartbeat.rtt': { rttMs: number };
  /** Every channel event delivered to the application, on any subscription. */
  event: ApiXEvent;
  /** Presence frames (`presence.join` / `presence.leave`), passed through as they come. */
  presence: { type: string; channel: string; payload: unknown };
  /** A `message.failed` not answering a pending publish (e.g. a dead-lettered event of yours). */
  'message.failed': ServerFrameOf<'message.failed'>['payload'];
  /** Failures without a promise to reject: handler exceptions, token refresh failures, fatal closes. */
  error: ApiXError;
}

/** The outcome of a publish the server accepted. */
export interface PublishResult {
  /** `sent`: delivered to the channel; `queued`: the target is offline and the event is held for it. */
  readonly status: 'sent' | 'queued';
  /** The event id the server assigned. */
  readonly id: string;
}

export interface PublishOptions {
  /**
   * Same key, same event: the server turns a retried publish into the original one within its idempotency
   * window. Defaults to a key unique to this publish, which makes the SDK's resend after a reconnect safe.
   */
  idempotencyKey?: string;
  /** Rejects with UNAVAILABLE when no reply arrives in time once sent. Default: the client's publishTimeoutMs. */
  timeoutMs?: number;
  /** Extra envelope metadata (kept by the server). */
  metadata?: Record<string, unknown>;
}

/**
 * Server-side filters (PROTOCOL extension): `types` keeps only those event types; any other key keeps only
 * events whose payload has that top-level field equal to the value.
 */
export type SubscriptionFilters = { types?: readonly string[] } & Record<string, unknown>;

export interface SubscribeOptions {
  /**
   * Acknowledged delivery. `true` / `'auto'`: the SDK acks after every handler returned (or its promise
   * resolved); a throwing handler leaves the event unacked, so the server redelivers it. `'manual'`: call
   * `event.ack()` yourself.
   */
  ack?: boolean | 'auto' | 'manual';
  /** Replay every retained event after this id first. */
  since?: string;
  /** Replay the last n retained events first (late joiners). */
  replay?: { last: number };
  filters?: SubscriptionFilters;
}
