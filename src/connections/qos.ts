/**
 * Quality of service per connection: when a subscriber reads too slowly (its send buffer grows past
 * `degradeBufferedBytes`) or answers heartbeats too late (its last round trip is over `degradeRttMs`), it
 * enters a degraded mode instead of slowing everyone down:
 *
 * - on channels whose settings name a `coalesceKey`, its plain (non-acknowledged) events are not written
 *   to its socket but held, only the latest per `payload[coalesceKey]` (a small bounded map, created for
 *   degraded connections only), and written when its socket drains below `lowWaterBytes`;
 * - everything else (other channels, acknowledged subscriptions, which are never coalesced) is written as
 *   before, and a connection whose buffer passes the hard limit is still cut (close 4010).
 *
 * It returns to normal once its buffer is below the low-water mark, its last round trip is under the
 * threshold, and it stayed degraded for at least `minDegradedMs` (no flapping). The decisions are pure
 * functions of a sample and the time, so they are unit-tested without sockets or sleeping.
 */
import type { BrokerEvent } from '../broker/broker.ts';
import type { EventFrames } from '../gateway/frames.ts';

export interface QosOptions {
  /** Unsent bytes above which a connection is degraded; 0 (or >= the hard limit): never by bytes. */
  readonly degradeBufferedBytes: number;
  /** A degraded connection's held events are written once its unsent bytes are at most this. */
  readonly lowWaterBytes: number;
  /** A heartbeat round trip above this degrades the connection; 0: never by latency. */
  readonly degradeRttMs: number;
  /** The shortest stay in degraded mode. */
  readonly minDegradedMs: number;
  /** Distinct keys held per degraded connection; one more is a slow consumer (cut). */
  readonly maxCoalescedKeys: number;
}

export type QosState = 'normal' | 'degraded';

/** What the decision looks at: the connection's unsent bytes and its last heartbeat round trip. */
export interface QosSample {
  readonly bufferedBytes: number;
  readonly rttMs: number | undefined;
}

/** Why a healthy connection should be degraded now, or undefined when it should not. */
export function degradeReason(sample: QosSample, options: QosOptions): string | undefined {
  const { degradeBufferedBytes, degradeRttMs } = options;
  if (degradeBufferedBytes > 0 && sample.bufferedBytes > degradeBufferedBytes)
    return `send buffer ${sample.bufferedBytes} bytes over ${degradeBufferedBytes}`;
  if (degradeRttMs > 0 && sample.rttMs !== undefined && sample.rttMs > degradeRttMs)
    return `heartbeat round trip ${Math.round(sample.rttMs)} ms over ${degradeRttMs} ms`;
  return undefined;
}

/** Whether a connection degraded since `since` may return to normal at `now`. */
export function canRecover(sample: QosSample, since: number, now: number, options: QosOptions): boolean {
  if (now - since < options.minDegradedMs) return false;
  if (sample.bufferedBytes > options.lowWaterBytes) return false;
  if (options.degradeRttMs > 0 && sample.rttMs !== undefined && sample.rttMs > options.degradeRttMs)
    return false;
  return true;
}

/**
 * The coalescing key of an event: the payload's `coalesceKey` field when it is a scalar; events without
 * one share the channel's "no key" slot (a channel marked coalescible promises latest-state events).
 */
export function coalesceKeyOf(payload: unknown, field: string): string {
  if (typeof payload !== 'object' || payload === null) return '';
  const v = (payload as Record<string, unknown>)[field];
  if (typeof v === 'string') return `s${v}`;
  if (typeof v === 'number' || typeof v === 'boolean') return `v${String(v)}`;
  return '';
}

/** `S`: the subscription (src/connections/session.ts's Subscription; only its `key` is read here). */
export interface HeldEvent<S extends { readonly key: string }> {
  readonly sub: S;
  readonly event: BrokerEvent;
  readonly frames: EventFrames;
}

export type HoldResult = 'held' | 'superseded' | 'overflow';

/** The state of one degraded connection: since when, why, and the events held for it. */
export class DegradedState<S extends { readonly key: string } = { readonly key: string }> {
  /** Latest event per `<channel key>\n<coalescing key>`, in the order of their last update. */
  private held = new Map<string, HeldEvent<S>>();
  /** Events replaced by a later one of the same key (never written to this connection). */
  coalesced = 0;
  /** The socket's 'drain' listener (removed when the connection leaves degraded mode). */
  onDrain: (() => void) | undefined;

  constructor(
    readonly since: number,
    readonly reason: string,
    private readonly maxKeys: number,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /**
   * Holds `event` as the latest of its key. Deleting before setting keeps the map in order of the last
   * update, so that a flush writes each channel's held events in id order.
   */
  hold(sub: S, key: string, event: BrokerEvent, frames: EventFrames): HoldResult {
    const k = `${sub.key}\n${key}`;
    const superseded = this.held.delete(k);
    if (!superseded && this.held.size >= this.maxKeys) return 'overflow';
    this.held.set(k, { sub, event, frames });
    if (superseded) this.coalesced++;
    return superseded ? 'superseded' : 'held';
  }

  /** Every held event, in order; the map is emptied. */
  take(): HeldEvent<S>[] {
    if (this.held.size === 0) return [];
    const out = [...this.held.values()];
    this.held = new Map();
    return out;
  }
}
