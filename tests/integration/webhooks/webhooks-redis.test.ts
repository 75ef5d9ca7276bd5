/**
 * Webhooks and server-side subscriptions on real Redis, with gateway nodes sharing it:
 * - a gateway restarted mid-retry (its batch waiting in Redis for its next attempt) still delivers;
 * - channel.occupied / vacated are decided across 2 nodes: first subscriber in, last out, exactly once;
 * - a server-side subscription made on one node reaches the user's connections on both nodes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, config, token } from '../../support/gateway.ts';
import { findRedis, freePort, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { waitFor } from '../../support/wait.ts';
import { readLog, startReceiver } from '../../support/webhook-receiver.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import type { GatewayHooks } from '../../../src/hooks.ts';

async function api(node: ApiXNode, method: string, path: string, auth: string, body?: unknown) {
  const res = await fetch(`${node.httpUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${auth}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: res.status, json: (await res.json()) as any };
}

describe('webhooks and server-side subscriptions on Redis', { skip: skipWithoutRedis() }, () => {
  let redis: FoundRedis;
  let prefix: string;
  const open: ApiXNode[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'apix-whr-'));
  let admin: string;

  async function startRedisNode(nodeId: string, hooks: GatewayHooks[] = []): Promise<ApiXNode> {
    const base = config();
    const cfg = config({
      nodeId,
      redisUrl: redis.url,
      redisPrefix: prefix,
      webhooks: { ...base.webhooks, allowPrivate: true, flushMs: 30, retryBaseMs: 200, retryMaxMs: 400 },
    });
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', nodeId),
      engines: await createEngines(cfg, { nodeId }),
      hooks,
    });
    await node.listen();
    open.push(node);
    return node;
  }

  before(async () => {
    redis = await findRedis();
    prefix = uniquePrefix();
    admin = await token({ sub: 'ops', roles: ['admin'] });
  });
  after(async () => {
    for (const n of open.splice(0)) await n.close().catch(() => {});
    await deletePrefix(redis.url, prefix);
    await redis.release();
  });

  it('a gateway restarted while a batch waits for its next attempt still delivers it', async () => {
    const port = await freePort();
    const a = await startRedisNode('wr-a');
    const made = await api(a, 'POST', '/v1/admin/webhooks', admin, {
      url: `http://127.0.0.1:${port}/hooks`,
      events: ['connection.opened'],
    });
    assert.equal(made.status, 201);
    // No receiver yet: the first attempt fails and the batch waits in Redis for its retry.
    const c = await RawClient.connect(a.wsUrl, { token: await token({ sub: 'restart-user' }) });
    c.close();
    await waitFor(() => a.backend.dispatcher.counters.failedAttempts > 0, 20_000, 'a failed attempt');
    await a.close();
    open.splice(open.indexOf(a), 1);
    const log = join(dir, 'restart.jsonl');
    const receiver = await startReceiver({ port, secret: made.json.secret, log });
    try {
      const b = await startRedisNode('wr-b');
      await waitFor(
        () =>
          readLog(log).events.some((e) => e.type === 'connection.opened' && e.data.userId === 'restart-user'),
        20_000,
        'delivered by the restarted gateway',
      );
      // Sent by the new node (the receiver records before it answers: the count follows the answer).
      await waitFor(() => b.backend.dispatcher.counters.delivered >= 1, 20_000, 'counted by node b');
      await api(b, 'DELETE', `/v1/admin/webhooks/${made.json.id}`, admin);
    } finally {
      await receiver.kill();
    }
  });

  it('channel.occupied and channel.vacated across 2 nodes: first in, last out, once each', async () => {
    const port = await freePort();
    const [a, b] = [await startRedisNode('occ-a'), await startRedisNode('occ-b')];
    const made = await api(a, 'POST', '/v1/admin/webhooks', admin, {
      url: `http://127.0.0.1:${port}/hooks`,
      events: ['channel.occupied', 'channel.vacated'],
    });
    const log = join(dir, 'occupancy.jsonl');
    const receiver = await startReceiver({ port, secret: made.json.secret, log });
    try {
      const ch = 'agent:occupancy';
      const ofChannel = () => readLog(log).events.filter((e) => e.data.channel === ch);
      const c1 = await RawClient.connect(a.wsUrl, { token: await token({ sub: 'o1' }) });
      const c2 = await RawClient.connect(b.wsUrl, { token: await token({ sub: 'o2' }) });
      const c3 = await RawClient.connect(b.wsUrl, { token: await token({ sub: 'o3' }) });
      await c1.subscribe({ channels: [ch] });
      await waitFor(() => ofChannel().length === 1, 20_000, 'channel.occupied');
      await c2.subscribe({ channels: [ch] });
      await c3.subscribe({ channels: [ch] });
      c1.send({ type: 'unsubscribe', payload: { channels: [ch] } });
      await c1.nextOfType('subscription.removed');
      c2.send({ type: 'unsubscribe', payload: { channels: [ch] } });
      await c2.nextOfType('subscription.removed');
      // Node b still has c3: nothing is vacated yet. Then c3 leaves: the last one out of the cluster.
      c3.send({ type: 'unsubscribe', payload: { channels: [ch] } });
      await c3.nextOfType('subscription.removed');
      await waitFor(() => ofChannel().length === 2, 20_000, 'channel.vacated');
      // Another round of batching, to see that nothing else comes.
      await c1.subscribe({ channels: ['agent:other'] });
      await waitFor(
        () => readLog(log).events.some((e) => e.data.channel === 'agent:other'),
        20_000,
        'agent:other',
      );
      assert.deepEqual(
        ofChannel().map((e) => e.type),
        ['channel.occupied', 'channel.vacated'],
      );
      for (const c of [c1, c2, c3]) c.close();
    } finally {
      await receiver.kill();
    }
  });

  it('a server-side subscription on one node reaches the user on both nodes; permission-checked; audited', async () => {
    const actions: unknown[] = [];
    const a = await startRedisNode('ss-a', [{ onAdminAction: (e) => actions.push(e.action) }]);
    const b = await startRedisNode('ss-b');
    const alice = await token({ sub: 'ss-alice' });
    const onA = await RawClient.connect(a.wsUrl, { token: alice });
    const onB = await RawClient.connect(b.wsUrl, { token: alice });
    const bob = await RawClient.connect(b.wsUrl, { token: await token({ sub: 'ss-bob' }) });
    const member = await token({ sub: 'm', roles: ['member'] });
    const body = { userId: 'ss-alice', channels: ['agent:pushed', 'user:ss-bob'], action: 'subscribe' };
    assert.equal((await api(a, 'POST', '/v1/admin/subscriptions', member, body)).status, 403);
    const r = await api(a, 'POST', '/v1/admin/subscriptions', 'apix_static_acmekey', body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.sessionsHere, 1);
    for (const c of [onA, onB]) {
      const added = await c.nextOfType('subscription.added', 20_000);
      assert.deepEqual(
        added.payload.channels.map((x: any) => x.channel),
        ['agent:pushed'],
      );
      // Checked like the client's own subscribe: another user's channel is denied.
      assert.equal(added.payload.denied[0].channel, 'user:ss-bob');
    }
    assert.deepEqual(actions, ['subscriptions.subscribe']);
    // The subscription is real on both nodes: a publish reaches both connections, and not bob.
    const svc = await token({ sub: 'svc', roles: ['service'] });
    const pub = await RawClient.connect(a.wsUrl, { token: svc });
    await pub.publish('agent:pushed', 'note', { n: 1 });
    await onA.waitForEvents(1, 'agent:pushed', 20_000);
    await onB.waitForEvents(1, 'agent:pushed', 20_000);
    assert.equal(bob.events('agent:pushed').length, 0);
    const un = await api(b, 'POST', '/v1/admin/subscriptions', admin, { ...body, action: 'unsubscribe' });
    assert.equal(un.status, 200);
    for (const c of [onA, onB]) {
      const removed = await c.nextOfType('subscription.removed', 20_000);
      assert.deepEqual(removed.payload.channels, ['agent:pushed']);
    }
    for (const c of [onA, onB, bob, pub]) c.close();
  });
});
