/**
 * Shared `system:` channels across organizations (issue 12, holes 1 to 4). Every organization's channel
 * key for `system:x` is the same (`_/system:x`), so every piece of per-publisher state kept beside it must
 * carry the publisher's organization: idempotency keys, the channel's rate-limit bucket, dead-letter
 * notices. Two nodes over the in-process bus, and two nodes over one real Redis; publishers on node 0,
 * subscribers on node 1, so cross-node paths (control messages, shared buckets) are the ones exercised.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { sleep, waitFor } from '../../support/wait.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { createNode } from '../../../src/node.ts';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import type { Config } from '../../../src/config.ts';

// Both keys may publish to system: (the explicit `system` scope), so that two organizations' publishers
// meet on one shared channel.
const ACME_KEY = 'apix_acme_sharedkey0123456789';
const GLOBEX_KEY = 'apix_globex_sharedkey0123456789';

async function startNodes(n: number, engines: (cfg: Config) => Promise<ApiXNode['engines']>) {
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const base = config();
    const cfg = config({
      nodeId: `shared${i}`,
      idempotencyWindowMs: 60_000,
      ackTimeoutMs: 300,
      retry: { ...base.retry, baseMs: 10, maxMs: 50, maxAttempts: 2 },
      rateLimits: { ...base.rateLimits, channel: { perSec: 2, burst: 10 } },
      auth: { ...base.auth, apiKeys: [`acme:${ACME_KEY}:system|*`, `globex:${GLOBEX_KEY}:system|*`] },
    });
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', cfg.nodeId!),
      engines: await engines(cfg),
    });
    await node.listen();
    nodes.push(node);
  }
  return nodes;
}

function suite(
  name: string,
  make: () => Promise<{ nodes: ApiXNode[]; close(): Promise<void> }>,
  skip: string | false,
) {
  describe(`shared system channels across organizations (${name})`, { skip }, () => {
    let nodes: ApiXNode[];
    let close: () => Promise<void>;
    before(async () => {
      ({ nodes, close } = await make());
    });
    after(() => close());

    it('the same idempotency key from two organizations is two events (hole 1)', async () => {
      const watcher = await RawClient.connect(nodes[1]!.wsUrl, {
        token: await token({ sub: 'eve', org: 'globex' }),
        subscriptions: ['system:deploys'],
      });
      const acme = await RawClient.connect(nodes[0]!.wsUrl, { token: ACME_KEY });
      const globex = await RawClient.connect(nodes[1]!.wsUrl, { token: GLOBEX_KEY });
      const notice = (message: string) => ({ level: 'info', message });
      const a = await acme.publish('system:deploys', 'system_notification', notice('a'), {
        idempotency_key: 'k1',
      });
      assert.equal(a.type, 'message.sent', JSON.stringify(a.payload));
      const g = await globex.publish('system:deploys', 'system_notification', notice('g'), {
        idempotency_key: 'k1',
      });
      assert.equal(g.type, 'message.sent', JSON.stringify(g.payload));
      assert.notEqual(g.payload.id, a.payload.id, "globex's k1 is not acme's k1");
      const got = await watcher.waitForEvents(2, 'system:deploys', 5000);
      assert.deepEqual(got.map((e) => e.payload.message).sort(), ['a', 'g']);
      // Within one organization the key still deduplicates.
      const again = await acme.publish('system:deploys', 'system_notification', notice('a2'), {
        idempotency_key: 'k1',
      });
      assert.equal(again.payload.id, a.payload.id);
      for (const c of [watcher, acme, globex]) c.close();
    });

    it("one organization's publishes do not spend another's rate limit on a system channel (hole 2)", async () => {
      const acme = await RawClient.connect(nodes[0]!.wsUrl, { token: ACME_KEY });
      const globex = await RawClient.connect(nodes[1]!.wsUrl, { token: GLOBEX_KEY });
      const replies: Frame[] = [];
      for (let i = 0; i < 14; i++)
        replies.push(
          await acme.publish('system:x', 'system_notification', { level: 'info', message: `a${i}` }),
        );
      assert.ok(
        replies.some((r) => r.type === 'message.failed' && r.payload.code === 'RATE_LIMITED'),
        'acme ran out of its channel tokens',
      );
      const g = await globex.publish('system:x', 'system_notification', { level: 'info', message: 'g' });
      assert.equal(g.type, 'message.sent', JSON.stringify(g.payload));
      acme.close();
      globex.close();
    });

    it("a dead-letter notice never crosses organizations nor names another's session (hole 3)", async () => {
      const channel = 'system:dl';
      const globexSub = await RawClient.connect(nodes[1]!.wsUrl, {
        token: await token({ sub: 'eve', org: 'globex' }),
        sessionId: 'globex-private-1',
      });
      await globexSub.subscribe({ channels: [channel], acknowledgment: true });
      const acmeSub = await RawClient.connect(nodes[1]!.wsUrl, {
        token: await token({ sub: 'alice', org: 'acme' }),
        sessionId: 'acme-own-1',
      });
      await acmeSub.subscribe({ channels: [channel], acknowledgment: true });
      const acme = await RawClient.connect(nodes[0]!.wsUrl, { token: ACME_KEY });
      const sent = await acme.publish(channel, 'system_notification', { level: 'info', message: 'x' });
      assert.equal(sent.type, 'message.sent', JSON.stringify(sent.payload));
      // Neither subscriber acks: both sessions dead-letter the event after 2 attempts.
      await globexSub.waitForEvents(1, channel, 5000);
      const failed = await acme.next(
        (f) => f.type === 'message.failed' && f.payload?.id === sent.payload.id,
        10_000,
      );
      assert.match(String(failed.payload.message), /acme-own-1/, 'its own organization is told');
      // The globex session dead-letters at the same moment; give its notice time to arrive, if it would.
      await waitFor(() => globexSub.frames.filter((f) => f.id === sent.payload.id).length >= 2, 5000);
      await sleep(500);
      const leaks = acme.frames.filter(
        (f) => f.type === 'message.failed' && JSON.stringify(f.payload).includes('globex'),
      );
      assert.deepEqual(leaks, [], 'no notice about a globex session reaches acme');
      assert.equal(
        acme.frames.filter((f) => f.type === 'message.failed').length,
        1,
        'one notice: its own session',
      );
      for (const c of [globexSub, acmeSub, acme]) c.close();
    });
  });
}

suite(
  'memory bus, two nodes',
  async () => {
    const bus = new MemoryBrokerBus(systemClock);
    const nodes = await startNodes(2, async (cfg) => memoryEngines(cfg, systemClock, bus));
    return { nodes, close: async () => void (await Promise.all(nodes.map((n) => n.close()))) };
  },
  false,
);

let redis: FoundRedis | undefined;
suite(
  'redis, two nodes',
  async () => {
    redis = await findRedis();
    const prefix = uniquePrefix();
    const url = redis.url;
    const nodes = await startNodes(2, (cfg) =>
      createEngines({ ...cfg, redisUrl: url, redisPrefix: prefix }, { nodeId: cfg.nodeId! }),
    );
    return {
      nodes,
      close: async () => {
        await Promise.all(nodes.map((n) => n.close()));
        await deletePrefix(url, prefix);
        await redis!.release();
      },
    };
  },
  skipWithoutRedis(),
);
