/**
 * Attack suite, JSON and protocol: what a hostile client can put in a frame (beyond bad-input.test.ts).
 * Expected answers in the names; after each case the control connection still publishes and receives.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { Control, Op, portOf, sleep, watchProcess, WireClient, wireConnected } from './helpers.ts';

/** Agent events are published by services (members only read agent channels). */
const agentService = () => token({ sub: 'agent-svc', roles: ['service'] });

const watch = watchProcess();
after(() => watch.assertNone());

const polluted = () =>
  ['polluted', 'isAdmin', 'organizationId', 'idempotency_key', 'types'].filter(
    (k) => (Object.prototype as Record<string, unknown>)[k] !== undefined,
  );

describe('attack: JSON and protocol', () => {
  let node: ApiXNode;
  let port: number;
  let control: Control;
  before(async () => {
    node = await startNode();
    port = portOf(node);
    control = await Control.start(node);
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  /** Sends `text` as the first frame; expects a fatal connection.error then close 4000. */
  async function expectFatalFirst(text: string, what: string) {
    const c = await WireClient.open(port);
    c.sendText(text);
    assert.equal(await c.waitClosed(), 4000, what);
    const err = c.json.find((f) => f.type === 'connection.error');
    assert.equal(err?.payload.code, 'BAD_REQUEST', what);
    assert.equal(err?.payload.fatal, true, what);
    c.destroy();
  }

  it('before connect: truncated JSON, an array, a scalar, a string, an empty frame, a BOM-prefixed connect -> fatal BAD_REQUEST, close 4000', async () => {
    const tok = await token();
    const connect = JSON.stringify({
      type: 'connect',
      payload: { sessionId: 's', clientType: 'WEB_APP', authentication: { token: tok }, subscriptions: [] },
    });
    for (const text of [
      connect.slice(0, 40),
      `[${connect}]`,
      '42',
      '"connect"',
      '',
      'true',
      `\uFEFF${connect}`,
      `${connect} trailing`,
    ])
      await expectFatalFirst(text, JSON.stringify(text.slice(0, 30)));
    await control.check();
  });

  it('commands before connect (publish, subscribe, ack, auth.refresh, ping, unsubscribe, a server frame type) -> fatal BAD_REQUEST, close 4000', async () => {
    const frames: unknown[] = [
      { type: 'note', channel: 'agent:a', payload: {} },
      { type: 'ack', payload: { channel: 'agent:a', ids: ['1-0'] } },
      { type: 'auth.refresh', payload: { token: await token() } },
      { type: 'heartbeat.ping', payload: {} },
      { type: 'unsubscribe', payload: { channels: ['agent:a'] } },
      { type: 'connection.established', payload: { connectionId: 'x', sessionId: 'x', resumed: true } },
      { type: 'CONNECT', payload: {} },
    ];
    for (const f of frames) await expectFatalFirst(JSON.stringify(f), JSON.stringify(f).slice(0, 40));
    await control.check();
  });

  it('JSON oddities after connect: duplicate "type" keys, 1e999, trailing garbage, lone surrogates -> non-fatal answers; connection stays', async () => {
    const c = await RawClient.connect(node.wsUrl);
    // Duplicate keys: the last one wins ("connect"), so this is a second connect: non-fatal.
    c.send('{"type":"heartbeat.ping","type":"connect","payload":{}}');
    const dup = await c.nextOfType('connection.error');
    assert.equal(dup.payload.fatal, false);
    assert.match(dup.payload.message, /already connected/);
    // 1e999 parses as Infinity: not a number the schema accepts.
    c.send('{"type":"heartbeat.ping","payload":{"ts":1e999}}');
    assert.equal((await c.nextOfType('connection.error')).payload.code, 'BAD_REQUEST');
    c.send('{"type":"heartbeat.ping"} {"type":"heartbeat.ping"}');
    assert.match((await c.nextOfType('connection.error')).payload.message, /not valid JSON/);
    // A lone surrogate in a correlation id is echoed as valid JSON (an escape), never as broken UTF-8.
    c.send('{"type":"heartbeat.ping","payload":{"ts":5},"metadata":{"correlation_id":"\\ud800x"}}');
    const pong = await c.nextOfType('heartbeat.pong');
    assert.equal(pong.metadata.correlation_id, '\ud800x');
    assert.equal(c.closed, undefined);
    c.close();
    await control.check();
  });

  it('a 10,000-deep and a 100,000-deep nesting bomb in payload, metadata, connect.metadata, filters, type and correlation_id -> PAYLOAD_TOO_LARGE (over the depth bound) or BAD_REQUEST, never INTERNAL, no crash', async () => {
    const pub = await RawClient.connect(node.wsUrl, {
      token: await agentService(),
      subscriptions: ['agent:deep'],
    });
    for (const depth of [10_000, 100_000]) {
      const bomb = '['.repeat(depth) + ']'.repeat(depth);
      const objBomb = '{"a":'.repeat(depth) + '1' + '}'.repeat(depth);
      for (const [where, frame] of [
        [
          'payload',
          `{"type":"note","channel":"agent:deep","payload":${bomb},"metadata":{"correlation_id":"p"}}`,
        ],
        [
          'metadata',
          `{"type":"note","channel":"agent:deep","payload":1,"metadata":{"correlation_id":"m","trace":${bomb}}}`,
        ],
        [
          'metadata (objects)',
          `{"type":"note","channel":"agent:deep","payload":1,"metadata":{"correlation_id":"o","trace":${objBomb}}}`,
        ],
      ] as const) {
        pub.send(frame);
        const r = await pub.next(
          (f) => f.metadata?.correlation_id === frame.match(/"correlation_id":"(\w)"/)![1],
        );
        assert.equal(r.type, 'message.failed', `${where} ${depth}`);
        // Over APIX_PAYLOAD_MAX_DEPTH: refused at validation, before anything stores or serializes it.
        assert.equal(r.payload.code, 'PAYLOAD_TOO_LARGE', `${where} ${depth}: ${r.payload.message}`);
      }
      pub.send(`{"type":"subscribe","payload":{"channels":["agent:x"],"filters":{"f":${bomb}}}}`);
      assert.equal((await pub.nextOfType('connection.error')).payload.code, 'BAD_REQUEST');
      pub.send(`{"type":${bomb}}`);
      assert.match((await pub.nextOfType('connection.error')).payload.message, /type must be a string/);
      pub.send(`{"type":"heartbeat.ping","metadata":{"correlation_id":${bomb}}}`);
      assert.equal((await pub.nextOfType('connection.error')).payload.code, 'BAD_REQUEST');
      // connect.metadata is kept with the connection: over APIX_CONNECT_METADATA_MAX_DEPTH it is refused.
      const c = await WireClient.open(port);
      c.sendText(
        `{"type":"connect","payload":{"sessionId":"deep","clientType":"WEB_APP","authentication":{"token":"${await token()}"},"subscriptions":[],"metadata":{"m":${bomb}}}}`,
      );
      const est = await c.waitJson(
        (f) => f.type === 'connection.established' || f.type === 'connection.error',
      );
      assert.ok(
        est.type === 'connection.error' && est.payload.code === 'PAYLOAD_TOO_LARGE',
        JSON.stringify(est.payload),
      );
      c.destroy();
    }
    await sleep(50);
    assert.equal(pub.events('agent:deep').length, 0, 'nothing was published');
    assert.equal(pub.closed, undefined);
    pub.close();
    await control.check();
  });

  it('__proto__ / constructor.prototype keys in authentication, connect.metadata, filters, since and publish metadata -> no prototype pollution, org never changes', async () => {
    const tok = await agentService();
    // In authentication (a strict object): an unknown key, fatal BAD_REQUEST 4000; never organizationId=globex.
    await expectFatalFirst(
      `{"type":"connect","payload":{"sessionId":"p","clientType":"WEB_APP","authentication":{"token":"${tok}","__proto__":{"organizationId":"globex"}},"subscriptions":[]}}`,
      'authentication.__proto__',
    );
    // In connect.metadata: dropped; the connection is acme's.
    const c = await WireClient.open(port);
    c.sendText(
      `{"type":"connect","payload":{"sessionId":"p2","clientType":"WEB_APP","authentication":{"token":"${tok}"},"subscriptions":[],"metadata":{"__proto__":{"isAdmin":true,"polluted":1},"constructor":{"prototype":{"isAdmin":true}}}}}`,
    );
    const est = await c.waitJson((f) => f.type === 'connection.established');
    assert.equal(est.payload.organizationId, 'acme');
    // filters.__proto__.types must not become a filter; the subscription gets everything.
    c.sendText(
      '{"type":"subscribe","payload":{"channels":["agent:proto"],"filters":{"__proto__":{"types":["nope"]}}}}',
    );
    await c.waitJson((f) => f.type === 'subscription.added');
    // since.__proto__ is not an event id map entry.
    c.sendText(
      '{"type":"subscribe","payload":{"channels":["agent:proto2"],"since":{"__proto__":{"agent:proto2":"1-0"}}},"metadata":{"correlation_id":"s2"}}',
    );
    const s2 = await c.waitJson((f) => f.metadata?.correlation_id === 's2');
    assert.ok(s2.type === 'connection.error' || s2.type === 'subscription.added', s2.type);
    // publish metadata.__proto__.idempotency_key is not an idempotency key: two publishes, two events.
    for (const n of [1, 2])
      c.sendText(
        `{"type":"note","channel":"agent:proto","payload":{"n":${n}},"metadata":{"correlation_id":"m${n}","__proto__":{"idempotency_key":"k","polluted":1}}}`,
      );
    const m1 = await c.waitJson((f) => f.metadata?.correlation_id === 'm1');
    const m2 = await c.waitJson((f) => f.metadata?.correlation_id === 'm2');
    assert.equal(m1.type, 'message.sent');
    assert.notEqual(m1.payload.id, m2.payload.id);
    const events = await (async () => {
      for (let i = 0; i < 100; i++) {
        const evs = c.json.filter((f) => f.channel === 'agent:proto' && f.id);
        if (evs.length === 2) return evs;
        await sleep(10);
      }
      return c.json.filter((f) => f.channel === 'agent:proto' && f.id);
    })();
    assert.equal(events.length, 2, 'the inherited "types" filter did not apply');
    assert.ok(events.every((e) => !('polluted' in (e.metadata as object))));
    // Types and channels named after Object.prototype members.
    for (const type of ['constructor', 'tostring', 'hasownproperty', 'valueof']) {
      c.sendJson({ type, channel: 'agent:proto', payload: {}, metadata: { correlation_id: `t-${type}` } });
      assert.equal(
        (await c.waitJson((f) => f.metadata?.correlation_id === `t-${type}`)).type,
        'message.sent',
      );
    }
    for (const type of ['__proto__', 'toString', 'hasOwnProperty']) {
      c.sendJson({ type, metadata: { correlation_id: `u-${type}` } });
      const r = await c.waitJson((f) => f.metadata?.correlation_id === `u-${type}`);
      assert.equal(r.type, 'connection.error');
      assert.match(r.payload.message, /unknown frame type/);
    }
    c.sendText(
      '{"type":"subscribe","payload":{"channels":["__proto__","constructor","prototype"]},"metadata":{"correlation_id":"pc"}}',
    );
    const pc = await c.waitJson((f) => f.metadata?.correlation_id === 'pc');
    assert.deepEqual(pc.payload.channels, []);
    assert.ok(pc.payload.denied.every((d: { code: string }) => d.code === 'BAD_REQUEST'));
    assert.deepEqual(polluted(), [], 'Object.prototype is clean');
    c.destroy();
    await control.check();
  });

  it('objects where scalars belong (token {$ne:null}, sessionId [], clientType {}, subscriptions "x") -> fatal BAD_REQUEST 4000 naming the field', async () => {
    const tok = await token();
    const base = { sessionId: 's', clientType: 'WEB_APP', authentication: { token: tok }, subscriptions: [] };
    const bad: Array<[string, Record<string, unknown>]> = [
      ['authentication', { authentication: { token: { $ne: null } } }],
      ['sessionId', { sessionId: ['a'] }],
      ['clientType', { clientType: { toString: 'WEB_APP' } }],
      ['subscriptions', { subscriptions: 'agent:a' }],
      ['subscriptions', { subscriptions: { 0: 'agent:a', length: 1 } }],
      ['authentication', { authentication: [tok] }],
    ];
    for (const [field, patch] of bad) {
      const c = await WireClient.open(port);
      c.sendJson({ type: 'connect', payload: { ...base, ...patch } });
      assert.equal(await c.waitClosed(), 4000, field);
      const err = c.json.find((f) => f.type === 'connection.error');
      assert.match(err?.payload.message, new RegExp(field), JSON.stringify(patch));
      c.destroy();
    }
    await control.check();
  });

  it('objects where scalars belong after connect (channels "x", ids [{$gt:""}], replay.last "5"/1e9/-1/1.5, correlation_id {}) -> non-fatal BAD_REQUEST each', async () => {
    const c = await RawClient.connect(node.wsUrl);
    const frames: unknown[] = [
      { type: 'subscribe', payload: { channels: 'agent:a' } },
      { type: 'subscribe', payload: { channels: [['agent:a']] } },
      { type: 'unsubscribe', payload: { channels: { 0: 'agent:a' } } },
      { type: 'ack', payload: { channel: 'agent:a', ids: [{ $gt: '' }] } },
      { type: 'ack', payload: { channel: { name: 'agent:a' }, ids: ['1-0'] } },
      { type: 'subscribe', payload: { channels: ['agent:a'], replay: { last: '5' } } },
      { type: 'subscribe', payload: { channels: ['agent:a'], replay: { last: 1e9 } } },
      { type: 'subscribe', payload: { channels: ['agent:a'], replay: { last: -1 } } },
      { type: 'subscribe', payload: { channels: ['agent:a'], replay: { last: 1.5 } } },
      { type: 'subscribe', payload: { channels: ['agent:a'], acknowledgment: 'yes' } },
      { type: 'auth.refresh', payload: { token: { alg: 'none' } } },
      { type: 'heartbeat.ping', payload: { ts: '1' }, metadata: { correlation_id: { a: 1 } } },
    ];
    for (const f of frames) {
      c.send(f);
      const err = await c.nextOfType('connection.error');
      assert.equal(err.payload.code, 'BAD_REQUEST', JSON.stringify(f));
      assert.equal(err.payload.fatal, false);
    }
    // A publish with an object channel or an object type.
    c.send({ type: 'note', channel: { org: 'globex' }, payload: {} });
    assert.equal((await c.nextOfType('connection.error')).payload.code, 'BAD_REQUEST');
    assert.equal(c.closed, undefined);
    c.close();
    await control.check();
  });

  it('unknown and server-only types (with and without channel, other case, 40 KB long) -> BAD_REQUEST / message.failed, replies stay small', async () => {
    const c = await RawClient.connect(node.wsUrl);
    for (const type of ['admin.suspend', 'connection.established', 'message.sent', 'Connect', 'connect ']) {
      c.send({ type, payload: {} });
      const err = await c.nextOfType('connection.error');
      assert.match(err.payload.message, /unknown frame type|already connected/, type);
    }
    for (const type of ['connection.established', 'message.failed', 'presence.join', 'subscription.added']) {
      const r = await c.publish('agent:a', type, {});
      assert.equal(r.type, 'message.failed', type);
      assert.match(r.payload.message, /reserved/);
    }
    const long = 't'.repeat(40 * 1024);
    const before = c.frames.length;
    c.send({ type: long, payload: {} });
    c.send({ type: long, channel: 'agent:a', payload: {} });
    c.send({ type: 'heartbeat.ping', [long]: 1 });
    c.send({ type: 'note', channel: `agent:${long}`, payload: {} });
    await c.nextOfType('connection.error');
    await c.nextOfType('message.failed');
    await c.nextOfType('connection.error');
    await c.nextOfType('message.failed');
    for (const f of c.frames.slice(before))
      assert.ok(JSON.stringify(f).length < 2048, `reply of ${JSON.stringify(f).length} bytes: ${f.type}`);
    c.close();
    await control.check();
  });

  it('a second connect with another organization’s token, and two pipelined connects -> "already connected" (non-fatal); identity unchanged', async () => {
    const c = await RawClient.connect(node.wsUrl, {
      token: await agentService(),
      subscriptions: ['agent:who'],
    });
    const globex = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'gina', org: 'globex' }),
      subscriptions: ['agent:who'],
    });
    c.send({
      type: 'connect',
      payload: {
        sessionId: 'other',
        clientType: 'WEB_APP',
        authentication: { token: await token({ sub: 'gina', org: 'globex', roles: ['service'] }) },
        subscriptions: ['agent:who'],
      },
    });
    assert.match((await c.nextOfType('connection.error')).payload.message, /already connected/);
    const sent = await c.publish('agent:who', 'note', { from: 'acme' });
    assert.equal(sent.type, 'message.sent');
    await c.waitForEvents(1, 'agent:who');
    await sleep(100);
    assert.equal(globex.events().length, 0, 'still acme: globex saw nothing');
    // Two connects in one write: the first wins, the second is answered after it.
    const p = await WireClient.open(port);
    const mk = async (sub: string, org: string) =>
      JSON.stringify({
        type: 'connect',
        payload: {
          sessionId: sub,
          clientType: 'WEB_APP',
          authentication: { token: await token({ sub, org }) },
          subscriptions: [],
        },
      });
    p.write(
      Buffer.concat([
        p.frameBytes(Op.TEXT, Buffer.from(await mk('first', 'acme'))),
        p.frameBytes(Op.TEXT, Buffer.from(await mk('second', 'globex'))),
      ]),
    );
    const est = await p.waitJson((f) => f.type === 'connection.established');
    assert.equal(est.payload.userId, 'first');
    assert.match(
      (await p.waitJson((f) => f.type === 'connection.error')).payload.message,
      /already connected/,
    );
    p.destroy();
    c.close();
    globex.close();
    await control.check();
  });

  it('a publish flood (1,000 in one burst) -> the first burst is published in order, the rest refused RATE_LIMITED, then close 4008; subscribers get only what was accepted', async () => {
    const sub = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:flood'] });
    const c = await wireConnected(node, { roles: ['service'] });
    const frames = Array.from({ length: 1000 }, (_, i) =>
      c.frameBytes(
        Op.TEXT,
        Buffer.from(JSON.stringify({ type: 'note', channel: 'agent:flood', payload: { i } })),
      ),
    );
    c.write(Buffer.concat(frames));
    assert.equal(await c.waitClosed(5000), 4008);
    assert.ok(
      c.json.some((f) => f.payload?.code === 'RATE_LIMITED'),
      'told RATE_LIMITED before the close',
    );
    await sleep(300);
    // What went through is a prefix (the burst) plus what the refill let in, in order; never all 1000.
    const got = sub.events('agent:flood').map((e) => e.payload.i as number);
    assert.ok(got.length >= 50 && got.length < 700, `published ${got.length}`);
    assert.deepEqual(
      got.slice(0, 50),
      Array.from({ length: 50 }, (_, i) => i),
      'the burst, in order',
    );
    assert.ok(
      got.every((v, i) => i === 0 || v > got[i - 1]!),
      'then only what the refill allowed, in order',
    );
    const sent = c.json.filter((f) => f.type === 'message.sent').length;
    assert.ok(sent <= got.length, `${sent} acknowledged`);
    c.destroy();
    sub.close();
    await control.check();
  });

  it('a flood of garbage frames -> answered (rate-limited) then close 4008; the answers never outgrow the input', async () => {
    const c = await wireConnected(node);
    const garbage = c.frameBytes(Op.TEXT, Buffer.from('{{{{'));
    c.write(Buffer.concat(Array.from({ length: 1000 }, () => garbage)));
    assert.equal(await c.waitClosed(5000), 4008);
    const errors = c.json.filter((f) => f.type === 'connection.error');
    assert.ok(errors.length <= 520, `${errors.length} error frames`);
    c.destroy();
    await control.check();
  });
});
