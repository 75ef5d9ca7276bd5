/**
 * The Redis engines on a 3-master Redis Cluster started by the test: the broker contract with sharded
 * pub/sub (SPUBLISH in the publish script, SSUBSCRIBE per channel) and with classic pub/sub, plus the
 * other engines' multi-key scripts, whose keys share a hash tag.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RedisBroker } from '../../../src/broker/redis-broker.ts';
import { RedisOfflineQueue } from '../../../src/queue/redis-queue.ts';
import { RedisPresence } from '../../../src/presence/redis-presence.ts';
import { RedisKeys } from '../../../src/redis/keys.ts';
import { RedisSessionStore } from '../../../src/sessions/redis-session-store.ts';
import { skipWithoutRedis, startRedisCluster, uniquePrefix } from '../../support/redis.ts';
import type { RedisCluster } from '../../support/redis.ts';
import { ClientPool } from '../../support/redis-engines.ts';
import { describeBrokerContract } from '../../contracts/broker.contract.ts';
import { snapshot } from '../../contracts/session-store.contract.ts';

const skip = skipWithoutRedis();
let cluster: RedisCluster | undefined;
let starting: Promise<RedisCluster> | undefined;
// One cluster for the whole file (starting one takes about a second).
const getCluster = (): Promise<RedisCluster> =>
  (starting ??= startRedisCluster(3).then((c) => (cluster = c)));
after(async () => {
  await cluster?.destroy();
});

for (const sharded of [true, false]) {
  describeBrokerContract(
    `redis cluster, ${sharded ? 'sharded' : 'classic'} pub/sub`,
    async () => {
      const c = await getCluster();
      const pool = new ClientPool(c.url, { shardedPubSub: sharded });
      const prefix = uniquePrefix();
      return {
        node: async (nodeId, history) => {
          const clients = await pool.create();
          assert.equal(clients.sharded, sharded);
          const broker = new RedisBroker(clients, new RedisKeys(prefix), { nodeId, history });
          await broker.ready();
          return broker;
        },
        close: () => pool.closeAll(),
      };
    },
    { skip },
  );
}

describe('queue, sessions and presence on a cluster', { skip }, () => {
  let pool: ClientPool;
  before(async () => {
    pool = new ClientPool((await getCluster()).url);
  });
  after(async () => {
    await pool.closeAll();
  });

  test('every script runs (its keys share a slot)', async () => {
    const { command } = await pool.create();
    const keys = new RedisKeys(uniquePrefix());
    const q = new RedisOfflineQueue(command, keys, { maxPerSession: 1, ttlMs: 60_000 });
    const f = { key: 'o/agent:x', id: '1-0', type: 't', timestamp: 1, attempts: 0, frame: '{}', ack: false };
    for (const sid of ['s1', 's2', 's{3}']) {
      await q.push(sid, f);
      await q.push(sid, f);
      assert.deepEqual(await q.drain(sid), { frames: [f], overflowed: 1 });
    }
    const sessions = new RedisSessionStore(command, keys);
    const s = snapshot(Date.now() + 60_000);
    await sessions.save(s);
    assert.deepEqual(await sessions.load(s.sessionId), s);
    const presence = new RedisPresence(command, keys, { refreshIntervalMs: 0 });
    const m = { connectionId: 'c1', clientId: 'k1', userId: 'u1', nodeId: 'n1' };
    for (const room of ['o/room:a', 'o/room:b', 'o/room:c']) {
      await presence.join(room, m);
      assert.deepEqual(await presence.list(room), [m]);
      await presence.leave(room, 'c1');
    }
    await presence.close();
  });
});
