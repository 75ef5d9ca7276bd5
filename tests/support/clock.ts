/** Clocks for tests that run real servers. */
import { systemClock } from '../../src/clock.ts';
import type { Clock, TimerHandle } from '../../src/clock.ts';

/**
 * Time that stands still until the test moves it (`advance`), with real timers: what reads the time (event
 * ids, idempotency windows, TTLs) sees only the steps the test takes, however slow the machine is, while
 * sockets, heartbeats and drains keep running on the event loop's timers.
 */
export class SteppedClock implements Clock {
  private time: number;
  constructor(start = Date.now()) {
    this.time = start;
  }
  now(): number {
    return this.time;
  }
  advance(ms: number): void {
    this.time += ms;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return systemClock.setTimeout(fn, ms);
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return systemClock.setInterval(fn, ms);
  }
}
