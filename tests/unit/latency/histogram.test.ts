import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LogLinearHistogram, WindowedHistogram } from '../../../src/latency/histogram.ts';

/** The exact quantile the histogram approximates: the value of rank ceil(q * n). */
function exact(sorted: readonly number[], q: number): number {
  return sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
}

/** A deterministic generator (mulberry32), so that failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkAccuracy(values: number[], subBucketBits: number): number {
  const h = new LogLinearHistogram({ subBucketBits });
  for (const v of values) h.record(v);
  const sorted = [...values].sort((a, b) => a - b);
  let worst = 0;
  for (const q of [0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999]) {
    const want = exact(sorted, q);
    const got = h.percentile(q);
    // Relative error bound 2^-(S+1), plus the 1 µs resolution for tiny values.
    const err = Math.abs(got - want) / Math.max(want, 0.001);
    const bound = 2 ** -(subBucketBits + 1) + 0.001 / Math.max(want, 0.001);
    assert.ok(err <= bound + 1e-9, `q=${q}: got ${got}, want ${want} (error ${err} > ${bound})`);
    worst = Math.max(worst, err);
  }
  return worst;
}

describe('LogLinearHistogram', () => {
  it('answers percentiles within 2^-(S+1) of the exact value (uniform, 0.001 ms to 10 s)', () => {
    const r = rng(1);
    const values = Array.from({ length: 50_000 }, () => 0.001 + r() * 10_000);
    checkAccuracy(values, 5);
    checkAccuracy(values, 4);
  });

  it('stays accurate on a heavy-tailed (log-normal) latency distribution', () => {
    const r = rng(2);
    const values = Array.from({ length: 50_000 }, () => {
      const z = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
      return Math.exp(1 + 1.5 * z); // median ~2.7 ms, p99 ~90 ms
    });
    const worst = checkAccuracy(values, 5);
    assert.ok(worst < 0.016);
  });

  it('is exact for small integers of microseconds and for a single repeated value', () => {
    const h = new LogLinearHistogram();
    for (let i = 1; i <= 10; i++) h.record(i / 1000); // 1..10 µs: one bucket each
    assert.equal(h.percentile(0.5), 0.0055); // midpoint of the 5 µs bucket
    const one = new LogLinearHistogram();
    for (let i = 0; i < 100; i++) one.record(42.123);
    assert.equal(one.percentile(0.5), 42.123);
    assert.equal(one.percentile(0.99), 42.123);
    assert.deepEqual(one.percentiles(), { count: 100, p50: 42.123, p95: 42.123, p99: 42.123, max: 42.123 });
  });

  it('reports 0 when empty, clamps negatives to 0 and huge values to the top bucket', () => {
    const h = new LogLinearHistogram();
    assert.deepEqual(h.percentiles(), { count: 0, p50: 0, p95: 0, p99: 0, max: 0 });
    h.record(-5);
    assert.equal(h.percentile(0.5), 0);
    h.record(1e12);
    assert.ok(h.percentile(1) > 4_000_000); // clamped at 2^32 µs (~71 min)
  });

  it('has a fixed footprint and adds histograms of the same layout', () => {
    const a = new LogLinearHistogram({ subBucketBits: 5 });
    assert.equal(a.footprintBytes, 896 * 4);
    assert.equal(new LogLinearHistogram({ subBucketBits: 4 }).footprintBytes, 464 * 4);
    const b = new LogLinearHistogram({ subBucketBits: 5 });
    for (let i = 0; i < 100; i++) a.record(1);
    for (let i = 0; i < 100; i++) b.record(100);
    a.add(b);
    assert.equal(a.count, 200);
    assert.ok(Math.abs(a.percentile(0.25) - 1) < 0.02);
    assert.ok(Math.abs(a.percentile(0.75) - 100) < 2);
    assert.throws(() => a.add(new LogLinearHistogram({ subBucketBits: 4 })), RangeError);
  });
});

describe('WindowedHistogram', () => {
  it('forgets values older than the window', () => {
    const w = new WindowedHistogram(3, 1000);
    const t0 = 1_700_000_000_000;
    w.record(10, t0);
    w.record(10, t0 + 500);
    w.record(50, t0 + 1500);
    assert.equal(w.percentiles(t0 + 1600).count, 3);
    assert.equal(w.percentiles(t0 + 2999).count, 3);
    // At t0 + 3000 the first slot (t0 .. t0 + 999) has left the 3-slot window.
    const p = w.percentiles(t0 + 3000);
    assert.equal(p.count, 1);
    assert.equal(p.p50, 50);
    assert.equal(w.isIdle(t0 + 3000), false);
    assert.equal(w.isIdle(t0 + 5000), true);
    assert.equal(w.percentiles(t0 + 5000).count, 0);
    // A slot reused after wrapping around starts empty.
    w.record(7, t0 + 6100);
    assert.deepEqual(w.percentiles(t0 + 6100), { count: 1, p50: 7, p95: 7, p99: 7, max: 7 });
  });
});
