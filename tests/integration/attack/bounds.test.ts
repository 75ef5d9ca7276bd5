/**
 * Attack suite, amplification bounds (issue 13 items 4, 6, 7): what one client's input can make the
 * node keep. `connect.metadata` is bounded and not kept past its connection; publish payloads are
 * bounded in depth and width; presence churn never evicts a room's events from history.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import { waitFor } from '../../support/wait.ts';
import type { ApiXNode } from '../../../src/node.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const nodes: ApiXNode[] = [];
after(async () => {
  await Promise.all(nodes.map((n) => n.close()));
});

async function node(overrides: Parameters<typeof startNode>[0] = {}): Promise<ApiXNode> {
  const n = await startNode(overrides);
  nodes.push(n);
  return n;
}

async function connectWith(n: ApiXNode, metadata: unknown, sessionId = `s-${Math.random()}`) {
  const c = await RawClient.open(n.wsUrl);
  c.send({
    type: 'connect',
    payload: {
      sessionId,
      clientType: 'WEB_APP',
      authentication: { token: await token() },
      subscriptions: [],
      metadata,
    },
  });
  const f = await c.next((f) => f.type === 'connection.established' || f.type === 'connection.error');
  return { c, f };
}

describe('attack: connect.metadata bounds', () => {
  it('metadata over the byte, depth or key bound -> fatal PAYLOAD_TOO_LARGE, close 1009', async () => {
    const n = await node({
      jsonBounds: {
        metadataMaxBytes: 200,
        metadataMaxDepth: 3,
        metadataMaxKeys: 5,
        payloadMaxDepth: 64,
        payloadMaxWidth: 10_000,
      },
    });
    const cases: Array<[string, unknown]> = [
      ['bytes', { a: 'x'.repeat(300) }],
      ['depth', { a: { b: { c: {} } } }],
      ['keys', { a: 1, b: 2, c: 3, d: 4, e: 5, f: 6 }],
      ['width', { a: [[], [], [], [], [], []] }],
    ];
    for (const [what, metadata] of cases) {
      const { c, f } = await connectWith(n, metadata);
      assert.equal(f.type, 'connection.error', what);
      assert.equal(f.payload.code, 'PAYLOAD_TOO_LARGE', what);
      assert.equal(f.payload.fatal, true, what);
      assert.match(f.payload.message, /connect\.metadata/, what);
      assert.equal((await c.waitClosed()).code, 1009, what);
    }
    // Within every bound: accepted.
    const ok = await connectWith(n, { a: { b: [1, 2] }, app: 'web' });
    assert.equal(ok.f.type, 'connection.established');
    ok.c.close();
    assert.equal(n.gateway.sessions.size <= 1, true);
  });

  it('the default bounds refuse the 900 KB metadata of 300,000 empty arrays', async () => {
    const n = await node();
    const { c, f } = await connectWith(n, { a: Array.from({ length: 300_000 }, () => []) });
    assert.equal(f.type, 'connection.error');
    assert.equal(f.payload.code, 'PAYLOAD_TOO_LARGE');
    await c.waitClosed();
    assert.equal(n.gateway.sessions.size, 0);
  });

  it('after a disconnect, the session kept for a resume does not keep the metadata', async () => {
    const n = await node({ sessionTtlMs: 60_000 });
    let held: WeakRef<object> | undefined;
    const detach = n.hooks.attach({
      onConnect: ({ connection }) => {
        if (connection.metadata !== undefined) held = new WeakRef(connection.metadata);
      },
    });
    const { c, f } = await connectWith(n, { note: 'x'.repeat(3000) }, 'keep-me');
    assert.equal(f.type, 'connection.established');
    assert.ok(held?.deref(), 'the hook saw the metadata');
    c.close();
    await c.waitClosed();
    // The session waits for a resume; its connection is gone.
    await waitFor(() => [...n.gateway.sessions.values()].every((s) => !s.isLive), 5000, 'session away');
    assert.equal(n.gateway.sessions.size, 1);
    detach();
    await waitFor(
      async () => {
        gc();
        await new Promise((r) => setImmediate(r));
        return held!.deref() === undefined;
      },
      5000,
      'the metadata to be collected',
    );
  });
});

describe('attack: publish payload bounds', () => {
  it('a payload nested or wide beyond the bounds -> message.failed PAYLOAD_TOO_LARGE (WS and HTTP)', async () => {
    const n = await node({
      jsonBounds: {
        metadataMaxBytes: 4096,
        metadataMaxDepth: 8,
        metadataMaxKeys: 64,
        payloadMaxDepth: 10,
        payloadMaxWidth: 100,
      },
    });
    // Agent events are published by services.
    const svcToken = await token({ sub: 'agent-svc', roles: ['service'] });
    const pub = await RawClient.connect(n.wsUrl, { token: svcToken });
    let deep: unknown = 1;
    for (let i = 0; i < 11; i++) deep = [deep];
    const wide = { d: Array.from({ length: 101 }, () => []) };
    for (const [what, payload] of [
      ['deep', deep],
      ['wide', wide],
    ] as const) {
      const r = await pub.publish('agent:big', 'note', payload);
      assert.equal(r.type, 'message.failed', what);
      assert.equal(r.payload.code, 'PAYLOAD_TOO_LARGE', what);
      const res = await fetch(`${n.httpUrl}/v1/publish`, {
        method: 'POST',
        headers: { authorization: `Bearer ${svcToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ channel: 'agent:big', type: 'note', payload }),
      });
      assert.equal(res.status, 413, what);
      assert.equal(((await res.json()) as { code: string }).code, 'PAYLOAD_TOO_LARGE', what);
    }
    const wideMeta = await pub.publish(
      'agent:big',
      'note',
      {},
      { tags: Array.from({ length: 101 }, () => 1) },
    );
    assert.equal(wideMeta.payload.code, 'PAYLOAD_TOO_LARGE');
    // Within the bounds: published.
    let ten: unknown = 1;
    for (let i = 0; i < 10; i++) ten = [ten];
    assert.equal((await pub.publish('agent:big', 'note', ten)).type, 'message.sent');
    assert.equal(
      (await pub.publish('agent:big', 'note', { d: Array.from({ length: 100 }, () => []) })).type,
      'message.sent',
    );
    pub.close();
  });
});

describe('attack: presence churn and history', () => {
  it('60 x (subscribe + unsubscribe) of a room keeps its 5 events in a history of 100, and no presence entry', async () => {
    const n = await node({ history: { ...config().history, size: 100 } });
    const svc = await RawClient.connect(n.wsUrl, { token: await token({ sub: 'svc', roles: ['service'] }) });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await svc.publish('room:war', 'note', { i });
      assert.equal(r.type, 'message.sent');
      ids.push(r.payload.id);
    }
    // A member watching the room still sees the churn, live: presence frames without an id.
    const watcher = await RawClient.connect(n.wsUrl, { token: await token({ sub: 'watcher' }) });
    assert.equal((await watcher.subscribe({ channels: ['room:war'] })).type, 'subscription.added');
    const viewer = await RawClient.connect(n.wsUrl, { token: await token({ sub: 'viewer' }) });
    for (let i = 0; i < 60; i++) {
      assert.equal((await viewer.subscribe({ channels: ['room:war'] })).type, 'subscription.added');
      viewer.send({ type: 'unsubscribe', payload: { channels: ['room:war'] } });
      await viewer.nextOfType('subscription.removed');
    }
    await waitFor(
      () =>
        watcher.frames.filter((f) => f.type === 'presence.leave' && f.payload.userId === 'viewer').length ===
        60,
      10_000,
      '60 presence.leave frames',
    );
    const presence = watcher.frames.filter(
      (f) => f.type.startsWith('presence.') && f.payload.userId === 'viewer',
    );
    assert.equal(presence.length, 120);
    for (const f of presence) {
      assert.equal(f.id, undefined);
      assert.equal(f.channel, 'room:war');
    }
    const res = await fetch(`${n.httpUrl}/v1/channels/room:war/history?limit=1000`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    const h = (await res.json()) as { events: Array<{ type: string; id: string }>; recovered: boolean };
    assert.deepEqual(
      h.events.map((e) => e.id),
      ids,
    );
    assert.equal(h.events.filter((e) => e.type.startsWith('presence.')).length, 0);
    // A late joiner replays the 5 events, and only them.
    const late = await RawClient.connect(n.wsUrl, { token: await token({ sub: 'late' }) });
    await late.subscribe({ channels: ['room:war'], replay: { last: 100 } });
    assert.deepEqual(
      (await late.waitForEvents(5, 'room:war')).map((e) => e.id),
      ids,
    );
    for (const c of [svc, watcher, viewer, late]) c.close();
  });
});
