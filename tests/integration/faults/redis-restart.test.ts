/**
 * Fault: Redis crashes (SIGKILL) mid-stream and restarts on the same port, with `appendonly yes`.
 *
 * Two `apix serve` processes share the Redis. SDK subscribers on the first hold an acknowledged and a
 * plain subscription; a publisher sends a numbered stream over HTTP to the second. While Redis is down
 * both nodes' /readyz answer 503 and publishes fail cleanly (HTTP 503 UNAVAILABLE, recorded as failed; one that
 * was in flight at the crash waits for the command timeout and is recorded as unknown). When Redis is
 * back the nodes reconnect by themselves; we measure how long from Redis accepting connections again to
 * the first event delivered to an application.
 *
 * Verdict: every publish acknowledged ok is delivered (0 lost), none twice (0 duplicated), in order.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { Checker, summarize } from '../../support/checker.ts';
import { sleep } from '../../support/wait.ts';
import {
  Cleanup,
  gatewayEnv,
  publishLoop,
  readyz,
  sdkSubscriber,
  startGateway,
  tempDir,
  until,
} from './helpers.ts';
import type { Subscriber } from './helpers.ts';

const ACKED = 'agent:restart-acked';
const PLAIN = 'agent:restart-plain';
const OUTAGE_MS = 1500;

describe(
  'fault: Redis restart mid-stream (appendonly)',
  { skip: skipWithoutRedis(), timeout: 40_000 },
  () => {
    const cleanup = new Cleanup();
    let redis: RedisServer;
    let subNode: GatewayProcess;
    let pubNode: GatewayProcess;

    before(async () => {
      redis = await startRedis({ appendonly: true });
      cleanup.add(() => redis.destroy());
      const prefix = uniquePrefix();
      const env = (id: string) => gatewayEnv(redis.url, prefix, tempDir(cleanup), { APIX_NODE_ID: id });
      [subNode, pubNode] = await Promise.all([
        startGateway(env('rs0'), cleanup),
        startGateway(env('rs1'), cleanup),
      ]);
    });
    after(() => cleanup.run());

    it('fails cleanly while down, resumes in < 5 s, loses and duplicates nothing acknowledged', async () => {
      const checker = new Checker();
      const subs: Subscriber[] = await Promise.all(
        [0, 1, 2].map((i) =>
          sdkSubscriber(
            checker,
            `rs${i}`,
            [subNode.wsUrl],
            [
              { channel: ACKED, ack: true },
              { channel: PLAIN, ack: false },
            ],
            cleanup,
          ),
        ),
      );
      const loop = publishLoop(checker, pubNode, [ACKED, PLAIN], {
        pauseMs: 10,
        timeoutMs: 15_000,
        unknownAfterMs: 2000,
      });
      await sleep(500);

      const killedAt = Date.now();
      await redis.kill('SIGKILL');
      const notReadyMs = await until(
        async () => (await readyz(subNode)) === 503 && (await readyz(pubNode)) === 503,
        5000,
        '/readyz 503 on both nodes',
      );
      await sleep(Math.max(0, OUTAGE_MS - (Date.now() - killedAt)));
      await redis.restart();
      const backAt = Date.now();
      const readyMs = await until(
        async () => (await readyz(subNode)) === 200 && (await readyz(pubNode)) === 200,
        10_000,
        '/readyz 200 on both nodes',
      );
      await until(
        () => checker.firstDeliveryOfPublishAfter(backAt) !== undefined,
        10_000,
        'a delivery after',
      );
      const firstDeliveryMs = checker.firstDeliveryOfPublishAfter(backAt)!.at - backAt;
      await sleep(1000);
      await loop.stop();
      const settled = await until(() => checker.complete(), 10_000, 'subscribers to catch up').catch(
        (e: Error) => e,
      );
      await sleep(300);

      const verdict = checker.analyze();
      const down = checker.published.filter((o) => o.invokedAt >= killedAt && o.invokedAt < backAt);
      const reasons = [...new Set(down.filter((o) => o.status !== 'ok').map((o) => o.reason))];
      console.log(summarize(verdict, 'Redis restart'));
      console.log(
        `  down ${backAt - killedAt} ms: /readyz 503 on both nodes ${notReadyMs} ms after the kill; ` +
          `${down.length} publishes meanwhile (${down.filter((o) => o.status === 'failed').length} failed, ` +
          `${down.filter((o) => o.status === 'unknown').length} unknown, ${down.filter((o) => o.status === 'ok').length} ok: ${reasons.join(' | ')})`,
      );
      console.log(
        `  Redis back -> /readyz 200 on both nodes in ${readyMs} ms, first delivery to an application in ` +
          `${firstDeliveryMs} ms; caught up: ${typeof settled === 'number' ? `${settled} ms` : 'NO'}`,
      );

      assert.ok(notReadyMs < 3000, '/readyz 503 soon after the crash');
      assert.ok(firstDeliveryMs < 5000, `first delivery ${firstDeliveryMs} ms after Redis is back (< 5 s)`);
      assert.ok(verdict.published.failed > 0, 'publishes during the outage fail');
      for (const o of checker.published.filter((x) => x.status === 'failed'))
        assert.equal(o.reason, 'HTTP 503 UNAVAILABLE', 'a clean refusal');
      for (const s of subs) assert.equal(s.client.state, 'connected');
      for (const c of verdict.clients) {
        assert.deepEqual(c.lost, [], `${c.client}: lost`);
        assert.deepEqual(c.duplicated, [], `${c.client}: duplicated`);
        assert.deepEqual(c.unexpected, [], `${c.client}: unexpected`);
        assert.deepEqual(c.order, [], `${c.client}: order`);
        assert.deepEqual(c.failedButDelivered, [], `${c.client}: failed but delivered`);
      }
    });
  },
);
