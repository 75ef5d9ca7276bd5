/**
 * The webhook dispatcher's timing on a manual clock: a failed batch is not sent again before its
 * full-jitter backoff has passed, is sent again after it, becomes a dead letter after the last attempt,
 * and a replay queues it again; memory stays bounded when the buffer is full. The sender is a plain
 * function standing for the receiver (the real HTTP one is in tests/integration/webhooks).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.ts';
import { createLogger } from '../../../src/log.ts';
import { IDLE_POLL_MS, WebhookDispatcher } from '../../../src/webhooks/dispatcher.ts';
import type { DispatcherOptions } from '../../../src/webhooks/dispatcher.ts';
import { MemoryWebhookStore } from '../../../src/webhooks/webhook-store.ts';
import { backoffDelay } from '../../../src/retry/backoff.ts';

const OPTIONS: DispatcherOptions = {
  flushMs: 100,
  batchMax: 2,
  bufferMax: 5,
  queueMax: 100,
  deadLetterMax: 10,
  concurrency: 4,
  maxAttempts: 3,
  backoff: { baseMs: 1000, maxMs: 60_000 },
  leaseMs: 30_000,
  endpointCacheMs: 0,
};

async function setup(answer: () => string | undefined, options: Partial<DispatcherOptions> = {}) {
  const clock = new ManualClock(1_000_000);
  const store = new MemoryWebhookStore();
  const posts: Array<{ url: string; body: any }> = [];
  const sender = async (url: string, _secret: string, body: string) => {
    posts.push({ url, body: JSON.parse(body) });
    return answer();
  };
  // random() = 0.5: each delay is half its ceiling, so the test knows it.
  const d = new WebhookDispatcher(
    store,
    sender,
    { ...OPTIONS, ...options },
    clock,
    () => 0.5,
    createLogger('silent', 't'),
  );
  await store.addEndpoint({
    id: 'wh_1',
    orgId: 'acme',
    url: 'http://receiver.example/hooks',
    events: ['connection.opened'],
    secret: 's',
    createdAt: 0,
  });
  const round = async () => {
    await d.tick();
    await d.sent();
  };
  return { clock, store, posts, d, round };
}

describe('WebhookDispatcher', () => {
  it('batches per endpoint, only the selected types, at most batchMax events per POST', async () => {
    const { d, posts, round } = await setup(() => undefined);
    d.emit('acme', 'connection.opened', { n: 1 });
    d.emit('acme', 'connection.closed', { n: 2 });
    d.emit('acme', 'connection.opened', { n: 3 });
    d.emit('acme', 'connection.opened', { n: 4 });
    d.emit('globex', 'connection.opened', { n: 5 });
    await round();
    assert.deepEqual(
      posts.map((p) => p.body.events.map((e: any) => e.data.n)),
      [[1, 3], [4]],
    );
    assert.equal(d.counters.delivered, 3);
  });

  it('retries after the full-jitter delay, not before; then a dead letter; a replay sends it again', async () => {
    let fail = true;
    const { clock, store, d, posts, round } = await setup(() => (fail ? 'HTTP 503' : undefined));
    d.emit('acme', 'connection.opened', {});
    await round();
    assert.equal(posts.length, 1);
    for (let attempt = 1; attempt < OPTIONS.maxAttempts; attempt++) {
      const delay = backoffDelay(attempt - 1, OPTIONS.backoff, () => 0.5);
      clock.advance(delay - 1);
      await round();
      assert.equal(posts.length, attempt, `attempt ${attempt + 1} waits for its delay (${delay} ms)`);
      clock.advance(1);
      await round();
      assert.equal(posts.length, attempt + 1);
    }
    const letters = await store.deadLetters('acme');
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.attempts, OPTIONS.maxAttempts);
    assert.equal(letters[0]!.lastError, 'HTTP 503');
    assert.equal(await store.queued(), 0);
    clock.advance(3_600_000);
    await round();
    assert.equal(posts.length, OPTIONS.maxAttempts, 'a dead letter is not sent again by itself');
    fail = false;
    assert.equal(await d.replay('acme', letters[0]!.id), true);
    assert.equal(await d.replay('acme', letters[0]!.id), false, 'replayed once');
    await round();
    assert.equal(posts.length, OPTIONS.maxAttempts + 1);
    assert.equal(posts.at(-1)!.body.events[0].id, posts[0]!.body.events[0].id, 'the same event id');
    assert.equal(await store.queued(), 0);
  });

  it('a full buffer drops (and counts) what does not fit; a full queue too', async () => {
    const { d, posts, round } = await setup(() => undefined, { queueMax: 1 });
    for (let i = 0; i < 8; i++) d.emit('acme', 'connection.opened', { i });
    assert.equal(d.buffered, OPTIONS.bufferMax);
    assert.equal(d.counters.dropped, 3);
    await round();
    // 5 events in batches of 2: the queue holds 1 batch, so 2 events are queued and 3 dropped.
    assert.equal(d.counters.dropped, 6);
    assert.equal(posts.length, 1);
  });

  it('an event no endpoint of its organization selects is not even buffered once the endpoints are known', async () => {
    const { d, round } = await setup(() => undefined, { endpointCacheMs: 60_000 });
    d.emit('acme', 'connection.closed', {});
    assert.equal(d.buffered, 1, 'not known yet: buffered, then dropped at the flush');
    await round();
    d.emit('acme', 'connection.closed', {});
    d.emit('acme', 'channel.vacated', {});
    assert.equal(d.buffered, 0);
    d.emit('acme', 'connection.opened', {});
    assert.equal(d.buffered, 1, 'a selected type is');
  });

  it('an idle node does not ask the store every round, only when a batch it knows of is due, or every IDLE_POLL_MS', async () => {
    const { clock, store, d, round } = await setup(() => undefined);
    let claims = 0;
    const claim = store.claim.bind(store);
    store.claim = (...args) => (claims++, claim(...args));
    await round();
    assert.equal(claims, 1, 'at start: asks once');
    for (let i = 0; i < 10; i++) {
      clock.advance(OPTIONS.flushMs);
      await round();
    }
    assert.equal(claims, 1, 'nothing due: no more questions');
    d.emit('acme', 'connection.opened', {});
    await round();
    assert.equal(claims, 2, 'its own batch is due now');
    // A batch queued by another node (same store) is found by the idle poll.
    await store.add(
      { id: 'other', orgId: 'acme', endpointId: 'wh_1', events: [], attempts: 0 },
      clock.now(),
      10,
    );
    await round();
    assert.equal(await store.queued(), 1);
    clock.advance(IDLE_POLL_MS);
    await round();
    assert.equal(await store.queued(), 0);
  });

  it('a batch leased by a node that died is claimed again when the lease runs out', async () => {
    const { clock, store } = await setup(() => undefined);
    await store.add(
      { id: 'b1', orgId: 'acme', endpointId: 'wh_1', events: [], attempts: 0 },
      clock.now(),
      10,
    );
    assert.equal((await store.claim(clock.now(), 1000, 10)).length, 1);
    assert.equal((await store.claim(clock.now() + 999, 1000, 10)).length, 0, 'leased');
    assert.equal((await store.claim(clock.now() + 1000, 1000, 10)).length, 1, 'the lease ran out');
  });
});
