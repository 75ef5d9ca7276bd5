/**
 * Bad input costs nothing else: each gets the answer of docs/protocol.md §8, the process stays up, and a
 * healthy control connection keeps working.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token, sleep } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';

describe('bad input', () => {
  let node: ApiXNode;
  let control: RawClient;
  before(async () => {
    node = await startNode({ maxMessageBytes: 64 * 1024, maxChannelsPerConnection: 20 });
    control = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'control' }),
      subscriptions: ['room:control'],
    });
  });
  after(async () => {
    // The control connection saw every event of its channel and is still up.
    const r = await control.publish('room:control', 'note', { last: true });
    assert.equal(r.type, 'message.sent');
    assert.equal(control.closed, undefined);
    control.close();
    await node.close();
  });

  const afterConnect: Array<[string, string | Buffer, RegExp]> = [
    ['garbage text', 'hello there', /not valid JSON/],
    ['truncated JSON', '{"type":"subscribe","payload":{"chan', /not valid JSON/],
    ['a JSON array', '[1,2,3]', /JSON object/],
    ['a JSON scalar', '42', /JSON object/],
    ['null', 'null', /JSON object/],
    ['a missing type', '{"payload":{}}', /type/],
    ['a non-string type', '{"type":{"a":1}}', /type/],
    ['an unknown top-level key', '{"type":"heartbeat.ping","payload":{},"evil":1}', /evil|Unrecognized/i],
    [
      '__proto__ at the top level',
      '{"type":"heartbeat.ping","__proto__":{"polluted":true}}',
      /__proto__|Unrecognized/i,
    ],
    [
      'an object where a string belongs',
      '{"type":"unsubscribe","payload":{"channels":[{"a":1}]}}',
      /channels/,
    ],
    ['subscribe without channels', '{"type":"subscribe","payload":{}}', /channels/],
    ['ack with bad ids', '{"type":"ack","payload":{"channel":"agent:a","ids":"x"}}', /ids/],
    ['an unknown type without channel', '{"type":"explode"}', /unknown frame type/],
  ];
  for (const [what, frame, pattern] of afterConnect) {
    it(`answers ${what} with a non-fatal BAD_REQUEST`, async () => {
      const c = await RawClient.connect(node.wsUrl);
      c.send(frame);
      const err = await c.nextOfType('connection.error');
      assert.equal(err.payload.code, 'BAD_REQUEST');
      assert.equal(err.payload.fatal, false);
      assert.match(err.payload.message, pattern);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      c.send({ type: 'heartbeat.ping', payload: { ts: 7 } });
      assert.equal((await c.nextOfType('heartbeat.pong')).payload.ts, 7);
      c.close();
    });
  }

  it('answers a binary frame with BAD_REQUEST', async () => {
    const c = await RawClient.connect(node.wsUrl);
    c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    const err = await c.nextOfType('connection.error');
    assert.equal(err.payload.code, 'BAD_REQUEST');
    assert.match(err.payload.message, /binary/);
    c.close();
  });

  it('closes with 4000 on garbage before connect', async () => {
    const c = await RawClient.open(node.wsUrl);
    c.send('{{{');
    assert.equal((await c.nextOfType('connection.error')).payload.fatal, true);
    assert.equal((await c.waitClosed()).code, 4000);
  });

  it('closes with 1009 on a frame over APIX_MAX_MESSAGE_BYTES', async () => {
    const c = await RawClient.connect(node.wsUrl);
    c.send(JSON.stringify({ type: 'note', channel: 'agent:a', payload: 'x'.repeat(64 * 1024) }));
    assert.equal((await c.waitClosed()).code, 1009);
  });

  it('survives a 10,000-deep nesting bomb in a payload', async () => {
    const c = await RawClient.connect(node.wsUrl);
    const bomb = '['.repeat(10_000) + ']'.repeat(10_000);
    c.send(`{"type":"note","channel":"agent:a","payload":${bomb}}`);
    const r = await c.next(
      (f) => f.type === 'message.failed' || f.type === 'message.sent' || f.type === 'connection.error',
    );
    assert.ok(r.type === 'message.failed' || r.type === 'message.sent', r.type);
    c.close();
  });

  it('keeps __proto__ payload keys as plain data', async () => {
    const sub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'agent-svc', roles: ['service'] }), // agent events come from services
      subscriptions: ['agent:proto'],
    });
    sub.send(
      '{"type":"note","channel":"agent:proto","payload":{"__proto__":{"polluted":1},"constructor":{"prototype":{"x":1}}}}',
    );
    const [ev] = await sub.waitForEvents(1);
    assert.ok(Object.prototype.hasOwnProperty.call(ev!.payload, '__proto__'));
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    sub.close();
  });

  it('refuses channel names outside the grammar', async () => {
    const c = await RawClient.connect(node.wsUrl);
    const names = [
      '',
      ':',
      'agent:',
      'agent::x',
      'agent:a b',
      'agent:ä',
      'agent:a\u0000',
      'agent:*',
      'agent:a?',
      'agent:[a]',
      'x'.repeat(201),
      'nope:x',
      'agent:{tag}',
    ];
    const r = await c.subscribe({ channels: names.filter((n) => n.length > 0) });
    assert.equal(r.payload.channels.length, 0);
    assert.ok(r.payload.denied.every((d: { code: string }) => d.code === 'BAD_REQUEST'));
    c.close();
  });

  it('caps the channels per connection', async () => {
    const c = await RawClient.connect(node.wsUrl);
    const r = await c.subscribe({ channels: Array.from({ length: 25 }, (_, i) => `agent:cap${i}`) });
    assert.equal(r.payload.channels.length, 20);
    assert.equal(r.payload.denied.length, 5);
    assert.match(r.payload.denied[0].message, /limit/);
    c.close();
  });

  it('rate-limits a message flood, then closes 4008 on repeated abuse', async () => {
    const c = await RawClient.connect(node.wsUrl);
    for (let i = 0; i < 1000; i++) c.send({ type: 'heartbeat.ping', payload: { ts: i } });
    const limited = await c.next((f) => f.type === 'connection.error' && f.payload.code === 'RATE_LIMITED');
    assert.ok(limited.payload.retryAfterMs >= 0);
    assert.equal((await c.waitClosed()).code, 4008);
  });

  it('leaves nothing behind after subscribe/unsubscribe/disconnect races', async () => {
    const clients = await Promise.all(Array.from({ length: 20 }, async () => RawClient.connect(node.wsUrl)));
    for (const [i, c] of clients.entries()) {
      c.send({ type: 'subscribe', payload: { channels: [`agent:race${i % 3}`, 'room:race'] } });
      if (i % 2) c.send({ type: 'unsubscribe', payload: { channels: ['room:race'] } });
      c.terminate();
    }
    // Sessions wait for a resume; their subscriptions stay until the TTL. Connections are gone.
    for (let i = 0; i < 40 && node.gateway.stats().connections > 1; i++) await sleep(50);
    assert.equal(node.gateway.stats().connections, 1, 'only the control connection is left');
  });
});
