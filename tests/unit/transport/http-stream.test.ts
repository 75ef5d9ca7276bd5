/**
 * The pieces of the HTTP streaming and SSE transport that need no socket: the single-use, bounded,
 * expiring SSE tickets (on a stepped clock), and how a frame is written on each kind of stream.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { SseTickets } from '../../../src/transport/http/sse-tickets.ts';
import {
  encodeStreamFrame,
  parseLastEventId,
  sseEventId,
} from '../../../src/transport/http/stream-format.ts';
import { encodeChannelEvent, withRetryCount } from '../../../src/gateway/frames.ts';
import { SteppedClock } from '../../support/clock.ts';

function tickets(max = 3, ttlMs = 1000) {
  const clock = new SteppedClock(1_000_000);
  let n = 0;
  const store = new SseTickets({ ttlMs, max, now: () => clock.now(), newTicket: () => `t${++n}` });
  return { clock, store };
}

describe('SSE tickets', () => {
  it('are redeemed once for the token they were issued for', () => {
    const { store } = tickets();
    const { ticket, expiresAt } = store.issue('real-token');
    assert.equal(expiresAt, 1_001_000);
    assert.equal(store.redeem(ticket), 'real-token');
    assert.throws(() => store.redeem(ticket), /already used|unknown/);
    assert.throws(
      () => store.redeem('forged'),
      (e: { code: string }) => e.code === 'UNAUTHORIZED',
    );
    assert.equal(store.size, 0);
  });

  it('expire after their TTL', () => {
    const { clock, store } = tickets();
    const { ticket } = store.issue('tok');
    clock.advance(1000);
    assert.throws(() => store.redeem(ticket), /expired/);
  });

  it('are bounded: one more than the maximum outstanding is refused, expired ones make room', () => {
    const { clock, store } = tickets(2);
    store.issue('a');
    clock.advance(600);
    store.issue('b');
    assert.throws(
      () => store.issue('c'),
      (e: { code: string }) => e.code === 'RATE_LIMITED',
    );
    clock.advance(400); // the first one expired
    assert.doesNotThrow(() => store.issue('c'));
    assert.equal(store.size, 2);
  });
});

describe('stream frames', () => {
  const event = encodeChannelEvent('tick', 'agent:a1', '1700000000000-3', '{"i":1}', 1, undefined);

  it('ndjson: one line per frame', () => {
    assert.equal(encodeStreamFrame('ndjson', '{"type":"x"}').toString(), '{"type":"x"}\n');
  });

  it('SSE: id: <channel>/<event id> for channel events (redeliveries too), none for control frames', () => {
    assert.equal(
      encodeStreamFrame('sse', event).toString(),
      `id: agent:a1/1700000000000-3\ndata: ${event}\n\n`,
    );
    assert.equal(sseEventId(withRetryCount(event, 2)), 'agent:a1/1700000000000-3');
    assert.equal(
      encodeStreamFrame('sse', '{"type":"heartbeat.ping"}').toString(),
      'data: {"type":"heartbeat.ping"}\n\n',
    );
  });

  it('Last-Event-ID: the channel (which may hold a /) and the id', () => {
    assert.deepEqual(parseLastEventId('agent:a1/1700000000000-3'), {
      channel: 'agent:a1',
      id: '1700000000000-3',
    });
    assert.deepEqual(parseLastEventId('a/b/1-0'), { channel: 'a/b', id: '1-0' });
    for (const bad of [undefined, '', 'noslash', '/1-0', 'agent:a1/'])
      assert.equal(parseLastEventId(bad), undefined);
  });
});
