/**
 * A reloaded page that resumes its session (sessionId kept in localStorage, as docs/sdk.md suggests) is
 * still caught up (issue 13 item 3): the new page has no position, so the SDK asks, in `connect.resume`,
 * for the replay its subscription wants (`replay: {last}`), and the server serves it instead of
 * continuing where the previous page stopped. With a position (`since` kept by the application), it
 * continues after it. Against a real gateway node (memory engines).
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { startTcpProxy } from '../../../tests/support/tcp-proxy.ts';
import { ApiXClient } from '../src/index.ts';
import type { ApiXClientOptions } from '../src/index.ts';
import { eventually, nextEmit } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

function client(url: string, options: Partial<ApiXClientOptions> = {}): ApiXClient {
  const c = new ApiXClient({
    url,
    tokenProvider: () => token(),
    clientType: 'WEB_APP',
    WebSocket,
    reconnect: { baseMs: 20, maxMs: 100, factor: 2 },
    heartbeat: false,
    ...options,
  });
  cleanup.push(() => c.close());
  return c;
}

/** A page that shows the channel's events; `reload` loses it the way a reload does (the socket just goes). */
async function setup() {
  const node = await startNode();
  cleanup.push(() => node.close());
  const url = `ws://127.0.0.1:${(node.server.address() as AddressInfo).port}`;
  const proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port));
  cleanup.push(() => proxy.close());
  const service = client(url, { tokenProvider: () => token({ sub: 'agent', roles: ['admin'] }) });
  await service.connect();
  const publish = async (n: number) => {
    const ids: string[] = [];
    for (let i = 0; i < n; i++)
      ids.push(
        (await service.publish('agent:feed', 'agent_status_update', { agentId: 'a', status: 'running' })).id,
      );
    return ids;
  };
  return { url, proxy, publish };
}

/**
 * Page 1: subscribes with replay, sees the first `n` events, then goes as a reload takes it (its connection
 * cut through the proxy, the client closed). Resolves with the ids published so far.
 */
async function firstPageThenReload(
  proxy: { port: number; cut(): void },
  sessionId: string,
  publish: (n: number) => Promise<string[]>,
  n: number,
): Promise<string[]> {
  const page1 = client(`ws://127.0.0.1:${proxy.port}`, { sessionId });
  const shown1: string[] = [];
  page1.subscribe('agent:feed', { replay: { last: 50 } }).on('*', (e) => void shown1.push(e.id));
  await page1.connect();
  const ids = await publish(n);
  await eventually(() => shown1.length === n);
  const gone = nextEmit(page1, 'connection.disconnected');
  proxy.cut();
  await gone;
  await page1.close();
  return ids;
}

describe('SDK: a reloaded page resuming its stored session', () => {
  it('gets the replay it asked for (replay.last), each event once and in order, not a blank page', async () => {
    const { url, proxy, publish } = await setup();
    const sessionId = 'stored-in-local-storage';
    // Page 1, through the proxy so that the test can take it away as a reload does.
    const ids = await firstPageThenReload(proxy, sessionId, publish, 5);
    ids.push(...(await publish(2)));

    // Page 2: same stored sessionId, a fresh SDK with no position, the same subscription.
    const page2 = client(url, { sessionId });
    const shown2: string[] = [];
    const sub = page2.subscribe('agent:feed', { replay: { last: 50 } });
    sub.on('*', (e) => void shown2.push(e.id));
    const info = await page2.connect();
    assert.equal(info.resumed, true, 'the session was resumed');
    ids.push(...(await publish(1)));
    await eventually(() => shown2.length >= ids.length, 5000);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(shown2, ids, 'every event once, in order');
    assert.deepEqual(await sub.ready, { recovered: true });
  });

  it('with the position the application kept (since), continues after it', async () => {
    const { url, proxy, publish } = await setup();
    const sessionId = 'stored-2';
    const ids = await firstPageThenReload(proxy, sessionId, publish, 4);
    ids.push(...(await publish(2)));
    const page2 = client(url, { sessionId });
    const shown2: string[] = [];
    page2
      .subscribe('agent:feed', { since: ids[1]!, replay: { last: 50 } })
      .on('*', (e) => void shown2.push(e.id));
    assert.equal((await page2.connect()).resumed, true);
    await eventually(() => shown2.length >= 4, 5000);
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(shown2, ids.slice(2));
  });
});
