/** Replay, recovery, sessions and acknowledged delivery (docs/protocol.md §6). */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, startNode, token, sleep } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { ManualClock } from '../../../src/clock.ts';
import { waitFor } from '../../support/wait.ts';

const publishN = async (c: RawClient, channel: string, n: number, from = 0) => {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) ids.push((await c.publish(channel, 'note', { i })).payload.id);
  return ids;
};

describe('replay and recovery', () => {
  let node: ApiXNode;
  let pub: RawClient;
  before(async () => {
    node = await startNode({ history: { size: 50, ttlMs: 3_600_000, maxChannels: 1000 } });
    pub = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'pub', roles: ['service'] }) });
  });
  after(async () => {
    pub.close();
    await node.close();
  });

  it('since: every retained event after the id, then live ones, no gap, no duplicate', async () => {
    const ids = await publishN(pub, 'agent:r1', 10);
    const c = await RawClient.connect(node.wsUrl);
    // Publish concurrently with the replay.
    const live = publishN(pub, 'agent:r1', 20, 10);
    const added = await c.subscribe({ channels: ['agent:r1'], since: { 'agent:r1': ids[3] } });
    assert.deepEqual(added.payload.channels, [{ channel: 'agent:r1', recovered: true }]);
    await live;
    const events = await c.waitForEvents(26, 'agent:r1');
    await sleep(50);
    assert.deepEqual(
      c.events('agent:r1').map((e) => e.payload.i),
      Array.from({ length: 26 }, (_, k) => k + 4),
    );
    assert.equal(events.length, 26);
    c.close();
  });

  it('replay.last serves late joiners', async () => {
    await publishN(pub, 'agent:r2', 8);
    const c = await RawClient.connect(node.wsUrl);
    await c.subscribe({ channels: ['agent:r2'], replay: { last: 3 } });
    const events = await c.waitForEvents(3, 'agent:r2');
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [5, 6, 7],
    );
    c.close();
  });

  it('recovered:false for a trimmed id, an id above the top, another channel’s id and garbage', async () => {
    const ids = await publishN(pub, 'agent:r3', 60); // history keeps 50
    // Ids are <ms>-<seq> per channel: published in the same millisecond as r3's last events, r4's ids
    // could be r3's own (a real position in r3, rightly recovered); a later millisecond makes them foreign.
    await sleep(5);
    const other = await publishN(pub, 'agent:r4', 3);
    const c = await RawClient.connect(node.wsUrl);
    const top = ids[59]!.split('-');
    for (const since of [
      ids[2]!,
      `${top[0]}-${Number(top[1]) + 5}`,
      `${Number(top[0]) + 100000}-0`,
      other[1]!,
      'garbage',
    ]) {
      const r = await c.subscribe({ channels: ['agent:r3'], since: { 'agent:r3': since } });
      assert.deepEqual(r.payload.channels, [{ channel: 'agent:r3', recovered: false }], since);
    }
    await sleep(50);
    assert.ok(
      c.events().every((e) => e.channel === 'agent:r3'),
      'never another channel’s data',
    );
    const ok = await c.subscribe({ channels: ['agent:r3'], since: { 'agent:r3': ids[20]! } });
    assert.equal(ok.payload.channels[0].recovered, true);
    c.close();
  });
});

