/**
 * SDK streams against a real gateway node (memory engines, port 0): the publisher handle, subscribers that
 * follow live, join late and drop-and-resume (through a TCP proxy), cancellation from a subscriber as the
 * publisher's AbortSignal, a publisher that loses its connection mid-stream and goes on, and the AG-UI
 * adaptor end to end. The fake-gateway tests (streams.test.ts) cover the edge cases one by one.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { EventSchemas } from '@ag-ui/core/schemas';
import { config, startNode, token } from '../../../tests/support/gateway.ts';
import { startTcpProxy } from '../../../tests/support/tcp-proxy.ts';
import { ApiXClient, StreamCancelledError, type AgentStream } from '../src/index.ts';
import { AgUiPublisher, agUiEvents, type AgUiEvent } from '../src/ag-ui.ts';
import { eventually } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function nodeUrl(): Promise<string> {
  const n = await startNode();
  cleanup.push(() => n.close());
  return `ws://127.0.0.1:${(n.server.address() as AddressInfo).port}`;
}

function client(url: string, sub = 'agent'): ApiXClient {
  const c = new ApiXClient({
    url,
    tokenProvider: () => token({ sub, roles: ['service'] }),
    clientType: 'INTERNAL_SERVICE',
    WebSocket,
    reconnect: { baseMs: 20, maxMs: 100, factor: 2 },
    heartbeat: false,
  });
  cleanup.push(() => c.close());
  return c;
}

const PIECES = Array.from({ length: 400 }, (_, i) => `p${i} `);
const FULL = PIECES.join('');

async function* paced(
  pieces: string[],
  everyMs: number,
  onIndex?: (i: number) => Promise<unknown> | void,
): AsyncGenerator<string> {
  for (let i = 0; i < pieces.length; i++) {
    await onIndex?.(i);
    if (i % 20 === 0) await new Promise((r) => setTimeout(r, everyMs));
    yield pieces[i] as string;
  }
}

/** Cuts every connection through the proxy (a network failure), and lets new ones through again. */
function drop(proxy: { cut(): void; restore(): void }): void {
  proxy.cut();
  setTimeout(() => proxy.restore(), 50);
}

/** A subscriber's ended streams, by streamId. */
function follow(c: ApiXClient, channel: string): Map<string, AgentStream> {
  const ended = new Map<string, AgentStream>();
  c.subscribeStreams(channel, { onEnd: (s) => void ended.set(s.streamId, s) });
  return ended;
}

