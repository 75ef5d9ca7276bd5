import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as wsModule from 'ws';
import {
  deflatedTextFrame,
  encodeChannelEvent,
  EventFrames,
  textFrame,
} from '../../../src/gateway/frames.ts';
import { TokenBucket } from '../../../src/ratelimit/token-bucket.ts';

// ws exports these at runtime; its type declarations do not name them.
const { Receiver, PerMessageDeflate } = wsModule as unknown as {
  Receiver: new (o: object) => NodeJS.EventEmitter & { write(b: Buffer): void };
  PerMessageDeflate: new (o: object, isServer: boolean) => { accept(params: object[]): void };
};

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

describe('shared compressor', () => {
  it('builds permessage-deflate frames that a ws client inflates, one after another', async () => {
    const pmd = new PerMessageDeflate({}, false);
    pmd.accept([{ server_no_context_takeover: [true] }]);
    const r = new Receiver({ isServer: false, extensions: { 'permessage-deflate': pmd } });
    const texts = [
      '{"a":1}',
      'x'.repeat(70_000),
      JSON.stringify({ list: Array.from({ length: 500 }, (_, i) => i) }),
    ];
    const got: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      r.on('message', (data: Buffer) => {
        got.push(data.toString());
        if (got.length === texts.length) resolve();
      });
      r.on('error', reject);
    });
    for (const t of texts) r.write(deflatedTextFrame(t));
    await done;
    assert.deepEqual(got, texts);
    assert.ok(deflatedTextFrame(texts[1]!).length < 1000);
  });

  it('compresses once per event and only over the threshold', () => {
    const small = new EventFrames('{"a":1}', 100);
    assert.equal(small.forConnection(true), small.plain);
    const big = new EventFrames('y'.repeat(1000), 100);
    assert.equal(big.forConnection(true), big.forConnection(true));
    assert.notEqual(big.forConnection(true), big.plain);
    assert.equal(big.forConnection(false), big.plain);
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
