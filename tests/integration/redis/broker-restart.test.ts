/**
 * The Redis broker across a Redis crash and restart: while Redis is down ping() and publish() fail fast;
 * after it is back every node re-subscribes by itself (including to channels asked for during the outage)
 * and delivery resumes; history tells the truth about what survived.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { Broker, BrokerEvent, ControlMessage, PublishInput } from '../../../src/broker/broker.ts';
import { RedisBroker } from '../../../src/broker/redis-broker.ts';
import { RedisKeys } from '../../../src/redis/keys.ts';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import { ClientPool } from '../../support/redis-engines.ts';
import { waitFor } from '../../support/wait.ts';

const HISTORY = { size: 100, ttlMs: 0 };
// Reconnect quickly, so that the test does not wait out ioredis's default backoff.
const fastRetry = { redisOptions: { retryStrategy: () => 50 } };

function input(key: string, payload: unknown): PublishInput {
  return {
    key,
    type: 'test.event',
    timestamp: Date.now(),
    encode: (id) => JSON.stringify({ type: 'test.event', channel: key, payload, id }),
    publisher: undefined,
    history: HISTORY,
  };
}

async function until(b: Broker, up: boolean): Promise<void> {
  await waitFor(
    () =>
      b.ping().then(
        () => up,
        () => !up,
      ),
    5000,
    up ? 'Redis to be back' : 'Redis to be gone',
  );
}

describe('RedisBroker: Redis restarts', { skip: skipWithoutRedis() }, () => {
  let server: RedisServer;
  let pool: ClientPool;
  let a: RedisBroker;
  let b: RedisBroker;
  const gotB: BrokerEvent[] = [];
  const controlB: ControlMessage[] = [];

  before(async () => {
    server = await startRedis();
    pool = new ClientPool(server.url, fastRetry);
    const keys = new RedisKeys(uniquePrefix());
    a = new RedisBroker(await pool.create(), keys, { nodeId: 'a', history: HISTORY });
    b = new RedisBroker(await pool.create(), keys, { nodeId: 'b', history: HISTORY });
    await Promise.all([a.ready(), b.ready()]);
    b.onEvent((e) => gotB.push(e));
    b.onControl((m) => controlB.push(m));
  });
  after(async () => {
    await a?.close();
    await b?.close();
    await pool?.closeAll();
    await server?.destroy();
  });

  test('crash: fail fast while down, then re-subscribe and deliver again', async () => {
    await b.subscribe('o/agent:before');
    const e1 = await a.publish(input('o/agent:before', 1));
    await waitFor(() => gotB.length === 1);

    await server.kill('SIGKILL');
    await until(a, false);
    await assert.rejects(a.ping());
    const started = Date.now();
    await assert.rejects(a.publish(input('o/agent:before', 'lost')));
    assert.ok(Date.now() - started < 1000, 'publish fails at once while Redis is down');
    // Interest registered during the outage is sent when Redis is back.
    await b.subscribe('o/agent:during');

    await server.restart();
    await until(a, true);
    await until(b, true);
    await waitFor(
      async () => {
        // Publish until b is subscribed again (re-subscription races with the first publishes).
        await a.publish(input('o/agent:during', 'probe'));
        return gotB.some((e) => e.key === 'o/agent:during');
      },
      5000,
      'delivery on a channel subscribed during the outage',
    );
    const e2 = await a.publish(input('o/agent:before', 2));
    await waitFor(
      () => gotB.some((e) => e.key === 'o/agent:before' && e.id === e2.id),
      3000,
      'delivery on a channel subscribed before',
    );
    await a.publishControl({ kind: 'after.restart', from: 'a' });
    await waitFor(() => controlB.some((m) => m.kind === 'after.restart'), 3000, 'control messages');

    // The data did not survive (no persistence): the old id cannot be recovered, and new ids are above it.
    const h = await b.history('o/agent:before', { since: e1.id });
    assert.equal(h.recovered, false);
    assert.equal(h.top, e2.id);
    // Ids are per channel (a probe on another channel can share e2's id): match the channel too.
    assert.equal(gotB.filter((e) => e.key === 'o/agent:before' && e.id === e2.id).length, 1, 'once');
  });
});

describe('RedisBroker: Redis restarts with persistence', { skip: skipWithoutRedis() }, () => {
  test('history survives, and since an old id still recovers', async () => {
    const server = await startRedis({ appendonly: true });
    const pool = new ClientPool(server.url, fastRetry);
    try {
      const a = new RedisBroker(await pool.create(), new RedisKeys(uniquePrefix()), {
        nodeId: 'a',
        history: HISTORY,
      });
      const e1 = await a.publish(input('o/agent:p', 1));
      const e2 = await a.publish(input('o/agent:p', 2));
      await server.stop();
      await server.restart();
      await until(a, true);
      const e3 = await a.publish(input('o/agent:p', 3));
      const h = await a.history('o/agent:p', { since: e1.id });
      assert.equal(h.recovered, true);
      assert.deepEqual(
        h.events.map((e) => e.id),
        [e2.id, e3.id],
      );
      await a.close();
    } finally {
      await pool.closeAll();
      await server.destroy();
    }
  });
});
