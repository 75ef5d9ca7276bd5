/**
 * Fault: SIGKILL of a gateway node mid-stream (real processes, one Redis).
 *
 * Three `apix serve` processes share a Redis. SDK subscribers (given every gateway URL, connected to the
 * node that will die) hold an acknowledged subscription (auto-ack) and a plain one. A publisher sends a
 * numbered stream over HTTP to another node. The first node is SIGKILLed part-way: no drain, no
 * goodbye, its in-memory sessions and in-flight events are gone. The clients reconnect to another node
 * and resume (session snapshot in Redis, replay from history since their last ids).
 *
 * Verdict (tests/support/checker.ts): every acknowledged publish reaches every subscriber's application
 * exactly once and in order, on both subscriptions.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { Checker, summarize } from '../../support/checker.ts';
import { sleep } from '../../support/wait.ts';
import { Cleanup, gatewayEnv, httpPublish, sdkSubscriber, startGateway, tempDir, until } from './helpers.ts';
import type { Subscriber } from './helpers.ts';

const ACKED = 'agent:kill-acked';
const PLAIN = 'agent:kill-plain';
const SUBSCRIBERS = 4;
const ROUNDS = 200; // one publish per channel per round
const KILL_AT = 60;

describe('fault: SIGKILL of a gateway node mid-stream', { skip: skipWithoutRedis(), timeout: 40_000 }, () => {
  const cleanup = new Cleanup();
  let redis: RedisServer;
  let gws: GatewayProcess[];

  before(async () => {
    redis = await startRedis();
    cleanup.add(() => redis.destroy());
    const prefix = uniquePrefix();
    gws = await Promise.all(
      [0, 1, 2].map((i) =>
        startGateway(gatewayEnv(redis.url, prefix, tempDir(cleanup), { APIX_NODE_ID: `kill${i}` }), cleanup),
      ),
    );
  });
  after(() => cleanup.run());

  it('acknowledged and resumed subscriptions: 0 lost, 0 duplicated, in order', async () => {
    const [victim, other, publisherNode] = gws as [GatewayProcess, GatewayProcess, GatewayProcess];
    const checker = new Checker();
    const urls = [victim.wsUrl, other.wsUrl, publisherNode.wsUrl];
    const subs: Subscriber[] = await Promise.all(
      Array.from({ length: SUBSCRIBERS }, (_, i) =>
        sdkSubscriber(
          checker,
          `sub${i}`,
          urls,
          [
            { channel: ACKED, ack: true },
            { channel: PLAIN, ack: false },
          ],
          cleanup,
        ),
      ),
    );
    for (const s of subs) assert.equal(s.client.url, victim.wsUrl, 'every subscriber starts on the victim');

    let killedAt = 0;
    let killed: Promise<number | null> | undefined;
    for (let round = 0; round < ROUNDS; round++) {
      if (round === KILL_AT) {
        killedAt = Date.now();
        killed = victim.kill('SIGKILL');
      }
      await checker.record(ACKED, (op) => httpPublish(publisherNode, op, 10_000));
      await checker.record(PLAIN, (op) => httpPublish(publisherNode, op, 10_000));
      await sleep(5);
    }
    await killed;
    const settle = await until(() => checker.complete(), 15_000, 'every subscriber to catch up').catch(
      (err: Error) => err,
    );
    await sleep(300); // late duplicates, if any, would show up here

    const verdict = checker.analyze();
    const reconnectMs = subs.map((s) => (s.reconnects.find((t) => t >= killedAt) ?? NaN) - killedAt);
    console.log(summarize(verdict, 'node SIGKILL'));
    for (const channel of [ACKED, PLAIN]) {
      const sent = checker.okOn(channel).length;
      const delivered = subs.map(
        (s) => new Set(checker.deliveriesOf(s.name, channel).map((d) => d.uid)).size,
      );
      console.log(`  ${channel}: published ${sent}, delivered per subscriber ${delivered.join('/')}`);
    }
    console.log(
      `  reconnected to another node after the kill in ${reconnectMs.map((ms) => `${ms} ms`).join(', ')}; ` +
        `caught up ${typeof settle === 'number' ? `${settle} ms after the last publish` : 'NOT in time'}`,
    );

    assert.equal(verdict.published.ok, 2 * ROUNDS, 'every HTTP publish to a surviving node succeeded');
    for (const s of subs) {
      assert.notEqual(s.client.url, victim.wsUrl, `${s.name} moved to another node`);
      assert.equal(s.reconnects.length >= 1, true, `${s.name} reconnected`);
    }
    for (const c of verdict.clients) {
      assert.deepEqual(c.lost, [], `${c.client}: lost`);
      assert.deepEqual(c.duplicated, [], `${c.client}: duplicated`);
      assert.deepEqual(c.unexpected, [], `${c.client}: unexpected`);
      assert.deepEqual(c.order, [], `${c.client}: order`);
    }
    assert.equal(verdict.totals.delivered, verdict.totals.expected);
    assert.equal(verdict.totals.expected, SUBSCRIBERS * 2 * ROUNDS);
    assert.equal(verdict.valid, true);
  });
});
