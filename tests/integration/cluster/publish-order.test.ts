/**
 * One publisher's order (issue 13 item 1): one service connection on node 1 of three sends 1,000
 * publishes back to back to one channel, with payload `{i}`; the subscribers on nodes 2 and 3 must each
 * see i = 0..999 once, in that order (ids follow the order the publishes were received), on the memory
 * engine (in-process bus) and on Redis (three nodes on one redis-server): with the rate limits off, with
 * generous rate limits on (Redis leases tokens: a publish that waits for a lease must not be overtaken
 * by one served from the lease), and on a channel that is encrypted at rest and durable. And a client
 * that mixes WebSocket and HTTP publishes keeps causal order: a publish sent after an earlier one was
 * answered gets a later id, whichever way each went.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { RawClient, config, token } from '../../support/gateway.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { waitFor } from '../../support/wait.ts';
import { createNode } from '../../../src/node.ts';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import type { Config } from '../../../src/config.ts';
import type { Engines } from '../../../src/engines.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';
import type { DurableRecord } from '../../../src/router/event-router.ts';
import { compareEventIds } from '@apix/protocol';

const N = 1000;
const OFF = { perSec: 0, burst: 1 };
const GENEROUS = { perSec: 1_000_000, burst: 1_000_000 };
const DEFAULTS = config().rateLimits;
const limitsOff: Config['rateLimits'] = {
  ...config().rateLimits,
  connection: OFF,
  publish: OFF,
  channel: OFF,
  orgPublish: OFF,
  orgSubscribe: OFF,
};
const limitsOn: Config['rateLimits'] = {
  ...config().rateLimits,
  connection: GENEROUS,
  publish: GENEROUS,
  channel: { perSec: DEFAULTS.channel.perSec * 10, burst: DEFAULTS.channel.burst * 10 },
  orgPublish: { perSec: DEFAULTS.orgPublish.perSec * 10, burst: DEFAULTS.orgPublish.burst * 10 },
  orgSubscribe: GENEROUS,
};
const keyring = { keys: [{ version: 1, key: randomBytes(32) }], active: 1 };
const KEY = 'apix_static_acmekey';

interface Cluster {
  nodes: ApiXNode[];
  durable: DurableRecord[];
  close(): Promise<void>;
}

type Make = (rateLimits: Config['rateLimits']) => Promise<Cluster>;

async function cluster(
  rateLimits: Config['rateLimits'],
  extra: Partial<Config>,
  engines: (cfg: Config) => Promise<Engines>,
  cleanup: () => Promise<void> = async () => {},
): Promise<Cluster> {
  const channels = new MemoryChannelRegistry();
  await channels.set('acme', 'org:vault', { encrypted: true, durable: true });
  const durable: DurableRecord[] = [];
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < 3; i++) {
    const cfg = config({ ...extra, nodeId: `o${i}`, rateLimits, encryption: keyring });
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', cfg.nodeId!),
      engines: await engines(cfg),
      channels,
      durable: (r) => void durable.push(r),
    });
    await node.listen();
    nodes.push(node);
  }
  return {
    nodes,
    durable,
    close: async () => {
      await Promise.all(nodes.map((n) => n.close()));
      await cleanup();
    },
  };
}

const memoryCluster: Make = (rateLimits) => {
  const bus = new MemoryBrokerBus(systemClock);
  return cluster(rateLimits, {}, async (cfg) => memoryEngines(cfg, systemClock, bus));
};

/** Every subscriber sees i = 0..N-1 once, in order, with increasing ids. */
async function assertOrder(subs: RawClient[], channel: string): Promise<void> {
  for (const [k, s] of subs.entries()) {
    const events = await s.waitForEvents(N, channel, 30_000);
    const seen = events.map((e) => (e.payload as { i: number }).i);
    const firstWrong = seen.findIndex((i, at) => i !== at);
    assert.equal(
      firstWrong,
      -1,
      `subscriber ${k}: out of order at position ${firstWrong}: ${seen.slice(Math.max(0, firstWrong - 3), firstWrong + 4).join(',')}`,
    );
    assert.equal(seen.length, N, `subscriber ${k}: each once`);
    for (let j = 1; j < events.length; j++)
      assert.ok(compareEventIds(events[j - 1]!.id!, events[j]!.id!) < 0, 'ids increase');
  }
}

