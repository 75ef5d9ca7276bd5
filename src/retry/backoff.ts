/** Exponential backoff with full jitter (AWS architecture blog), as a pure function. */
export interface BackoffPolicy {
  readonly baseMs: number;
  readonly maxMs: number;
  readonly factor?: number;
}

/** Delay before retry number `attempt` (0-based): uniform in [0, min(max, base * factor^attempt)]. */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number): number {
  const ceiling = Math.min(policy.maxMs, policy.baseMs * Math.pow(policy.factor ?? 2, Math.max(0, attempt)));
  return Math.floor(random() * ceiling);
}
