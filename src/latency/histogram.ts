/**
 * A fixed-bucket log-linear histogram (the HdrHistogram layout, much simplified): values are recorded
 * as integers of `unitsPerMs` units (microseconds by default); below 2^S they get one bucket each, above
 * that every power of two is split into 2^S equal sub-buckets. A bucket is therefore at most 2^-S of
 * its value wide, and a percentile answered with the bucket's midpoint is within 2^-(S+1) of the true
 * value (S = 5: 1.6 %). Memory is fixed at creation: one Uint32Array of ~(32 - S + 1) * 2^S counters
 * (3.5 KiB for S = 5, 1.8 KiB for S = 4), whatever is recorded.
 */

export interface HistogramOptions {
  /** Sub-bucket bits S: relative precision 2^-(S+1). Default 5. */
  readonly subBucketBits?: number;
  /** Resolution: units per millisecond (default 1000, i.e. microseconds). */
  readonly unitsPerMs?: number;
}

/** Largest recordable value in units (2^32 - 1); anything above is clamped (71 minutes in µs). */
const MAX_UNITS = 0xffff_ffff;

export interface Percentiles {
  readonly count: number;
  /** Milliseconds; 0 when the histogram is empty. */
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
  readonly max: number;
}

export class LogLinearHistogram {
  readonly subBucketBits: number;
  readonly unitsPerMs: number;
  private readonly subBucketCount: number;
  private readonly counts: Uint32Array;
  private total = 0;
  private minUnits = Infinity;
  private maxUnits = 0;

  constructor(options: HistogramOptions = {}) {
    this.subBucketBits = options.subBucketBits ?? 5;
    this.unitsPerMs = options.unitsPerMs ?? 1000;
    if (!Number.isInteger(this.subBucketBits) || this.subBucketBits < 1 || this.subBucketBits > 10)
      throw new RangeError('subBucketBits must be an integer from 1 to 10');
    this.subBucketCount = 1 << this.subBucketBits;
    this.counts = new Uint32Array(this.indexOf(MAX_UNITS) + 1);
  }

  get count(): number {
    return this.total;
  }

  /** Bytes of counters (for memory accounting in docs and tests). */
  get footprintBytes(): number {
    return this.counts.byteLength;
  }

  /** Records one value in milliseconds (negative values count as 0). */
  record(ms: number, times = 1): void {
    if (!(ms > 0)) ms = 0;
    const units = Math.min(MAX_UNITS, Math.round(ms * this.unitsPerMs));
    const i = this.indexOf(units);
    // A Uint32 counter saturates instead of wrapping (4 billion samples in one window is not a real case).
    this.counts[i] = Math.min(0xffff_ffff, this.counts[i]! + times);
    this.total += times;
    if (units < this.minUnits) this.minUnits = units;
    if (units > this.maxUnits) this.maxUnits = units;
  }

