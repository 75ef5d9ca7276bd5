import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.ts';
import { backoffDelay } from '../../../src/retry/backoff.ts';
import { RetryManager } from '../../../src/retry/retry-manager.ts';
import { MemoryDeadLetterStore } from '../../../src/retry/dead-letter.ts';
import { Session, Subscription, type Connection } from '../../../src/connections/session.ts';
import { parseChannel } from '@apix/protocol';
import type { BrokerEvent } from '../../../src/broker/broker.ts';

describe('backoff', () => {
  it('is exponential with full jitter, capped', () => {
    const p = { baseMs: 100, maxMs: 1000, factor: 2 };
    assert.equal(
      backoffDelay(0, p, () => 0.999999),
      99,
    );
    assert.equal(
      backoffDelay(3, p, () => 0.5),
      400,
    );
    assert.equal(
      backoffDelay(10, p, () => 0.5),
      500,
    );
    assert.equal(
      backoffDelay(2, p, () => 0),
      0,
    );
  });
});

function setup(opts: { maxInflight?: number; maxWaiting?: number } = {}) {
  const clock = new ManualClock();
  const sent: string[] = [];
  const conn = { sendEvent: (frames: { text: string }) => sent.push(frames.text) } as unknown as Connection;
  const session = new Session('acme/u/s', 's', { orgId: 'acme', userId: 'u' } as never, 'WEB_APP');
  session.connection = conn;
  const parsed = parseChannel('tool:jobs');
  assert.ok(parsed.ok);
  const sub = new Subscription(session, 'acme/tool:jobs', parsed.channel, true, undefined, undefined);
  session.subscriptions.set(sub.key, sub);
  const dead: string[] = [];
  const away: Array<[string, number]> = [];
  const letters = new MemoryDeadLetterStore(10);
  const rm = new RetryManager(
    {
      ackTimeoutMs: 1000,
      baseMs: 100,
      maxMs: 400,
      maxAttempts: 3,
      maxInflight: opts.maxInflight ?? 10,
      maxWaiting: opts.maxWaiting ?? 10,
      compressThresholdBytes: 1024,
    },
    clock,
    () => 0.5,
    letters,
    {
      queueAway: (_s, e, attempts) => away.push([e.id, attempts]),
      deadLettered: (_s, e) => dead.push(e.id),
      acked: () => {},
    },
  );
  const event = (id: string): BrokerEvent => ({
    key: sub.key,
    id,
    type: 'job',
    timestamp: 0,
    frame: `{"type":"job","channel":"tool:jobs","id":"${id}","payload":{},"metadata":{"timestamp":0,"version":"1"}}`,
    publisher: undefined,
  });
  return { clock, sent, session, sub, rm, dead, away, event, letters };
}

describe('RetryManager', () => {
  it('redelivers on the backoff schedule with retryCount, then dead-letters', () => {
    const { clock, sent, sub, rm, dead, event, letters } = setup();
    rm.deliver(sub, event('1-0'), undefined);
    assert.equal(sent.length, 1);
    clock.advance(1049); // ack timeout 1000 + jitter(0.5 * 100)
    assert.equal(sent.length, 1);
    clock.advance(1);
    assert.equal(sent.length, 2);
    assert.equal(JSON.parse(sent[1]!).metadata.retryCount, 1);
    clock.advance(1000 + 100); // attempt 2: base*2 = 200, jitter 0.5
    assert.equal(sent.length, 3);
    assert.equal(JSON.parse(sent[2]!).metadata.retryCount, 2);
    clock.advance(1000 + 200);
    assert.deepEqual(dead, ['1-0']);
    assert.equal(letters.size, 1);
    assert.equal(rm.inflightCount, 0);
    assert.equal(clock.pending(), 0);
  });

  it('an ack stops redelivery', () => {
    const { clock, sent, session, sub, rm, event } = setup();
    rm.deliver(sub, event('1-0'), undefined);
    assert.equal(rm.ack(session, sub.key, ['1-0', '9-9']), 1);
    clock.advance(60_000);
    assert.equal(sent.length, 1);
    assert.equal(rm.inflightCount, 0);
  });

  it('bounds the in-flight window; overflow beyond the wait queue dead-letters', () => {
    const { sent, session, sub, rm, dead, event } = setup({ maxInflight: 2, maxWaiting: 1 });
    for (const id of ['1-0', '1-1', '1-2', '1-3']) rm.deliver(sub, event(id), undefined);
    assert.equal(sent.length, 2);
    assert.equal(session.waiting.length, 1);
    assert.deepEqual(dead, ['1-3']);
    rm.ack(session, sub.key, ['1-0']);
    assert.equal(sent.length, 3);
    assert.equal(JSON.parse(sent[2]!).id, '1-2');
  });

  it('hands in-flight events to the offline queue, in order, when the session goes away', () => {
    const { clock, session, sub, rm, away, event } = setup();
    rm.deliver(sub, event('1-0'), undefined);
    rm.deliver(sub, event('1-1'), undefined);
    clock.advance(1050); // 1-0 and 1-1 redelivered once
    session.connection = undefined;
    rm.suspend(session);
    assert.deepEqual(away, [
      ['1-0', 2],
      ['1-1', 2],
    ]);
    assert.equal(clock.pending(), 0);
  });
});
