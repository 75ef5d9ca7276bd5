/**
 * Streams on one node (memory engines), through raw WebSocket clients (docs/protocol.md §14): live
 * followers, late joiners, session resume mid-stream, the compacted event in history, cancellation, the
 * publisher resuming its stream, limits and the idle timeout.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ApiXNode } from '../../../src/node.ts';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { readStreams } from '../../support/stream-reader.ts';
import type { StreamView } from '../../support/stream-reader.ts';
import { SteppedClock } from '../../support/clock.ts';
import { waitFor } from '../../support/wait.ts';

const CH = 'agent:a1';

async function service(url: string): Promise<RawClient> {
  return RawClient.connect(url, { token: await token({ sub: 'agent-svc', roles: ['service'] }) });
}

/** Sends a stream frame with a correlation id and waits for its reply. */
async function request(c: RawClient, type: string, payload: object, channel = CH): Promise<Frame> {
  const correlation_id = `c-${Math.random().toString(36).slice(2)}`;
  c.send({ type, channel, payload, metadata: { correlation_id } });
  return c.next((f) => f.metadata?.correlation_id === correlation_id, 10_000);
}

function appendAll(c: RawClient, streamId: string, pieces: readonly string[], channel = CH): void {
  for (const text of pieces) c.send({ type: 'stream.append', channel, payload: { streamId, text } });
}

const tokens = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `t${from + i} `);

async function waitView(c: RawClient, streamId: string, pred: (v: StreamView) => boolean) {
  await waitFor(
    () => {
      const v = readStreams(c.frames, CH).get(streamId);
      return v !== undefined && pred(v);
    },
    15_000,
    `the view of ${streamId}`,
  );
  return readStreams(c.frames, CH).get(streamId)!;
}

