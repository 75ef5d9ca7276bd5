/**
 * Injectable time and randomness. The shape matches the server's `Clock` (src/clock.ts), so tests can
 * drive the SDK with the same manual clock; the SDK does not import it because it imports only protocol/.
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
 * Real timers. Not `unref`ed on Node: an open client keeps the process alive, like an open socket does;
 * `close()` cancels every timer.
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
