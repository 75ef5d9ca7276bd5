import assert from 'node:assert/strict';
import { test } from 'node:test';
import { systemClock } from '../../src/clock.ts';
import { MemorySuspensionStore } from '../../src/suspension/memory-suspension-store.ts';
import { RedisSuspensionStore } from '../../src/suspension/redis-suspension-store.ts';
import {
  HeardSuspensions,
  parseSuspensionControl,
  suspensionControlMessage,
} from '../../src/suspension/suspension-store.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';
import { describeSuspensionContract } from './suspension.contract.ts';

describeSuspensionContract('memory', async () => {
  const store = new MemorySuspensionStore(systemClock);
  return { node: async () => store, close: async () => {} };
});

describeSuspensionContract(
  'redis',
  async () => {
    const redis = await findRedis();
    const prefix = uniquePrefix();
    const pool = new ClientPool(redis.url);
    return {
      node: async () => new RedisSuspensionStore((await pool.create()).command, new RedisKeys(prefix)),
      close: async () => {
        await pool.closeAll();
        await deletePrefix(redis.url, prefix);
        await redis.release();
      },
    };
  },
  { skip: skipWithoutRedis() },
);

test('the memory store is bounded: expired entries make room, then a new suspension is refused', async () => {
  let now = 0;
  const store = new MemorySuspensionStore({ ...systemClock, now: () => now }, 2);
  await store.suspend({ orgId: 'o', userId: 'a', reason: 'r', expiresAt: 10 });
  await store.suspend({ orgId: 'o', userId: 'b', reason: 'r', expiresAt: 100 });
  now = 20;
  await store.suspend({ orgId: 'o', userId: 'c', reason: 'r', expiresAt: 100 });
  assert.equal(store.size, 2);
  await assert.rejects(store.suspend({ orgId: 'o', userId: 'd', reason: 'r', expiresAt: 100 }), /too many/);
});

test('what a node heard is bounded (the oldest goes) and lapses', () => {
  let now = 0;
  const heard = new HeardSuspensions(() => now, 2);
  heard.add({ orgId: 'o', userId: 'a', reason: 'r', expiresAt: 50 });
  heard.add({ orgId: 'o', userId: 'b', sessionId: 's', reason: 'r', expiresAt: 100 });
  heard.add({ orgId: 'o', userId: 'c', reason: 'r', expiresAt: 100 });
  assert.equal(heard.size, 2);
  assert.equal(heard.find('o', 'a', 's'), undefined, 'the oldest went');
  assert.equal(heard.find('o', 'b', 's')?.scope, 'session');
  assert.equal(heard.find('o', 'c', 'x')?.scope, 'user');
  now = 100;
  assert.equal(heard.find('o', 'c', 'x'), undefined);
});

test('a suspension control message is read field by field', () => {
  const msg = suspensionControlMessage('n1', { orgId: 'acme', userId: 'u' }, true, 'why', 123);
  assert.deepEqual(parseSuspensionControl(msg), {
    suspension: { orgId: 'acme', userId: 'u', sessionId: undefined, reason: 'why', expiresAt: 123 },
    suspended: true,
  });
  assert.equal(parseSuspensionControl({ ...msg, userId: 5 }), undefined);
  assert.equal(parseSuspensionControl({ ...msg, sessionId: {} }), undefined);
  assert.equal(parseSuspensionControl({ ...msg, kind: 'other' }), undefined);
  assert.equal(parseSuspensionControl({ ...msg, suspended: 'yes' })?.suspended, false);
});
