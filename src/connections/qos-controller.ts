/**
 * Applies the QoS decisions of qos.ts to connections: degrades a connection whose buffer or round trip
 * crossed a threshold, holds its coalescible events, writes them once it drained, returns it to normal,
 * and cuts a slow consumer (close 4010) whose buffer passed the hard limit.
 */
import { CloseCode } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { BrokerEvent } from '../broker/broker.ts';
import type { HookBus } from '../hooks.ts';
import { encodeControl } from '../gateway/frames.ts';
import type { EventFrames } from '../gateway/frames.ts';
import { Phase } from './session.ts';
import type { Connection } from './session.ts';
import type { Subscription } from './session.ts';
import { canRecover, DegradedState, degradeReason } from './qos.ts';

export interface QosDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  /** The connection leaves its session (a slow consumer, cut: its session waits for a resume). */
  detach(conn: Connection): void;
}

export class QosController {
  /** Connections in degraded mode (QoS): checked at every sweep. */
  readonly degraded = new Set<Connection>();
  slowConsumers = 0;

  constructor(private readonly deps: QosDeps) {}

  /** The hub saw a connection's send buffer over the QoS threshold (or the ceiling). */
  pressure(conn: Connection): void {
    if (conn.bufferedBytes > this.deps.config.maxBufferedBytes) this.slowConsumer(conn);
    else if (conn.qos === undefined) this.check(conn);
  }

  /**
   * Re-evaluates a connection's QoS (after a heartbeat round trip, on its socket's drain, at each sweep
   * while degraded, and on buffer pressure): degrades a healthy one that crossed a threshold; writes a
   * degraded one's held events once its buffer is under the low-water mark, and returns it to normal when
   * it recovered.
   */
  check(conn: Connection): void {
    if (conn.phase !== Phase.CONNECTED) return this.leave(conn);
    const options = this.deps.config.qos;
    const now = this.deps.clock.now();
    const state = conn.qos;
    if (state === undefined) {
      const reason = degradeReason({ bufferedBytes: conn.bufferedBytes, rttMs: conn.rttMs }, options);
      if (reason !== undefined) this.enter(conn, reason, now);
      return;
    }
    if (conn.bufferedBytes > options.lowWaterBytes) return;
    // Drained: write the held events (in id order per channel), then see whether it recovered.
    for (const { sub, event, frames } of state.take()) {
      if (sub.session.connection !== conn || sub.session.subscriptions.get(sub.key) !== sub) continue;
      sub.lastId = event.id;
      conn.sendEvent(frames);
    }
    if (conn.bufferedBytes > this.deps.config.maxBufferedBytes) return this.slowConsumer(conn);
    if (!canRecover({ bufferedBytes: conn.bufferedBytes, rttMs: conn.rttMs }, state.since, now, options))
      return;
    this.leave(conn);
    conn.send(
      encodeControl(
        'qos',
        { state: 'normal', reason: 'the client keeps up again', coalesced: state.coalesced },
        now,
      ),
    );
    this.emit(conn, 'normal', 'recovered');
  }

  /** Every degraded connection, re-evaluated (at each sweep). */
  checkDegraded(): void {
    for (const conn of this.degraded) this.check(conn);
  }

  private enter(conn: Connection, reason: string, now: number): void {
    const state = new DegradedState<Subscription>(now, reason, this.deps.config.qos.maxCoalescedKeys);
    conn.degrade(state);
    this.degraded.add(conn);
    state.onDrain = () => this.check(conn);
    conn.transport.onDrain(state.onDrain);
    conn.send(encodeControl('qos', { state: 'degraded', reason }, now));
    this.deps.log.info({ connectionId: conn.id, reason }, 'connection degraded');
    this.emit(conn, 'degraded', reason);
  }

  /** Leaves degraded mode without writing what is held (a resume replays it from history). */
  leave(conn: Connection): void {
    const state = conn.recover();
    if (state === undefined) return;
    this.degraded.delete(conn);
    if (state.onDrain) conn.transport.offDrain(state.onDrain);
  }

  private emit(conn: Connection, state: 'degraded' | 'normal', reason: string): void {
    if (this.deps.hooks.has('onQos'))
      this.deps.hooks.emit('onQos', { connection: conn.info(), state, reason });
  }

  /** An event for a degraded connection on a coalescible channel: held, the latest per key. */
  hold(conn: Connection, sub: Subscription, event: BrokerEvent, frames: EventFrames, key: string): void {
    const result = conn.qos!.hold(sub, key, event, frames);
    if (result === 'superseded') {
      if (this.deps.hooks.has('onCoalesced')) this.deps.hooks.emit('onCoalesced', { channelType: sub.type });
    } else if (result === 'overflow') {
      this.deps.log.warn({ connectionId: conn.id }, 'degraded connection holds too many keys');
      this.slowConsumer(conn);
    }
  }

  slowConsumer(conn: Connection): void {
    if (conn.phase === Phase.CLOSING || conn.phase === Phase.CLOSED) return;
    this.leave(conn);
    this.slowConsumers++;
    if (this.deps.hooks.has('onSlowConsumer'))
      this.deps.hooks.emit('onSlowConsumer', { connection: conn.info(), bufferedBytes: conn.bufferedBytes });
    this.deps.log.warn(
      { connectionId: conn.id, bufferedBytes: conn.bufferedBytes },
      'slow consumer disconnected',
    );
    // Its buffer is full: a close frame would wait behind megabytes. Cut it; it resumes on reconnect.
    const session = conn.session;
    if (session && session.connection === conn) this.deps.detach(conn);
    conn.cut(CloseCode.SLOW_CONSUMER, 'slow consumer: send buffer over the limit', this.deps.clock.now());
  }
}
