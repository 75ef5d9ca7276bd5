/**
 * The SDK's HTTP streaming and SSE transports and the fallback between transports, against a real
 * gateway node: each carries the feed; a WebSocket that cannot open falls back to HTTP streaming; one
 * cut three times in a row moves on and stays; the events arrive once and in order across the switch.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { ApiXNode } from '../../../src/node.ts';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { ApiXClient, CUTS_BEFORE_FALLBACK, type WebSocketConstructor } from '../src/index.ts';
import { eventually, nextEmit } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function node(): Promise<{ node: ApiXNode; url: string }> {
  const n = await startNode({ sessionTtlMs: 30_000 });
  cleanup.push(() => n.close());
  const { port } = n.server.address() as AddressInfo;
  return { node: n, url: `ws://127.0.0.1:${port}` };
}

function client(url: string, options: Partial<ConstructorParameters<typeof ApiXClient>[0]> = {}): ApiXClient {
  const c = new ApiXClient({
    url,
    tokenProvider: () => token(),
    clientType: 'WEB_APP',
    WebSocket,
    reconnect: { baseMs: 20, maxMs: 100, factor: 2 },
    heartbeat: { intervalMs: 300, timeoutMs: 3000 },
    ...options,
  });
  cleanup.push(() => c.close());
  return c;
}

/** A WebSocket whose upgrade always fails, as behind a proxy that refuses `Upgrade`. */
const RefusedWebSocket = class {
  readyState = 0;
  protocol = '';
  onopen: (() => void) | null = null;
  onmessage: (() => void) | null = null;
  onclose: ((e: { code: number; reason: string }) => void) | null = null;
  onerror: (() => void) | null = null;
  constructor() {
    setTimeout(() => {
      this.readyState = 3;
      this.onerror?.();
      this.onclose?.({ code: 1006, reason: '' });
    }, 5);
  }
  send(): void {}
  close(): void {}
} as unknown as WebSocketConstructor;

async function feed(c: ApiXClient, channel: string): Promise<string[]> {
  const seen: string[] = [];
  const sub = c.subscribe(channel);
  sub.on('*', (e) => void seen.push(e.id));
  await sub.ready;
  return seen;
}

describe('SDK transports', () => {
  for (const name of ['http-stream', 'sse'] as const) {
    it(`carries the feed over ${name}: subscribe, publish, receive once, heartbeats`, async () => {
      const { url } = await node();
      const alice = client(url, { transports: [name] });
      const bob = client(url, {
        tokenProvider: () => token({ sub: 'bob', roles: ['service'] }),
        transports: [name],
      });
      await alice.connect();
      await bob.connect();
      assert.equal(alice.transport, name);
      const seen = await feed(alice, 'agent:t1');
      const ids: string[] = [];
      for (let i = 0; i < 5; i++)
        ids.push(
          (await bob.publish('agent:t1', 'agent_status_update', { agentId: 't1', status: 'running' })).id,
        );
      await eventually(() => seen.length === 5);
      assert.deepEqual(seen, ids);
      await eventually(() => alice.rttMs !== undefined, 5000);
    });
  }

  it('falls back to HTTP streaming when the WebSocket upgrade fails, and keeps it', async () => {
    const { url } = await node();
    const alice = client(url, {
      WebSocket: RefusedWebSocket,
      transports: ['websocket', 'http-stream', 'sse'],
    });
    const bob = client(url, { tokenProvider: () => token({ sub: 'bob', roles: ['service'] }) });
    await alice.connect();
    assert.equal(alice.transport, 'http-stream');
    await bob.connect();
    const seen = await feed(alice, 'agent:fb');
    const r = await bob.publish('agent:fb', 'agent_status_update', { agentId: 'fb', status: 'running' });
    await eventually(() => seen.length === 1);
    assert.deepEqual(seen, [r.id]);
  });

  it(`leaves a WebSocket cut ${CUTS_BEFORE_FALLBACK} times in a row; the events come once and in order`, async () => {
    const { node: n, url } = await node();
    const alice = client(url, { transports: ['websocket', 'http-stream', 'sse'] });
    const bob = client(url, { tokenProvider: () => token({ sub: 'bob', roles: ['service'] }) });
    await alice.connect();
    await bob.connect();
    assert.equal(alice.transport, 'websocket');
    const seen = await feed(alice, 'agent:cut');
    const ids: string[] = [];
    const publish = async () =>
      ids.push(
        (await bob.publish('agent:cut', 'agent_status_update', { agentId: 'cut', status: 'running' })).id,
      );
    for (let cut = 0; cut < CUTS_BEFORE_FALLBACK; cut++) {
      await publish();
      await eventually(() => seen.length === ids.length, 5000);
      const back = nextEmit(alice, 'connection.established', undefined, 10_000);
      // Alice's connection dropped without a close frame (the server's side of the socket destroyed).
      for (const conn of n.gateway.connections.values())
        if (conn.principal?.userId === 'alice') conn.terminate();
      await publish();
      await back;
    }
    assert.equal(alice.transport, 'http-stream');
    await publish();
    await eventually(() => seen.length === ids.length, 5000);
    assert.deepEqual(seen, ids, 'each event once, in publish order');
  });
});
