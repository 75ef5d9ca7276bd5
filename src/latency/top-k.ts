/**
 * The heaviest keys of a stream in bounded memory: the Space-Saving algorithm (Metwally, Agrawal and
 * El Abbadi, 2005). At most `capacity` counters; a new key, when full, takes over the smallest counter
 * and inherits its count as its possible overcount (`error`). Every key whose true count exceeds
 * total / capacity is guaranteed to be held, and a held key's count is at most `error` too high.
 *
 * `decay(factor)` scales every counter (exponential forgetting), so "busiest" means busiest lately;
 * `decayTo(now)` applies it lazily from a half-life, without a timer.
 */
export interface TopKEntry {
  readonly key: string;
  readonly count: number;
  /** Upper bound of the overcount. */
  readonly error: number;
}

export class TopK {
  private readonly counters = new Map<string, { count: number; error: number }>();
  private lastDecayAt: number | undefined;

  constructor(
    readonly capacity: number,
    /** Counts halve every `halfLifeMs` when `decayTo` is called; undefined: no decay. */
    private readonly halfLifeMs?: number,
  ) {
    if (!Number.isInteger(capacity) || capacity < 1)
      throw new RangeError('capacity must be a positive integer');
  }

  get size(): number {
    return this.counters.size;
  }

  add(key: string, n = 1): void {
    const c = this.counters.get(key);
    if (c !== undefined) {
      c.count += n;
      return;
    }
    if (this.counters.size < this.capacity) {
      this.counters.set(key, { count: n, error: 0 });
      return;
    }
    // Full: the smallest counter goes to the newcomer (O(capacity); capacities here are small).
    let minKey: string | undefined;
    let min = Infinity;
    for (const [k, v] of this.counters)
      if (v.count < min) {
        min = v.count;
        minKey = k;
      }
    this.counters.delete(minKey!);
    this.counters.set(key, { count: min + n, error: min });
  }

  /** The `n` heaviest keys, heaviest first. */
  top(n = this.capacity): TopKEntry[] {
    return [...this.counters]
      .map(([key, v]) => ({ key, count: v.count, error: v.error }))
      .sort((a, b) => b.count - a.count || (a.key < b.key ? -1 : 1))
      .slice(0, n);
  }

  /** Multiplies every count by `factor` (0..1); counters that fall under `dropBelow` are freed. */
  decay(factor: number, dropBelow = 0.01): void {
    for (const [k, v] of this.counters) {
      v.count *= factor;
      v.error *= factor;
      if (v.count < dropBelow) this.counters.delete(k);
    }
  }

  /** Applies the half-life decay for the time since the last call (at most once per second). */
  decayTo(now: number): void {
    if (this.halfLifeMs === undefined) return;
    if (this.lastDecayAt === undefined) {
      this.lastDecayAt = now;
      return;
    }
    const elapsed = now - this.lastDecayAt;
    if (elapsed < 1000) return;
    this.decay(2 ** (-elapsed / this.halfLifeMs));
    this.lastDecayAt = now;
  }
}