function orderSuite(name: string, make: Make, skip: string | false = false): void {
  for (const [limitsName, rateLimits] of [
    ['rate limits off', limitsOff],
    ['generous rate limits on', limitsOn],
  ] as const) {
    describe(
      `one publisher's order over three nodes (${name}, ${limitsName})`,
      { skip, timeout: 60_000 },
      () => {
        let c: Cluster;
        let subs: RawClient[];
        let pub: RawClient;
        before(async () => {
          c = await make(rateLimits);
          subs = await Promise.all(
            [1, 2].map(async (i) =>
              RawClient.connect(c.nodes[i]!.wsUrl, {
                token: await token({ sub: `viewer${i}`, roles: ['admin'] }),
                subscriptions: ['org:feed', 'org:vault', 'org:mixed'],
              }),
            ),
          );
          pub = await RawClient.connect(c.nodes[0]!.wsUrl, {
            token: await token({ sub: 'svc', roles: ['service'] }),
          });
        });
        after(async () => {
          for (const s of subs ?? []) s.close();
          pub?.close();
          await c?.close();
        });

        it(`${N} back-to-back publishes reach the subscribers on nodes 2 and 3 in send order, once`, async () => {
          for (let i = 0; i < N; i++) pub.send({ type: 'step', channel: 'org:feed', payload: { i } });
          await assertOrder(subs, 'org:feed');
          const failed = pub.frames.filter((f) => f.type === 'message.failed');
          assert.deepEqual(failed, [], 'no publish refused');
        });

        it('on an encrypted, durable channel too, and the records get them in the same order', async () => {
          const before = c.durable.length;
          for (let i = 0; i < N; i++) pub.send({ type: 'step', channel: 'org:vault', payload: { i } });
          await assertOrder(subs, 'org:vault');
          // The subscribers on nodes 2 and 3 may have every event before node 1 has read the last publish
          // replies (another socket): the records follow those replies.
          const vault = () => c.durable.slice(before).filter((r) => r.channelKey === 'acme/org:vault');
          await waitFor(() => vault().length >= N, 20_000, `${N} records`);
          const records = vault();
          assert.deepEqual(
            records.map((r) => (r.payload as { sealed?: unknown }).sealed !== undefined),
            records.map(() => true),
            'sealed',
          );
          const ids = subs[0]!.events('org:vault').map((e) => e.id);
          assert.deepEqual(
            records.map((r) => r.eventId),
            ids,
            'records in id order',
          );
        });

        it('WebSocket and HTTP publishes of one client keep causal order', async () => {
          const ids: string[] = [];
          for (let i = 0; i < 40; i++) {
            if (i % 2 === 0) {
              const r = await pub.publish('org:mixed', 'step', { i });
              assert.equal(r.type, 'message.sent', JSON.stringify(r.payload));
              ids.push((r.payload as { id: string }).id);
            } else {
              const res = await fetch(`${c.nodes[i % 3]!.httpUrl}/v1/publish`, {
                method: 'POST',
                headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
                body: JSON.stringify({ channel: 'org:mixed', type: 'step', payload: { i } }),
              });
              const body = (await res.json()) as { id: string };
              assert.equal(res.status, 200, JSON.stringify(body));
              ids.push(body.id);
            }
          }
          for (let j = 1; j < ids.length; j++) assert.ok(compareEventIds(ids[j - 1]!, ids[j]!) < 0);
          for (const s of subs) {
            const events = await s.waitForEvents(40, 'org:mixed', 10_000);
            assert.deepEqual(
              events.map((e) => (e.payload as { i: number }).i),
              Array.from({ length: 40 }, (_, i) => i),
            );
          }
        });
      },
    );
  }
}

orderSuite('memory engine, in-process bus', memoryCluster);

const skip = skipWithoutRedis();
describe('redis', { skip }, () => {
  let redis: FoundRedis | undefined;
  before(async () => {
    redis = await findRedis();
  });
  after(async () => {
    await redis?.release();
  });
  orderSuite('Redis, one redis-server', async (rateLimits) => {
    const prefix = uniquePrefix();
    return cluster(
      rateLimits,
      { redisUrl: redis!.url, redisPrefix: prefix },
      (cfg) => createEngines(cfg, { nodeId: cfg.nodeId! }),
      () => deletePrefix(redis!.url, prefix),
    );
  });
});

describe('the in-flight bound of one connection', { timeout: 60_000 }, () => {
  it('stops reading a connection past APIX_MAX_PUBLISHES_IN_FLIGHT and reads it again: every publish answered, in order', async () => {
    const c = await cluster({ ...limitsOff }, { maxPublishesInFlight: 8 }, async (cfg) =>
      memoryEngines(cfg, systemClock, new MemoryBrokerBus(systemClock)),
    );
    try {
      const node = c.nodes[0]!;
      const sub = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'viewer', roles: ['admin'] }),
        subscriptions: ['org:feed'],
      });
      const pub = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'svc', roles: ['service'] }),
      });
      for (let i = 0; i < N; i++) pub.send({ type: 'step', channel: 'org:feed', payload: { i } });
      await assertOrder([sub], 'org:feed');
      await waitFor(
        () => pub.frames.filter((f) => f.type === 'message.sent').length === N,
        30_000,
        'every publish answered',
      );
      assert.ok(node.gateway.publishPauses > 0, 'reading was paused');
      const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
      assert.match(metrics, /apix_publish_read_pauses\{[^}]*\} [1-9]/);
      // Still read after the pauses: a ping is answered.
      pub.send({ type: 'heartbeat.ping', payload: {} });
      await pub.nextOfType('heartbeat.pong', 10_000);
      sub.close();
      pub.close();
    } finally {
      await c.close();
    }
  });
});
