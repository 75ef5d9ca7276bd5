import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Receiver } from 'ws';
import { encodeChannelEvent, textFrame } from '../../../src/gateway/frames.ts';
import { TokenBucket } from '../../../src/ratelimit/token-bucket.ts';

describe('frames', () => {
  it('encodes channel events as valid JSON, once', () => {
    const text = encodeChannelEvent('note', 'agent:a', '1-0', '{"a":"\\u0000\\""}', 5, '"trace_id":"t"');
    assert.deepEqual(JSON.parse(text), {
      type: 'note',
      channel: 'agent:a',
      id: '1-0',
      payload: { a: '\u0000"' },
      metadata: { timestamp: 5, version: '1', trace_id: 't' },
    });
  });

  it('builds WebSocket text frames that ws parses back, at every length class', async () => {
    for (const len of [0, 1, 125, 126, 65535, 65536, 200_000]) {
      const text = 'é'.repeat(Math.floor(len / 2)) + (len % 2 ? 'x' : '');
      const got = await new Promise<string>((resolve, reject) => {
        const r = new Receiver({ isServer: false });
        r.on('message', (data: Buffer) => resolve(data.toString()));
        r.on('error', reject);
        r.write(textFrame(text));
      });
      assert.equal(got, text, `length ${len}`);
    }
  });
});

describe('TokenBucket', () => {
  it('allows the burst, then the rate', () => {
    const b = new TokenBucket(10, 5, 0);
    for (let i = 0; i < 5; i++) assert.ok(b.take(0));
    assert.equal(b.take(0), false);
    assert.equal(b.retryAfterMs(0), 100);
    assert.ok(b.take(100));
    assert.equal(b.take(100), false);
    assert.ok(b.take(10_000, 5));
  });
});
