/**
 * Channels encrypted at rest, on the Redis engine and the records (PGlite): the raw Redis entries
 * (streams, offline queues, everything under the node's prefix) and the ApiXEvent rows hold no plaintext,
 * while live subscribers, replay, a resumed session's queue and the records read back through the cipher
 * get the plaintext. And an encrypted channel on a node without keys refuses publishes clearly.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';
import { createRecordRepositories, type RecordRepositories } from '../../../src/store/records.ts';
import { PrismaDeadLetterStore } from '../../../src/store/prisma-dead-letter-store.ts';
import { AtRestCipher, openRecordPayload } from '../../../src/crypto/at-rest.ts';
import type { Keyring } from '../../../src/crypto/at-rest.ts';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { databaseTargets, type OpenedDatabase } from '../../support/databases.ts';
import { waitFor } from '../../support/wait.ts';

/** Agent events are published by services. */
const agentService = () => token({ sub: 'agent-svc', roles: ['service'] });

const SECRET = `TOP-SECRET-${randomBytes(4).toString('hex')}`;
const keyring: Keyring = { keys: [{ version: 1, key: randomBytes(32) }], active: 1 };

/** Every value under `prefix`, whatever the key's type, as one string. */
async function dumpPrefix(redis: Redis, prefix: string): Promise<string> {
  const out: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const k of keys) {
      const type = await redis.type(k);
      if (type === 'string') out.push(String(await redis.get(k)));
      else if (type === 'list') out.push(...(await redis.lrange(k, 0, -1)));
      else if (type === 'stream') out.push(JSON.stringify(await redis.xrange(k, '-', '+')));
      else if (type === 'hash') out.push(JSON.stringify(await redis.hgetall(k)));
      else if (type === 'set') out.push(...(await redis.smembers(k)));
      else if (type === 'zset') out.push(...(await redis.zrange(k, '0', '-1')));
    }
  } while (cursor !== '0');
  return out.join('\n');
}

