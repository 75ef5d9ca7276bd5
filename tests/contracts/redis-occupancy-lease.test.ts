/**
 * The occupancy lease and sweep of src/webhooks/redis-occupancy.ts on a real Redis, with a manual clock:
 * a node whose lease runs out is swept by the live ones, each channel it alone held vacated exactly once
 * however many sweep at once; a node that was only late registers its channels again.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RedisChannelOccupancy } from '../../src/webhooks/redis-occupancy.ts';
import { RedisKeys } from '../../src/redis/keys.ts';
import { ManualClock } from '../../src/clock.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import type { FoundRedis } from '../support/redis.ts';
import { ClientPool, deletePrefix } from '../support/redis-engines.ts';

const LEASE = { leaseMs: 3000, sweepMs: 1000 };

describe('Redis channel occupancy: leases and the sweep', { skip: skipWithoutRedis() }, () => {
  let redis: FoundRedis;
  let pool: ClientPool;
  const prefixes: string[] = [];
  before(async () => {
    redis = await findRedis();
    pool = new ClientPool(redis.url);
  });
  after(async () => {
    await pool.closeAll();
    for (const p of prefixes) await deletePrefix(redis.url, p);
    await redis.release();
  });

  async function cluster(ids: string[]) {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const clients = await pool.create();
    const keys = new RedisKeys(prefix);
    const clock = new ManualClock(Date.now());
    const nodes = ids.map((id) => new RedisChannelOccupancy(clients.command, keys, clock, id, LEASE));
    return { clock, nodes };
  }

  it('a dead node’s channels are vacated once, by one of the sweepers; shared ones stay occupied', async () => {
    const { clock, nodes } = await cluster(['a', 'b', 'c']);
    const [a, b, c] = nodes as [RedisChannelOccupancy, RedisChannelOccupancy, RedisChannelOccupancy];
    const seen: Array<[string, boolean]> = [];
    const changed = (key: string, occupied: boolean) => void seen.push([key, occupied]);
    for (const n of nodes) await n.refresh(changed);
    assert.equal(await a.change('acme/agent:only-a', 'a', true), true);
    assert.equal(await a.change('acme/agent:shared', 'a', true), true);
    assert.equal(await b.change('acme/agent:shared', 'b', true), false);
    // a dies (no more refreshes); b and c refresh, and sweep together once a's lease has run out.
    clock.advance(LEASE.leaseMs + 1);
    await Promise.all([b.refresh(changed), c.refresh(changed)]);
    await Promise.all([b.sweep(changed), c.sweep(changed), b.sweep(changed)]);
    assert.deepEqual(seen, [['acme/agent:only-a', false]]);
    assert.equal(b.counters.vacatedBySweep + c.counters.vacatedBySweep, 1);
    assert.equal(b.counters.sweptNodes + c.counters.sweptNodes, 1);
    // a's entry is gone from the shared channel: b's leave is the last one out.
    assert.equal(await b.change('acme/agent:shared', 'b', false), true);
    await Promise.all([b.sweep(changed), c.sweep(changed)]);
    assert.equal(seen.length, 1);
  });

  it('a node swept while it lived (late refreshes) registers its channels again', async () => {
    const { clock, nodes } = await cluster(['a', 'b']);
    const [a, b] = nodes as [RedisChannelOccupancy, RedisChannelOccupancy];
    const seen: Array<[string, boolean]> = [];
    const changed = (key: string, occupied: boolean) => void seen.push([key, occupied]);
    await a.refresh(changed);
    await b.refresh(changed);
    assert.equal(await a.change('acme/agent:late', 'a', true), true);
    clock.advance(LEASE.leaseMs + 1);
    await b.refresh(changed);
    await b.sweep(changed);
    assert.deepEqual(seen, [['acme/agent:late', false]]);
    await a.refresh(changed);
    assert.deepEqual(seen, [
      ['acme/agent:late', false],
      ['acme/agent:late', true],
    ]);
    assert.equal(await a.change('acme/agent:late', 'a', false), true);
  });
});