describe('sessions', () => {
  let node: ApiXNode;
  let pub: RawClient;
  before(async () => {
    node = await startNode({ sessionTtlMs: 1500 });
    pub = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'svc', roles: ['service'] }) });
  });
  after(async () => {
    pub.close();
    await node.close();
  });

  it('resumes within the TTL: subscriptions back, missed events in order, none doubled', async () => {
    const tok = await token({ sub: 'carol' });
    const c1 = await RawClient.connect(node.wsUrl, {
      token: tok,
      sessionId: 'sess-1',
      subscriptions: ['agent:s1', 'user:carol'],
    });
    await c1.subscribe({ channels: ['workflow:acked'], acknowledgment: true });
    const before = await publishN(pub, 'agent:s1', 3);
    await c1.waitForEvents(3, 'agent:s1');
    c1.terminate();
    await sleep(50);
    await publishN(pub, 'agent:s1', 4, 3);
    const queuedReply = await pub.publish('user:carol', 'note', { direct: 1 });
    assert.equal(queuedReply.type, 'message.queued', 'the target is away: held for it');
    await publishN(pub, 'workflow:acked', 2);
    const c2 = await RawClient.connect(node.wsUrl, { token: tok, sessionId: 'sess-1' });
    const est = c2.frames.find((f) => f.type === 'connection.established')!;
    assert.equal(est.payload.resumed, true);
    assert.deepEqual([...est.payload.subscriptions].sort(), ['agent:s1', 'user:carol', 'workflow:acked']);
    await c2.waitForEvents(4, 'agent:s1');
    await c2.waitForEvents(1, 'user:carol');
    const acked = await c2.waitForEvents(2, 'workflow:acked');
    await sleep(50);
    assert.deepEqual(
      c2.events('agent:s1').map((e) => e.payload.i),
      [3, 4, 5, 6],
    );
    assert.ok(!c2.events().some((e) => before.includes(e.id!)), 'nothing already delivered comes again');
    c2.send({ type: 'ack', payload: { channel: 'workflow:acked', ids: acked.map((e) => e.id) } });
    c2.close();
  });

  it('a subscription that was sent nothing yet gets what was published while it was away', async () => {
    // No event delivered before the drop: neither the client nor the session has an id to replay after.
    const tok = await token({ sub: 'erin' });
    const c1 = await RawClient.connect(node.wsUrl, {
      token: tok,
      sessionId: 'sess-3',
      subscriptions: ['agent:s3'],
    });
    c1.terminate();
    await sleep(50);
    await publishN(pub, 'agent:s3', 3);
    const c2 = await RawClient.connect(node.wsUrl, { token: tok, sessionId: 'sess-3' });
    const est = c2.frames.find((f) => f.type === 'connection.established')!;
    assert.equal(est.payload.resumed, true);
    assert.equal(est.payload.recovered['agent:s3'], true);
    const events = await c2.waitForEvents(3, 'agent:s3');
    await publishN(pub, 'agent:s3', 1, 3);
    await c2.waitForEvents(4, 'agent:s3');
    await sleep(50);
    assert.deepEqual(
      c2.events('agent:s3').map((e) => e.payload.i),
      [0, 1, 2, 3],
    );
    assert.equal(events.length, 3);
    c2.close();
  });

  it('resumes from the client’s lastEventIds', async () => {
    const tok = await token({ sub: 'dan' });
    const c1 = await RawClient.connect(node.wsUrl, {
      token: tok,
      sessionId: 'sess-2',
      subscriptions: ['agent:s2'],
    });
    const ids = await publishN(pub, 'agent:s2', 5);
    await c1.waitForEvents(5);
    c1.terminate();
    const c2 = await RawClient.connect(node.wsUrl, {
      token: tok,
      sessionId: 'sess-2',
      resume: { 'agent:s2': ids[1]! },
    });
    const est = c2.frames.find((f) => f.type === 'connection.established')!;
    assert.equal(est.payload.recovered['agent:s2'], true);
    const events = await c2.waitForEvents(3, 'agent:s2');
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [2, 3, 4],
    );
    c2.close();
  });

  it('a newer connection takes the session over (4009); another user cannot', async () => {
    const tok = await token({ sub: 'erin' });
    const c1 = await RawClient.connect(node.wsUrl, {
      token: tok,
      sessionId: 'sess-3',
      subscriptions: ['agent:s3'],
    });
    const intruder = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'mallory' }),
      sessionId: 'sess-3',
    });
    assert.equal(
      intruder.frames[0]!.payload.resumed,
      false,
      'same sessionId, other user: a separate session',
    );
    assert.equal(c1.closed, undefined);
    const c2 = await RawClient.connect(node.wsUrl, { token: tok, sessionId: 'sess-3' });
    const d = await c1.nextOfType('connection.disconnected');
    assert.equal(d.payload.code, 'CONFLICT');
    assert.equal((await c1.waitClosed()).code, 4009);
    assert.equal(c2.frames[0]!.payload.resumed, true);
    intruder.close();
    c2.close();
  });

  it('forgets a session after the TTL', async () => {
    const tok = await token({ sub: 'frank' });
    const c1 = await RawClient.connect(node.wsUrl, {
      token: tok,
      sessionId: 'sess-4',
      subscriptions: ['agent:s4'],
    });
    c1.terminate();
    await sleep(1800);
    const c2 = await RawClient.connect(node.wsUrl, { token: tok, sessionId: 'sess-4' });
    assert.equal(c2.frames[0]!.payload.resumed, false);
    assert.deepEqual(c2.frames[0]!.payload.subscriptions, []);
    c2.close();
  });
});

describe('acknowledged subscriptions', () => {
  it('redelivers un-acked events with retryCount, then dead-letters and tells the publisher', async () => {
    const node = await startNode({ ackTimeoutMs: 100, retry: { baseMs: 20, maxMs: 50, maxAttempts: 3 } });
    try {
      const sub = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'worker' }) });
      await sub.subscribe({ channels: ['tool:jobs'], acknowledgment: true });
      const pub = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'boss', roles: ['service'] }),
      });
      const a = await pub.publish('tool:jobs', 'job', { n: 1 });
      const b = await pub.publish('tool:jobs', 'job', { n: 2 });
      // Ack the first at once; never ack the second.
      const first = await sub.next((f) => f.id === a.payload.id);
      sub.send({ type: 'ack', payload: { channel: 'tool:jobs', ids: [first.id] } });
      const failed = await pub.nextOfType('message.failed', 3000);
      assert.equal(failed.payload.id, b.payload.id);
      const deliveries = sub.events('tool:jobs');
      assert.equal(deliveries.filter((e) => e.id === a.payload.id).length, 1, 'acked: delivered once');
      const seconds = deliveries.filter((e) => e.id === b.payload.id);
      assert.equal(seconds.length, 3, 'three attempts');
      assert.deepEqual(
        seconds.map((e) => e.metadata.retryCount),
        [undefined, 1, 2],
      );
      assert.equal(node.gateway.retry.inflightCount, 0);
      sub.close();
      pub.close();
    } finally {
      await node.close();
    }
  });
});

