/**
 * A fixed-bucket latency histogram, cheap to record into and to merge across processes.
 * Resolution: 10 µs below 100 ms, 1 ms from 100 ms to 60 s; larger values land in the last bucket.
 */
const FINE_LIMIT_MS = 100;
const FINE_STEP_MS = 0.01;
const FINE_BUCKETS = FINE_LIMIT_MS / FINE_STEP_MS; // 10,000
const COARSE_BUCKETS = 60_000;
const BUCKETS = FINE_BUCKETS + COARSE_BUCKETS;

/** Non-zero buckets as [index, count] pairs: what crosses the IPC channel. */
export type SparseHistogram = Array<[number, number]>;

export interface Percentiles {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

function bucketOf(ms: number): number {
  if (!(ms > 0)) return 0;
  if (ms < FINE_LIMIT_MS) return Math.floor(ms / FINE_STEP_MS);
  return Math.min(BUCKETS - 1, FINE_BUCKETS + Math.floor(ms - FINE_LIMIT_MS));
}

/** The upper edge of a bucket, in ms (a percentile is reported as "at most this"). */
function upperEdge(bucket: number): number {
  if (bucket < FINE_BUCKETS) return (bucket + 1) * FINE_STEP_MS;
  return FINE_LIMIT_MS + (bucket - FINE_BUCKETS + 1);
}

export class Histogram {
  private counts = new Uint32Array(BUCKETS);
  private n = 0;

  record(ms: number): void {
    this.counts[bucketOf(ms)]!++;
    this.n++;
  }

  get count(): number {
    return this.n;
  }

  reset(): void {
    this.counts.fill(0);
    this.n = 0;
  }

  toSparse(): SparseHistogram {
    const out: SparseHistogram = [];
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i] !== 0) out.push([i, c[i]!]);
    return out;
  }

  merge(sparse: SparseHistogram): void {
    for (const [i, n] of sparse) {
      this.counts[i]! += n;
      this.n += n;
    }
  }

  percentiles(): Percentiles {
    const targets = [0.5, 0.9, 0.99];
    const found: number[] = [];
    let max = 0;
    let seen = 0;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      const k = c[i]!;
      if (k === 0) continue;
      seen += k;
      max = upperEdge(i);
      while (found.length < targets.length && seen >= Math.ceil(targets[found.length]! * this.n)) {
        found.push(upperEdge(i));
      }
    }
    const r = (v: number | undefined): number => Math.round((v ?? 0) * 100) / 100;
    return { count: this.n, p50: r(found[0]), p90: r(found[1]), p99: r(found[2]), max: r(max) };
  }
}
