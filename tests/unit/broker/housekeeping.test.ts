/**
 * What expires by time drains without traffic to trigger it (found by the soak: after the clients left,
 * the memory engine kept every channel's expired history, every lapsed idempotency key and every rate
 * bucket that was full again, until the next publish or the LRU bound).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryHistory } from '../../../src/broker/memory-history.ts';
import { MemoryIdempotency } from '../../../src/broker/memory-idempotency.ts';
import { MemoryRateLimitStore } from '../../../src/ratelimit/memory-rate-limit.ts';

const opts = { size: 10, ttlMs: 1000 };
const make = (key: string, now: number) => (id: string) => ({
  key,
  id,
  type: 't',
  timestamp: now,
  frame: id,
  publisher: undefined,
});

describe('housekeeping of the memory engine', () => {
  it('MemoryHistory.sweep forgets channels whose events all expired, and ids stay increasing after', () => {
    const h = new MemoryHistory(100, 1000);
    const old = h.append('a', 2000, opts, make('a', 2000)).id;
    h.append('b', 2500, opts, make('b', 2500));
    h.sweep(2999, opts.ttlMs);
    assert.equal(h.channelCount, 2, 'nothing expired yet');
    h.sweep(3001, opts.ttlMs);
    assert.equal(h.channelCount, 1, '"a" is gone, "b" is not');
    h.sweep(3501, opts.ttlMs);
    assert.equal(h.channelCount, 0);
    // A forgotten channel published again (same millisecond as before): its ids go on above the old ones,
    // and a `since` from before is answered `recovered: false`, never with a wrong replay.
    const again = h.append('a', 2000, opts, make('a', 2000)).id;
    assert.ok(again > old, `${again} > ${old}`);
    assert.equal(h.query('a', { since: old }, 3600, opts).recovered, false);
  });

  it('MemoryHistory.sweep keeps everything when there is no age limit', () => {
    const h = new MemoryHistory(100, 1000);
    h.append('a', 2000, opts, make('a', 2000));
    h.sweep(10_000_000, 0);
    assert.equal(h.channelCount, 1);
  });

  it('MemoryIdempotency.expire drops lapsed keys', () => {
    const m = new MemoryIdempotency();
    m.remember('acme/agent:x', 'k1', '1-0', 1000, 0);
    m.remember('acme/agent:x', 'k2', '2-0', 1000, 500);
    m.expire(1000);
    assert.equal(m.size, 1);
    m.expire(1500);
    assert.equal(m.size, 0);
  });

  it('MemoryRateLimitStore.sweep forgets the buckets that are full again', async () => {
    let now = 0;
    const s = new MemoryRateLimitStore({ now: () => now } as never);
    const limit = { perSec: 10, burst: 10 };
    await s.take('addr:1', limit, 5); // 5 tokens short: full again after 500 ms
    await s.take('addr:2', limit, 10); // 10 short: full after 1000 ms
    now = 600;
    s.sweep(now);
    assert.equal(s.size, 1);
    now = 1000;
    s.sweep(now);
    assert.equal(s.size, 0);
    // A forgotten bucket starts full, as if it had been kept.
    assert.equal((await s.take('addr:2', limit, 10)).allowed, true);
  });
});
