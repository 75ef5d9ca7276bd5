/**
 * Attack suite, tenancy and channels: reaching another organization's channel by any spelling (subscribe,
 * since, resume, ack, history), globs, look-alikes, NUL, hash tags, long names, subscription floods,
 * session-key collisions, and subscribe/unsubscribe/disconnect races that must leave nothing behind.
 * Expected answers in the names; after each case the control connection still publishes and receives.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { Control, Op, portOf, sleep, until, watchProcess, WireClient, wireConnected } from './helpers.ts';

const watch = watchProcess();
after(() => watch.assertNone());

describe('attack: tenancy and channel names', () => {
  let node: ApiXNode;
  let control: Control;
  let acmePub: RawClient;
  let acmeIds: string[];
  before(async () => {
    node = await startNode({ maxChannelsPerConnection: 20 });
    control = await Control.start(node);
    acmePub = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'svc', roles: ['service'] }) });
    acmeIds = [];
    for (let i = 0; i < 3; i++)
      acmeIds.push((await acmePub.publish('agent:secret', 'note', { secret: `acme-${i}` })).payload.id);
  });
  after(async () => {
    await control.check();
    acmePub.close();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  const globexClient = async (subs: string[] = []) =>
    RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'gina', org: 'globex', roles: ['admin'] }),
      subscriptions: subs,
    });
  const sawAcme = (c: RawClient) => c.frames.some((f) => JSON.stringify(f).includes('acme-'));

  it("another organization's channel by subscribe, since, replay, resume, ack and unsubscribe -> BAD_REQUEST or globex's own (empty) channel; never acme's data", async () => {
    const spellings = [
      'acme:agent:secret',
      'acme/agent:secret',
      '../acme/agent:secret',
      'acme%2Fagent:secret',
      '_/agent:secret',
      'agent:secret/../../acme',
      'agent:secret\u0000acme',
      'agent:secret\nacme/agent:secret',
    ];
    const g = await globexClient(spellings);
    const est = g.frames[0]!;
    assert.deepEqual(est.payload.subscriptions, []);
    assert.ok(est.payload.denied.every((d: { code: string }) => d.code === 'BAD_REQUEST'));
    // The same name inside globex: a different channel. since = acme's ids, replay of the last 100.
    const added = await g.subscribe({
      channels: ['agent:secret', ...spellings],
      since: { 'agent:secret': acmeIds[0]! },
    });
    assert.deepEqual(added.payload.channels, [{ channel: 'agent:secret', recovered: false }]);
    await g.subscribe({ channels: ['agent:secret'], replay: { last: 100 } });
    g.send({ type: 'ack', payload: { channel: 'agent:secret', ids: acmeIds } });
    g.send({ type: 'unsubscribe', payload: { channels: spellings } });
    await g.nextOfType('subscription.removed');
    // A fresh globex session resuming with acme's ids.
    const r = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'gina2', org: 'globex' }),
      subscriptions: ['agent:secret'],
      resume: { 'agent:secret': acmeIds[0]!, 'acme/agent:secret': acmeIds[0]! },
    });
    await sleep(100);
    assert.ok(!sawAcme(g) && !sawAcme(r), 'no acme event reached globex');
    assert.equal(g.events().length + r.events().length, 0);
    g.close();
    r.close();
    await control.check();
  });

  it("another organization's history over HTTP, every path spelling (encoded /, .., double encoding, _/ system key) -> 400 or globex's empty history", async () => {
    const auth = { Authorization: `Bearer ${await token({ sub: 'gina', org: 'globex', roles: ['admin'] })}` };
    for (const path of [
      'agent:secret',
      'acme%2Fagent:secret',
      'acme%2Fagent%3Asecret',
      '..%2Facme%2Fagent:secret',
      'acme%252Fagent:secret',
      '_%2Fagent:secret',
      'agent%3Asecret%00acme',
      'agent:secret%2F..%2F..%2Facme',
    ]) {
      const res = await fetch(`${node.httpUrl}/v1/channels/${path}/history?since=${acmeIds[0]}`, {
        headers: auth,
      });
      const text = await res.text();
      assert.ok(res.status === 400 || res.status === 200 || res.status === 404, `${path}: ${res.status}`);
      assert.ok(!text.includes('acme-'), `${path} leaked: ${text}`);
      if (res.status === 200) assert.deepEqual(JSON.parse(text).events, [], path);
    }
    // Dot segments in the URL path itself.
    const dot = await fetch(`${node.httpUrl}/v1/channels/agent:secret/../../channels/agent:secret/history`, {
      headers: auth,
    });
    assert.ok(!(await dot.text()).includes('acme-'));
    await control.check();
  });

  it('wildcards and glob characters (*, >, #, ?, [..], %, .*, |) -> BAD_REQUEST; "_" and "-" are literal, never patterns', async () => {
    const c = await RawClient.connect(node.wsUrl);
    const globs = [
      'agent:*',
      'agent:>',
      'agent:#',
      '*',
      '>',
      '#',
      '**',
      'agent:?',
      'agent:[a-z]',
      'agent:%',
      'agent:.*',
      'agent:a|b',
      'agent:a,agent:b',
      'agent:a b',
    ];
    const r = await c.subscribe({ channels: globs });
    assert.deepEqual(r.payload.channels, []);
    assert.equal(r.payload.denied.length, globs.length);
    assert.ok(r.payload.denied.every((d: { code: string }) => d.code === 'BAD_REQUEST'));
    // '_' (a LIKE wildcard) and '-' are ordinary characters: agent:_ and agent:a_ are their own channels.
    const lit = await RawClient.connect(node.wsUrl, {
      subscriptions: ['agent:_', 'agent:a_', 'agent:-', 'agent:a-'],
    });
    for (const ch of ['agent:a', 'agent:ab', 'agent:x', 'agent:abc'])
      await acmePub.publish(ch, 'note', { ch });
    await sleep(100);
    assert.equal(lit.events().length, 0, 'no pattern matching');
    c.close();
    lit.close();
    await control.check();
  });

  it('case and Unicode look-alikes (Agent:, agent:X vs x, Cyrillic а, fullwidth, zero-width, combining, Kelvin sign) -> BAD_REQUEST or a distinct channel; user:Alice is not user:alice', async () => {
    const c = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'alice' }) });
    const bad = [
      'Agent:x',
      'AGENT:x',
      'аgent:x', // Cyrillic a
      'ａgent:x', // fullwidth a
      'agent：x', // fullwidth colon
      'agent:x\u200d',
      'agent:\u200bx',
      'agent:e\u0301',
      'agent:\u212a', // Kelvin sign, lowercases to k
      'agent:İ',
      'agent:x\t',
      'agent:x ',
      ' agent:x',
    ];
    const r = await c.subscribe({ channels: [...bad, 'agent:X'] });
    assert.deepEqual(r.payload.channels, [{ channel: 'agent:X', recovered: true }]);
    assert.ok(r.payload.denied.every((d: { code: string }) => d.code === 'BAD_REQUEST'));
    await acmePub.publish('agent:x', 'note', { lower: true });
    await acmePub.publish('agent:k', 'note', { k: true });
    await sleep(100);
    assert.equal(c.events().length, 0, 'agent:X is not agent:x');
    const u = await c.subscribe({
      channels: ['user:Alice', 'user:alice', 'user:ALICE:inbox', 'user:alice:inbox'],
    });
    assert.deepEqual(
      u.payload.channels.map((x: { channel: string }) => x.channel),
      ['user:alice', 'user:alice:inbox'],
    );
    assert.deepEqual(
      u.payload.denied.map((d: { code: string }) => d.code),
      ['FORBIDDEN', 'FORBIDDEN'],
    );
    c.close();
    await control.check();
  });

  it('user ids with separators: sub "alice:evil" cannot read user:alice or user:alice:evil -> FORBIDDEN', async () => {
    const c = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'alice:evil' }) });
    const r = await c.subscribe({ channels: ['user:alice', 'user:alice:evil', 'user:alice:inbox'] });
    assert.deepEqual(r.payload.channels, []);
    assert.ok(r.payload.denied.every((d: { code: string }) => d.code === 'FORBIDDEN'));
    c.close();
    await control.check();
  });

  it('NUL bytes and Redis hash tags ({globex}) in channel names -> BAD_REQUEST (in subscribe, publish, connect)', async () => {
    const names = [
      'agent:x\u0000',
      'agent:\u0000',
      'agent:{globex}',
      '{agent}:x',
      'agent:{acme}secret',
      'agent:x{',
      'room:{r}',
    ];
    const c = await RawClient.connect(node.wsUrl, { subscriptions: names });
    assert.equal(c.frames[0]!.payload.denied.length, names.length);
    const r = await c.subscribe({ channels: names });
    assert.equal(r.payload.denied.length, names.length);
    for (const n of names) {
      const p = await c.publish(n, 'note', {});
      assert.equal(p.type, 'message.failed', JSON.stringify(n));
      assert.equal(p.payload.code, 'BAD_REQUEST');
    }
    c.close();
    await control.check();
  });

  it('long names: 200 chars -> granted; 201 and 512 -> denied BAD_REQUEST; 513+ -> whole frame BAD_REQUEST; a 100 KB name -> small reply', async () => {
    const c = await RawClient.connect(node.wsUrl);
    const n200 = `agent:${'a'.repeat(194)}`;
    const r = await c.subscribe({ channels: [n200, `${n200}b`, `agent:${'a'.repeat(506)}`] });
    assert.deepEqual(r.payload.channels, [{ channel: n200, recovered: true }]);
    assert.equal(r.payload.denied.length, 2);
    assert.match(r.payload.denied[0].message, /longer than 200/);
    const big = await c.subscribe({ channels: [`agent:${'a'.repeat(507)}`] });
    assert.equal(big.type, 'connection.error');
    assert.equal(big.payload.fatal, false);
    const huge = `agent:${'h'.repeat(100 * 1024)}`;
    const p = await c.publish(huge, 'note', {});
    assert.equal(p.type, 'message.failed');
    assert.ok(JSON.stringify(p).length < 1024, `reply of ${JSON.stringify(p).length} bytes`);
    c.send({ type: 'unsubscribe', payload: { channels: [huge] } });
    assert.ok(JSON.stringify(await c.nextOfType('connection.error')).length < 1024);
    // An over-long sessionId (129) is a bad connect.
    const s = await WireClient.open(portOf(node));
    s.sendJson({
      type: 'connect',
      payload: {
        sessionId: 's'.repeat(129),
        clientType: 'WEB_APP',
        authentication: { token: await token() },
        subscriptions: [],
      },
    });
    assert.equal(await s.waitClosed(), 4000);
    s.destroy();
    c.close();
    await control.check();
  });

  it('subscribe flood: 1,000 names in connect, then 30 frames of 1,000 new names, duplicates and filter churn -> never more than APIX_MAX_CHANNELS_PER_CONNECTION (20)', async () => {
    const before = node.gateway.stats().subscriptions;
    const names = (p: string) => Array.from({ length: 1000 }, (_, i) => `agent:${p}${i}`);
    const c = await wireConnected(node, {}, false);
    c.sendJson({ type: 'subscribe', payload: { channels: names('c') } });
    const first = await c.waitJson((f) => f.type === 'subscription.added');
    assert.equal(first.payload.channels.length, 20);
    assert.equal(first.payload.denied.length, 980);
    assert.match(first.payload.denied[0].message, /limit of 20/);
    const frames = Array.from({ length: 30 }, (_, k) =>
      c.frameBytes(
        Op.TEXT,
        Buffer.from(JSON.stringify({ type: 'subscribe', payload: { channels: names(`f${k}-`) } })),
      ),
    );
    c.write(Buffer.concat(frames));
    await until(
      () => c.json.filter((f) => f.type === 'subscription.added').length === 31,
      5000,
      '31 answers',
    );
    assert.ok(
      c.json
        .filter((f) => f.type === 'subscription.added')
        .slice(1)
        .every((f) => f.payload.channels.length === 0),
    );
    // Duplicates in one frame and filter churn on a held channel: still one subscription each.
    for (let i = 0; i < 20; i++)
      c.sendJson({
        type: 'subscribe',
        payload: { channels: ['agent:c0', 'agent:c0', 'agent:c0'], filters: { n: i } },
      });
    await until(
      () => c.json.filter((f) => f.type === 'subscription.added').length === 51,
      5000,
      '51 answers',
    );
    assert.equal(node.gateway.stats().subscriptions - before, 20);
    // Unsubscribing 5 frees exactly 5 places.
    c.sendJson({ type: 'unsubscribe', payload: { channels: names('c').slice(0, 5) } });
    c.sendJson({
      type: 'subscribe',
      payload: { channels: names('z').slice(0, 10) },
      metadata: { correlation_id: 'z' },
    });
    const z = await c.waitJson((f) => f.metadata?.correlation_id === 'z');
    assert.equal(z.payload.channels.length, 5);
    assert.equal(node.gateway.stats().subscriptions - before, 20);
    c.destroy();
    await control.check();
  });

  it('session key collision: sub "team" with sessionId "alice/s1" vs sub "team/alice" with sessionId "s1" -> separate sessions, no takeover (4009), nothing shared', async () => {
    const victim = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'team/alice' }),
      sessionId: 's1',
      subscriptions: ['agent:victim'],
    });
    const attacker = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'team' }),
      sessionId: 'alice/s1',
    });
    const est = attacker.frames[0]!;
    await sleep(100);
    assert.equal(
      victim.closed,
      undefined,
      `the victim was disconnected: ${JSON.stringify(victim.frames.slice(-1))}`,
    );
    assert.equal(est.payload.resumed, false, 'the attacker got a fresh session');
    assert.deepEqual(est.payload.subscriptions, [], "the victim's subscriptions stay the victim's");
    victim.close();
    attacker.close();
    await control.check();
  });
});

describe('attack: races leave nothing behind', () => {
  it('subscribe/unsubscribe/ack/disconnect/takeover races by 60 clients -> stats() back to baseline once sessions expire (sessionTtlMs 300)', async () => {
    const node = await startNode({
      sessionTtlMs: 300,
      ackTimeoutMs: 50,
      retry: { baseMs: 10, maxMs: 20, maxAttempts: 2 },
    });
    const control = await Control.start(node);
    try {
      await control.check();
      const baseline = { ...node.gateway.stats(), slowConsumers: 0 };
      const pub = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'svc', roles: ['service'] }),
      });
      const port = portOf(node);
      const tasks: Array<Promise<void>> = [];
      for (let i = 0; i < 60; i++) {
        tasks.push(
          (async () => {
            const tok = await token({ sub: `u${i % 7}` });
            const sessionId = `race-${i % 10}`; // shared ids: takeovers between clients of the same user
            const c = await WireClient.open(port);
            c.sendJson({
              type: 'connect',
              payload: {
                sessionId,
                clientType: 'WEB_APP',
                authentication: { token: tok },
                subscriptions: [`user:u${i % 7}`],
              },
            });
            switch (i % 6) {
              case 0: // gone before the connect is answered
                c.destroy();
                return;
              case 1: // subscribe and vanish before subscription.added
                c.sendJson({ type: 'subscribe', payload: { channels: [`agent:r${i % 4}`, 'room:race'] } });
                c.destroy();
                return;
              case 2: // acknowledged subscription, events in flight, never acked, then gone
                c.sendJson({
                  type: 'subscribe',
                  payload: { channels: [`tool:r${i % 3}`], acknowledgment: true },
                });
                await c.waitJson((f) => f.type === 'subscription.added').catch(() => undefined);
                await pub.publish(`tool:r${i % 3}`, 'job', { i });
                await sleep(20);
                c.destroy();
                return;
              case 3: // subscribe/unsubscribe churn, then a clean close
                for (let k = 0; k < 30; k++) {
                  c.sendJson({ type: 'subscribe', payload: { channels: [`agent:churn${k % 5}`] } });
                  c.sendJson({ type: 'unsubscribe', payload: { channels: [`agent:churn${k % 5}`] } });
                }
                await sleep(30);
                c.sendFrame({ opcode: Op.CLOSE, payload: Buffer.from([0x03, 0xe8]) });
                await c.waitEnded(2000).catch(() => undefined);
                c.destroy();
                return;
              case 4: // events queued for an away user channel
                await sleep(10);
                c.destroy();
                await pub.publish(`user:u${i % 7}`, 'note', { i });
                return;
              default: // unsubscribe of things never subscribed, then gone mid-frame
                c.sendJson({ type: 'unsubscribe', payload: { channels: ['agent:never', 'user:u0'] } });
                c.write(Buffer.from([0x81, 0xfe, 0x10])); // half a frame header
                c.destroy();
            }
          })(),
        );
      }
      await Promise.all(tasks);
      pub.close();
      await until(
        () => {
          const s = { ...node.gateway.stats(), slowConsumers: 0 };
          return JSON.stringify(s) === JSON.stringify(baseline) ? s : undefined;
        },
        5000,
        `stats back to ${JSON.stringify(baseline)}; now ${JSON.stringify(node.gateway.stats())}`,
      );
      assert.equal(node.gateway.retry.inflightCount, 0);
      await control.check();
    } finally {
      control.close();
      WireClient.destroyAll();
      await node.close();
    }
  });
});
