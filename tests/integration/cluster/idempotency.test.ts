/**
 * Idempotency keys across nodes: a publish repeated with the same `metadata.idempotency_key` on another
 * node within the window yields the same event (same id, delivered once). Over the in-process bus and
 * over one real Redis (three gateway nodes).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, sleep, token } from '../../support/gateway.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { createNode } from '../../../src/node.ts';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { SteppedClock } from '../../support/clock.ts';
import { waitFor } from '../../support/wait.ts';
import type { Config } from '../../../src/config.ts';

/**
 * The window must outlast the first half of the test on a busy machine. On the memory bus the window runs
 * on a clock the test moves; Redis runs it on its own clock (PX), so there it is long, and the test polls
 * for its end.
 */
const MEMORY_WINDOW_MS = 1500;
const REDIS_WINDOW_MS = 5000;

async function startNodes(
  n: number,
  windowMs: number,
  engines: (cfg: Config) => Promise<ApiXNode['engines']>,
) {
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = config({ nodeId: `idem${i}`, idempotencyWindowMs: windowMs });
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

async function httpPublish(node: ApiXNode, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${node.httpUrl}/v1/publish`, {
    method: 'POST',
    headers: { authorization: 'Bearer apix_static_acmekey', 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

function suite(
  name: string,
  make: () => Promise<{
    nodes: ApiXNode[];
    windowMs: number;
    /** Moves a test clock past the window (nothing when the window runs on Redis's clock). */
    passWindow(): void;
    close(): Promise<void>;
  }>,
  skip: string | false,
) {
  describe(`idempotency keys across nodes (${name})`, { skip }, () => {
    let nodes: ApiXNode[];
    let windowMs: number;
    let passWindow: () => void;
    let close: () => Promise<void>;
    before(async () => {
      ({ nodes, windowMs, passWindow, close } = await make());
    });
    after(() => close());

    it('the same key on node A, then node B, then over HTTP on node C: one event, one id, delivered once', async () => {
      const svc = await token({ sub: 'svc', roles: ['service'] });
      const sub = await RawClient.connect(nodes[2]!.wsUrl, { subscriptions: ['agent:idem-x'] });
      const a = await RawClient.connect(nodes[0]!.wsUrl, { token: svc });
      const b = await RawClient.connect(nodes[1]!.wsUrl, { token: svc });
      const started = Date.now();
      const first = await a.publish('agent:idem-x', 'note', { from: 'a' }, { idempotency_key: 'job-1' });
      const again = await b.publish('agent:idem-x', 'note', { from: 'b' }, { idempotency_key: 'job-1' });
      assert.equal(first.type, 'message.sent', JSON.stringify(first.payload));
      assert.equal(again.type, 'message.sent', JSON.stringify(again.payload));
      assert.equal(again.payload.id, first.payload.id);
      const overHttp = await httpPublish(nodes[2]!, {
        channel: 'agent:idem-x',
        type: 'note',
        payload: { from: 'http' },
        metadata: { idempotency_key: 'job-1' },
      });
      assert.equal(overHttp.status, 200);
      assert.equal(overHttp.json.id, first.payload.id);
      // Racing duplicates from both nodes at once: still that one event.
      const raced = await Promise.all(
        [a, b, a, b].map((c) =>
          c.publish('agent:idem-x', 'note', { raced: true }, { idempotency_key: 'job-1' }),
        ),
      );
      for (const r of raced) assert.equal(r.payload.id, first.payload.id);
      await sub.waitForEvents(1, 'agent:idem-x');
      await sleep(300);
      const got = sub.events('agent:idem-x');
      assert.equal(got.length, 1, JSON.stringify(got));
      assert.equal(got[0]!.id, first.payload.id);
      assert.equal(got[0]!.payload.from, 'a', 'the first publish wins');

      // Another key is another event; after the window, the same key publishes again.
      const other = await b.publish('agent:idem-x', 'note', { from: 'b2' }, { idempotency_key: 'job-2' });
      assert.notEqual(other.payload.id, first.payload.id);
      // Until the window ends, the same key still answers the first id (no new event).
      passWindow();
      let later = first;
      await waitFor(
        async () => {
          later = await b.publish('agent:idem-x', 'note', { from: 'late' }, { idempotency_key: 'job-1' });
          if (later.payload.id !== first.payload.id) return true;
          await sleep(50);
          return false;
        },
        windowMs + 15_000,
        'a new event for the key after the window',
      );
      if (windowMs === REDIS_WINDOW_MS)
        assert.ok(Date.now() - started >= windowMs - 50, 'not before the window ended');
      await sub.waitForEvents(3, 'agent:idem-x');
      await sleep(100);
      assert.deepEqual(
        sub.events('agent:idem-x').map((e) => e.payload.from),
        ['a', 'b2', 'late'],
      );
      for (const c of [sub, a, b]) c.close();
    });
  });
}

suite(
  'memory bus',
  async () => {
    const clock = new SteppedClock();
    const bus = new MemoryBrokerBus(clock);
    const nodes = await startNodes(3, MEMORY_WINDOW_MS, async (cfg) => memoryEngines(cfg, clock, bus));
    return {
      nodes,
      windowMs: MEMORY_WINDOW_MS,
      passWindow: () => clock.advance(MEMORY_WINDOW_MS),
      close: async () => void (await Promise.all(nodes.map((n) => n.close()))),
    };
  },
  false,
);

let redis: FoundRedis | undefined;
suite(
  'redis, three nodes',
  async () => {
    redis = await findRedis();
    const prefix = uniquePrefix();
    const url = redis.url;
    const nodes = await startNodes(3, REDIS_WINDOW_MS, (cfg) =>
      createEngines({ ...cfg, redisUrl: url, redisPrefix: prefix }, { nodeId: cfg.nodeId! }),
    );
    return {
      nodes,
      windowMs: REDIS_WINDOW_MS,
      passWindow: () => {},
      close: async () => {
        await Promise.all(nodes.map((n) => n.close()));
        await deletePrefix(url, prefix);
        await redis!.release();
      },
    };
  },
  skipWithoutRedis(),
);