describe('encryption at rest on Redis and the records', { skip: skipWithoutRedis() }, () => {
  let redisFound: FoundRedis;
  let redis: Redis;
  let prefix: string;
  let opened: OpenedDatabase;
  let repos: RecordRepositories;
  let node: ApiXNode;

  before(async () => {
    redisFound = await findRedis();
    prefix = uniquePrefix();
    redis = new Redis(redisFound.url);
    opened = await databaseTargets.find((t) => t.kind === 'pglite')!.open();
    repos = createRecordRepositories(opened.db.prisma, { flushIntervalMs: 60_000 });
    const cfg = config({
      redisUrl: redisFound.url,
      redisPrefix: prefix,
      encryption: keyring,
      ackTimeoutMs: 60_000,
    });
    const channels = new MemoryChannelRegistry();
    await channels.set('acme', 'agent:vault', { encrypted: true, durable: true });
    const engines = await createEngines(cfg, { nodeId: 'enc-1' });
    node = await startNode(cfg, {
      engines,
      channels,
      durable: (e) => void repos.events.append(e),
      deadLetters: new PrismaDeadLetterStore(repos.events, 100),
    });
  });

  after(async () => {
    await node?.close();
    await repos?.close();
    await opened?.cleanup();
    await deletePrefix(redisFound.url, prefix);
    redis?.disconnect();
    await redisFound?.release();
  });

  test('subscribers, replay and a resumed queue get plaintext; Redis and ApiXEvent hold only ciphertext', async () => {
    const live = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:vault'] });
    // An acknowledged subscriber that goes away: its events wait in its offline queue (in Redis).
    const awayToken = await token({ sub: 'bob' });
    const away = await RawClient.connect(node.wsUrl, { token: awayToken, sessionId: 'bob-1' });
    away.send({ type: 'subscribe', payload: { channels: ['agent:vault'], acknowledgment: true } });
    await away.nextOfType('subscription.added');
    away.ws.close();
    await away.waitClosed();
    await waitFor(() => node.gateway.stats().connections === 1, 3000, 'bob to be away');

    const publisher = await RawClient.connect(node.wsUrl, { token: await agentService() });
    publisher.send({
      type: 'agent_status_update',
      channel: 'agent:vault',
      payload: { agentId: 'a1', status: 'running', message: SECRET },
      metadata: { correlation_id: 'p1' },
    });
    const sent = await publisher.nextOfType('message.sent');
    const id = (sent.payload as { id: string }).id;

    const [ev] = await live.waitForEvents(1, 'agent:vault');
    assert.equal((ev!.payload as { message: string }).message, SECRET);
    assert.equal(ev!.id, id);

    // Raw Redis: the stream entry and the offline queue hold no plaintext.
    await waitFor(
      async () => (await dumpPrefix(redis, prefix)).includes('{\\"sealed\\":'),
      3000,
      'sealed entries',
    );
    await waitFor(async () => (await redis.keys(`${prefix}queue:*`)).length > 0, 3000, 'the offline queue');
    const raw = await dumpPrefix(redis, prefix);
    assert.ok(!raw.includes(SECRET), 'no plaintext anywhere in Redis');
    assert.ok(raw.includes('sealed'));

    // Replay from the (encrypted) stream.
    const late = await RawClient.connect(node.wsUrl);
    late.send({ type: 'subscribe', payload: { channels: ['agent:vault'], replay: { last: 5 } } });
    const [replayed] = await late.waitForEvents(1, 'agent:vault');
    assert.equal((replayed!.payload as { message: string }).message, SECRET);

    // HTTP history.
    const res = await fetch(`${node.httpUrl}/v1/channels/agent:vault/history?limit=5`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    const body = (await res.json()) as { events: Array<{ payload: { message: string } }> };
    assert.equal(body.events[0]!.payload.message, SECRET);

    // The session comes back: its queued event, opened.
    const back = await RawClient.connect(node.wsUrl, { token: awayToken, sessionId: 'bob-1' });
    const [queued] = await back.waitForEvents(1, 'agent:vault');
    assert.equal((queued!.payload as { message: string }).message, SECRET);
    back.send({ type: 'ack', payload: { channel: 'agent:vault', ids: [queued!.id] } });

    // The ApiXEvent row, read directly.
    await repos.events.flush();
    const rows = await opened.db.prisma.$queryRawUnsafe<Array<{ payload: string; channel: string }>>(
      `SELECT payload::text AS payload, channel FROM "ApiXEvent" WHERE channel = 'acme/agent:vault'`,
    );
    assert.equal(rows.length, 1);
    assert.ok(!rows[0]!.payload.includes(SECRET), 'no plaintext in the record');
    assert.ok(rows[0]!.payload.includes('"sealed"'));
    const cipher = new AtRestCipher(keyring);
    assert.deepEqual(openRecordPayload(cipher, 'acme/agent:vault', id, JSON.parse(rows[0]!.payload)), {
      agentId: 'a1',
      status: 'running',
      message: SECRET,
    });
    for (const c of [live, publisher, late, back]) c.ws.close();
  });

  test('plain channels are stored as before', async () => {
    const publisher = await RawClient.connect(node.wsUrl, { token: await agentService() });
    publisher.send({
      type: 'agent_status_update',
      channel: 'agent:open',
      payload: { agentId: 'a2', status: 'idle', message: 'PLAIN-VISIBLE' },
    });
    await publisher.nextOfType('message.sent');
    await waitFor(
      async () => (await dumpPrefix(redis, prefix)).includes('PLAIN-VISIBLE'),
      3000,
      'plain entry',
    );
    publisher.ws.close();
  });
});

describe('an encrypted channel without keys', () => {
  test('publishing is refused with UNAVAILABLE naming APIX_ENCRYPTION_KEYS', async () => {
    const channels = new MemoryChannelRegistry();
    await channels.set('acme', 'agent:vault', { encrypted: true });
    const node = await startNode({}, { channels });
    try {
      const c = await RawClient.connect(node.wsUrl, { token: await agentService() });
      c.send({
        type: 'agent_status_update',
        channel: 'agent:vault',
        payload: { agentId: 'a', status: 'idle' },
      });
      const f = await c.nextOfType('message.failed');
      const p = f.payload as { code: string; message: string };
      assert.equal(p.code, 'UNAVAILABLE');
      assert.match(p.message, /APIX_ENCRYPTION_KEYS/);
      c.ws.close();
    } finally {
      await node.close();
    }
  });
});

describe('encryption at rest: replay past the history from the records (memory engine, PGlite)', () => {
  let opened: OpenedDatabase;
  let repos: RecordRepositories;
  let node: ApiXNode;

  before(async () => {
    opened = await databaseTargets.find((t) => t.kind === 'pglite')!.open();
    repos = createRecordRepositories(opened.db.prisma, { flushIntervalMs: 60_000 });
    const channels = new MemoryChannelRegistry();
    await channels.set('acme', 'agent:vault', { encrypted: true, durable: true });
    const base = config();
    node = await startNode(
      {
        encryption: keyring,
        history: { ...base.history, size: 2 },
        ackTimeoutMs: 50,
        retry: { baseMs: 10, maxMs: 10, maxAttempts: 1 },
      },
      {
        channels,
        durable: (e) => void repos.events.append(e),
        deadLetters: new PrismaDeadLetterStore(repos.events, 100),
        durableReplay: {
          range: (key, fromId, bound, limit) => repos.events.range(key, fromId, bound, limit),
          flush: () => repos.flush(),
        },
      },
    );
  });

  after(async () => {
    await node?.close();
    await repos?.close();
    await opened?.cleanup();
  });

  test('events trimmed from the history come back from the sealed records as plaintext', async () => {
    const publisher = await RawClient.connect(node.wsUrl, { token: await agentService() });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      publisher.send({
        type: 'agent_status_update',
        channel: 'agent:vault',
        payload: { agentId: 'a1', status: 'running', message: `${SECRET}-${i}` },
        metadata: { correlation_id: `p${i}` },
      });
      const sent = await publisher.next(
        (f) => f.type === 'message.sent' && f.metadata?.correlation_id === `p${i}`,
      );
      ids.push((sent.payload as { id: string }).id);
    }
    const late = await RawClient.connect(node.wsUrl);
    late.send({
      type: 'subscribe',
      payload: { channels: ['agent:vault'], since: { 'agent:vault': ids[0] } },
    });
    const added = await late.nextOfType('subscription.added');
    assert.deepEqual((added.payload as { channels: unknown }).channels, [
      { channel: 'agent:vault', recovered: true },
    ]);
    const events = await late.waitForEvents(4, 'agent:vault');
    assert.deepEqual(
      events.map((e) => (e.payload as { message: string }).message),
      [1, 2, 3, 4].map((i) => `${SECRET}-${i}`),
    );
    const rows = await opened.db.prisma.$queryRawUnsafe<Array<{ payload: string }>>(
      `SELECT payload::text AS payload FROM "ApiXEvent" WHERE channel = 'acme/agent:vault'`,
    );
    assert.equal(rows.length, 5);
    for (const r of rows) assert.ok(!r.payload.includes(SECRET));
    publisher.ws.close();
    late.ws.close();
  });

  test('a dead letter of an encrypted channel is stored sealed', async () => {
    const sub = await RawClient.connect(node.wsUrl);
    sub.send({ type: 'subscribe', payload: { channels: ['agent:vault'], acknowledgment: true } });
    await sub.nextOfType('subscription.added');
    const publisher = await RawClient.connect(node.wsUrl, { token: await agentService() });
    publisher.send({
      type: 'agent_status_update',
      channel: 'agent:vault',
      payload: { agentId: 'a1', status: 'failed', message: `${SECRET}-dead` },
    });
    // Never acked: redelivered once, then dead-lettered.
    await waitFor(
      async () => {
        await repos.events.flush();
        const rows = await opened.db.prisma.$queryRawUnsafe<Array<{ n: number }>>(
          `SELECT count(*)::int AS n FROM "ApiXDeadLetter" WHERE channel = 'acme/agent:vault'`,
        );
        return rows[0]!.n > 0;
      },
      5000,
      'the dead letter',
    );
    const rows = await opened.db.prisma.$queryRawUnsafe<Array<{ payload: string }>>(
      `SELECT payload::text AS payload FROM "ApiXDeadLetter" WHERE channel = 'acme/agent:vault'`,
    );
    assert.ok(!rows[0]!.payload.includes(SECRET));
    assert.ok(rows[0]!.payload.includes('sealed'));
    assert.equal(
      (
        openRecordPayload(
          new AtRestCipher(keyring),
          'acme/agent:vault',
          '0-0',
          JSON.parse(rows[0]!.payload),
        ) as {
          message: string;
        }
      ).message,
      `${SECRET}-dead`,
    );
    sub.ws.close();
    publisher.ws.close();
  });
});
