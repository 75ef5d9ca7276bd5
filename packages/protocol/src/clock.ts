/**
 * Injectable time and randomness, so that retry, heartbeat and timeout logic is testable without sleeps.
 * One clock for the gateway and the SDK: both take a `Clock`, so tests drive either with `ManualClock`.
 */

export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
}

/** A number in [0, 1), like Math.random. */
export type Random = () => number;

/**
 * Real timers, as `setTimeout` gives them: on Node an armed timer keeps the process alive, like an open
 * socket does. The SDK's default (its `close()` cancels every timer).
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    return { cancel: () => clearInterval(t) };
  },
};

/** Node's timers have `unref` (a browser's are numbers): the process may exit while only they are armed. */
function unref(timer: unknown): void {
  (timer as { unref?: () => void }).unref?.();
}

/**
 * Real timers that do not keep a Node process alive (`unref`ed): the gateway's background work
 * (heartbeats, sweeps, retries), which must never hold a process open on its own. The server's
 * `systemClock` (src/clock.ts).
 */
export const backgroundClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, ms);
    unref(t);
    return { cancel: () => clearTimeout(t) };
  },
  setInterval(fn, ms) {
    const t = setInterval(fn, ms);
    unref(t);
    return { cancel: () => clearInterval(t) };
  },
};

/**
 * A manual clock for tests: time moves only when `advance` is called, firing due timers in order.
 */
export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void; every: number | undefined }>();

  constructor(start = 1_700_000_000_000) {
    this.time = start;
  }
  now(): number {
    return this.time;
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, undefined);
  }
  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.add(fn, ms, Math.max(1, ms));
  }
  /** Moves time forward by `ms`, running every timer that falls due, in time order. */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, t] of this.timers) {
        if (t.at <= end && t.at < nextAt) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId === -1) break;
      const t = this.timers.get(nextId)!;
      this.time = t.at;
      if (t.every === undefined) this.timers.delete(nextId);
      else t.at += t.every;
      t.fn();
    }
    this.time = end;
  }
  pending(): number {
    return this.timers.size;
  }
  private add(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const id = ++this.seq;
    this.timers.set(id, { at: this.time + Math.max(0, ms), fn, every });
    return { cancel: () => this.timers.delete(id) };
  }
}
