/**
 * The QoS decisions (src/connections/qos.ts): when a connection is degraded, when it may return to normal, and
 * the bounded latest-per-key buffer of a degraded connection. Pure: the time is a number, no sockets.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canRecover, coalesceKeyOf, DegradedState, degradeReason } from '../../../src/connections/qos.ts';
import type { QosOptions } from '../../../src/connections/qos.ts';
import type { BrokerEvent } from '../../../src/broker/broker.ts';
import type { Subscription } from '../../../src/connections/session.ts';
import { EventFrames } from '../../../src/gateway/frames.ts';

const options: QosOptions = {
  degradeBufferedBytes: 1000,
  lowWaterBytes: 100,
  degradeRttMs: 500,
  minDegradedMs: 1000,
  maxCoalescedKeys: 3,
};

describe('degradeReason', () => {
  it('a healthy connection (buffer and round trip under the thresholds, or no RTT yet) stays normal', () => {
    assert.equal(degradeReason({ bufferedBytes: 0, rttMs: undefined }, options), undefined);
    assert.equal(degradeReason({ bufferedBytes: 1000, rttMs: 500 }, options), undefined);
  });

  it('a send buffer over the threshold degrades it, naming the bytes', () => {
    assert.match(
      degradeReason({ bufferedBytes: 1001, rttMs: 10 }, options)!,
      /send buffer 1001 bytes over 1000/,
    );
  });

  it('a heartbeat round trip over the threshold degrades it, naming the latency', () => {
    assert.match(
      degradeReason({ bufferedBytes: 0, rttMs: 750.4 }, options)!,
      /round trip 750 ms over 500 ms/,
    );
  });

  it('a threshold of 0 turns that trigger off', () => {
    const off = { ...options, degradeBufferedBytes: 0, degradeRttMs: 0 };
    assert.equal(degradeReason({ bufferedBytes: 1e9, rttMs: 1e6 }, off), undefined);
  });
});

describe('canRecover', () => {
  const t0 = 10_000;
  it('not before minDegradedMs, even when drained (no flapping)', () => {
    assert.equal(canRecover({ bufferedBytes: 0, rttMs: 1 }, t0, t0 + 999, options), false);
    assert.equal(canRecover({ bufferedBytes: 0, rttMs: 1 }, t0, t0 + 1000, options), true);
  });

  it('only with the buffer at or under the low-water mark', () => {
    assert.equal(canRecover({ bufferedBytes: 101, rttMs: 1 }, t0, t0 + 5000, options), false);
    assert.equal(canRecover({ bufferedBytes: 100, rttMs: 1 }, t0, t0 + 5000, options), true);
  });

  it('only once the last round trip is under the latency threshold', () => {
    assert.equal(canRecover({ bufferedBytes: 0, rttMs: 600 }, t0, t0 + 5000, options), false);
    assert.equal(canRecover({ bufferedBytes: 0, rttMs: undefined }, t0, t0 + 5000, options), true);
    assert.equal(
      canRecover({ bufferedBytes: 0, rttMs: 600 }, t0, t0 + 5000, { ...options, degradeRttMs: 0 }),
      true,
    );
  });
});

describe('coalesceKeyOf', () => {
  it('scalar fields are keys (strings and numbers never collide); anything else shares the no-key slot', () => {
    assert.equal(coalesceKeyOf({ agentId: 'a1' }, 'agentId'), 'sa1');
    assert.notEqual(coalesceKeyOf({ k: '1' }, 'k'), coalesceKeyOf({ k: 1 }, 'k'));
    assert.equal(coalesceKeyOf({ k: true }, 'k'), 'vtrue');
    assert.equal(coalesceKeyOf({ other: 1 }, 'k'), '');
    assert.equal(coalesceKeyOf({ k: { nested: 1 } }, 'k'), '');
    assert.equal(coalesceKeyOf('text', 'k'), '');
    assert.equal(coalesceKeyOf(null, 'k'), '');
  });
});

describe('DegradedState', () => {
  const sub = (key: string) => ({ key }) as unknown as Subscription;
  const ev = (id: string): BrokerEvent =>
    ({ key: 'acme/agent:x', id, type: 't', frame: '{}', timestamp: 0 }) as unknown as BrokerEvent;
  const frames = new EventFrames('{}', Infinity);

  it('keeps the latest event per key, counts the replaced ones, and flushes in order of last update', () => {
    const s = new DegradedState(0, 'slow', 3);
    const a = sub('acme/agent:a');
    assert.equal(s.hold(a, 'k1', ev('1-1'), frames), 'held');
    assert.equal(s.hold(a, 'k2', ev('1-2'), frames), 'held');
    assert.equal(s.hold(a, 'k1', ev('1-3'), frames), 'superseded');
    assert.equal(s.hold(a, 'k2', ev('1-4'), frames), 'superseded');
    assert.equal(s.hold(a, 'k1', ev('1-5'), frames), 'superseded');
    assert.equal(s.size, 2);
    assert.equal(s.coalesced, 3);
    assert.deepEqual(
      s.take().map((h) => h.event.id),
      ['1-4', '1-5'],
      'ids ascending: a flush keeps channel order',
    );
    assert.equal(s.size, 0);
    assert.deepEqual(s.take(), []);
  });

  it('the same key on two channels is two entries', () => {
    const s = new DegradedState(0, 'slow', 3);
    s.hold(sub('acme/agent:a'), 'k', ev('1-1'), frames);
    assert.equal(s.hold(sub('acme/agent:b'), 'k', ev('1-1'), frames), 'held');
    assert.equal(s.size, 2);
  });

  it('is bounded: a new key past maxCoalescedKeys overflows (the caller cuts the connection); updates still fit', () => {
    const s = new DegradedState(0, 'slow', 3);
    const a = sub('acme/agent:a');
    for (const k of ['k1', 'k2', 'k3']) assert.equal(s.hold(a, k, ev('1-1'), frames), 'held');
    assert.equal(s.hold(a, 'k4', ev('1-2'), frames), 'overflow');
    assert.equal(s.hold(a, 'k2', ev('1-3'), frames), 'superseded');
    assert.equal(s.size, 3);
  });
});
