/** The RateLimitStore contract (src/ratelimit/rate-limit-store.ts), run against every engine by rate-limit.test.ts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.ts';
import type { RateLimit, RateLimitStore } from '../../src/ratelimit/rate-limit-store.ts';

export interface RateLimitTestEngine {
  /** One more node's store over this engine's shared backend, on the given clock. */
  node(clock: ManualClock): Promise<RateLimitStore>;
  close(): Promise<void>;
}

async function takeMany(store: RateLimitStore, key: string, limit: RateLimit, n: number) {
  let allowed = 0;
  for (let i = 0; i < n; i++) if ((await store.take(key, limit)).allowed) allowed++;
  return allowed;
}

export function describeRateLimitContract(
  name: string,
  factory: () => Promise<RateLimitTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`RateLimitStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: RateLimitTestEngine;
    const open: RateLimitStore[] = [];
    const node = async (clock: ManualClock) => {
      const s = await engine.node(clock);
      open.push(s);
      return s;
    };
    const key = () => `k:${randomBytes(6).toString('hex')}`;
    before(async () => {
      engine = await factory();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((s) => s.close()));
    });
    after(async () => {
      await engine?.close();
    });

    test('a new bucket holds the burst; then refusals say when to retry', async () => {
      const clock = new ManualClock();
      const s = await node(clock);
      const k = key();
      const limit = { perSec: 10, burst: 5 };
      assert.equal(await takeMany(s, k, limit, 8), 5);
      const r = await s.take(k, limit);
      assert.equal(r.allowed, false);
      assert.ok(r.retryAfterMs > 0 && r.retryAfterMs <= 100, `retryAfterMs ${r.retryAfterMs}`);
    });

    test('refills at the rate, never above the burst', async () => {
      const clock = new ManualClock();
      const s = await node(clock);
      const k = key();
      const limit = { perSec: 10, burst: 4 };
      assert.equal(await takeMany(s, k, limit, 4), 4);
      assert.equal((await s.take(k, limit)).allowed, false);
      clock.advance(100); // one token
      assert.equal(await takeMany(s, k, limit, 3), 1);
      clock.advance(60_000); // long idle: full, not 600 tokens
      assert.equal(await takeMany(s, k, limit, 10), 4);
    });

    test('retryAfterMs is honest: after waiting it, the request passes', async () => {
      const clock = new ManualClock();
      const s = await node(clock);
      const k = key();
      const limit = { perSec: 4, burst: 1 };
      assert.equal((await s.take(k, limit)).allowed, true);
      const r = await s.take(k, limit);
      assert.equal(r.allowed, false);
      clock.advance(r.retryAfterMs - 1);
      assert.equal((await s.take(k, limit)).allowed, false);
      clock.advance(1);
      assert.equal((await s.take(k, limit)).allowed, true);
    });

    test('a request of n tokens takes all of them or none', async () => {
      const clock = new ManualClock();
      const s = await node(clock);
      const k = key();
      const limit = { perSec: 1, burst: 5 };
      assert.equal((await s.take(k, limit, 3)).allowed, true);
      assert.equal((await s.take(k, limit, 3)).allowed, false);
      assert.equal(await takeMany(s, k, limit, 5), 2);
    });

    test('keys are independent; a rate of 0 never refuses', async () => {
      const clock = new ManualClock();
      const s = await node(clock);
      const a = key();
      const b = key();
      const limit = { perSec: 1, burst: 2 };
      assert.equal(await takeMany(s, a, limit, 3), 2);
      assert.equal(await takeMany(s, b, limit, 3), 2);
      assert.equal(await takeMany(s, key(), { perSec: 0, burst: 1 }, 50), 50);
    });

    test('concurrent requests on one node never take more than the bucket holds', async () => {
      const clock = new ManualClock();
      const s = await node(clock);
      const k = key();
      const limit = { perSec: 1, burst: 20 };
      const results = await Promise.all(Array.from({ length: 50 }, () => s.take(k, limit)));
      assert.equal(results.filter((r) => r.allowed).length, 20);
    });

    test('two nodes share one bucket: together they get the burst once, then the refill', async () => {
      const clock = new ManualClock();
      const a = await node(clock);
      const b = await node(clock);
      const k = key();
      const limit = { perSec: 10, burst: 10 };
      let allowed = 0;
      for (let i = 0; i < 10; i++) {
        if ((await a.take(k, limit)).allowed) allowed++;
        if ((await b.take(k, limit)).allowed) allowed++;
      }
      assert.equal(allowed, 10, 'the burst, once, across both nodes');
      clock.advance(1000); // 10 more tokens in the shared bucket
      allowed = 0;
      for (let i = 0; i < 10; i++) {
        if ((await a.take(k, limit)).allowed) allowed++;
        if ((await b.take(k, limit)).allowed) allowed++;
      }
      assert.ok(allowed <= 10, `at most the refill (${allowed})`);
      assert.ok(allowed >= 9, `about the refill (${allowed})`);
    });

    test('a large bucket shared by two nodes: never more than it hands out', async () => {
      const clock = new ManualClock();
      const a = await node(clock);
      const b = await node(clock);
      const k = key();
      const limit = { perSec: 100, burst: 400 };
      let allowed = 0;
      for (let round = 0; round < 5; round++) {
        const rs = await Promise.all(
          Array.from({ length: 200 }, (_, i) => (i % 2 === 0 ? a : b).take(k, limit)),
        );
        allowed += rs.filter((r) => r.allowed).length;
        clock.advance(100); // 10 tokens per round
      }
      // 400 + 4 rounds of refill (the last advance comes after the last round).
      assert.ok(allowed <= 440, `admitted ${allowed} > burst + refill`);
      assert.ok(allowed >= 380, `admitted only ${allowed}`);
    });
  });
}
