/**
 * Streams on three nodes sharing a Redis (docs/protocol.md §14): a late joiner on each node gets the same
 * snapshot, a session resumes mid-stream on another node, a subscriber on another node cancels, limits
 * are refused, and an idle stream whose publisher is gone is ended by a node that mirrors it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { RawClient, config, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { deletePrefix } from '../../support/redis-engines.ts';
import { readStreams } from '../../support/stream-reader.ts';
import type { StreamView } from '../../support/stream-reader.ts';
import { waitFor } from '../../support/wait.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';

const CH = 'agent:c1';
const tokens = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `w${from + i} `);

async function request(c: RawClient, type: string, payload: object, channel = CH): Promise<Frame> {
  const correlation_id = `c-${Math.random().toString(36).slice(2)}`;
  c.send({ type, channel, payload, metadata: { correlation_id } });
  return c.next((f) => f.metadata?.correlation_id === correlation_id, 15_000);
}

function appendAll(c: RawClient, streamId: string, pieces: readonly string[]): void {
  for (const text of pieces) c.send({ type: 'stream.append', channel: CH, payload: { streamId, text } });
}

async function waitView(c: RawClient, streamId: string, pred: (v: StreamView) => boolean) {
  await waitFor(
    () => {
      const v = readStreams(c.frames, CH).get(streamId);
      return v !== undefined && pred(v);
    },
    20_000,
    `the view of ${streamId}`,
  );
  return readStreams(c.frames, CH).get(streamId)!;
}

describe('streams on 3 Redis nodes', { skip: skipWithoutRedis(), timeout: 120_000 }, () => {
  let redis: FoundRedis;
  let prefix: string;
  const nodes: ApiXNode[] = [];
  before(async () => {
    redis = await findRedis();
    prefix = uniquePrefix();
    for (let i = 0; i < 3; i++) {
      const cfg = config({
        nodeId: `st${i}`,
        redisUrl: redis.url,
        redisPrefix: prefix,
        sessionTtlMs: 30_000,
        streams: { maxBytes: 4096, maxOpenPerConnection: 2, idleTimeoutMs: 2000, flushMs: 10 },
      });
      const engines = await createEngines(cfg, { nodeId: cfg.nodeId! });
      const node = createNode({ config: cfg, logger: createLogger('silent', `st${i}`), engines });
      await node.listen();
      nodes.push(node);
    }
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await deletePrefix(redis.url, prefix);
    await redis.release();
  });

  const service = async (i: number) =>
    RawClient.connect(nodes[i]!.wsUrl, { token: await token({ sub: 'agent-svc', roles: ['service'] }) });

  test('a late joiner on each node gets the same snapshot, then the rest live; one resumes on another node', async () => {
    const pub = await service(0);
    const followers = await Promise.all(
      nodes.map((n) => RawClient.connect(n.wsUrl, { subscriptions: [CH] })),
    );
    const sessionId = `s-move-${Date.now()}`;
    const mover = await RawClient.connect(nodes[1]!.wsUrl, { sessionId, subscriptions: [CH] });
    await request(pub, 'stream.start', { streamId: 'c-1', eventType: 'agent_message', data: { n: 1 } });
    appendAll(pub, 'c-1', tokens(30));
    const half = tokens(30).join('');
    for (const f of [...followers, mover]) await waitView(f, 'c-1', (v) => v.text === half);
    mover.terminate();
    const late = await Promise.all(nodes.map((n) => RawClient.connect(n.wsUrl, { subscriptions: [CH] })));
    const snaps = await Promise.all(late.map((c) => c.next((f) => f.type === 'stream.snapshot', 15_000)));
    for (const s of snaps)
      assert.deepEqual(s.payload, snaps[0]!.payload, 'every node serves the same snapshot');
    assert.equal(snaps[0]!.payload.text, half);
    assert.equal(snaps[0]!.payload.seq, 30);
    appendAll(pub, 'c-1', tokens(30, 30));
    const resumed = await RawClient.connect(nodes[2]!.wsUrl, { sessionId, subscriptions: [CH] });
    appendAll(pub, 'c-1', tokens(10, 60));
    const end = await request(pub, 'stream.end', { streamId: 'c-1', status: 'complete' });
    assert.equal(end.payload.seq, 70);
    const full = tokens(70).join('');
    for (const c of [...followers, ...late, resumed]) {
      const v = await waitView(c, 'c-1', (x) => x.status === 'complete');
      assert.equal(v.text, full);
      assert.equal(v.seq, 70);
      assert.equal(v.endId, end.payload.id);
    }
    for (const c of [pub, ...followers, ...late, resumed]) c.close();
  });

  test('stream.cancel from a subscriber on another node reaches the publisher', async () => {
    const pub = await service(0);
    const admin = await RawClient.connect(nodes[2]!.wsUrl, {
      token: await token({ sub: 'ops', roles: ['admin'] }),
      subscriptions: [CH],
    });
    await request(pub, 'stream.start', { streamId: 'c-2', eventType: 'agent_message' });
    appendAll(pub, 'c-2', ['a']);
    await waitView(admin, 'c-2', (v) => v.text === 'a');
    admin.send({ type: 'stream.cancel', channel: CH, payload: { streamId: 'c-2', reason: 'enough' } });
    const cancel = await pub.nextOfType('stream.cancel', 15_000);
    assert.deepEqual(cancel.payload, { channel: CH, streamId: 'c-2', reason: 'enough', by: 'ops' });
    await request(pub, 'stream.end', { streamId: 'c-2', status: 'cancelled' });
    assert.equal((await waitView(admin, 'c-2', (v) => v.status !== 'streaming')).status, 'cancelled');
    pub.close();
    admin.close();
  });

  test('limits are refused with registry codes on every node', async () => {
    const pub = await service(1);
    assert.equal(
      (await request(pub, 'stream.start', { streamId: 'c-3', eventType: 'x' })).type,
      'message.sent',
    );
    assert.equal(
      (await request(pub, 'stream.start', { streamId: 'c-4', eventType: 'x' })).type,
      'message.sent',
    );
    assert.equal(
      (await request(pub, 'stream.start', { streamId: 'c-5', eventType: 'x' })).payload.code,
      'STREAM_LIMIT',
    );
    appendAll(pub, 'c-3', ['x'.repeat(4097)]);
    const tooLarge = await pub.next((f) => f.type === 'message.failed', 15_000);
    assert.equal(tooLarge.payload.code, 'STREAM_TOO_LARGE');
    // Another user cannot take over the stream from another node.
    const other = await RawClient.connect(nodes[2]!.wsUrl, {
      token: await token({ sub: 'svc2', roles: ['service'] }),
    });
    assert.equal(
      (await request(other, 'stream.start', { streamId: 'c-3', eventType: 'x' })).payload.code,
      'STREAM_NOT_OPEN',
    );
    for (const id of ['c-3', 'c-4']) await request(pub, 'stream.end', { streamId: id, status: 'complete' });
    pub.close();
    other.close();
  });

  test('a stream whose publisher left is ended with status error by a node that mirrors it', async () => {
    const pub = await service(0);
    const sub = await RawClient.connect(nodes[1]!.wsUrl, { subscriptions: [CH] });
    await request(pub, 'stream.start', { streamId: 'c-6', eventType: 'agent_message' });
    appendAll(pub, 'c-6', ['left ']);
    await waitView(sub, 'c-6', (v) => v.text === 'left ');
    pub.terminate();
    const v = await waitView(sub, 'c-6', (x) => x.status !== 'streaming');
    assert.equal(v.status, 'error');
    assert.equal(v.text, 'left ');
    sub.close();
  });
});
