/**
 * Fault: a gateway restart (SIGKILL, then a new process on the same Redis). History lives in Redis, so it
 * survives: `since` replays every event after the given id, across the restart, with no gap and no
 * duplicate, and live events follow. Checked on the wire (raw ws, no SDK dedupe) and over HTTP.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import { RawClient, token } from '../../support/gateway.ts';
import { Checker } from '../../support/checker.ts';
import { API_KEY, Cleanup, gatewayEnv, httpPublish, startGateway, tempDir } from './helpers.ts';

const CHANNEL = 'agent:replay';
const BEFORE = 60;
const AFTER = 40;
const LIVE = 10;

describe('fault: replay across a gateway restart', { skip: skipWithoutRedis(), timeout: 40_000 }, () => {
  const cleanup = new Cleanup();
  let redis: RedisServer;
  let env: Record<string, string>;

  before(async () => {
    redis = await startRedis();
    cleanup.add(() => redis.destroy());
    env = gatewayEnv(redis.url, uniquePrefix(), tempDir(cleanup));
  });
  after(() => cleanup.run());

  it('`since` gives every event after the id, across the restart, with no gap, then live ones', async () => {
    const checker = new Checker();
    const first = await startGateway(env, cleanup);
    for (let i = 0; i < BEFORE; i++) await checker.record(CHANNEL, (op) => httpPublish(first, op));
    const killedAt = Date.now();
    assert.equal(await first.kill('SIGKILL'), null, 'killed, not exited');
    const second = await startGateway(env, cleanup);
    const restartMs = Date.now() - killedAt;
    for (let i = 0; i < AFTER; i++) await checker.record(CHANNEL, (op) => httpPublish(second, op));
    const ok = checker.okOn(CHANNEL);
    assert.equal(ok.length, BEFORE + AFTER);

    // Over HTTP: since the first event, every later one in order.
    const res = await fetch(`${second.httpUrl}/v1/channels/${CHANNEL}/history?since=${ok[0]!.eventId}`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const body = (await res.json()) as { events: Array<{ id: string }>; recovered: boolean };
    assert.equal(res.status, 200);
    assert.equal(body.recovered, true);
    assert.deepEqual(
      body.events.map((e) => e.id),
      ok.slice(1).map((o) => o.eventId),
    );

    // On the wire: since an event from before the restart, then live events.
    const from = 9; // the 10th event
    const client = await RawClient.connect(second.wsUrl, { token: await token({ sub: 'replayer' }) });
    cleanup.add(() => client.terminate());
    const added = await client.subscribe({ channels: [CHANNEL], since: { [CHANNEL]: ok[from]!.eventId } });
    assert.equal(added.type, 'subscription.added');
    assert.equal(added.payload.channels[0].recovered, true);
    for (let i = 0; i < LIVE; i++) await checker.record(CHANNEL, (op) => httpPublish(second, op));
    const expected = checker.okOn(CHANNEL).slice(from + 1);
    const frames = await client.waitForEvents(expected.length, CHANNEL, 10_000);
    await new Promise((r) => setTimeout(r, 200));
    for (const f of client.events(CHANNEL)) checker.deliver('replayer', CHANNEL, f.payload.uid, f.id);
    // The client asked for everything after `from`: publishes before it are not expected of it.
    const verdict = checker.analyze();
    const mine = verdict.clients.find((c) => c.client === 'replayer')!;
    console.log(
      `replay across a restart: published ${verdict.published.total} (ok ${verdict.published.ok}), ` +
        `${BEFORE} before the restart, ${AFTER} after, ${LIVE} live`,
    );
    console.log(
      `  gateway restarted in ${restartMs} ms (SIGKILL to ready); history since event 1: ${body.events.length} ` +
        `events; ws since event ${from + 1}: ${frames.length} replayed + live (expected ${expected.length}); ` +
        `duplicated ${mine.duplicated.length}, out of order ${mine.order.length}`,
    );
    assert.deepEqual(
      client.events(CHANNEL).map((f) => f.id),
      expected.map((o) => o.eventId),
      'every event after `since`, in order, once, then the live ones',
    );
    assert.deepEqual(mine.duplicated, []);
    assert.deepEqual(mine.unexpected, []);
    assert.deepEqual(mine.order, []);
  });
});
