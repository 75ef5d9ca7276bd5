/**
 * Several gateway nodes acting as one: over an in-process memory bus (no Redis) and over a real Redis
 * (the same tests), like socket.io's cluster adapter suite.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, token, sleep } from '../../support/gateway.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { createNode } from '../../../src/node.ts';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { MemorySessionStore } from '../../../src/sessions/memory-session-store.ts';
import { MemoryOfflineQueue } from '../../../src/queue/memory-queue.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import type { Config } from '../../../src/config.ts';

type Cluster = { nodes: ApiXNode[]; close(): Promise<void> };

async function memoryCluster(n: number, overrides: Partial<Config>): Promise<Cluster> {
  const bus = new MemoryBrokerBus(systemClock);
  const sessions = new MemorySessionStore(systemClock);
  const queue = new MemoryOfflineQueue(1000);
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = config({ ...overrides, nodeId: `m${i}` });
    const base = memoryEngines(cfg, systemClock, bus);
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', `m${i}`),
      engines: { ...base, sessionStore: sessions, offlineQueue: queue },
    });
    await node.listen();
    nodes.push(node);
  }
  return { nodes, close: async () => void (await Promise.all(nodes.map((x) => x.close()))) };
}

async function redisCluster(n: number, overrides: Partial<Config>, url: string): Promise<Cluster> {
  const prefix = uniquePrefix();
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = config({ ...overrides, nodeId: `r${i}`, redisUrl: url, redisPrefix: prefix });
    const engines = await createEngines(cfg, { nodeId: cfg.nodeId! });
    const node = createNode({ config: cfg, logger: createLogger('silent', `r${i}`), engines });
    await node.listen();
    nodes.push(node);
  }
  return { nodes, close: async () => void (await Promise.all(nodes.map((x) => x.close()))) };
}

function clusterSuite(
  name: string,
  make: (n: number, overrides: Partial<Config>) => Promise<Cluster>,
  skip: string | false = false,
) {
  describe(`three nodes as one (${name})`, { skip }, () => {
    let cluster: Cluster;
    let nodes: ApiXNode[];
    before(async () => {
      cluster = await make(3, { sessionTtlMs: 5000 });
      nodes = cluster.nodes;
    });
    after(() => cluster.close());

    it('a publish on any node reaches every subscriber on every node, in channel order, once', async () => {
      const subs = await Promise.all(
        nodes.flatMap((n, i) =>
          [0, 1].map(async (k) =>
            RawClient.connect(n.wsUrl, {
              token: await token({ sub: `u${i}${k}` }),
              subscriptions: ['workflow:x'],
            }),
          ),
        ),
      );
      const pubs = await Promise.all(
        nodes.map(async (n) =>
          RawClient.connect(n.wsUrl, { token: await token({ sub: 'p', roles: ['service'] }) }),
        ),
      );
      await sleep(50);
      const N = 60;
      for (let i = 0; i < N; i++) pubs[i % 3]!.send({ type: 'step', channel: 'workflow:x', payload: { i } });
      const reference = (await subs[0]!.waitForEvents(N, 'workflow:x', 5000)).map((e) => e.id);
      assert.equal(new Set(reference).size, N);
      for (const s of subs) {
        await s.waitForEvents(N, 'workflow:x', 5000);
        await sleep(20);
        assert.deepEqual(
          s.events('workflow:x').map((e) => e.id),
          reference,
          'same events, same order, once',
        );
        s.close();
      }
      for (const p of pubs) p.close();
    });

    it('a session resumes on another node with its subscriptions and the events it missed', async () => {
      const tok = await token({ sub: 'mover' });
      const pub = await RawClient.connect(nodes[2]!.wsUrl, {
        token: await token({ sub: 'svc', roles: ['service'] }),
      });
      const c1 = await RawClient.connect(nodes[0]!.wsUrl, {
        token: tok,
        sessionId: 'roam',
        subscriptions: ['agent:roam', 'user:mover'],
      });
      await c1.subscribe({ channels: ['tool:roam-acked'], acknowledgment: true });
      await pub.publish('agent:roam', 'note', { i: 0 });
      await c1.waitForEvents(1, 'agent:roam');
      c1.terminate();
      await sleep(100);
      for (let i = 1; i <= 3; i++) await pub.publish('agent:roam', 'note', { i });
      await pub.publish('user:mover', 'note', { dm: 1 });
      await pub.publish('tool:roam-acked', 'job', { j: 1 });
      const c2 = await RawClient.connect(nodes[1]!.wsUrl, { token: tok, sessionId: 'roam' });
      const est = c2.frames[0]!;
      assert.equal(est.payload.resumed, true);
      assert.deepEqual([...est.payload.subscriptions].sort(), [
        'agent:roam',
        'tool:roam-acked',
        'user:mover',
      ]);
      assert.deepEqual(
        (await c2.waitForEvents(3, 'agent:roam', 5000)).map((e) => e.payload.i),
        [1, 2, 3],
      );
      assert.equal((await c2.waitForEvents(1, 'user:mover', 5000))[0]!.payload.dm, 1);
      assert.equal((await c2.waitForEvents(1, 'tool:roam-acked', 5000))[0]!.payload.j, 1);
      // Live events keep flowing to the new node.
      await pub.publish('agent:roam', 'note', { i: 4 });
      await c2.waitForEvents(4, 'agent:roam', 5000);
      await sleep(50);
      assert.deepEqual(
        c2.events('agent:roam').map((e) => e.payload.i),
        [1, 2, 3, 4],
      );
      c2.close();
      pub.close();
    });

    it('a session that was sent nothing yet resumes on another node with what it missed, once', async () => {
      // No event delivered on node 0 before the drop: neither the client nor the snapshot has an id to
      // replay after, and node 1 restores the session from the snapshot alone.
      const tok = await token({ sub: 'mover-empty' });
      const pub = await RawClient.connect(nodes[2]!.wsUrl, {
        token: await token({ sub: 'svc', roles: ['service'] }),
      });
      await pub.publish('agent:roam-empty', 'note', { i: -1 }); // before the subscription: never sent
      const c1 = await RawClient.connect(nodes[0]!.wsUrl, {
        token: tok,
        sessionId: 'roam-empty',
        subscriptions: ['agent:roam-empty', 'agent:roam-quiet'],
      });
      c1.terminate();
      await sleep(100);
      for (let i = 0; i < 3; i++) await pub.publish('agent:roam-empty', 'note', { i });
      const c2 = await RawClient.connect(nodes[1]!.wsUrl, { token: tok, sessionId: 'roam-empty' });
      const est = c2.frames[0]!;
      assert.equal(est.payload.resumed, true);
      assert.equal(est.payload.recovered['agent:roam-empty'], true);
      // A channel with no event ever: nothing was missed, nothing is replayed.
      assert.equal(est.payload.recovered['agent:roam-quiet'], true);
      await c2.waitForEvents(3, 'agent:roam-empty', 5000);
      await pub.publish('agent:roam-empty', 'note', { i: 3 });
      await c2.waitForEvents(4, 'agent:roam-empty', 5000);
      await sleep(50);
      assert.deepEqual(
        c2.events('agent:roam-empty').map((e) => e.payload.i),
        [0, 1, 2, 3],
      );
      assert.equal(c2.events('agent:roam-quiet').length, 0);
      c2.close();
      pub.close();
    });

    it('keeps room presence across nodes: members listed, join and leave events everywhere', async () => {
      const alice = await RawClient.connect(nodes[0]!.wsUrl, { token: await token({ sub: 'alice' }) });
      const added = await alice.subscribe({ channels: ['room:design'] });
      assert.deepEqual(
        added.payload.channels[0].presence.map((m: { userId: string }) => m.userId),
        ['alice'],
      );
      const bob = await RawClient.connect(nodes[1]!.wsUrl, { token: await token({ sub: 'bob' }) });
      const added2 = await bob.subscribe({ channels: ['room:design'] });
      assert.deepEqual(added2.payload.channels[0].presence.map((m: { userId: string }) => m.userId).sort(), [
        'alice',
        'bob',
      ]);
      const join = await alice.next((f) => f.type === 'presence.join' && f.payload.userId === 'bob', 3000);
      assert.equal(join.channel, 'room:design');
      const list = async (n: ApiXNode) =>
        (
          await (
            await fetch(`${n.httpUrl}/v1/channels/room:design/presence`, {
              headers: { authorization: `Bearer ${await token()}` },
            })
          ).json()
        ).members
          .map((m: { userId: string }) => m.userId)
          .sort();
      assert.deepEqual(await list(nodes[2]!), ['alice', 'bob']);
      bob.close();
      const leave = await alice.next((f) => f.type === 'presence.leave' && f.payload.userId === 'bob', 3000);
      assert.equal(leave.channel, 'room:design');
      assert.deepEqual(await list(nodes[2]!), ['alice']);
      alice.close();
    });

    it('replays history from any node, and a live client moved to another node is taken over (4009)', async () => {
      const pub = await RawClient.connect(nodes[0]!.wsUrl, { token: await token({ roles: ['service'] }) });
      const first = await pub.publish('agent:hist', 'note', { i: 0 });
      for (let i = 1; i < 5; i++) await pub.publish('agent:hist', 'note', { i });
      const late = await RawClient.connect(nodes[2]!.wsUrl);
      const added = await late.subscribe({
        channels: ['agent:hist'],
        since: { 'agent:hist': first.payload.id },
      });
      assert.equal(added.payload.channels[0].recovered, true);
      assert.deepEqual(
        (await late.waitForEvents(4, 'agent:hist')).map((e) => e.payload.i),
        [1, 2, 3, 4],
      );
      const tok = await token({ sub: 'twin' });
      const a = await RawClient.connect(nodes[0]!.wsUrl, { token: tok, sessionId: 'twin' });
      const b = await RawClient.connect(nodes[1]!.wsUrl, { token: tok, sessionId: 'twin' });
      assert.equal((await a.waitClosed(3000)).code, 4009);
      b.close();
      late.close();
      pub.close();
    });
  });
}

clusterSuite('in-process bus', memoryCluster);

let redis: FoundRedis | undefined;
const skip = skipWithoutRedis();
describe('redis', { skip }, () => {
  before(async () => {
    redis = await findRedis();
  });
  after(() => redis?.release());
  clusterSuite('Redis', (n, o) => redisCluster(n, o, redis!.url));

  it('clients that do not leave while their node drains keep their sessions for another node', async () => {
    const pair = await redisCluster(2, { drainTimeoutMs: 200 }, redis!.url);
    try {
      const tok = await token({ sub: 'stuck' });
      const stuck = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          RawClient.connect(pair.nodes[0]!.wsUrl, {
            token: tok,
            sessionId: `stuck-${i}`,
            subscriptions: ['agent:stuck'],
          }),
        ),
      );
      // They never read the close: the drain times out and cuts them, and only then do their sessions
      // leave (their snapshots were lost when they came after the node had closed its Redis client).
      for (const c of stuck) (c.ws as unknown as { _socket: { pause(): void } })._socket.pause();
      await pair.nodes[0]!.close();
      for (const i of [0, 99, 199]) {
        const c2 = await RawClient.connect(pair.nodes[1]!.wsUrl, { token: tok, sessionId: `stuck-${i}` });
        assert.equal(c2.frames[0]!.payload.resumed, true, `stuck-${i}`);
        assert.deepEqual(c2.frames[0]!.payload.subscriptions, ['agent:stuck']);
        c2.close();
      }
      for (const c of stuck) c.terminate();
    } finally {
      await pair.nodes[1]!.close();
    }
  });
});
