/**
 * Attack suite, delivery: duplicate publishes, forged `since`, a client that never acks, and clients that
 * stop reading (live fan-out, acknowledged subscriptions, replays). Expected answers in the names; after
 * each case the control connection still publishes and receives its own event.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import { compareEventIds } from '@apix/protocol/event-id';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { SteppedClock } from '../../support/clock.ts';
import { MemoryDeadLetterStore } from '../../../src/retry/dead-letter.ts';
import { Control, Op, sleep, until, watchProcess, WireClient, wireConnected } from './helpers.ts';
import type { WsTransport } from '../../../src/transport/websocket/ws-transport.ts';

const watch = watchProcess();
after(() => watch.assertNone());

const serviceToken = (org = 'acme') => token({ sub: `svc-${org}`, org, roles: ['service'] });

describe('attack: idempotency and forged since', () => {
  let node: ApiXNode;
  let control: Control;
  let pub: RawClient;
  // The time moves only when a test moves it (timers run on real time): an idempotency window holds however
  // slow the machine is and ends without a sleep, and the ids of two channels collide or not as a test
  // chooses (ids are <ms>-<seq>, per channel).
  const clock = new SteppedClock();
  before(async () => {
    const overrides = {
      idempotencyWindowMs: 1500,
      history: { size: 20, ttlMs: 3_600_000, maxChannels: 1000 },
    };
    node = await startNode(overrides, { clock, engines: memoryEngines(config(overrides), clock) });
    control = await Control.start(node);
    pub = await RawClient.connect(node.wsUrl, { token: await serviceToken() });
  });
  after(async () => {
    await control.check();
    pub.close();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  it('the same metadata.idempotency_key: sequential, 20 pipelined, over HTTP and WS -> one event, the same id for all, within the window', async () => {
    const sub = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:idem'] });
    const first = await pub.publish('agent:idem', 'note', { n: 1 }, { idempotency_key: 'k1' });
    const again = await pub.publish(
      'agent:idem',
      'note',
      { n: 2, different: true },
      { idempotency_key: 'k1' },
    );
    assert.equal(again.type, 'message.sent');
    assert.equal(again.payload.id, first.payload.id);
    // 20 in one write, on a raw socket.
    const w = await wireConnected(node, { sub: 'w', roles: ['service'] });
    w.write(
      Buffer.concat(
        Array.from({ length: 20 }, (_, i) =>
          w.frameBytes(
            Op.TEXT,
            Buffer.from(
              JSON.stringify({
                type: 'note',
                channel: 'agent:idem',
                payload: { i },
                metadata: { idempotency_key: 'k2', correlation_id: `p${i}` },
              }),
            ),
          ),
        ),
      ),
    );
    await until(() => w.json.filter((f) => f.type === 'message.sent').length === 20, 3000, '20 replies');
    const ids = new Set(w.json.filter((f) => f.type === 'message.sent').map((f) => f.payload.id));
    assert.equal(ids.size, 1, 'one id for all 20');
    // HTTP with the same key as the WS publish.
    const res = await fetch(`${node.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: { Authorization: 'Bearer apix_static_acmekey', 'Content-Type': 'application/json' },
      body: JSON.stringify({
        channel: 'agent:idem',
        type: 'note',
        payload: {},
        metadata: { idempotency_key: 'k1' },
      }),
    });
    assert.equal((await res.json()).id, first.payload.id);
    await sleep(100);
    assert.equal(sub.events('agent:idem').length, 2, 'one event per key');
    assert.equal(sub.events('agent:idem')[0]!.payload.n, 1, 'the first publish wins');
    w.destroy();
    sub.close();
    await control.check();
  });

  it('the same key on another channel, in another organization, and after the window -> a new event each (keys never cross channels or tenants)', async () => {
    // Ids are per channel (two channels may give the same id in one ms): the proof is idem3's own event.
    const sub3 = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:idem3'] });
    const a = await pub.publish('agent:idem2', 'note', {}, { idempotency_key: 'shared' });
    const b = await pub.publish('agent:idem3', 'note', {}, { idempotency_key: 'shared' });
    assert.equal(b.type, 'message.sent');
    assert.equal((await sub3.waitForEvents(1, 'agent:idem3'))[0]!.id, b.payload.id);
    sub3.close();
    const globexSub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'g', org: 'globex' }),
      subscriptions: ['agent:idem2'],
    });
    const gpub = await RawClient.connect(node.wsUrl, { token: await serviceToken('globex') });
    const g = await gpub.publish('agent:idem2', 'note', { globex: true }, { idempotency_key: 'shared' });
    assert.equal(g.type, 'message.sent');
    const [ev] = await globexSub.waitForEvents(1, 'agent:idem2');
    assert.equal(ev!.payload.globex, true, "globex got its own event, not acme's");
    assert.equal(ev!.id, g.payload.id);
    clock.advance(1600);
    const later = await pub.publish('agent:idem2', 'note', {}, { idempotency_key: 'shared' });
    assert.notEqual(later.payload.id, a.payload.id, 'a new event after the window');
    globexSub.close();
    gpub.close();
    await control.check();
  });

  it('forged since: another channel’s id, an id above the top, the max safe id, an unsafe id, a trimmed id, 0-0 -> recovered:false and never another channel’s data; a real id -> recovered:true and the rest', async () => {
    // Interleaved, a millisecond apart: the ids of agent:fb lie inside agent:fa's retained range (the
    // last 20 of 30) and none is an id of agent:fa.
    const a: string[] = [];
    const b: string[] = [];
    for (let i = 0; i < 30; i++) {
      clock.advance(1);
      a.push((await pub.publish('agent:fa', 'note', { ch: 'fa', i })).payload.id);
      if (i >= 26 && i <= 28) {
        clock.advance(1);
        b.push((await pub.publish('agent:fb', 'note', { ch: 'fb', i })).payload.id);
      }
    }
    const [ms, seq] = a[29]!.split('-').map(Number) as [number, number];
    const foreign = b[1]!;
    assert.ok(!a.includes(foreign), 'not an id of agent:fa');
    assert.ok(
      compareEventIds(a[10]!, foreign) < 0 && compareEventIds(foreign, a[29]!) < 0,
      'inside its range',
    );
    const c = await RawClient.connect(node.wsUrl);
    for (const [what, since] of [
      ['another channel’s id', foreign],
      ['above the top', `${ms}-${seq + 1000}`],
      ['the max safe id', '9007199254740991-9007199254740991'],
      ['an unsafe id', '9007199254740993-0'],
      ['negative', '-1-0'],
    ] as const) {
      const r = await c.subscribe({ channels: ['agent:fa', 'agent:fb'], since: { 'agent:fa': since } });
      assert.deepEqual(r.payload.channels[0], { channel: 'agent:fa', recovered: false }, what);
      c.send({ type: 'unsubscribe', payload: { channels: ['agent:fa', 'agent:fb'] } });
      await c.nextOfType('subscription.removed');
    }
    await sleep(50);
    assert.equal(c.events().length, 0, 'nothing replayed for a forged since');
    // A trimmed id (older than what is retained): recovered false, and the retained events of that channel
    // (and only those) are served, so that nothing still there is lost.
    const t = await RawClient.connect(node.wsUrl);
    const trimmed = await t.subscribe({ channels: ['agent:fa'], since: { 'agent:fa': a[2]! } });
    assert.deepEqual(trimmed.payload.channels[0], { channel: 'agent:fa', recovered: false });
    const kept = await t.waitForEvents(1, 'agent:fa');
    assert.ok(kept.every((e) => e.payload.ch === 'fa'));
    t.close();
    // A fresh session resuming with another channel's id: recovered false, no data.
    const r = await RawClient.connect(node.wsUrl, {
      subscriptions: ['agent:fa'],
      resume: { 'agent:fa': foreign },
    });
    assert.equal(r.frames[0]!.payload.recovered['agent:fa'], false);
    await sleep(50);
    assert.equal(r.events().length, 0);
    // 0-0: older than anything this node can vouch for (it may predate the node): recovered false, but the
    // retained events of that channel (and only those) are still served. A real id: recovered true.
    const z = await RawClient.connect(node.wsUrl);
    const zero = await z.subscribe({ channels: ['agent:fb'], since: { 'agent:fb': '0-0' } });
    assert.equal(zero.payload.channels[0].recovered, false);
    const retained = await z.waitForEvents(3, 'agent:fb');
    assert.deepEqual(
      retained.map((e) => e.id),
      b,
    );
    const ok = await z.subscribe({ channels: ['agent:fb'], since: { 'agent:fb': b[0]! } });
    assert.equal(ok.payload.channels[0].recovered, true);
    const got = await z.waitForEvents(5, 'agent:fb');
    await sleep(50);
    assert.ok(z.events().every((e) => e.payload.ch === 'fb'));
    assert.deepEqual(
      got.slice(3).map((e) => e.id),
      b.slice(1),
    );
    // HTTP: the same forgeries.
    for (const since of [foreign, `${ms}-${seq + 1000}`, '9007199254740993-0']) {
      const res = await fetch(`${node.httpUrl}/v1/channels/agent:fa/history?since=${since}`, {
        headers: { Authorization: 'Bearer apix_static_acmekey' },
      });
      const body = await res.json();
      assert.equal(body.recovered, false, since);
      assert.ok(
        body.events.every((e: { payload: { ch: string } }) => e.payload.ch === 'fa'),
        since,
      );
    }
    // Ids are per channel: two channels published in the same millisecond give the same id. On agent:fa
    // that id is agent:fa's own, and resumes from agent:fa's place: recovered, and only agent:fa's events.
    clock.advance(1);
    const sharedA = (await pub.publish('agent:fa', 'note', { ch: 'fa', shared: true })).payload.id;
    const sharedB = (await pub.publish('agent:fb', 'note', { ch: 'fb', shared: true })).payload.id;
    assert.equal(sharedA, sharedB, 'the same id on both channels');
    const afterShared = (await pub.publish('agent:fa', 'note', { ch: 'fa', after: true })).payload.id;
    const s = await RawClient.connect(node.wsUrl);
    const resumed = await s.subscribe({ channels: ['agent:fa'], since: { 'agent:fa': sharedB } });
    assert.deepEqual(resumed.payload.channels[0], { channel: 'agent:fa', recovered: true });
    const [next] = await s.waitForEvents(1, 'agent:fa');
    await sleep(50);
    assert.equal(next!.id, afterShared);
    assert.deepEqual(
      s.events().map((e) => e.payload),
      [{ ch: 'fa', after: true }],
    );
    c.close();
    r.close();
    z.close();
    s.close();
    await control.check();
  });
});

describe('attack: a subscriber that never acks', () => {
  it('in-flight window capped at maxInflight (5), waiting capped at 10, the overflow dead-lettered at once, every event dead-lettered after 2 attempts -> message.failed to the publisher for each', async () => {
    const deadLetters = new MemoryDeadLetterStore(1000);
    const node = await startNode(
      {
        ackTimeoutMs: 100,
        retry: { baseMs: 10, maxMs: 20, maxAttempts: 2 },
        maxInflight: 5,
        offlineQueueSize: 10,
      },
      { deadLetters },
    );
    const control = await Control.start(node);
    try {
      const sub = await wireConnected(node, { sub: 'lazy' });
      sub.sendJson({ type: 'subscribe', payload: { channels: ['tool:jobs'], acknowledgment: true } });
      await sub.waitJson((f) => f.type === 'subscription.added');
      const pub = await RawClient.connect(node.wsUrl, { token: await serviceToken() });
      let maxInflight = 0;
      const sampler = setInterval(() => {
        maxInflight = Math.max(maxInflight, node.gateway.retry.inflightCount);
      }, 2);
      // 30 publishes in one burst: 5 go in flight, 10 wait, the other 15 are dead-lettered at once.
      for (let i = 0; i < 30; i++)
        pub.send({
          type: 'job',
          channel: 'tool:jobs',
          payload: { i },
          metadata: { correlation_id: `j${i}` },
        });
      const sentReplies = () => pub.frames.filter((f) => f.type === 'message.sent');
      await until(() => sentReplies().length === 30, 3000, '30 publishes accepted');
      const ids = sentReplies().map((f) => f.payload.id as string);
      const failed = () => pub.frames.filter((f) => f.type === 'message.failed' && f.payload.id);
      await until(() => failed().length >= 15, 2000, 'the overflow dead-lettered');
      await until(() => failed().length === 30, 6000, `all 30 dead-lettered; ${failed().length} so far`);
      clearInterval(sampler);
      assert.ok(maxInflight <= 5, `in flight peaked at ${maxInflight}`);
      assert.deepEqual(new Set(failed().map((f) => f.payload.id)), new Set(ids));
      assert.ok(
        failed().every((f) => f.payload.code === 'UNAVAILABLE' && f.metadata.correlation_id === undefined),
      );
      assert.equal(deadLetters.size, 30);
      const deliveries = sub.json.filter((f) => f.channel === 'tool:jobs');
      assert.ok(deliveries.length <= 30, `${deliveries.length} deliveries (15 events x 2 attempts at most)`);
      assert.equal(node.gateway.retry.inflightCount, 0);
      assert.equal(sub.closeCode, undefined, 'not acking is not abuse: the connection stays');
      sub.destroy();
      pub.close();
      await control.check();
    } finally {
      control.close();
      WireClient.destroyAll();
      await node.close();
    }
  });
});

describe('attack: clients that stop reading', () => {
  let node: ApiXNode;
  let control: Control;
  let pub: RawClient;
  before(async () => {
    node = await startNode({
      maxBufferedBytes: 256 * 1024,
      history: { size: 200, ttlMs: 3_600_000, maxChannels: 1000 },
      compression: { enabled: false, thresholdBytes: 1024 },
      // The firehose publisher is not the subject here: no publish limits (a rate of 0 turns one off).
      rateLimits: {
        ...config().rateLimits,
        // Nor its inbound frame rate: on a quiet machine the firehose outruns 200 frames/s and the
        // publisher itself would be closed for abuse (4008) before the subscriber under test fills up.
        connection: { perSec: 0, burst: 1 },
        publish: { perSec: 0, burst: 1 },
        channel: { perSec: 0, burst: 1 },
        orgPublish: { perSec: 0, burst: 1 },
      },
    });
    control = await Control.start(node);
    pub = await RawClient.connect(node.wsUrl, { token: await serviceToken() });
  });
  after(async () => {
    await control.check();
    pub.close();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  const blob = 'x'.repeat(16 * 1024);
  async function firehose(channel: string, n: number, until_: () => boolean) {
    for (let i = 0; i < n && !until_(); i++) {
      pub.send({ type: 'note', channel, payload: { i, blob } });
      if (i % 20 === 19) await sleep(1);
    }
  }
  const stalled = async (channels: string[], ack = false): Promise<WireClient> => {
    const c = await wireConnected(node, { sub: `slow-${Math.random()}` });
    c.sendJson({ type: 'subscribe', payload: { channels, acknowledgment: ack } });
    await c.waitJson((f) => f.type === 'subscription.added');
    c.socket.pause(); // stops reading
    return c;
  };

  it('a subscriber that stops reading a firehose -> cut as a slow consumer past APIX_MAX_BUFFERED_BYTES (the client sees the TCP connection end, not a 4010 frame); a reading one keeps pace', async () => {
    const fast = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:hose'] });
    const slow = await stalled(['agent:hose']);
    const before = node.gateway.slowConsumers;
    await firehose('agent:hose', 600, () => node.gateway.slowConsumers > before);
    await until(() => node.gateway.slowConsumers > before, 5000, 'the slow consumer to be cut');
    await until(() => !slow.heldBy(node), 3000, 'its connection to be gone');
    slow.socket.resume();
    await slow.waitEnded(5000);
    assert.notEqual(
      slow.closeCode,
      4010,
      'the 4010 close frame is lost behind the full buffer (documented code never seen)',
    );
    const sent = (await pub.publish('agent:hose', 'note', { last: true })).payload.id;
    await until(
      () => fast.events('agent:hose').some((e) => e.id === sent),
      5000,
      'the fast one to get everything',
    );
    fast.close();
    await control.check();
  });

  it('a stalled subscriber on an acknowledged subscription -> cut as a slow consumer too (maxInflight counts events, not bytes)', async () => {
    const slow = await stalled(['agent:ackhose'], true);
    const before = node.gateway.slowConsumers;
    await firehose('agent:ackhose', 600, () => node.gateway.slowConsumers > before);
    await until(() => node.gateway.slowConsumers > before, 5000, 'the stalled acked subscriber to be cut');
    await until(() => !slow.heldBy(node), 3000, 'its connection to be gone');
    slow.destroy();
    await control.check();
  });

  it('a stalled client re-subscribing with replay:{last:200} over and over -> cut as a slow consumer, its send buffer bounded', async () => {
    for (let i = 0; i < 200; i++) pub.send({ type: 'note', channel: 'agent:replayed', payload: { i, blob } });
    await until(
      () => pub.frames.filter((f) => f.type === 'message.sent').length >= 200,
      5000,
      '200 published',
    );
    const c = await wireConnected(node, { sub: 'replayer' });
    c.socket.pause();
    const before = node.gateway.slowConsumers;
    let peak = 0;
    const sampler = setInterval(() => {
      for (const conn of node.gateway.connections.values())
        if ((conn.transport as WsTransport).socket.remotePort === c.socket.localPort)
          peak = Math.max(peak, conn.bufferedBytes);
    }, 1);
    // 40 subscribes x 200 events x 16 KB: 128 MB if nothing stops it.
    for (let k = 0; k < 40 && node.gateway.slowConsumers === before; k++) {
      c.sendJson({ type: 'subscribe', payload: { channels: ['agent:replayed'], replay: { last: 200 } } });
      await sleep(5);
    }
    await until(() => node.gateway.slowConsumers > before, 5000, 'the replayer to be cut');
    clearInterval(sampler);
    assert.ok(peak < 8 * 1024 * 1024, `send buffer peaked at ${(peak / 1048576).toFixed(1)} MB`);
    await until(() => !c.heldBy(node), 3000, 'its connection to be gone');
    c.destroy();
    await control.check();
  });
});
