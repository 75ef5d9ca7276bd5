/**
 * Quality of service: a slow client cannot hurt fast ones (issue 6). One subscriber reads everything, the
 * other stops reading (its socket is paused, like the attack suite's stalled clients). On a channel marked
 * coalescible (`coalesceKey`), the slow one is degraded (a `qos` frame), keeps its connection, and once it
 * reads again gets the latest event per key, then `qos: normal`; on a plain channel it is cut as a slow
 * consumer (4010) at APIX_MAX_BUFFERED_BYTES. Meanwhile the fast one gets every event, in order.
 *
 * No timing assertion is tight: the stalled client fills kernel buffers first, so the test publishes until
 * the server reports the state it waits for.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { Connection } from '../../../src/connections/session.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';
import type { HookEvents } from '../../../src/hooks.ts';
import { until, WireClient, wireConnected } from '../attack/helpers.ts';
import type { WsTransport } from '../../../src/transport/websocket/ws-transport.ts';

const blob = 'x'.repeat(16 * 1024);

describe('QoS: a slow subscriber cannot hurt a fast one', () => {
  let node: ApiXNode;
  let pub: RawClient;
  const qosEvents: Array<HookEvents['onQos']> = [];
  const slowEvents: Array<HookEvents['onSlowConsumer']> = [];
  before(async () => {
    const channels = new MemoryChannelRegistry();
    await channels.set('acme', 'agent:fleet', { coalesceKey: 'agentId' });
    node = await startNode(
      {
        maxBufferedBytes: 8 * 1024 * 1024,
        qos: {
          degradeBufferedBytes: 2 * 1024 * 1024,
          lowWaterBytes: 64 * 1024,
          degradeRttMs: 0,
          minDegradedMs: 100,
          maxCoalescedKeys: 100,
        },
        compression: { enabled: false, thresholdBytes: 1024 },
        rateLimits: {
          ...config().rateLimits,
          connection: { perSec: 0, burst: 1 },
          publish: { perSec: 0, burst: 1 },
          channel: { perSec: 0, burst: 1 },
          orgPublish: { perSec: 0, burst: 1 },
        },
      },
      { channels },
    );
    node.hooks.attach({
      onQos: (e) => void qosEvents.push(e),
      onSlowConsumer: (e) => void slowEvents.push(e),
    });
    pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'svc', roles: ['service'] }),
    });
  });
  const open: RawClient[] = [];
  after(async () => {
    for (const c of open) c.terminate();
    pub.close();
    WireClient.destroyAll();
    await node.close();
  });

  const serverSide = (c: WireClient): Connection | undefined =>
    [...node.gateway.connections.values()].find(
      (x) => (x.transport as WsTransport).socket.remotePort === c.socket.localPort,
    );

  /**
   * Publishes 16 KiB events until `done()`, at the pace of the fast subscriber: never more than `window`
   * events (512 KiB) ahead of what it has received, so that the fast one's send buffer stays far below the
   * degrade threshold on any machine, while the stalled one's grows without bound. Returns how many.
   */
  async function publishUntil(
    channel: string,
    fast: RawClient,
    payload: (i: number) => Record<string, unknown>,
    done: () => boolean,
    max = 5000,
  ): Promise<number> {
    const window = 32;
    const base = fast.events(channel).length;
    let i = 0;
    for (; i < max && !done(); i++) {
      pub.send({ type: 'agent_tick', channel, payload: { ...payload(i), blob } });
      if (i % 8 === 7)
        await until(
          () => done() || fast.events(channel).length - base >= i + 1 - window,
          10_000,
          'the fast subscriber to keep pace',
        );
    }
    return i;
  }

  const sentOn = (channel: string) =>
    pub.frames.filter((f) => f.type === 'message.sent' && f.payload.channel === channel);

  async function stalledSubscriber(channel: string, acknowledgment = false): Promise<WireClient> {
    const c = await wireConnected(node, { sub: `slow-${channel}` });
    c.sendJson({ type: 'subscribe', payload: { channels: [channel], acknowledgment } });
    await c.waitJson((f) => f.type === 'subscription.added');
    c.socket.pause(); // stops reading
    return c;
  }

  it('coalescible channel: the slow one is degraded (qos frame, stays connected) and later gets the latest event per key; the fast one gets every event meanwhile', async () => {
    const fast = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:fleet'] });
    open.push(fast);
    const slow = await stalledSubscriber('agent:fleet');
    const cutBefore = node.gateway.slowConsumers;
    const keys = ['a0', 'a1', 'a2', 'a3', 'a4'];

    // Fill its buffers until the server degrades it.
    let n = await publishUntil(
      'agent:fleet',
      fast,
      (i) => ({ agentId: keys[i % keys.length], i }),
      () => serverSide(slow)?.qos !== undefined,
    );
    await until(() => serverSide(slow)?.qos !== undefined, 10_000, 'the slow subscriber to be degraded');
    // Then 100 more, small: held for the slow one, the latest per key.
    const more = 100;
    for (let j = 0; j < more; j++)
      pub.send({ type: 'agent_tick', channel: 'agent:fleet', payload: { agentId: keys[j % 5], i: n + j } });
    n += more;
    await until(() => sentOn('agent:fleet').length === n, 10_000, `${n} publishes accepted`);
    const ids = sentOn('agent:fleet').map((f) => f.payload.id as string);

    // The fast one got every event, in order, while the slow one was still not reading.
    const got = await fast.waitForEvents(n, 'agent:fleet', 15_000);
    assert.deepEqual(
      got.map((e) => e.id),
      ids,
      'every event, once, in order',
    );
    const now = Date.now();
    const lag = now - (got.at(-1)!.metadata.timestamp as number);
    assert.ok(lag < 10_000, `the fast one was not held back (last event ${lag} ms old)`);
    const conn = serverSide(slow);
    assert.ok(conn !== undefined && conn.qos !== undefined, 'still degraded: it has not read anything');
    assert.ok(conn.qos.size <= keys.length, `at most one event per key held (${conn.qos.size})`);
    assert.equal(node.gateway.slowConsumers, cutBefore, 'the slow one was not cut');
    assert.equal(node.gateway.stats().degradedConnections, 1);
    assert.ok(
      qosEvents.some((e) => e.state === 'degraded'),
      'the onQos hook saw it',
    );

    // It reads again: the backlog, the qos frame, then the latest per key, then qos: normal.
    slow.socket.resume();
    const normal = await slow.waitJson((f) => f.type === 'qos' && f.payload.state === 'normal', 15_000);
    const frames = slow.json;
    const degradedAt = frames.findIndex((f) => f.type === 'qos' && f.payload.state === 'degraded');
    assert.ok(degradedAt >= 0, 'a qos degraded frame');
    assert.match(frames[degradedAt]!.payload.reason, /send buffer \d+ bytes over 2097152/);
    const events = frames.filter((f): f is Frame & { id: string } => f.channel === 'agent:fleet');
    // In order, no duplicate.
    const seen = events.map((e) => ids.indexOf(e.id));
    assert.ok(
      seen.every((x, k) => x >= 0 && (k === 0 || x > seen[k - 1]!)),
      'ids ascending and all published',
    );
    // The latest event of every key reached it, and some were coalesced away.
    for (const key of keys) {
      const lastPublished = got.filter((e) => e.payload.agentId === key).at(-1)!.id;
      assert.equal(
        events.filter((e) => e.payload.agentId === key).at(-1)!.id,
        lastPublished,
        `latest of ${key}`,
      );
    }
    assert.ok(events.length < n, `coalesced: ${events.length} of ${n} written`);
    assert.ok(normal.payload.coalesced > 0, 'the normal frame counts the coalesced events');
    assert.equal(normal.payload.coalesced + events.length, n, 'every event written or counted');
    const normalAt = frames.indexOf(normal);
    assert.ok(
      frames.slice(normalAt).every((f) => f.channel === undefined),
      'qos normal comes after the held events',
    );
    assert.equal(serverSide(slow)?.qos, undefined);
    assert.equal(node.gateway.stats().degradedConnections, 0);

    // Back to normal: the next event is written at once.
    const last = await pub.publish('agent:fleet', 'agent_tick', { agentId: 'a0', last: true });
    await slow.waitJson((f) => f.id === last.payload.id, 5000);

    const metrics = await node.metrics.metrics();
    assert.match(metrics, /apix_qos_coalesced_events_total\{channel_type="AGENT_EVENTS"[^}]*\} [1-9]/);
    assert.match(metrics, /apix_qos_transitions_total\{state="normal"[^}]*\} 1/);
    assert.match(metrics, /apix_qos_degraded_connections\{[^}]*\} 0/);
    fast.close();
    slow.destroy();
  });

  it('plain channel: the degraded slow one is cut as a slow consumer at the hard limit; the fast one is unaffected', async () => {
    const fast = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:plain'] });
    open.push(fast);
    const slow = await stalledSubscriber('agent:plain');
    const id = serverSide(slow)!.id;
    const cutBefore = node.gateway.slowConsumers;
    const n = await publishUntil(
      'agent:plain',
      fast,
      (i) => ({ agentId: 'a0', i }),
      () => node.gateway.slowConsumers > cutBefore,
    );
    await until(() => node.gateway.slowConsumers > cutBefore, 10_000, 'the slow consumer to be cut');
    await until(() => serverSide(slow) === undefined, 5000, 'its connection to be gone');
    assert.ok(
      qosEvents.some((e) => e.state === 'degraded' && e.connection.connectionId === id),
      'degraded first',
    );
    assert.ok(
      slowEvents.some((e) => e.connection.connectionId === id),
      'then cut as a slow consumer',
    );
    assert.equal(node.gateway.stats().degradedConnections, 0);

    await until(() => sentOn('agent:plain').length === n, 10_000, `${n} publishes accepted`);
    const last = await pub.publish('agent:plain', 'agent_tick', { agentId: 'a0', last: true });
    const ids = sentOn('agent:plain').map((f) => f.payload.id as string);
    assert.equal(ids.at(-1), last.payload.id);
    const got = await fast.waitForEvents(n + 1, 'agent:plain', 15_000);
    assert.deepEqual(
      got.map((e) => e.id),
      ids,
      'the fast one got every event, in order',
    );
    assert.equal(fast.closed, undefined);
    // The slow one sees its TCP connection end (the qos frame and the 4010 close frame were queued behind
    // the data it never read, and are dropped with it).
    slow.socket.resume();
    await slow.waitEnded(5000);
    fast.close();
  });

  it('acknowledged subscription on a coalescible channel: never coalesced (at-least-once); the degraded slow one is cut at the hard limit instead', async () => {
    const fast = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:fleet'] });
    open.push(fast);
    const slow = await stalledSubscriber('agent:fleet', true);
    const id = serverSide(slow)!.id;
    const cutBefore = node.gateway.slowConsumers;
    let held = 0;
    await publishUntil(
      'agent:fleet',
      fast,
      (i) => ({ agentId: 'a0', i }),
      () => {
        held = Math.max(held, serverSide(slow)?.qos?.size ?? 0);
        return node.gateway.slowConsumers > cutBefore;
      },
    );
    await until(() => node.gateway.slowConsumers > cutBefore, 10_000, 'the slow consumer to be cut');
    assert.ok(
      qosEvents.some((e) => e.state === 'degraded' && e.connection.connectionId === id),
      'degraded first',
    );
    assert.equal(held, 0, 'nothing of an acknowledged subscription is held or coalesced');
    assert.ok(
      slowEvents.some((e) => e.connection.connectionId === id),
      'cut as a slow consumer',
    );
    slow.destroy();
  });
});
