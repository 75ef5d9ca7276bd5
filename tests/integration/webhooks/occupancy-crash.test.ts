/**
 * A node that dies without leaving does not keep its channels occupied (docs/backend.md, channel.occupied /
 * vacated): three `apix serve` processes on a real Redis, with a short occupancy lease
 * (APIX_WEBHOOK_OCCUPANCY_LEASE_MS); one is SIGKILLed while it holds two channels, one of them held on
 * another node too. The two live nodes both sweep; a real receiver process gets `channel.vacated` once for
 * the channel only the dead node held, none for the shared one until its last live subscriber leaves.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, TEST_SECRET, token } from '../../support/gateway.ts';
import { spawnGateway } from '../../support/process.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { findRedis, freePort, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { waitFor } from '../../support/wait.ts';
import { readLog, startReceiver } from '../../support/webhook-receiver.ts';

async function metric(gw: GatewayProcess, name: string): Promise<number> {
  const text = await (await fetch(`${gw.httpUrl}/metrics`)).text();
  // Every series carries the node's default labels.
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

describe('channel occupancy of a crashed node (Redis, 3 processes)', { skip: skipWithoutRedis() }, () => {
  let redis: FoundRedis;
  let prefix: string;
  const dir = mkdtempSync(join(tmpdir(), 'apix-occ-'));
  const nodes: GatewayProcess[] = [];
  before(async () => {
    redis = await findRedis();
    prefix = uniquePrefix();
  });
  after(async () => {
    for (const g of nodes) await g.kill('SIGKILL');
    await deletePrefix(redis.url, prefix);
    await redis.release();
    rmSync(dir, { recursive: true, force: true });
  });

  const spawnNode = async (id: string) => {
    const gw = await spawnGateway({
      APIX_NODE_ID: id,
      APIX_DATA_DIR: join(dir, id),
      REDIS_URL: redis.url,
      APIX_REDIS_PREFIX: prefix,
      APIX_JWT_SECRET: TEST_SECRET,
      APIX_WEBHOOK_ALLOW_PRIVATE: 'true',
      APIX_WEBHOOK_FLUSH_MS: '50',
      APIX_WEBHOOK_RETRY_BASE_MS: '100',
      APIX_WEBHOOK_RETRY_MAX_MS: '500',
      APIX_WEBHOOK_OCCUPANCY_LEASE_MS: '1500',
      APIX_WEBHOOK_OCCUPANCY_SWEEP_MS: '200',
    });
    nodes.push(gw);
    return gw;
  };

  it('a SIGKILLed node’s channels are vacated once, by the sweep of a live node', async () => {
    const [a, b, c] = [await spawnNode('occ-a'), await spawnNode('occ-b'), await spawnNode('occ-c')];
    const admin = await token({ sub: 'ops', roles: ['admin'] });
    const port = await freePort();
    const made = (await (
      await fetch(`${b.httpUrl}/v1/admin/webhooks`, {
        method: 'POST',
        headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          url: `http://127.0.0.1:${port}/hooks`,
          events: ['channel.occupied', 'channel.vacated'],
        }),
      })
    ).json()) as { secret: string };
    const log = join(dir, 'occupancy.jsonl');
    const receiver = await startReceiver({ port, secret: made.secret, log });
    try {
      const only = 'agent:crash-only-a';
      const shared = 'agent:crash-shared';
      const of = (ch: string) =>
        readLog(log)
          .events.filter((e) => e.data.channel === ch)
          .map((e) => e.type);
      const onA = await RawClient.connect(a.wsUrl, { token: await token({ sub: 'u-a' }) });
      await onA.subscribe({ channels: [only, shared] });
      const onB = await RawClient.connect(b.wsUrl, { token: await token({ sub: 'u-b' }) });
      await onB.subscribe({ channels: [shared] });
      await waitFor(() => of(only).length === 1 && of(shared).length === 1, 60_000, 'channel.occupied x2');

      assert.equal(await a.kill('SIGKILL'), null);
      await waitFor(() => of(only).includes('channel.vacated'), 60_000, 'channel.vacated of the dead node');
      // The sweep is over when a live node has dropped the dead node's lease (its channels are done first).
      await waitFor(
        async () =>
          (await metric(b, 'apix_occupancy_swept_nodes')) + (await metric(c, 'apix_occupancy_swept_nodes')) >=
          1,
        60_000,
        'the sweep to finish',
      );
      // Then the shared channel's last live subscriber leaves: vacated by its own node, once.
      onB.send({ type: 'unsubscribe', payload: { channels: [shared] } });
      await onB.nextOfType('subscription.removed');
      await waitFor(
        () => of(shared).includes('channel.vacated'),
        60_000,
        'channel.vacated of the shared channel',
      );
      // One more batching round through both live nodes, so a duplicate would have arrived by now.
      const late = await RawClient.connect(c.wsUrl, { token: await token({ sub: 'u-c' }) });
      await late.subscribe({ channels: ['agent:crash-marker'] });
      await waitFor(() => of('agent:crash-marker').length === 1, 60_000, 'the marker channel');
      assert.deepEqual(of(only), ['channel.occupied', 'channel.vacated']);
      assert.deepEqual(of(shared), ['channel.occupied', 'channel.vacated']);
      assert.deepEqual(readLog(log).rejected, []);
      const swept =
        (await metric(b, 'apix_occupancy_swept_channels')) +
        (await metric(c, 'apix_occupancy_swept_channels'));
      assert.equal(swept, 1, 'one channel vacated by a sweep, cluster-wide');
      for (const x of [onB, late]) x.close();
    } finally {
      await receiver.kill();
    }
  });
});
