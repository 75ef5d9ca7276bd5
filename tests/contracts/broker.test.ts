import { MemoryBroker, MemoryBrokerBus } from '../../src/broker/memory-broker.ts';
import { RedisBroker } from '../../src/broker/redis-broker.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describeBrokerContract } from './broker.contract.ts';

describeBrokerContract('memory', async () => {
  const bus = new MemoryBrokerBus();
  return {
    node: async (_id, history) => new MemoryBroker(bus, history),
    close: async () => {},
  };
});

describeBrokerContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    return {
      node: async (nodeId, history) => {
        const broker = new RedisBroker(await pool.create(), new RedisKeys(prefix), { nodeId, history });
        await broker.ready();
        return broker;
      },
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);
