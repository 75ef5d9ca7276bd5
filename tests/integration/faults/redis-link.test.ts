/**
 * Fault: the link between one gateway and Redis is cut, then black-holed (tests/support/tcp-proxy.ts).
 *
 * Two `apix serve` processes share a Redis; one of them (`cut`) reaches it through a TCP proxy. SDK
 * subscribers on the `cut` node hold an acknowledged and a plain subscription; a publisher sends a
 * numbered stream over HTTP to the other node (which keeps its Redis, so its publishes keep succeeding),
 * and another publishes through the `cut` node itself.
 *
 * 1. cut: the proxy resets every connection and refuses new ones. The `cut` node's /readyz goes 503 and
 *    its publishes fail at once; when the link returns, traffic resumes.
 * 2. black hole: the connections stay open but no byte moves. Commands fail within the command
 *    timeout, /readyz goes 503 within its ping timeout; when the link returns, traffic resumes.
 *
 * Verdict: no event whose publish was acknowledged is lost on the `cut` node's subscribers (the events
 * published on the other node while the link was down are caught up from history), none is duplicated,
 * order holds.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import { startTcpProxy } from '../../support/tcp-proxy.ts';
import type { TcpProxy } from '../../support/tcp-proxy.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { Checker, summarize } from '../../support/checker.ts';
import { sleep } from '../../support/wait.ts';
import {
  API_KEY,
  Cleanup,
  gatewayEnv,
  httpPublish,
  publishLoop,
  readyz,
  sdkSubscriber,
  startGateway,
  tempDir,
  until,
} from './helpers.ts';
import type { Subscriber } from './helpers.ts';

const ACKED = 'agent:link-acked';
const PLAIN = 'agent:link-plain';
const LOCAL = 'agent:link-local'; // published through the node whose link is cut
const PROBE = 'agent:link-probe'; // publishes through the cut node during the cut (no subscriber)
const COMMAND_TIMEOUT_MS = 5000; // src/redis/client.ts default

describe(
  'fault: the link to Redis is cut, then black-holed',
  { skip: skipWithoutRedis(), timeout: 40_000 },
  () => {
    const cleanup = new Cleanup();
    let redis: RedisServer;
    let proxy: TcpProxy;
    let cutNode: GatewayProcess;
    let direct: GatewayProcess;

    before(async () => {
      redis = await startRedis();
      cleanup.add(() => redis.destroy());
      proxy = await startTcpProxy('127.0.0.1', redis.port);
      cleanup.add(() => proxy.close());
      const prefix = uniquePrefix();
      [cutNode, direct] = await Promise.all([
        startGateway(
          gatewayEnv(`redis://127.0.0.1:${proxy.port}`, prefix, tempDir(cleanup), { APIX_NODE_ID: 'cut' }),
          cleanup,
        ),
        startGateway(gatewayEnv(redis.url, prefix, tempDir(cleanup), { APIX_NODE_ID: 'direct' }), cleanup),
      ]);
    });
    after(() => cleanup.run());

    it('fails cleanly while the link is down, resumes after, loses no acknowledged event', async () => {
      const checker = new Checker();
      const subs: Subscriber[] = await Promise.all(
        [0, 1, 2].map((i) =>
          sdkSubscriber(
            checker,
            `link${i}`,
            [cutNode.wsUrl],
            [
              { channel: ACKED, ack: true },
              { channel: PLAIN, ack: false },
              { channel: LOCAL, ack: false },
            ],
            cleanup,
          ),
        ),
      );
      const remote = publishLoop(checker, direct, [ACKED, PLAIN], { pauseMs: 10 });
      // A publish that times out waiting for Redis is indeterminate (its bytes may reach Redis when the link
      // heals): recorded as unknown, not failed.
      const local = publishLoop(checker, cutNode, [LOCAL], {
        pauseMs: 10,
        timeoutMs: 4 * COMMAND_TIMEOUT_MS,
        unknownAfterMs: COMMAND_TIMEOUT_MS - 500,
      });
      await sleep(500);

      // 1. Cut.
      const cutAt = Date.now();
      proxy.cut();
      const cutNotReadyMs = await until(
        async () => (await readyz(cutNode)) === 503,
        5000,
        '/readyz 503 (cut)',
      );
      // Publishes through the cut node while its link is down fail at once (the local loop may be stuck on
      // the publish that was in flight at the cut: that one waits for the command timeout).
      const probes = [];
      for (let i = 0; i < 3; i++)
        probes.push(await checker.record(PROBE, (op) => httpPublish(cutNode, op, 3000)));
      await sleep(1500);
      const restoredAt = Date.now();
      proxy.restore();
      const cutReadyMs = await until(
        async () => (await readyz(cutNode)) === 200,
        10_000,
        '/readyz 200 (cut)',
      );
      await until(
        () => checker.firstDeliveryOfPublishAfter(restoredAt) !== undefined,
        10_000,
        'delivery (cut)',
      );
      const cutResumeMs = checker.firstDeliveryOfPublishAfter(restoredAt)!.at - restoredAt;
      await sleep(500);

      // 2. Black hole.
      const holedAt = Date.now();
      proxy.blackhole();
      const holeNotReadyMs = await until(
        async () => (await readyz(cutNode)) === 503,
        5000,
        '/readyz 503 (black hole)',
        50,
      );
      // A read through the black hole fails within the command timeout.
      const readStarted = Date.now();
      const read = await fetch(`${cutNode.httpUrl}/v1/channels/${ACKED}/history?limit=1`, {
        headers: { authorization: `Bearer ${API_KEY}` },
        signal: AbortSignal.timeout(4 * COMMAND_TIMEOUT_MS),
      });
      await read.arrayBuffer();
      const readFailMs = Date.now() - readStarted;
      await sleep(Math.max(0, COMMAND_TIMEOUT_MS + 1000 - (Date.now() - holedAt)));
      const healedAt = Date.now();
      proxy.restore();
      const holeReadyMs = await until(
        async () => (await readyz(cutNode)) === 200,
        10_000,
        '/readyz 200 (hole)',
      );
      await until(
        () => checker.firstDeliveryOfPublishAfter(healedAt) !== undefined,
        10_000,
        'delivery (hole)',
      );
      const holeResumeMs = checker.firstDeliveryOfPublishAfter(healedAt)!.at - healedAt;
      await sleep(500);
      await Promise.all([remote.stop(), local.stop()]);
      const settled = await until(() => checker.complete(), 10_000, 'subscribers to catch up').catch(
        (e: Error) => e,
      );
      await sleep(300);

      const verdict = checker.analyze();
      const during = (from: number, to: number, channel: string) =>
        checker.published.filter((o) => o.channel === channel && o.invokedAt >= from && o.invokedAt < to);
      const cutLocal = during(cutAt, restoredAt, LOCAL);
      const holeLocal = during(holedAt, healedAt, LOCAL);
      const holeAnswerMs = holeLocal.map((o) => `${(o.completedAt ?? NaN) - o.invokedAt} ms ${o.status}`);
      const cutRemoteOk = [ACKED, PLAIN]
        .flatMap((c) => during(cutAt, restoredAt, c))
        .filter((o) => o.status === 'ok');
      console.log(summarize(verdict, 'Redis link cut + black hole'));
      if (process.env.FAULTS_DEBUG)
        for (const o of checker.published.filter((x) => x.channel === LOCAL))
          console.log(
            `  local #${o.seq} +${o.invokedAt - cutAt} ms -> ${o.status} after ${(o.completedAt ?? NaN) - o.invokedAt} ms ${o.reason ?? ''}`,
          );
      console.log(
        `  cut: /readyz 503 after ${cutNotReadyMs} ms; publishes through the cut node: ` +
          probes
            .map((o) => `${o.status} (${o.reason ?? ''}) in ${(o.completedAt ?? NaN) - o.invokedAt} ms`)
            .join(', ') +
          '; ' +
          `${cutRemoteOk.length} acknowledged on the other node meanwhile; ` +
          `/readyz 200 ${cutReadyMs} ms after restore, first delivery ${cutResumeMs} ms after restore`,
      );
      console.log(
        `  black hole: /readyz 503 after ${holeNotReadyMs} ms; local publishes during it: ${holeLocal.length} ` +
          `(answered after ${holeAnswerMs.join(', ')}: ${[...new Set(holeLocal.map((o) => o.reason))].join(', ')}); ` +
          `a history read failed with HTTP ${read.status} after ${readFailMs} ms; ` +
          `/readyz 200 ${holeReadyMs} ms after restore, first delivery ${holeResumeMs} ms after restore; ` +
          `caught up: ${typeof settled === 'number' ? `${settled} ms` : 'NO'}`,
      );
      for (const c of verdict.clients)
        if (c.lost.length > 0)
          console.log(
            `  ${c.client} lost ${c.lost.length}: ${c.lost
              .slice(0, 5)
              .map((u) => {
                const op = checker.opOf(u)!;
                return `${op.channel}#${op.seq}@${op.invokedAt - cutAt}ms`;
              })
              .join(' ')}`,
          );

      assert.equal(cutNotReadyMs < 3000, true, '/readyz 503 soon after the cut');
      assert.equal(holeNotReadyMs < 3000, true, '/readyz 503 within the ping timeout in a black hole');
      assert.equal(read.status, 503, 'a read through a black hole fails: UNAVAILABLE');
      assert.ok(
        readFailMs <= COMMAND_TIMEOUT_MS + 1500,
        `a read fails within the command timeout (${readFailMs} ms)`,
      );
      assert.ok(
        cutLocal.every((o) => o.status !== 'ok' || o.invokedAt < cutAt + 50),
        'no publish succeeds through a cut link',
      );
      for (const o of probes) {
        assert.equal(o.status, 'failed', 'a publish through a cut link fails');
        assert.equal(o.reason, 'HTTP 503 UNAVAILABLE');
        assert.ok((o.completedAt ?? Infinity) - o.invokedAt < 1000, 'and fails at once');
      }
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
