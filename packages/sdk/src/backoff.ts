/** Reconnect delays: exponential backoff with full jitter, as a pure function of the attempt number. */
import type { Random } from '@apix/protocol/clock';

export interface BackoffOptions {
  /** The ceiling of the first delay, in ms. */
  readonly baseMs: number;
  /** The largest ceiling, in ms, however many attempts have failed. */
  readonly maxMs: number;
  /** How much the ceiling grows per attempt. */
  readonly factor: number;
}

/**
 * Quick first retries (a gateway restart or a deploy is over in seconds) and a low cap: the wait between
 * the gateway coming back and the next attempt is at most `maxMs`. A 30 s cap left publishers offline for
 * seconds after a short restart; full jitter still spreads a node's clients over the window.
 */
export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 5_000, factor: 2 };

/** The ceiling of attempt `attempt` (0-based): min(maxMs, baseMs * factor^attempt). */
export function backoffCeilingMs(attempt: number, options: BackoffOptions): number {
  const exp = options.baseMs * Math.pow(options.factor, Math.max(0, attempt));
  return Math.min(options.maxMs, Number.isFinite(exp) ? exp : options.maxMs);
}

/**
 * The delay before attempt `attempt` (0-based): uniform in [0, ceiling). Full jitter spreads the clients
 * of a restarted node over the whole window instead of letting them return in waves.
 */
export function backoffDelayMs(attempt: number, options: BackoffOptions, random: Random): number {
  return Math.floor(random() * backoffCeilingMs(attempt, options));
}
