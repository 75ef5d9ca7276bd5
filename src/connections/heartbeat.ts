/**
 * The node's two timers over its connections: the sweep (connect timeouts, token expiry, stuck closes,
 * degraded connections) and the heartbeat (a ping per connection per interval, spread over it; a client
 * silent for two rounds is terminated).
 */
import { CloseCode } from '@apix/protocol';
import type { Config } from '../config.ts';
import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { HookBus } from '../hooks.ts';
import { encodeControl, encodeError, EventFrames } from '../gateway/frames.ts';
import { Phase } from './session.ts';
import type { Connection } from './session.ts';

/** Heartbeat rounds without a word from the client before it is terminated. */
const MISSED_HEARTBEATS_TO_CUT = 2;

/** The heartbeat timer's period: about 200 slices per interval, between 10 and 250 ms. */
function heartbeatTickMs(intervalMs: number): number {
  return Math.max(10, Math.min(250, Math.floor(intervalMs / 200)));
}

export interface HeartbeatDeps {
  readonly config: Config;
  readonly clock: Clock;
  readonly log: Logger;
  readonly hooks: HookBus;
  readonly connections: ReadonlyMap<string, Connection>;
  /** Re-evaluates the degraded connections (QoS). */
  checkDegraded(): void;
  /** Cuts a connected client whose token expired; true when it did. */
  expireToken(conn: Connection, now: number): boolean;
}

export class Heartbeat {
  private sweepTimer: TimerHandle | undefined;
  private heartbeatTimer: TimerHandle | undefined;
  /** The heartbeat round in progress: the connections still to ping, whether none are left, when it began. */
  private round: { rest: Iterator<Connection>; done: boolean; startedAt: number } | undefined;

  constructor(private readonly deps: HeartbeatDeps) {}

  start(): void {
    const { heartbeatIntervalMs, connectTimeoutMs } = this.deps.config;
    const tick = Math.max(
      25,
      Math.min(1000, Math.floor(Math.min(heartbeatIntervalMs, connectTimeoutMs) / 4)),
    );
    this.sweepTimer = this.deps.clock.setInterval(() => this.sweep(), tick);
    this.heartbeatTimer = this.deps.clock.setInterval(
      () => this.tick(),
      heartbeatTickMs(heartbeatIntervalMs),
    );
  }

  stop(): void {
    this.sweepTimer?.cancel();
    this.heartbeatTimer?.cancel();
  }

  /** One pass over all connections: connect timeouts, token expiry, stuck closes. */
  sweep(): void {
    const now = this.deps.clock.now();
    const { connectTimeoutMs } = this.deps.config;
    this.deps.checkDegraded();
    for (const conn of this.deps.connections.values()) {
      switch (conn.phase) {
        case Phase.AWAITING_CONNECT:
        case Phase.CONNECTING:
          if (now - conn.openedAt >= connectTimeoutMs) {
            this.deps.hooks.emit('onConnectRefused', {
              peer: conn.peer,
              code: 'BAD_REQUEST',
              reason: 'no connect in time',
            });
            conn.send(encodeError('BAD_REQUEST', 'no connect frame in time', true, now));
            conn.close(CloseCode.CONNECT_TIMEOUT, 'no connect in time', now);
          }
          continue;
        case Phase.CLOSING:
          if (now - conn.closingSince > 5000) conn.terminate();
          continue;
        case Phase.CONNECTED:
          this.deps.expireToken(conn, now);
      }
    }
  }

  /**
   * The heartbeat round, spread over the interval: every tick pings the next slice of the connections, so
   * that each one is pinged once per interval and no tick writes more than a few dozen sockets. (Pinging
   * them all at once stalled every delivery for the length of 20,000 socket writes: hundreds of
   * milliseconds at 10,000 connections, every interval.)
   */
  tick(): void {
    const now = this.deps.clock.now();
    const interval = this.deps.config.heartbeatIntervalMs;
    const connections = this.deps.connections;
    this.round ??= { rest: connections.values(), done: false, startedAt: now };
    const round = this.round;
    if (round.done) {
      // This round's connections are all pinged: the next round starts one interval after this one did.
      if (now - round.startedAt >= interval) this.round = undefined;
      return;
    }
    // The slice follows the number of connections now: connections that arrive during a round join its
    // end (the iterator is live), and a round begun with few must not crawl through a storm's thousands.
    const slices = Math.max(1, Math.floor(interval / heartbeatTickMs(interval)));
    const perTick = Math.max(1, Math.ceil(connections.size / slices));
    let frames: EventFrames | undefined;
    for (let n = 0; n < perTick; n++) {
      const next = round.rest.next();
      if (next.done) {
        round.done = true;
        break;
      }
      const conn = next.value;
      // (Expired tokens are cut by the sweep, which runs at least every second.)
      if (conn.phase !== Phase.CONNECTED) continue;
      // Two silent rounds in a row: a client busy for one interval (GC, a loaded machine) survives, a
      // dead one is cut within two to three intervals.
      if (conn.missedHeartbeats >= MISSED_HEARTBEATS_TO_CUT) {
        this.deps.log.debug({ connectionId: conn.id }, 'heartbeats missed: terminating');
        conn.terminate();
        continue;
      }
      frames ??= new EventFrames(encodeControl('heartbeat.ping', { ts: now }, now), Infinity);
      conn.pinged(now);
      conn.releaseInflate();
      // Both pings in one write.
      conn.transport.ping(frames);
    }
  }
}