describe('streams (memory)', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({
      streams: { maxBytes: 4096, maxOpenPerConnection: 2, idleTimeoutMs: 60_000, flushMs: 5 },
    });
  });
  after(async () => {
    await node.close();
  });

  test('a follower, a late joiner and a history reader see the same text once, with no gap', async () => {
    const pub = await service(node.wsUrl);
    const early = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    const started = await request(pub, 'stream.start', {
      streamId: 'answer-1',
      eventType: 'agent_message',
      data: { agentId: 'a1' },
    });
    assert.equal(started.type, 'message.sent');
    assert.equal(started.payload.seq, 0);
    const first = tokens(50);
    appendAll(pub, 'answer-1', first);
    await waitView(early, 'answer-1', (v) => v.text === first.join(''));
    const late = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    // HTTP history: no event yet, the open stream as a snapshot.
    const open = await fetch(`${node.httpUrl}/v1/channels/${CH}/history`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    const openBody = (await open.json()) as { events: unknown[]; streams?: Frame[] };
    assert.equal(openBody.events.length, 0);
    assert.equal(openBody.streams?.[0]?.type, 'stream.snapshot');
    assert.equal(openBody.streams?.[0]?.payload.text, first.join(''));
    const rest = tokens(50, 50);
    appendAll(pub, 'answer-1', rest);
    const ended = await request(pub, 'stream.end', {
      streamId: 'answer-1',
      status: 'complete',
      data: { tokens: 100 },
    });
    assert.equal(ended.type, 'message.sent', JSON.stringify(ended.payload));
    assert.equal(ended.payload.seq, 100);
    const full = [...first, ...rest].join('');
    for (const c of [early, late]) {
      const v = await waitView(c, 'answer-1', (x) => x.status === 'complete');
      assert.equal(v.text, full);
      assert.equal(v.endId, ended.payload.id);
    }
    const lateView = readStreams(late.frames, CH).get('answer-1')!;
    assert.equal(lateView.via, 'snapshot', 'the late joiner starts from a snapshot');
    // History: ONE compacted event, {...data, streamId, text, seq, status}.
    const reader = await RawClient.connect(node.wsUrl);
    await reader.subscribe({ channels: [CH], replay: { last: 10 } });
    const v = await waitView(reader, 'answer-1', (x) => x.status === 'complete');
    assert.equal(v.via, 'compacted');
    const events = reader.events(CH);
    assert.equal(events.length, 1);
    assert.deepEqual(events[0]!.payload, {
      agentId: 'a1',
      tokens: 100,
      streamId: 'answer-1',
      text: full,
      seq: 100,
      status: 'complete',
    });
    assert.equal(events[0]!.type, 'agent_message');
    assert.equal(events[0]!.id, ended.payload.id);
    const closed = await fetch(`${node.httpUrl}/v1/channels/${CH}/history`, {
      headers: { authorization: `Bearer ${await token()}` },
    });
    const closedBody = (await closed.json()) as { events: Frame[]; streams?: Frame[] };
    assert.equal(closedBody.streams, undefined, 'no open stream left');
    assert.equal(closedBody.events.at(-1)?.payload.text, full);
    for (const c of [pub, early, late, reader]) c.close();
  });

  test('a session resumed mid-stream gets a snapshot, then the rest; the publisher resumes its stream', async () => {
    const pub = await service(node.wsUrl);
    const sessionId = `s-resume-${Date.now()}`;
    const sub = await RawClient.connect(node.wsUrl, { sessionId, subscriptions: [CH] });
    await request(pub, 'stream.start', { streamId: 'answer-2', eventType: 'agent_message' });
    appendAll(pub, 'answer-2', tokens(20));
    await waitView(sub, 'answer-2', (v) => v.text === tokens(20).join(''));
    sub.terminate();
    appendAll(pub, 'answer-2', tokens(20, 20));
    // The publisher drops too, and goes on from another connection: the seq tells it where.
    await waitFor(
      async () => {
        const s = await node.engines.streamStore!.get('acme/agent:a1', 'answer-2');
        return s?.seq === 40;
      },
      15_000,
      'the appends stored',
    );
    pub.terminate();
    const pub2 = await service(node.wsUrl);
    const again = await request(pub2, 'stream.start', { streamId: 'answer-2', eventType: 'agent_message' });
    assert.equal(again.type, 'message.sent', JSON.stringify(again.payload));
    assert.equal(again.payload.seq, 40);
    assert.equal(
      again.payload.id,
      readStreams(sub.frames, CH).size > 0
        ? sub.frames.find((f) => f.type === 'stream.start')!.id
        : again.payload.id,
    );
    const back = await RawClient.connect(node.wsUrl, { sessionId, subscriptions: [CH] });
    appendAll(pub2, 'answer-2', tokens(20, 40));
    await request(pub2, 'stream.end', { streamId: 'answer-2', status: 'complete' });
    const v = await waitView(back, 'answer-2', (x) => x.status === 'complete');
    assert.equal(v.via, 'snapshot');
    assert.equal(v.text, tokens(60).join(''));
    assert.equal(v.seq, 60);
    for (const c of [pub2, back]) c.close();
  });

  test('since: an open stream comes as a snapshot after the events, an ended one as its compacted event', async () => {
    const ch = 'agent:since1';
    const pub = await service(node.wsUrl);
    const before = await pub.publish(ch, 'agent_status_update', { agentId: 'a1', status: 'running' });
    await request(pub, 'stream.start', { streamId: 'since-1', eventType: 'agent_message' }, ch);
    appendAll(pub, 'since-1', ['one ', 'two '], ch);
    const after = await pub.publish(ch, 'agent_status_update', { agentId: 'a1', status: 'idle' });
    const open = await RawClient.connect(node.wsUrl);
    await open.subscribe({ channels: [ch], since: { [ch]: before.payload.id } });
    const snap = await open.nextOfType('stream.snapshot', 10_000);
    assert.equal(snap.payload.text, 'one two ');
    assert.deepEqual(
      open
        .events(ch)
        .filter((f) => !f.type.startsWith('stream.'))
        .map((f) => f.id),
      [after.payload.id],
      'the event after `since`, then the snapshot',
    );
    const ended = await request(pub, 'stream.end', { streamId: 'since-1', status: 'complete' }, ch);
    const late = await RawClient.connect(node.wsUrl);
    await late.subscribe({ channels: [ch], since: { [ch]: before.payload.id } });
    const events = await late.waitForEvents(2, ch, 10_000);
    assert.deepEqual(
      events.map((f) => f.id),
      [after.payload.id, ended.payload.id],
    );
    assert.equal(events[1]!.payload.text, 'one two ');
    assert.ok(!late.frames.some((f) => f.type === 'stream.snapshot'), 'no snapshot of an ended stream');
    for (const c of [pub, open, late]) c.close();
  });

  test('limits and bad stream frames are refused with registry codes', async () => {
    const pub = await service(node.wsUrl);
    const member = await RawClient.connect(node.wsUrl);
    // Over HTTP, a publish of a stream type is refused: those types are reserved.
    const http = await fetch(`${node.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: { authorization: 'Bearer apix_static_acmekey', 'content-type': 'application/json' },
      body: JSON.stringify({ channel: 'room:r1', type: 'stream.end', payload: { streamId: 'x' } }),
    });
    assert.equal(http.status, 400);
    assert.match(await http.text(), /reserved/);
    const reserved = await pub.publish(CH, 'stream.snapshot', {});
    assert.equal(reserved.payload.code, 'BAD_REQUEST');
    const unknown = await request(pub, 'stream.end', { streamId: 'nope', status: 'complete' });
    assert.equal(unknown.payload.code, 'STREAM_NOT_OPEN');
    const badId = await request(pub, 'stream.start', { streamId: 'has space', eventType: 'agent_message' });
    assert.equal(badId.payload.code, 'BAD_REQUEST');
    assert.equal(
      (await request(pub, 'stream.start', { streamId: 'l1', eventType: 'x' })).type,
      'message.sent',
    );
    assert.equal(
      (await request(pub, 'stream.start', { streamId: 'l2', eventType: 'x' })).type,
      'message.sent',
    );
    const third = await request(pub, 'stream.start', { streamId: 'l3', eventType: 'x' });
    assert.equal(third.payload.code, 'STREAM_LIMIT');
    pub.send({ type: 'stream.append', channel: CH, payload: { streamId: 'l1', text: 'x'.repeat(4000) } });
    pub.send({ type: 'stream.append', channel: CH, payload: { streamId: 'l1', text: 'y'.repeat(200) } });
    const tooLarge = await pub.next((f) => f.type === 'message.failed', 10_000);
    assert.equal(tooLarge.payload.code, 'STREAM_TOO_LARGE');
    assert.equal(tooLarge.payload.id, 'l1');
    const denied = await request(member, 'stream.start', { streamId: 'm1', eventType: 'x' });
    assert.equal(denied.payload.code, 'FORBIDDEN');
    const ended = await request(pub, 'stream.end', { streamId: 'l1', status: 'complete' });
    assert.equal(ended.payload.seq, 1, 'the refused append took no seq');
    const reused = await request(pub, 'stream.start', { streamId: 'l1', eventType: 'x' });
    assert.equal(reused.payload.code, 'STREAM_NOT_OPEN');
    pub.close();
    member.close();
  });

  test('stream.cancel from a subscriber allowed to publish reaches the publisher', async () => {
    const pub = await service(node.wsUrl);
    const admin = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'ops', roles: ['admin'] }),
      subscriptions: [CH],
    });
    const viewer = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    await request(pub, 'stream.start', { streamId: 'answer-3', eventType: 'agent_message' });
    const refused = await request(viewer, 'stream.cancel', { streamId: 'answer-3' });
    assert.equal(refused.payload.code, 'FORBIDDEN');
    admin.send({ type: 'stream.cancel', channel: CH, payload: { streamId: 'answer-3', reason: 'stop' } });
    const cancel = await pub.nextOfType('stream.cancel', 10_000);
    assert.deepEqual(cancel.payload, { channel: CH, streamId: 'answer-3', reason: 'stop', by: 'ops' });
    await request(pub, 'stream.end', { streamId: 'answer-3', status: 'cancelled' });
    const v = await waitView(viewer, 'answer-3', (x) => x.status !== 'streaming');
    assert.equal(v.status, 'cancelled');
    for (const c of [pub, admin, viewer]) c.close();
  });
});

describe('streams (memory): idle timeout', () => {
  let node: ApiXNode;
  const clock = new SteppedClock();
  before(async () => {
    node = await startNode(
      { streams: { maxBytes: 4096, maxOpenPerConnection: 5, idleTimeoutMs: 1000, flushMs: 0 } },
      { clock },
    );
  });
  after(async () => {
    await node.close();
  });

  test('a stream with no append for the idle timeout is ended with status error', async () => {
    const pub = await service(node.wsUrl);
    const sub = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    await request(pub, 'stream.start', { streamId: 'idle-1', eventType: 'agent_message' });
    appendAll(pub, 'idle-1', ['a', 'b']);
    await waitView(sub, 'idle-1', (v) => v.text === 'ab');
    clock.advance(1500);
    const v = await waitView(sub, 'idle-1', (x) => x.status !== 'streaming');
    assert.equal(v.status, 'error');
    assert.equal(v.text, 'ab');
    const failed = await pub.next((f) => f.type === 'message.failed', 10_000);
    assert.equal(failed.payload.code, 'STREAM_IDLE_TIMEOUT');
    pub.close();
    sub.close();
  });
});

describe('streams (memory): a slow reader', () => {
  let node: ApiXNode;
  before(async () => {
    const base = config({});
    node = await startNode({
      streams: { maxBytes: 16 * 1024 * 1024, maxOpenPerConnection: 5, idleTimeoutMs: 60_000, flushMs: 0 },
      qos: { ...base.qos, degradeBufferedBytes: 64 * 1024 },
      maxBufferedBytes: 256 * 1024 * 1024,
      rateLimits: { ...base.rateLimits, connection: { perSec: 100_000, burst: 100_000 } },
    });
  });
  after(async () => {
    await node.close();
  });

  test('gets what it missed merged into fewer appends, nothing dropped or cut; a fast one gets each', async (t) => {
    const t0 = Date.now();
    const pub = await service(node.wsUrl);
    const fast = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    const slow = await RawClient.connect(node.wsUrl, { subscriptions: [CH] });
    await request(pub, 'stream.start', { streamId: 'slow-1', eventType: 'agent_message' });
    await waitFor(() => slow.frames.some((f) => f.type === 'stream.start'), 10_000, 'the start');
    // The slow reader stops reading: its socket buffers fill, then the server's send buffer.
    (slow.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    // Random text: the frames must not deflate to nothing (permessage-deflate), or no buffer fills.
    const N = 400;
    const pieces = Array.from({ length: N }, () => randomBytes(12 * 1024).toString('base64'));
    for (let i = 0; i < N; i++) {
      pub.send({ type: 'stream.append', channel: CH, payload: { streamId: 'slow-1', text: pieces[i] } });
      if (i % 20 === 19) await new Promise((r) => setTimeout(r, 5));
    }
    t.diagnostic(`sent ${Date.now() - t0}`);
    await waitFor(() => fast.frames.length >= N + 3, 30_000, 'the fast reader');
    t.diagnostic(`fast ${Date.now() - t0}`);
    await waitView(fast, 'slow-1', (v) => v.seq === N);
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const v = await waitView(slow, 'slow-1', (x) => x.seq === N);
    t.diagnostic(`slow ${Date.now() - t0}`);
    assert.equal(v.text, pieces.join(''));
    assert.equal(v.seq, N);
    const fastView = readStreams(fast.frames, CH).get('slow-1')!;
    assert.equal(fastView.appends, N, 'the fast reader got every append');
    assert.ok(v.appends < N, `the slow reader got ${v.appends} merged appends for ${N}`);
    await request(pub, 'stream.end', { streamId: 'slow-1', status: 'complete' });
    await waitView(slow, 'slow-1', (x) => x.status === 'complete');
    for (const c of [pub, fast, slow]) c.close();
  });
});
