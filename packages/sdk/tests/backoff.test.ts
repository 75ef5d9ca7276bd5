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
    assert.deepEqual(run(), [50, 900, 600]);
  });
});
