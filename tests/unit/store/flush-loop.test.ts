import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ManualClock } from '../../../src/clock.ts';
import { FlushLoop, backoffDelayMs } from '../../../src/store/flush-loop.ts';
import { silentLogger } from '../../../src/store/log.ts';

test('backoff grows exponentially within [base, max], with jitter', () => {
  assert.equal(
    backoffDelayMs(0, 100, 10_000, () => 1),
    100,
  );
  assert.equal(
    backoffDelayMs(3, 100, 10_000, () => 1),
    800,
  );
  assert.equal(
    backoffDelayMs(3, 100, 10_000, () => 0),
    100,
  );
  assert.equal(
    backoffDelayMs(50, 100, 10_000, () => 1),
    10_000,
  );
});

test('flushes on its interval, backs off after a failure, and runs one flush at a time', async () => {
  const clock = new ManualClock();
  let calls = 0;
  let fail = true;
  let inFlight = 0;
  const loop = new FlushLoop(
    async () => {
      calls++;
      inFlight++;
      assert.equal(inFlight, 1);
      await new Promise((r) => setImmediate(r));
      inFlight--;
      if (fail) throw new Error('db down');
    },
    {
      name: 't',
      clock,
      intervalMs: 1_000,
      retryBaseMs: 5_000,
      retryMaxMs: 5_000,
      random: () => 0,
      logger: silentLogger,
    },
  ).start();
  clock.advance(1_000);
  await new Promise((r) => setImmediate(r));
  await loop.flush().then((ok) => assert.equal(ok, false));
  assert.equal(loop.consecutiveFailures, 2);
  const before = calls;
  clock.advance(3_000); // ticks during the backoff do not hit the database
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, before);
  fail = false;
  clock.advance(2_000);
  await new Promise((r) => setTimeout(r, 5));
  assert.equal(calls, before + 1);
  assert.equal(loop.consecutiveFailures, 0);
  assert.equal(await loop.close(), true);
});
