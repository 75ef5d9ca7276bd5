/**
 * The protocol's conformance cases as one table, run over every transport and encoding (WebSocket with
 * JSON and with MessagePack, HTTP streaming, SSE; PROTOCOL 1.1 §14: "every transport has the same
 * semantics"): connect, subscribe and fan-out in order, publish replies and refusals, `since`, session
 * resume, acks and redelivery, auth refresh and expiry, heartbeats, take-over and drain. Each case gets
 * `connect` for the transport under test; the publisher of a case is always a WebSocket client (JSON),
 * so a case checks what its subscriber sees.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { FrameClient } from '../../support/gateway.ts';
import { connectOver, TRANSPORTS } from '../../support/stream-client.ts';
import type { ConnectOptions, TransportName } from '../../support/stream-client.ts';
import { waitFor } from '../../support/wait.ts';

interface Ctx {
  readonly transport: TransportName;
  /** The shared node of the transport's run. */
  readonly node: ApiXNode;
  connect(opts?: ConnectOptions, node?: ApiXNode): Promise<FrameClient>;
  /** A node of its own (closed after the case). */
  ownNode(overrides: Partial<Config>): Promise<ApiXNode>;
}

interface Case {
  readonly name: string;
  run(ctx: Ctx): Promise<void>;
}

const service = () => token({ sub: 'svc', roles: ['service'] });

async function publishN(pub: FrameClient, channel: string, n: number, from = 0): Promise<string[]> {
  const ids: string[] = [];
  for (let i = from; i < from + n; i++) {
    const r = await pub.publish(channel, 'tick', { i });
    assert.equal(r.type, 'message.sent', JSON.stringify(r.payload));
    ids.push(r.payload.id);
  }
  return ids;
}

