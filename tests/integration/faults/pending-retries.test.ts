/**
 * Fault: pending retries survive the gateway that held them (docs/reliability.md, acknowledged delivery). Real processes on a
 * test-owned Redis: node `a` holds an acknowledged subscription whose events are not acked; it is
 * SIGKILLed; the client resumes on node `b`, which takes the session's pending entries from Redis:
 *
 * - redelivered with the right ids and `metadata.retryCount` continuing (> 0, at least what `a` sent);
 * - with no attempt left: dead-lettered, and the publisher (connected to `b`) gets `message.failed`;
 * - a session that never comes back: its entries are dead-lettered by the sweep once its TTL ran out.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { skipWithoutRedis, startRedis, uniquePrefix } from '../../support/redis.ts';
import type { RedisServer } from '../../support/redis.ts';
import { RawClient, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { Cleanup, gatewayEnv, startGateway, tempDir } from './helpers.ts';

const MAX_ATTEMPTS = 3;

describe(
  'fault: pending retries across a gateway SIGKILL',
  { skip: skipWithoutRedis(), timeout: 90_000 },
  () => {
    const cleanup = new Cleanup();
    let redis: RedisServer;
    let env: Record<string, string>;
    let prefix: string;
    let b: GatewayProcess;
    let publisher: RawClient;

    before(async () => {
      redis = await startRedis();
      cleanup.add(() => redis.destroy());
      prefix = uniquePrefix();
      env = gatewayEnv(redis.url, prefix, tempDir(cleanup), {
        APIX_ACK_TIMEOUT_MS: '500',
        APIX_RETRY_BASE_MS: '200',
        APIX_RETRY_MAX_MS: '1000',
        APIX_RETRY_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        APIX_SESSION_TTL_MS: '2000',
        APIX_PENDING_FLUSH_MS: '50',
        APIX_PENDING_SWEEP_MS: '300',
      });
      b = await startGateway(env, cleanup);
      publisher = await RawClient.connect(b.wsUrl, {
        token: await token({ sub: 'pub', roles: ['service'] }),
        sessionId: 'pub-1',
      });
      cleanup.add(() => publisher.terminate());
    });
    after(() => cleanup.run());

    /** Node `a`, a subscriber on it (acknowledged, never acking), and `n` events published through `b`. */
    async function holdOnA(sessionId: string, n: number, channel: string) {
      const a = await startGateway(env, cleanup);
      const sub = await RawClient.connect(a.wsUrl, { token: await token({ sub: 'alice' }), sessionId });
      cleanup.add(() => sub.terminate());
      const added = await sub.subscribe({ channels: [channel], acknowledgment: true });
      assert.equal(added.type, 'subscription.added');
      const ids: string[] = [];
      for (let i = 0; i < n; i++) {
        const correlation_id = `${sessionId}-${i}`;
        publisher.send({ type: 'demo.step', channel, payload: { i }, metadata: { correlation_id } });
        const r = await publisher.next((f) => f.metadata?.correlation_id === correlation_id);
        assert.equal(r.type, 'message.sent', JSON.stringify(r.payload));
        ids.push(r.payload.id as string);
      }
      return { a, sub, ids };
    }

    /** Waits until every id was delivered with at least `retryCount`; returns the highest count per id. */
    async function waitForRetryCount(
      client: RawClient,
      channel: string,
      ids: string[],
      retryCount: number,
      timeoutMs = 8000,
    ) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const seen = maxRetryCounts(client.events(channel));
        if (ids.every((id) => (seen.get(id) ?? -1) >= retryCount)) return seen;
        if (Date.now() > deadline)
          throw new Error(`retryCount ${retryCount} not reached: ${JSON.stringify([...seen])}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    }

    it('a resume on another node redelivers the pending entries, retryCount continuing', async (t) => {
      const CHANNEL = 'agent:jobs-resume';
      const { a, sub, ids } = await holdOnA('p-resume', 5, CHANNEL);
      const onA = await waitForRetryCount(sub, CHANNEL, ids, 1);
      await new Promise((r) => setTimeout(r, 150)); // two ticks of the pending journal
      const killedAt = Date.now();
      assert.equal(await a.kill('SIGKILL'), null);
      sub.terminate();

      const again = await RawClient.connect(b.wsUrl, {
        token: await token({ sub: 'alice' }),
        sessionId: 'p-resume',
        resume: { [CHANNEL]: ids[ids.length - 1]! },
      });
      cleanup.add(() => again.terminate());
      assert.equal(again.frames[0]!.payload.resumed, true);
      const got = await again.waitForEvents(ids.length, CHANNEL, 5000);
      t.diagnostic(
        `kill -> ${ids.length} redelivered on b in ${Date.now() - killedAt} ms; retryCount on a ` +
          `${JSON.stringify(ids.map((id) => onA.get(id)))}, first on b ` +
          JSON.stringify(ids.map((id) => got.find((f) => f.id === id)?.metadata.retryCount)),
      );
      const first = new Map<string, Frame>();
      for (const f of got) if (!first.has(f.id!)) first.set(f.id!, f);
      assert.deepEqual([...first.keys()], ids, 'the right ids, in order');
      for (const id of ids) {
        const rc = first.get(id)!.metadata.retryCount as number;
        assert.ok(rc > 0, `${id}: retryCount ${rc} on the new node`);
        assert.ok(
          rc >= onA.get(id)!,
          `${id}: retryCount ${rc} continues from ${onA.get(id)} on the killed node`,
        );
      }
      again.send({ type: 'ack', payload: { channel: CHANNEL, ids } });
      await new Promise((r) => setTimeout(r, 1500));
      const after = again.events(CHANNEL).length;
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(again.events(CHANNEL).length, after, 'acked: no more redeliveries');
      // The acks reached Redis: no entry of the session is left.
      const r = new Redis(redis.url);
      try {
        const fields = await r.hkeys(`${prefix}pending:{acme/alice/p-resume}`);
        assert.deepEqual(
          fields.filter((f) => !f.startsWith('~')),
          [],
        );
      } finally {
        r.disconnect();
      }
    });

    it('entries with no attempt left are dead-lettered on the resume; the publisher is told', async () => {
      const CHANNEL = 'agent:jobs-exhausted';
      const { a, sub, ids } = await holdOnA('p-exhausted', 2, CHANNEL);
      await waitForRetryCount(sub, CHANNEL, ids, MAX_ATTEMPTS - 1); // every attempt made; the last one still in flight
      await new Promise((r) => setTimeout(r, 150));
      assert.equal(await a.kill('SIGKILL'), null);
      sub.terminate();

      const again = await RawClient.connect(b.wsUrl, {
        token: await token({ sub: 'alice' }),
        sessionId: 'p-exhausted',
        resume: { [CHANNEL]: ids[ids.length - 1]! },
      });
      cleanup.add(() => again.terminate());
      const failed = await collectFailed(ids, 'p-exhausted', 5000);
      assert.deepEqual(failed.sort(), [...ids].sort());
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(again.events(CHANNEL).length, 0, 'not delivered a fourth time');
    });

    it('a session that never comes back: its entries are dead-lettered when its TTL runs out', async (t) => {
      const CHANNEL = 'agent:jobs-gone';
      const { a, sub, ids } = await holdOnA('p-gone', 3, CHANNEL);
      await waitForRetryCount(sub, CHANNEL, ids, 0);
      await new Promise((r) => setTimeout(r, 150));
      const killedAt = Date.now();
      assert.equal(await a.kill('SIGKILL'), null);
      sub.terminate();
      const failed = await collectFailed(ids, 'p-gone', 15_000);
      assert.deepEqual(failed.sort(), [...ids].sort());
      t.diagnostic(
        `kill -> ${ids.length} dead-lettered by the sweep after ${Date.now() - killedAt} ms (TTL 2000)`,
      );
      assert.ok(Date.now() - killedAt >= 2000, 'not before the session TTL');
    });

    /** The publisher's `message.failed` for `ids`, dead-lettered from session `sessionId`. */
    async function collectFailed(ids: string[], sessionId: string, timeoutMs: number): Promise<string[]> {
      const want = new Set(ids);
      const out: string[] = [];
      const deadline = Date.now() + timeoutMs;
      while (out.length < ids.length) {
        const f = await publisher.next(
          (x) =>
            x.type === 'message.failed' &&
            want.has(x.payload.id as string) &&
            String(x.payload.message).includes(`session ${sessionId} `),
          Math.max(1, deadline - Date.now()),
        );
        out.push(f.payload.id as string);
      }
      return out;
    }
  },
);

function maxRetryCounts(events: Frame[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const f of events) {
    const rc = (f.metadata?.retryCount as number | undefined) ?? 0;
    m.set(f.id!, Math.max(m.get(f.id!) ?? -1, rc));
  }
  return m;
}
