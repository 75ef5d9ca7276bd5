/**
 * Shared rate limits across nodes: a client that spreads its publishes, subscribes or connection
 * attempts over two nodes gets the same limit as on one. Over the in-process bus and over a real Redis
 * (where the nodes lease tokens from the shared bucket).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, token } from '../../support/gateway.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { createNode } from '../../../src/node.ts';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import type { Clock } from '../../../src/clock.ts';
import { SteppedClock } from '../../support/clock.ts';
import type { Config } from '../../../src/config.ts';

const OFF = { perSec: 0, burst: 1 };
/** Rates of one token per 1000 s: no refill during a test. */
const SLOW = 0.001;
const rateLimits: Config['rateLimits'] = {
  ...config().rateLimits,
  connection: OFF,
  publish: OFF,
  channel: { perSec: SLOW, burst: 5 },
  orgPublish: { perSec: SLOW, burst: 8 },
  orgSubscribe: { perSec: SLOW, burst: 4 },
  address: OFF,
};
/** The address test's own pair of nodes: three connection attempts from one address, for both together. */
const addressLimits: Config['rateLimits'] = { ...rateLimits, address: { perSec: SLOW, burst: 3 } };

async function memoryPair(limits = rateLimits): Promise<ApiXNode[]> {
  const bus = new MemoryBrokerBus(systemClock);
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < 2; i++) {
    const cfg = config({ nodeId: `m${i}`, rateLimits: limits });
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', cfg.nodeId!),
      engines: memoryEngines(cfg, systemClock, bus),
    });
    await node.listen();
    nodes.push(node);
  }
  return nodes;
}

async function redisPair(
  url: string,
  prefix: string,
  limits = rateLimits,
  clock: Clock = systemClock,
): Promise<ApiXNode[]> {
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < 2; i++) {
    const cfg = config({ nodeId: `r${i}`, redisUrl: url, redisPrefix: prefix, rateLimits: limits });
    const engines = await createEngines(cfg, { nodeId: cfg.nodeId!, clock });
    const node = createNode({ config: cfg, logger: createLogger('silent', cfg.nodeId!), engines });
    await node.listen();
    nodes.push(node);
  }
  return nodes;
}

async function sentCount(clients: RawClient[], channel: (i: number) => string, n: number): Promise<number> {
  let sent = 0;
  for (let i = 0; i < n; i++) {
    const r = await clients[i % clients.length]!.publish(channel(i), 'note', { i });
    if (r.type === 'message.sent') sent++;
    else assert.equal(r.payload.code, 'RATE_LIMITED', JSON.stringify(r.payload));
  }
  return sent;
}

function suite(
  name: string,
  make: (limits?: Config['rateLimits']) => Promise<{ nodes: ApiXNode[]; close(): Promise<void> }>,
  skip: string | false,
) {
  describe(`shared rate limits over two nodes (${name})`, { skip }, () => {
    let nodes: ApiXNode[];
    let close: () => Promise<void>;
    before(async () => {
      const made = await make();
      nodes = made.nodes;
      close = made.close;
    });
    after(() => close());

    it('one organization publishing through both nodes gets its limit once', async () => {
      const tok = await token({ org: 'acme-pub', roles: ['service'] });
      const clients = await Promise.all(nodes.map((n) => RawClient.connect(n.wsUrl, { token: tok })));
      assert.equal(await sentCount(clients, (i) => `agent:c${i}`, 16), 8);
      for (const c of clients) c.close();
    });

    it('one channel published to through both nodes gets its limit once', async () => {
      const tok = await token({ org: 'acme-ch', roles: ['service'] });
      const clients = await Promise.all(nodes.map((n) => RawClient.connect(n.wsUrl, { token: tok })));
      assert.equal(await sentCount(clients, () => 'agent:hot', 10), 5);
      for (const c of clients) c.close();
    });

    it('subscribes through both nodes share the organization limit', async () => {
      const tok = await token({ org: 'acme-sub' });
      const clients = await Promise.all(nodes.map((n) => RawClient.connect(n.wsUrl, { token: tok })));
      let granted = 0;
      for (let i = 0; i < 8; i++) {
        const r = await clients[i % 2]!.subscribe({ channels: [`agent:s${i}`] });
        granted += r.payload.channels.length;
      }
      assert.equal(granted, 4);
      for (const c of clients) c.close();
    });

    it('connection attempts from one address through both nodes share the address limit', async () => {
      // A pair of its own: the budget does not depend on what the other tests spent (or whether they ran).
      const pair = await make(addressLimits);
      try {
        const outcomes = await Promise.allSettled(
          [0, 1, 0, 1, 0, 1].map((i) => RawClient.open(pair.nodes[i]!.wsUrl)),
        );
        const opened = outcomes.filter((o) => o.status === 'fulfilled');
        assert.equal(opened.length, 3, `${opened.length} upgrades`);
        assert.ok(
          outcomes.some((o) => o.status === 'rejected' && /429/.test(String(o.reason))),
          `some attempts answered 429: ${outcomes.map((o) => (o.status === 'rejected' ? String(o.reason) : 'open')).join(', ')}`,
        );
        for (const o of opened) (o as PromiseFulfilledResult<RawClient>).value.close();
      } finally {
        await pair.close();
      }
    });
  });
}

suite(
  'memory bus',
  async (limits) => {
    const nodes = await memoryPair(limits);
    return { nodes, close: async () => void (await Promise.all(nodes.map((n) => n.close()))) };
  },
  false,
);

suite(
  'redis',
  async (limits) => {
    const found = await findRedis();
    const prefix = uniquePrefix();
    const nodes = await redisPair(found.url, prefix, limits);
    return {
      nodes,
      close: async () => {
        await Promise.all(nodes.map((n) => n.close()));
        await deletePrefix(found.url, prefix);
        await found.release();
      },
    };
  },
  skipWithoutRedis(),
);

describe('leased tokens over two Redis nodes', { skip: skipWithoutRedis() }, () => {
  it('a large organization limit: both nodes together never pass more than the bucket hands out', async () => {
    const found = await findRedis();
    const prefix = uniquePrefix();
    const limits = { ...rateLimits, channel: OFF, orgPublish: { perSec: SLOW, burst: 200 }, address: OFF };
    // The nodes' leases run on a clock that stands still: none expires unused because the machine is slow
    // (that drops its tokens, by design), so what passes depends only on how the leases are handed out.
    const nodes = await redisPair(found.url, prefix, limits, new SteppedClock());
    try {
      const tok = await token({ org: 'big', roles: ['service'] });
      const clients = await Promise.all(
        [0, 1, 0, 1].map((i) => RawClient.connect(nodes[i]!.wsUrl, { token: tok })),
      );
      // 300 publishes in parallel streams, half through each node.
      const counts = await Promise.all(clients.map((c) => sentCount([c], (i) => `agent:p${i}`, 75)));
      const sent = counts.reduce((a, b) => a + b, 0);
      assert.ok(sent <= 200, `${sent} passed`);
      assert.ok(sent >= 180, `only ${sent} passed: leases left too much unused`);
      for (const c of clients) c.close();
    } finally {
      await Promise.all(nodes.map((n) => n.close()));
      await deletePrefix(found.url, prefix);
      await found.release();
    }
  });
});
