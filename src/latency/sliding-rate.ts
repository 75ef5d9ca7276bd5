/**
 * A per-second rate over a sliding window: a ring of one-second counters. `rate(now)` divides what was
 * counted in the last `windowSeconds` (the current, partial second included) by the time they cover,
 * so it answers sensibly from the first second on. Fixed memory: one Float64Array of `windowSeconds`.
 */
export class SlidingRate {
  private readonly counts: Float64Array;
  /** The second (ms / 1000, floored) the newest slot belongs to. */
  private head: number;
  private total = 0;

  constructor(
    readonly windowSeconds: number,
    private readonly startedAt: number,
  ) {
    if (!Number.isInteger(windowSeconds) || windowSeconds < 2)
      throw new RangeError('windowSeconds must be an integer >= 2');
    this.counts = new Float64Array(windowSeconds);
    this.head = Math.floor(startedAt / 1000);
  }

  add(n: number, now: number): void {
    this.advance(now);
    this.counts[this.head % this.windowSeconds]! += n;
    this.total += n;
  }

  /** Units per second over the window ending at `now`. */
  rate(now: number): number {
    this.advance(now);
    let sum = 0;
    for (let i = 0; i < this.windowSeconds; i++) sum += this.counts[i]!;
    const covered = Math.min(this.windowSeconds - 1 + (now % 1000) / 1000, (now - this.startedAt) / 1000);
    return covered > 0 ? sum / Math.max(covered, 1) : 0;
  }

  /** Everything counted since creation. */
  get lifetimeTotal(): number {
    return this.total;
  }

  private advance(now: number): void {
    const sec = Math.floor(now / 1000);
    if (sec <= this.head) return;
    const steps = Math.min(this.windowSeconds, sec - this.head);
    for (let i = 1; i <= steps; i++) this.counts[(this.head + i) % this.windowSeconds] = 0;
    this.head = sec;
  }
}
