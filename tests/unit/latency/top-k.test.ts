import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TopK } from '../../../src/latency/top-k.ts';
import { SlidingRate } from '../../../src/latency/sliding-rate.ts';

describe('TopK (Space-Saving)', () => {
  it('counts exactly while under capacity', () => {
    const t = new TopK(4);
    for (const k of ['a', 'b', 'a', 'c', 'a', 'b']) t.add(k);
    assert.deepEqual(t.top(), [
      { key: 'a', count: 3, error: 0 },
      { key: 'b', count: 2, error: 0 },
      { key: 'c', count: 1, error: 0 },
    ]);
  });

  it('keeps every heavy hitter of a long-tailed stream in bounded memory', () => {
    const t = new TopK(20);
    const truth = new Map<string, number>();
    let seed = 7;
    const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let i = 0; i < 100_000; i++) {
      // 5 hot channels take ~half the traffic; the rest is spread over 5000 cold ones.
      const key = next() < 0.5 ? `hot-${Math.floor(next() * 5)}` : `cold-${Math.floor(next() * 5000)}`;
      truth.set(key, (truth.get(key) ?? 0) + 1);
      t.add(key);
    }
    assert.equal(t.size, 20);
    const top5 = t.top(5);
    assert.deepEqual(top5.map((e) => e.key).sort(), ['hot-0', 'hot-1', 'hot-2', 'hot-3', 'hot-4']);
    for (const e of top5) {
      const real = truth.get(e.key)!;
      // Never undercounts; overcounts by at most its error, itself at most total / capacity.
      assert.ok(e.count >= real && e.count - e.error <= real, `${e.key}: ${e.count} vs ${real}`);
      assert.ok(e.error <= 100_000 / 20);
    }
  });

  it('decays counts so that recent traffic wins, and frees counters that fade out', () => {
    const t = new TopK(8, 1000);
    t.decayTo(0);
    for (let i = 0; i < 100; i++) t.add('old');
    t.decayTo(5000); // five half-lives: 100 -> ~3.1
    for (let i = 0; i < 10; i++) t.add('new');
    assert.deepEqual(
      t.top().map((e) => e.key),
      ['new', 'old'],
    );
    assert.ok(Math.abs(t.top()[1]!.count - 100 / 32) < 1e-9);
    t.decayTo(30_000);
    assert.deepEqual(
      t.top().map((e) => e.key),
      [],
    );
  });
});

describe('SlidingRate', () => {
  it('averages over the window, current second included, and forgets older seconds', () => {
    const t0 = 1_700_000_000_000;
    const r = new SlidingRate(10, t0);
    for (let s = 0; s < 10; s++) r.add(100, t0 + s * 1000);
    // 1000 events over 9 full seconds + the current one: 100/s.
    assert.ok(Math.abs(r.rate(t0 + 9999) - 100) < 0.1);
    assert.equal(r.rate(t0 + 30_000), 0);
    assert.equal(r.lifetimeTotal, 1000);
    const fresh = new SlidingRate(10, t0);
    fresh.add(50, t0 + 100);
    assert.equal(fresh.rate(t0 + 500), 50); // under a second: per the first second
  });
});
