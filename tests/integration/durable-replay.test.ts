/**
 * Replay past the history for durable channels (docs/reliability.md, durable channels): with a history of 5 events, 20 events
 * published on a durable channel, a `since` of the first one replays the 19 later ones from the records
 * then the stream, once each, in order, `recovered: true` — on the memory engine with embedded PGlite
 * (records flushed only by the replay itself: the seam where events are in the stream but not yet in the
 * records) and on the Redis engine with PostgreSQL (records flushed by the loop: events trimmed from the
 * stream and only in the records). Live events follow with no duplicate; an id the records lack, and a
 * channel that is not durable, still answer `recovered: false` (with what the history retains).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { createLogger } from '../../src/log.ts';
import { systemClock } from '../../src/clock.ts';
import { openRecords } from '../../src/records.ts';
import type { Records } from '../../src/records.ts';
import { createEngines } from '../../src/engines.ts';
import type { ApiXNode } from '../../src/node.ts';
import type { Config } from '../../src/config.ts';
import { config, RawClient, startNode, token } from '../support/gateway.ts';
import { cpSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { databaseTargets, pgliteTemplate } from '../support/databases.ts';
import type { OpenedDatabase } from '../support/databases.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../support/redis.ts';
import type { FoundRedis } from '../support/redis.ts';

const KEY = 'apix_static_acmekey';
const N = 20;
const HISTORY = 5;

async function publish(node: ApiXNode, channel: string, seq: number): Promise<string> {
  const res = await fetch(`${node.httpUrl}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, type: 'demo.step', payload: { seq }, metadata: { trace_id: `t${seq}` } }),
  });
  const body = (await res.json()) as { id?: string };
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.id!;
}

async function history(node: ApiXNode, channel: string, since: string) {
  const res = await fetch(`${node.httpUrl}/v1/channels/${channel}/history?since=${since}`, {
    headers: { authorization: `Bearer ${KEY}` },
  });
  assert.equal(res.status, 200);
  return (await res.json()) as {
    events: Array<{ id: string; payload: { seq: number }; metadata: Record<string, unknown> }>;
    recovered: boolean;
  };
}

interface Setup {
  node: ApiXNode;
  records: Records;
  close(): Promise<void>;
}

function suite(name: string, make: () => Promise<Setup>, skip: () => Promise<string | false>) {
  describe(name, { timeout: 60_000 }, () => {
    let s: Setup | undefined;
    let skipReason: string | false = false;
    before(async () => {
      skipReason = await skip();
      if (!skipReason) s = await make();
    });
    after(async () => {
      await s?.close();
    });

    it('a `since` below the history replays from the records then the stream, no gap, no duplicate', async (t) => {
      if (skipReason) return t.skip(skipReason);
      const { node, records } = s!;
      const channel = 'agent:durable';
      await records.channels.set('acme', channel, { durable: true });
      const ids: string[] = [];
      for (let i = 0; i < N; i++) ids.push(await publish(node, channel, i));

      // Over HTTP.
      const h = await history(node, channel, ids[0]!);
      assert.equal(h.recovered, true);
      assert.deepEqual(
        h.events.map((e) => e.id),
        ids.slice(1),
      );
      assert.deepEqual(
        h.events.map((e) => e.payload.seq),
        ids.slice(1).map((_, i) => i + 1),
      );
      assert.equal(h.events[0]!.metadata.trace_id, 't1', 'custom metadata replayed from the records');

      // On the wire, then live events.
      const client = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'replayer' }) });
      try {
        const added = await client.subscribe({ channels: [channel], since: { [channel]: ids[0] } });
        assert.deepEqual(added.payload.channels, [{ channel, recovered: true }]);
        for (let i = N; i < N + 3; i++) ids.push(await publish(node, channel, i));
        const got = await client.waitForEvents(N + 2, channel, 10_000);
        await new Promise((r) => setTimeout(r, 200));
        assert.deepEqual(
          client.events(channel).map((e) => e.id),
          ids.slice(1),
          'every event once, in order',
        );
        assert.equal(got.length, N + 2);
      } finally {
        client.terminate();
      }

      // From the middle of the records part, and from the seam (the last event only in the records).
      const mid = await history(node, channel, ids[7]!);
      assert.equal(mid.recovered, true);
      assert.deepEqual(
        mid.events.map((e) => e.id),
        ids.slice(8),
      );
    });

    it('an id the records lack, or a channel that is not durable: recovered false', async (t) => {
      if (skipReason) return t.skip(skipReason);
      const { node, records } = s!;
      const durable = 'agent:durable2';
      await records.channels.set('acme', durable, { durable: true });
      const ids: string[] = [];
      for (let i = 0; i < N; i++) ids.push(await publish(node, durable, i));
      const [ms, seq] = ids[1]!.split('-').map(Number);
      const never = `${ms! - 100_000}-${seq}`;
      // Older than what the stream retains and unknown to the records: what is retained, with the gap said.
      const h = await history(node, durable, never);
      assert.equal(h.recovered, false);
      assert.ok(h.events.length > 0 && h.events.length < N);
      assert.deepEqual(
        h.events.map((e) => e.id),
        ids.slice(N - h.events.length),
      );

      const plain = 'agent:plain';
      const plainIds: string[] = [];
      for (let i = 0; i < N; i++) plainIds.push(await publish(node, plain, i));
      const p = await history(node, plain, plainIds[0]!);
      assert.equal(p.recovered, false);
      assert.ok(p.events.length > 0 && p.events.length < N);
      assert.deepEqual(
        p.events.map((e) => e.id),
        plainIds.slice(N - p.events.length),
      );
    });
  });
}

function cfg(overrides: Partial<Config>): Config {
  const base = config();
  return {
    ...base,
    history: { ...base.history, size: HISTORY },
    apiKeyCacheMs: 0,
    ...overrides,
  };
}

async function withRecords(c: Config, engines?: Awaited<ReturnType<typeof createEngines>>): Promise<Setup> {
  const log = createLogger('silent', 'test');
  const records = await openRecords(c, { clock: systemClock, random: Math.random, log });
  const node = await startNode(c, {
    ...(engines ? { engines } : {}),
    apiKeys: records.apiKeys,
    channels: records.channels,
    deadLetters: records.deadLetters,
    durable: records.durable,
    durableReplay: records.durableReplay,
  });
  return {
    node,
    records,
    async close() {
      await node.close();
      await records.close();
    },
  };
}

const postgres = databaseTargets.find((t) => t.kind === 'postgres')!;

suite(
  'durable replay: memory engine, PGlite',
  async () => {
    // A copy of the migrated PGlite template (opening it once, in openRecords, is the slow part).
    const dataDir = mkdtempSync(join(tmpdir(), 'apix-durable-'));
    cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
    // Records flushed only on demand: the replay itself must write what the stream still holds.
    const setup = await withRecords(cfg({ dataDir, recordsFlushIntervalMs: 600_000 }));
    return {
      ...setup,
      async close() {
        await setup.close();
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  },
  async () => false,
);

let redis: FoundRedis | undefined;
let pgDb: OpenedDatabase | undefined;
suite(
  'durable replay: Redis engine, PostgreSQL',
  async () => {
    redis = await findRedis();
    pgDb = await postgres.open();
    const c = cfg({
      redisUrl: redis.url,
      redisPrefix: uniquePrefix(),
      databaseUrl: pgDb.postgres!.url,
      dataDir: pgDb.dataDir,
      recordsFlushIntervalMs: 100,
    });
    const engines = await createEngines(c, { nodeId: 'durable-test' });
    const setup = await withRecords(c, engines);
    return {
      ...setup,
      async close() {
        await setup.close();
        await pgDb!.cleanup().catch(() => {});
        await redis!.release();
      },
    };
  },
  async () => skipWithoutRedis() || (await postgres.skipReason()) || false,
);
