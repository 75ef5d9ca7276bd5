import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffCeilingMs, backoffDelayMs, DEFAULT_BACKOFF } from '../src/backoff.ts';

const opts = { baseMs: 100, maxMs: 5000, factor: 2 };

describe('backoff (full jitter, pure)', () => {
  it('grows the ceiling exponentially up to maxMs', () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6, 10].map((a) => backoffCeilingMs(a, opts)),
      [100, 200, 400, 800, 1600, 3200, 5000, 5000],
    );
  });

  it('draws uniformly in [0, ceiling) from the injected random', () => {
    assert.equal(
      backoffDelayMs(3, opts, () => 0),
      0,
    );
    assert.equal(
      backoffDelayMs(3, opts, () => 0.5),
      400,
    );
    assert.equal(
      backoffDelayMs(3, opts, () => 0.999999),
      799,
    );
    assert.equal(
      backoffDelayMs(50, opts, () => 0.5),
      2500,
    );
  });

  it('stays finite and capped for huge attempt numbers and treats negative attempts as 0', () => {
    assert.equal(backoffCeilingMs(10_000, opts), 5000);
    assert.equal(backoffCeilingMs(-3, opts), 100);
  });

  it('is deterministic: same attempt and random, same delay', () => {
    const seq = [0.1, 0.9, 0.3];
    const run = () => seq.map((r, i) => backoffDelayMs(i, DEFAULT_BACKOFF, () => r));
    assert.deepEqual(run(), run());
    assert.deepEqual(run(), [25, 450, 300]);
  });

  it('by default, reconnects soon after an outage ends: within maxMs (5 s) whatever its length', () => {
    // The worst case of full jitter (random just under 1): each attempt waits its whole ceiling. The gap is
    // from the gateway's return to the first attempt at or after it (attempts before it fail).
    const gapAfterOutage = (outageMs: number): number => {
      let t = 0;
      for (let attempt = 0; ; attempt++) {
        t += backoffDelayMs(attempt, DEFAULT_BACKOFF, () => 0.999999);
        if (t >= outageMs) return t - outageMs;
      }
    };
    assert.ok(backoffDelayMs(0, DEFAULT_BACKOFF, () => 0.999999) < 300, 'the first retry is quick');
    for (let outageMs = 0; outageMs <= 120_000; outageMs += 250)
      assert.ok(
        gapAfterOutage(outageMs) < 5_000,
        `after a ${outageMs} ms outage: ${gapAfterOutage(outageMs)} ms`,
      );
    // A gateway restart of about 10 s (the case reported: ~6 s offline after it was back with 500/30000).
    assert.ok(gapAfterOutage(10_000) < 3_000, `after 10 s: ${gapAfterOutage(10_000)} ms`);
  });
});