describe('connection lifecycle', () => {
  it('terminates a client that stops answering within three heartbeat intervals', async () => {
    const node = await startNode({ heartbeatIntervalMs: 150 });
    try {
      const alive = await RawClient.connect(node.wsUrl);
      const dead = await RawClient.connect(node.wsUrl);
      (dead.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const started = Date.now();
      for (let i = 0; i < 40 && node.gateway.connections.size > 1; i++) await sleep(25);
      assert.equal(node.gateway.connections.size, 1, 'the silent client was cut');
      assert.ok(Date.now() - started < 1000);
      const ping = await alive.nextOfType('heartbeat.ping');
      assert.equal(typeof ping.payload.ts, 'number');
      alive.send({ type: 'heartbeat.pong', payload: { ts: ping.payload.ts } });
      await sleep(300);
      assert.equal(alive.closed, undefined, 'a client that answers stays');
      alive.close();
    } finally {
      await node.close();
    }
  });

  it('spreads the heartbeat round over the interval: each client pinged once per interval, not all at once', async () => {
    // The node's time moves only when the test moves it, one heartbeat tick (10 ms) at a time, with a turn
    // of the event loop between ticks: how slow the machine is changes nothing in what the rounds do.
    const interval = 1000;
    const clock = new ManualClock(Date.now());
    const node = await startNode({ heartbeatIntervalMs: interval }, { clock });
    try {
      const clients = await Promise.all(Array.from({ length: 60 }, () => RawClient.connect(node.wsUrl)));
      const pingsOf = (c: RawClient) =>
        c.frames.filter((f) => f.type === 'heartbeat.ping').map((f) => f.payload.ts as number);
      for (let t = 0; t < 2 * interval; t += 10) {
        clock.advance(10);
        await new Promise((r) => setImmediate(r));
      }
      // Two whole rounds have been written by now: wait for the clients to have read them.
      await waitFor(() => clients.every((c) => pingsOf(c).length >= 2), 15_000, 'two rounds of pings');
      const pings = clients.map(pingsOf);
      for (const ts of pings) {
        assert.ok(ts.length >= 2 && ts.length <= 3, `pings: ${ts.length}`);
        for (let i = 1; i < ts.length; i++)
          assert.ok(ts[i]! - ts[i - 1]! >= interval * 0.8, `two pings ${ts[i]! - ts[i - 1]!} ms apart`);
      }
      const firsts = pings.map((ts) => ts[0]!);
      const spread = Math.max(...firsts) - Math.min(...firsts);
      assert.ok(spread >= interval * 0.4, `the first round's pings span ${spread} ms`);
      for (const c of clients) c.close();
    } finally {
      await node.close();
    }
  });

  it('drains on shutdown: connection.disconnected with reconnect:true, then 1001', async () => {
    const node = await startNode();
    const c = await RawClient.connect(node.wsUrl);
    const closing = node.close();
    const d = await c.nextOfType('connection.disconnected');
    assert.equal(d.payload.reconnect, true);
    assert.equal((await c.waitClosed()).code, 1001);
    await closing;
  });

  it('cuts a subscriber that stops reading; the others keep pace', async () => {
    // A firehose of 380 publishes from one connection: over the default per-connection publish limit.
    const rateLimits = { ...config().rateLimits, publish: { perSec: 0, burst: 1 } };
    const node = await startNode({ maxBufferedBytes: 256 * 1024, rateLimits });
    try {
      const fast = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:firehose'] });
      const slow = await RawClient.connect(node.wsUrl, {
        subscriptions: ['agent:firehose'],
        ws: { perMessageDeflate: false },
      });
      (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      const pub = await RawClient.connect(node.wsUrl, { token: await token({ roles: ['service'] }) });
      const blob = 'x'.repeat(16 * 1024);
      // Enough to fill the kernel's socket buffers (several MB on loopback) and then the 256 KB ceiling.
      for (let i = 0; i < 380; i++)
        pub.send({ type: 'note', channel: 'agent:firehose', payload: { i, blob } });
      await fast.waitForEvents(380, 'agent:firehose', 10_000);
      for (let i = 0; i < 40 && node.gateway.slowConsumers === 0; i++) await sleep(25);
      assert.equal(node.gateway.slowConsumers, 1);
      assert.ok(node.gateway.connections.size <= 2);
      fast.close();
      pub.close();
    } finally {
      await node.close();
    }
  });
});