describe('SDK streams against the real gateway', () => {
  it('live, late and dropped-and-resumed subscribers all end with the full text once', async () => {
    const url = await nodeUrl();
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port));
    cleanup.push(() => proxy.close());
    const agent = client(url);
    const live = client(url, 'live');
    const dropping = client(`ws://127.0.0.1:${proxy.port}`, 'dropping');
    await Promise.all([agent.connect(), live.connect(), dropping.connect()]);
    const liveEnded = follow(live, 'agent:a1');
    const droppingEnded = follow(dropping, 'agent:a1');
    await Promise.all([live.subscription('agent:a1')?.ready, dropping.subscription('agent:a1')?.ready]);
    let lateEnded: Map<string, AgentStream> | undefined;
    let late: ApiXClient | undefined;
    const stream = agent.stream('agent:a1', { eventType: 'agent_message', data: { agentId: 'a1' } });
    const ended = await stream.pipe(
      paced(PIECES, 5, (i) => {
        if (i === 150) drop(proxy);
        if (i === 200) {
          late = client(url, 'late');
          void late.connect();
          lateEnded = follow(late, 'agent:a1');
          // Joins mid-stream however slow the machine: the rest waits for its subscription.
          return late.subscription('agent:a1')?.ready;
        }
      }),
    );
    for (const [name, map] of [
      ['live', liveEnded],
      ['dropped and resumed', droppingEnded],
      ['late', lateEnded],
    ] as const) {
      await eventually(() => map?.get(stream.streamId) !== undefined, 60_000).catch((e: Error) => {
        throw new Error(`${name}: never saw the stream end (${e.message})`);
      });
      const s = map?.get(stream.streamId);
      assert.equal(s?.text, FULL, `${name}: the full text once`);
      assert.equal(s?.status, 'complete');
      assert.equal(s?.id, ended.id, `${name}: the compacted event's id`);
      assert.deepEqual(s?.data, { agentId: 'a1' });
    }
    assert.ok(late);
  });

  it("a subscriber's cancel fires the publisher's signal; pipe() ends the stream cancelled", async () => {
    const url = await nodeUrl();
    const agent = client(url);
    const viewer = client(url, 'viewer');
    await Promise.all([agent.connect(), viewer.connect()]);
    const viewerEnded = follow(viewer, 'agent:a1');
    await viewer.subscription('agent:a1')?.ready;
    const stream = agent.stream('agent:a1', { eventType: 'agent_message' });
    await stream.started;
    async function* endless(): AsyncGenerator<string> {
      for (let i = 0; ; i++) {
        await new Promise((r) => setTimeout(r, 5));
        yield `t${i} `;
      }
    }
    const piped = stream.pipe(endless());
    await eventually(() => stream.seq >= 5);
    const sent = viewer.cancelStream('agent:a1', stream.streamId, 'stop');
    assert.ok(sent);
    await piped;
    assert.ok(stream.signal.reason instanceof StreamCancelledError);
    assert.equal((stream.signal.reason as StreamCancelledError).by, 'viewer');
    await eventually(() => viewerEnded.get(stream.streamId)?.status === 'cancelled', 10_000);
  });

  it('a publisher that loses its connection mid-stream goes on; nothing lost or doubled', async () => {
    const url = await nodeUrl();
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port));
    cleanup.push(() => proxy.close());
    const agent = client(`ws://127.0.0.1:${proxy.port}`);
    const viewer = client(url, 'viewer');
    await Promise.all([agent.connect(), viewer.connect()]);
    const viewerEnded = follow(viewer, 'agent:a1');
    await viewer.subscription('agent:a1')?.ready;
    const stream = agent.stream('agent:a1', { eventType: 'agent_message' });
    const ended = await stream.pipe(
      paced(PIECES, 5, (i) => {
        if (i === 100 || i === 300) drop(proxy);
      }),
    );
    await eventually(() => viewerEnded.get(stream.streamId) !== undefined, 15_000);
    assert.equal(viewerEnded.get(stream.streamId)?.text, FULL);
    assert.equal(viewerEnded.get(stream.streamId)?.seq, ended.seq);
  });

  it("the client's append rate keeps a fast stream under the gateway's frame rate: nothing dropped", async () => {
    const base = config();
    const n = await startNode({
      rateLimits: {
        ...base.rateLimits,
        connection: { perSec: 50, burst: 50 },
        abuse: { ...base.rateLimits.abuse, refusals: 1_000_000 },
      },
    });
    cleanup.push(() => n.close());
    const url = `ws://127.0.0.1:${(n.server.address() as AddressInfo).port}`;
    const agent = new ApiXClient({
      url,
      tokenProvider: () => token({ sub: 'agent', roles: ['service'] }),
      clientType: 'INTERNAL_SERVICE',
      WebSocket,
      heartbeat: false,
      streamAppendsPerSec: 20,
    });
    cleanup.push(() => agent.close());
    const viewer = client(url, 'viewer');
    await Promise.all([agent.connect(), viewer.connect()]);
    const viewerEnded = follow(viewer, 'agent:a1');
    await viewer.subscription('agent:a1')?.ready;
    let refused = 0;
    agent.on('connection.error', (e) => void (e.code === 'RATE_LIMITED' && refused++));
    const stream = agent.stream('agent:a1', { eventType: 'agent_message' });
    // 400 pieces in about 0.4 s, 20x the gateway's frame rate: merged into at most ~20 frames a second.
    const ended = await stream.pipe(paced(PIECES, 20));
    await eventually(() => viewerEnded.get(stream.streamId) !== undefined, 15_000);
    assert.equal(viewerEnded.get(stream.streamId)?.text, FULL);
    assert.equal(refused, 0, 'no frame refused by the gateway');
    assert.ok(ended.seq < PIECES.length / 4, `${ended.seq} append frames for ${PIECES.length} pieces`);
  });

  it('AG-UI over a real node: live events round-trip, a late joiner gets ONE STATE_SNAPSHOT', async () => {
    const url = await nodeUrl();
    const agent = client(url);
    const viewer = client(url, 'viewer');
    await Promise.all([agent.connect(), viewer.connect()]);
    const live: AgUiEvent[] = [];
    agUiEvents(viewer, 'agent:a1', (e) => void live.push(e));
    await viewer.subscription('agent:a1')?.ready;
    const publisher = new AgUiPublisher(agent, 'agent:a1');
    const run: AgUiEvent[] = [
      { type: 'RUN_STARTED', threadId: 'th', runId: 'r1' },
      { type: 'STATE_SNAPSHOT', snapshot: { n: 0 } },
      { type: 'TEXT_MESSAGE_START', messageId: 'm1', role: 'assistant' },
      ...PIECES.slice(0, 50).map((delta) => ({ type: 'TEXT_MESSAGE_CONTENT', messageId: 'm1', delta })),
      { type: 'TEXT_MESSAGE_END', messageId: 'm1' },
      ...Array.from({ length: 20 }, (_, i) => ({
        type: 'STATE_DELTA',
        delta: [{ op: 'replace', path: '/n', value: i + 1 }],
      })),
    ];
    await publisher.pipe(run);
    // The run is still open (its state stream too): a late joiner now gets the snapshot of what was stored.
    await eventually(() => live.filter((e) => e.type === 'STATE_DELTA').length === 20, 10_000);
    const late = client(url, 'late');
    await late.connect();
    const seen: AgUiEvent[] = [];
    agUiEvents(late, 'agent:a1', (e) => void seen.push(e), { replay: { last: 50 } });
    await eventually(() => seen.some((e) => e.type === 'STATE_SNAPSHOT'), 10_000);
    for (const e of [...live, ...seen]) assert.ok(EventSchemas.safeParse(e).success, e.type);
    assert.deepEqual(
      seen.filter((e) => e.type.startsWith('STATE')),
      [{ type: 'STATE_SNAPSHOT', snapshot: { n: 20 } }],
    );
    assert.equal(seen.filter((e) => e.type === 'TEXT_MESSAGE_CONTENT').length, 1);
    const text = live
      .filter((e) => e.type === 'TEXT_MESSAGE_CONTENT')
      .map((e) => e.delta)
      .join('');
    assert.equal(text, PIECES.slice(0, 50).join(''));
  });
});
