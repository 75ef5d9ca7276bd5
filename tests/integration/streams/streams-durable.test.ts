/**
 * Streams on an encrypted, durable channel (Redis engine, PGlite records): while the stream is open and
 * after it ended, Redis holds no plaintext of its text; subscribers (live, late joiner, history reader)
 * get the plaintext; the compacted event is the one ApiXEvent record of the stream, sealed. And an
 * acknowledged subscription gets `stream.end` with the compacted event's id, whose redelivery (no ack) is
 * the compacted event.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { createEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';
import { createRecordRepositories, type RecordRepositories } from '../../../src/store/records.ts';
import { AtRestCipher, openRecordPayload } from '../../../src/crypto/at-rest.ts';
import type { Keyring } from '../../../src/crypto/at-rest.ts';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { databaseTargets, type OpenedDatabase } from '../../support/databases.ts';
import { readStreams } from '../../support/stream-reader.ts';
import { waitFor } from '../../support/wait.ts';

const CH = 'agent:vault';
const SECRET = `SECRET${randomBytes(4).toString('hex')}`;
const keyring: Keyring = { keys: [{ version: 1, key: randomBytes(32) }], active: 1 };

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
    }
  } while (cursor !== '0');
  return out.join('\n');
}

async function request(c: RawClient, type: string, payload: object): Promise<Frame> {
  const correlation_id = `c-${Math.random().toString(36).slice(2)}`;
  c.send({ type, channel: CH, payload, metadata: { correlation_id } });
  return c.next((f) => f.metadata?.correlation_id === correlation_id, 15_000);
}

describe('streams on an encrypted, durable channel (Redis, records)', { skip: skipWithoutRedis() }, () => {
  let found: FoundRedis;
  let redis: Redis;
  let prefix: string;
  let opened: OpenedDatabase;
  let repos: RecordRepositories;
  let node: ApiXNode;

  before(async () => {
    found = await findRedis();
    prefix = uniquePrefix();
    redis = new Redis(found.url);
    opened = await databaseTargets.find((t) => t.kind === 'pglite')!.open();
    repos = createRecordRepositories(opened.db.prisma, { flushIntervalMs: 60_000 });
    const cfg = config({ redisUrl: found.url, redisPrefix: prefix, encryption: keyring, ackTimeoutMs: 300 });
    const channels = new MemoryChannelRegistry();
    await channels.set('acme', CH, { encrypted: true, durable: true });
    const engines = await createEngines(cfg, { nodeId: 'enc-st' });
    node = await startNode(cfg, { engines, channels, durable: (e) => void repos.events.append(e) });
  });
  after(async () => {
    await node?.close();
    await repos?.close();
    await opened?.cleanup();
    await deletePrefix(found.url, prefix);
    redis?.disconnect();
    await found?.release();
  });

  test('text sealed at rest, plaintext to readers, one sealed record; acked: stream.end, then the compacted event redelivered', async () => {
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'svc', roles: ['service'] }),
    });
    const acked = await RawClient.connect(node.wsUrl);
    acked.send({ type: 'subscribe', payload: { channels: [CH], acknowledgment: true } });
    await acked.nextOfType('subscription.added');
    await request(pub, 'stream.start', {
      streamId: 'v1',
      eventType: 'agent_message',
      data: { agentId: 'a1' },
    });
    const pieces = [`${SECRET.slice(0, 5)}`, `${SECRET.slice(5)} `, 'is ', 'here'];
    for (const text of pieces)
      pub.send({ type: 'stream.append', channel: CH, payload: { streamId: 'v1', text } });
    await waitFor(() => readStreams(acked.frames, CH).get('v1')?.seq === 4, 15_000, 'the appends');
    const late = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    const snap = await late.nextOfType('stream.snapshot', 15_000);
    assert.equal(snap.payload.text, pieces.join(''));
    let raw = await dumpPrefix(redis, prefix);
    assert.ok(!raw.includes(SECRET), 'no plaintext in Redis while the stream is open');
    assert.ok(raw.includes('"ct":'), 'the text is stored as sealed boxes');
    const end = await request(pub, 'stream.end', { streamId: 'v1', status: 'complete' });
    assert.equal(end.type, 'message.sent');
    const id = end.payload.id as string;
    const endFrame = await acked.next((f) => f.type === 'stream.end', 15_000);
    assert.equal(endFrame.id, id, 'stream.end carries the compacted event id');
    // Not acked: redelivered as the compacted event; acked once, it stops.
    const redelivered = await acked.next((f) => f.id === id && f.type === 'agent_message', 15_000);
    assert.equal(redelivered.payload.text, pieces.join(''));
    assert.ok((redelivered.metadata?.retryCount ?? 0) >= 1);
    acked.send({ type: 'ack', payload: { channel: CH, ids: [id] } });
    raw = await dumpPrefix(redis, prefix);
    assert.ok(!raw.includes(SECRET), 'no plaintext in Redis after the end');
    // History: the compacted event, in plaintext to a reader.
    const reader = await RawClient.connect(node.wsUrl);
    await reader.subscribe({ channels: [CH], replay: { last: 5 } });
    const [ev] = await reader.waitForEvents(1, CH, 15_000);
    assert.equal(ev!.payload.text, pieces.join(''));
    // The ApiXEvent record: one, sealed.
    await repos.events.flush();
    const rows = await opened.db.prisma.$queryRawUnsafe<Array<{ payload: string }>>(
      `SELECT payload::text AS payload FROM "ApiXEvent" WHERE channel = 'acme/${CH}'`,
    );
    assert.equal(rows.length, 1);
    assert.ok(!rows[0]!.payload.includes(SECRET));
    const opened1 = openRecordPayload(
      new AtRestCipher(keyring),
      `acme/${CH}`,
      id,
      JSON.parse(rows[0]!.payload),
    );
    assert.deepEqual(opened1, {
      agentId: 'a1',
      streamId: 'v1',
      text: pieces.join(''),
      seq: 4,
      status: 'complete',
    });
    for (const c of [pub, acked, late, reader]) c.close();
  });
});
