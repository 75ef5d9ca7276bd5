import { MemoryWebhookStore } from '../../src/webhooks/webhook-store.ts';
import { MemoryChannelOccupancy } from '../../src/webhooks/occupancy.ts';
import { RedisWebhookStore } from '../../src/webhooks/redis-webhook-store.ts';
import { RedisChannelOccupancy } from '../../src/webhooks/redis-occupancy.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { systemClock } from '../../src/clock.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describeWebhookStoreContract } from './webhook-store.contract.ts';
import { PrismaWebhookStore } from '../../src/store/prisma-webhook-store.ts';
import { databaseTargets } from '../support/databases.ts';

describeWebhookStoreContract('memory', async () => ({
  store: new MemoryWebhookStore(),
  occupancy: new MemoryChannelOccupancy(),
  close: async () => {},
}));

describeWebhookStoreContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    const clients = await pool.create();
    const keys = new RedisKeys(prefix);
    return {
      store: new RedisWebhookStore(clients.command, keys),
      occupancy: new RedisChannelOccupancy(clients.command, keys, systemClock, 'n', {
        leaseMs: 30_000,
        sweepMs: 10_000,
      }),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);

// The database store (without Redis): PGlite, and PostgreSQL when one answers (required under CI).
for (const target of databaseTargets) {
  const skip = target.kind === 'postgres' ? await target.skipReason() : undefined;
  describeWebhookStoreContract(
    `database (${target.kind})`,
    async () => {
      const opened = await target.open();
      return {
        store: new PrismaWebhookStore(opened.db.prisma),
        occupancy: new MemoryChannelOccupancy(),
        close: () => opened.cleanup(),
      };
    },
    { skip: skip ?? false },
  );
}
