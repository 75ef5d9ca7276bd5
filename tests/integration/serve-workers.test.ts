/**
 * `apix serve --workers 2` as a user runs it: two worker processes share one port (node:cluster), act as
 * one through Redis (a client on each gets what the other's clients publish), and a SIGTERM to the
 * primary drains every worker (each client is told to go elsewhere, close 1001) before it exits 0.
 */
import { describe, it, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway } from '../support/process.ts';
import { RawClient, token, TEST_SECRET } from '../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import type { FoundRedis } from '../support/redis.ts';

/** The worker a connection landed on: connection ids are `<nodeId>-<seq>`, worker node ids end in `-w<i>`. */
const workerOf = (c: RawClient): string => {
  const established = c.frames.find((f) => f.type === 'connection.established');
  const id = String(established?.payload?.connectionId ?? '');
  const match = /-(w\d+)-[0-9a-z]+$/.exec(id);
  assert.ok(match, `connection id ${id} names no worker`);
  return match[1]!;
};

describe('apix serve --workers 2', { skip: skipWithoutRedis() }, () => {
  let redis: FoundRedis;
  const dir = mkdtempSync(join(tmpdir(), 'apix-workers-'));
  before(async () => {
    redis = await findRedis();
  });
  after(async () => {
    await redis?.release();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shares the port, fans events out across workers, and drains them all on SIGTERM', async () => {
    const gw = await spawnGateway(
      {
        APIX_DATA_DIR: dir,
        APIX_JWT_SECRET: TEST_SECRET,
        REDIS_URL: redis.url,
        APIX_REDIS_PREFIX: uniquePrefix(),
        APIX_RECORDS: 'off',
      },
      { args: ['--workers', '2'] },
    );
    const byWorker = new Map<string, RawClient>();
    const extra: RawClient[] = [];
    try {
      // The kernel (or the primary, round-robin) picks the worker: connect until both have a client.
      const tok = await token({ sub: 'alice', roles: ['admin'] });
      for (let i = 0; i < 60 && byWorker.size < 2; i++) {
        const c = await RawClient.connect(gw.wsUrl, { token: tok, subscriptions: ['agent:shared'] }).catch(
          () => undefined, // the second worker may still be starting
        );
        if (!c) continue;
        const w = workerOf(c);
        if (byWorker.has(w)) extra.push(c);
        else byWorker.set(w, c);
      }
      assert.deepEqual([...byWorker.keys()].sort(), ['w0', 'w1'], gw.output());
      const [a, b] = [byWorker.get('w0')!, byWorker.get('w1')!];

      // Each one's publish reaches the other, across the process boundary.
      for (const [c, from] of [
        [a, 'w0'],
        [b, 'w1'],
      ] as const) {
        const reply = await c.publish('agent:shared', 'note', { from });
        assert.equal(reply.type, 'message.sent', JSON.stringify(reply.payload));
      }
      const seenByA = await a.waitForEvents(2, 'agent:shared', 30_000);
      const seenByB = await b.waitForEvents(2, 'agent:shared', 30_000);
      assert.deepEqual(seenByA.map((f) => f.payload.from).sort(), ['w0', 'w1']);
      assert.deepEqual(seenByB.map((f) => f.payload.from).sort(), ['w0', 'w1']);

      // SIGTERM to the primary: every worker drains its clients, then the primary exits 0.
      const exit = gw.kill('SIGTERM');
      for (const c of [a, b, ...extra]) {
        const closed = await c.waitClosed(60_000);
        assert.equal(closed.code, 1001, `drain close on ${workerOf(c)}`);
        assert.ok(
          c.frames.some((f) => f.type === 'connection.disconnected'),
          `connection.disconnected on ${workerOf(c)}`,
        );
      }
      assert.equal(await exit, 0, gw.output());
    } finally {
      for (const c of [...byWorker.values(), ...extra]) c.terminate();
      await gw.kill('SIGKILL');
    }
  });
});
