/**
 * The SDK against a real gateway node (in-memory engines, port 0): connect, subscribe, publish between two
 * clients, reconnect with resume after a drop, token refresh. The fake-gateway tests cover the edge cases;
 * this one checks that both sides read docs/protocol.md the same way.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import type { ApiXNode } from '../../../src/node.ts';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { startTcpProxy } from '../../../tests/support/tcp-proxy.ts';
import { ApiXClient, type ApiXError, type ApiXEvent } from '../src/index.ts';
import { eventually, nextEmit } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function node(): Promise<{ node: ApiXNode; url: string }> {
  const n = await startNode();
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
    heartbeat: { intervalMs: 200, timeoutMs: 2000 },
    ...options,
  });
  cleanup.push(() => c.close());
  return c;
}

describe('SDK against the real gateway', () => {
  it('connects, subscribes, publishes with a typed payload, and receives the event once', async () => {
    const { url } = await node();
    const alice = client(url);
    const bob = client(url, { tokenProvider: () => token({ sub: 'bob', roles: ['service'] }) }); // a publishing service
    const established = await alice.connect();
    assert.equal(established.sessionId, alice.sessionId);
    await bob.connect();
    const seen: Array<ApiXEvent<'tool_call_start'>> = [];
    const sub = alice.subscribe('tool:t1');
    sub.on('tool_call_start', (e) => void seen.push(e));
    assert.deepEqual(await sub.ready, { recovered: true });
    const r = await bob.publish('tool:t1', 'tool_call_start', { toolCallId: 'c1', toolName: 'search' });
    assert.equal(r.status, 'sent');
    await eventually(() => seen.length === 1);
    assert.equal(seen[0]?.id, r.id);
    assert.equal(seen[0]?.payload.toolName, 'search');
    await eventually(() => alice.rttMs !== undefined);
  });

  it('rejects an invalid domain payload with message.failed BAD_REQUEST', async () => {
    const { url } = await node();
    const c = client(url);
    await c.connect();
    await assert.rejects(
      c.publish('tool:t1', 'tool_call_start', { toolCallId: 'c1' } as never),
      (e: ApiXError) => e.code === 'BAD_REQUEST',
    );
  });

  it('resumes after a dropped connection and delivers what was missed, once and in order', async () => {
    const { url } = await node();
    // Alice goes through a TCP proxy, so that the test can cut her network.
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port));
    cleanup.push(() => proxy.close());
    const alice = client(`ws://127.0.0.1:${proxy.port}`);
    const bob = client(url, { tokenProvider: () => token({ sub: 'bob', roles: ['service'] }) }); // a publishing service
    await alice.connect();
    await bob.connect();
    const seen: string[] = [];
    const sub = alice.subscribe('agent:a1');
    sub.on('*', (e) => void seen.push(e.id));
    await sub.ready;
    const ids = [
      (await bob.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'running' })).id,
    ];
    await eventually(() => seen.length === 1);
    const away = nextEmit(alice, 'connection.disconnected');
    proxy.cut();
    await away;
    for (let i = 0; i < 3; i++)
      ids.push(
        (await bob.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'waiting' })).id,
      );
    const back = nextEmit(alice, 'connection.established', undefined, 5000);
    proxy.restore();
    const info = await back;
    assert.equal(info.resumed, true);
    await eventually(() => seen.length === 4, 5000);
    assert.deepEqual(seen, ids);
  });

  it('refreshes a short-lived token in place', async () => {
    const { url } = await node();
    const c = client(url, { tokenProvider: () => token({ expiresIn: '3s' }) });
    await c.connect();
    const refreshed = await nextEmit(c, 'auth.refreshed', undefined, 5000);
    assert.ok(refreshed.expiresAt > Date.now());
    assert.equal(c.state, 'connected');
  });
});