  /** The value (ms) at quantile `q` in [0, 1]: the midpoint of the bucket holding that rank. */
  percentile(q: number): number {
    if (this.total === 0) return 0;
    if (q <= 0) return this.minUnits / this.unitsPerMs;
    if (q >= 1) return this.maxUnits / this.unitsPerMs;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i]!;
      if (seen >= rank) {
        const [low, high] = this.boundsOf(i);
        // Clamped to what was seen: exact for a single value, never beyond min or max.
        const mid = Math.min(this.maxUnits, Math.max(this.minUnits, (low + high) / 2));
        return mid / this.unitsPerMs;
      }
    }
    return this.maxUnits / this.unitsPerMs;
  }

  percentiles(): Percentiles {
    return {
      count: this.total,
      p50: round3(this.percentile(0.5)),
      p95: round3(this.percentile(0.95)),
      p99: round3(this.percentile(0.99)),
      max: round3(this.total === 0 ? 0 : this.maxUnits / this.unitsPerMs),
    };
  }

  /** Adds another histogram of the same layout into this one. */
  add(other: LogLinearHistogram): void {
    if (other.subBucketBits !== this.subBucketBits || other.unitsPerMs !== this.unitsPerMs)
      throw new RangeError('histograms of different layouts cannot be added');
    if (other.total === 0) return;
    for (let i = 0; i < this.counts.length; i++) {
      const c = other.counts[i]!;
      if (c !== 0) this.counts[i] = Math.min(0xffff_ffff, this.counts[i]! + c);
    }
    this.total += other.total;
    if (other.minUnits < this.minUnits) this.minUnits = other.minUnits;
    if (other.maxUnits > this.maxUnits) this.maxUnits = other.maxUnits;
  }

  reset(): void {
    if (this.total === 0) return;
    this.counts.fill(0);
    this.total = 0;
    this.minUnits = Infinity;
    this.maxUnits = 0;
  }

  /** Bucket index of a value in units. */
  private indexOf(units: number): number {
    if (units < this.subBucketCount) return units;
    const exponent = 31 - Math.clz32(units); // floor(log2(units)) >= S
    const shift = exponent - this.subBucketBits;
    const sub = units >>> shift; // in [2^S, 2^(S+1))
    return (shift + 1) * this.subBucketCount + (sub - this.subBucketCount);
  }

  /** [low, high) of a bucket, in units. */
  private boundsOf(index: number): [number, number] {
    if (index < this.subBucketCount) return [index, index + 1];
    const shift = Math.floor(index / this.subBucketCount) - 1;
    const sub = (index % this.subBucketCount) + this.subBucketCount;
    const low = sub * 2 ** shift;
    return [low, low + 2 ** shift];
  }
}

/**
 * Percentiles over a sliding window: a ring of `slots` histograms each covering `slotMs`; a slot is
 * reset when time comes back round to it, so the answer covers the last (slots - 1) * slotMs to
 * slots * slotMs. Slots are allocated on first use, so an idle window costs almost nothing.
 */
export class WindowedHistogram {
  private readonly ring: Array<LogLinearHistogram | undefined>;
  private readonly slotOf: number[];
  private readonly scratch: LogLinearHistogram;

  constructor(
    readonly slots: number,
    readonly slotMs: number,
    private readonly options: HistogramOptions = {},
  ) {
    if (slots < 1 || slotMs <= 0) throw new RangeError('slots and slotMs must be positive');
    this.ring = new Array<LogLinearHistogram | undefined>(slots).fill(undefined);
    this.slotOf = new Array<number>(slots).fill(-1);
    this.scratch = new LogLinearHistogram(options);
  }

  get windowMs(): number {
    return this.slots * this.slotMs;
  }

  record(ms: number, now: number): void {
    const n = Math.floor(now / this.slotMs);
    const i = n % this.slots;
    let h = this.ring[i];
    if (h === undefined) h = this.ring[i] = new LogLinearHistogram(this.options);
    if (this.slotOf[i] !== n) {
      h.reset();
      this.slotOf[i] = n;
    }
    h.record(ms);
  }

  /** Percentiles of the values recorded in the window ending at `now`. */
  percentiles(now: number): Percentiles {
    return this.merged(now).percentiles();
  }

  /** The window as one histogram (a shared scratch object: read it before the next call). */
  merged(now: number): LogLinearHistogram {
    const n = Math.floor(now / this.slotMs);
    this.scratch.reset();
    for (let i = 0; i < this.slots; i++) {
      const h = this.ring[i];
      if (h !== undefined && this.slotOf[i]! > n - this.slots && this.slotOf[i]! <= n) this.scratch.add(h);
    }
    return this.scratch;
  }

  /** True when nothing was recorded in the window (lets owners drop idle instances). */
  isIdle(now: number): boolean {
    const n = Math.floor(now / this.slotMs);
    return this.slotOf.every((s) => s <= n - this.slots);
  }
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}