const CASES: readonly Case[] = [
  {
    name: 'connect: connection.established with the granted and denied channels',
    async run({ connect, transport }) {
      const c = await connect({ subscriptions: ['agent:a1', 'user:alice', 'user:bob'], sessionId: 's-est' });
      const f = c.frames.find((x) => x.type === 'connection.established')!;
      assert.equal(f.payload.resumed, false);
      assert.equal(f.payload.sessionId, 's-est');
      assert.equal(typeof f.payload.heartbeatIntervalMs, 'number');
      assert.deepEqual([...f.payload.subscriptions].sort(), ['agent:a1', 'user:alice']);
      assert.deepEqual(
        f.payload.denied.map((d: { channel: string; code: string }) => [d.channel, d.code]),
        [['user:bob', 'FORBIDDEN']],
      );
      assert.equal(typeof f.payload.sessionToken === 'string', !transport.startsWith('websocket'));
      c.close();
    },
  },
  {
    name: 'connect: a bad token is refused with connection.error UNAUTHORIZED and close 4001',
    async run({ connect }) {
      await assert.rejects(connect({ token: 'not-a-token' }), /UNAUTHORIZED/);
    },
  },
  {
    name: 'fan-out: every event, in publish order, once; message.sent echoes the correlation id',
    async run({ connect, node }) {
      const subs = await Promise.all([connect(), connect()]);
      for (const s of subs) await s.subscribe({ channels: ['agent:fan'] });
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const ids = await publishN(pub, 'agent:fan', 30);
      for (const s of subs) {
        const events = await s.waitForEvents(30, 'agent:fan');
        assert.deepEqual(
          events.map((e) => e.id),
          ids,
        );
      }
      for (const s of subs) s.close();
      pub.close();
    },
  },
  {
    name: 'publish from this transport: message.sent, and message.failed for a bad frame',
    async run({ connect }) {
      const c = await connect({ token: await service(), subscriptions: ['agent:own'] });
      const ok = await c.publish('agent:own', 'note', { hello: 1 });
      assert.equal(ok.type, 'message.sent');
      assert.equal((await c.waitForEvents(1, 'agent:own'))[0]!.id, ok.payload.id);
      const bad = await c.publish('agent:own', 'connection.established', {});
      assert.equal(bad.type, 'message.failed');
      assert.equal(bad.payload.code, 'BAD_REQUEST');
      c.send({ type: 'heartbeat.ping', payload: { ts: 42 } });
      assert.equal((await c.nextOfType('heartbeat.pong')).payload.ts, 42);
      c.close();
    },
  },
  {
    name: 'since: the retained events after the id, then live ones, no gap, no duplicate',
    async run({ connect, node }) {
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const ids = await publishN(pub, 'agent:since', 10);
      const c = await connect();
      const live = publishN(pub, 'agent:since', 10, 10);
      const added = await c.subscribe({ channels: ['agent:since'], since: { 'agent:since': ids[3] } });
      assert.deepEqual(added.payload.channels, [{ channel: 'agent:since', recovered: true }]);
      await live;
      const events = await c.waitForEvents(16, 'agent:since');
      assert.deepEqual(
        events.map((e) => e.payload.i),
        Array.from({ length: 16 }, (_, k) => k + 4),
      );
      c.close();
      pub.close();
    },
  },
  {
    name: 'resume: a dropped session comes back with its subscriptions and the missed events in order',
    async run({ connect, node }) {
      const tok = await token({ sub: 'carol' });
      const sessionId = `resume-${Math.random().toString(36).slice(2)}`;
      const c1 = await connect({ token: tok, sessionId, subscriptions: ['agent:res'] });
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const first = await publishN(pub, 'agent:res', 3);
      await c1.waitForEvents(3, 'agent:res');
      c1.terminate();
      await waitFor(
        () => node.gateway.sessions.get(`acme/carol/${sessionId}`)?.isLive === false,
        5000,
        'away',
      );
      await publishN(pub, 'agent:res', 4, 3);
      const c2 = await connect({ token: tok, sessionId });
      const est = c2.frames.find((f) => f.type === 'connection.established')!;
      assert.equal(est.payload.resumed, true);
      assert.deepEqual(est.payload.subscriptions, ['agent:res']);
      const events = await c2.waitForEvents(4, 'agent:res');
      assert.deepEqual(
        events.map((e) => e.payload.i),
        [3, 4, 5, 6],
      );
      assert.ok(!events.some((e) => first.includes(e.id!)), 'nothing already delivered comes again');
      c2.close();
      pub.close();
    },
  },
  {
    name: 'acks: an un-acked event is redelivered with retryCount, an acked one is not',
    async run({ connect, ownNode }) {
      const node = await ownNode({ ackTimeoutMs: 100, retry: { baseMs: 20, maxMs: 50, maxAttempts: 3 } });
      const sub = await connect({ token: await token({ sub: 'worker' }) }, node);
      await sub.subscribe({ channels: ['tool:jobs'], acknowledgment: true });
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const a = await pub.publish('tool:jobs', 'job', { n: 1 });
      const b = await pub.publish('tool:jobs', 'job', { n: 2 });
      const firstA = await sub.next((f) => f.id === a.payload.id);
      sub.send({ type: 'ack', payload: { channel: 'tool:jobs', ids: [firstA.id] } });
      const failed = await pub.nextOfType('message.failed', 5000);
      assert.equal(failed.payload.id, b.payload.id);
      const deliveries = sub.events('tool:jobs');
      assert.equal(deliveries.filter((e) => e.id === a.payload.id).length, 1, 'acked: delivered once');
      assert.deepEqual(
        deliveries.filter((e) => e.id === b.payload.id).map((e) => e.metadata.retryCount),
        [undefined, 1, 2],
      );
      sub.close();
      pub.close();
    },
  },
  {
    name: 'auth.refresh: another user is refused without closing; the same user is refreshed',
    async run({ connect }) {
      const c = await connect({ token: await token({ expiresIn: '10m' }) });
      c.send({ type: 'auth.refresh', payload: { token: await token({ sub: 'bob' }) } });
      const err = await c.nextOfType('connection.error');
      assert.equal(err.payload.code, 'UNAUTHORIZED');
      assert.equal(err.payload.fatal, false);
      c.send({ type: 'auth.refresh', payload: { token: await token({ expiresIn: '1h' }) } });
      const ok = await c.nextOfType('auth.refreshed');
      assert.ok(ok.payload.expiresAt > Date.now() + 3_000_000);
      assert.equal(c.closed, undefined);
      c.close();
    },
  },
  {
    name: 'token expiry: connection.disconnected TOKEN_EXPIRED, then close 4002',
    async run({ connect, ownNode }) {
      const node = await ownNode({ heartbeatIntervalMs: 200 });
      const exp = Math.floor(Date.now() / 1000) + 2;
      const c = await connect({ token: await token({ expiresIn: exp }) }, node);
      const d = await c.nextOfType('connection.disconnected', 6000);
      assert.equal(d.payload.code, 'TOKEN_EXPIRED');
      assert.equal((await c.waitClosed()).code, 4002);
    },
  },
  {
    name: 'heartbeat: the server pings; a client that answers stays connected',
    async run({ connect, ownNode }) {
      const node = await ownNode({ heartbeatIntervalMs: 150 });
      const c = await connect({}, node);
      for (let i = 0; i < 4; i++) await c.nextOfType('heartbeat.ping', 5000);
      assert.equal(c.closed, undefined);
      c.close();
    },
  },
  {
    name: 'take-over: a newer connection of the session closes the older with 4009',
    async run({ connect }) {
      const tok = await token({ sub: 'dave' });
      const sessionId = `take-${Math.random().toString(36).slice(2)}`;
      const c1 = await connect({ token: tok, sessionId });
      const c2 = await connect({ token: tok, sessionId });
      assert.equal((await c1.waitClosed(5000)).code, 4009);
      c2.close();
    },
  },
  {
    name: 'drain: connection.disconnected with reconnect:true, then 1001',
    async run({ connect, ownNode }) {
      const node = await ownNode({});
      const c = await connect({}, node);
      const closing = node.close();
      const d = await c.nextOfType('connection.disconnected', 5000);
      assert.equal(d.payload.reconnect, true);
      assert.equal((await c.waitClosed(5000)).code, 1001);
      await closing;
    },
  },
];

for (const transport of TRANSPORTS) {
  describe(`protocol conformance over ${transport}`, () => {
    let node: ApiXNode;
    before(async () => {
      node = await startNode({ sessionTtlMs: 10_000 });
    });
    after(() => node.close());

    for (const c of CASES) {
      it(c.name, async () => {
        const own: ApiXNode[] = [];
        try {
          await c.run({
            transport,
            node,
            connect: (opts, on) => connectOver(transport, on ?? node, opts),
            ownNode: async (overrides) => {
              const n = await startNode(overrides);
              own.push(n);
              return n;
            },
          });
        } finally {
          for (const n of own) await n.close();
        }
      });
    }
  });
}
