/**
 * The SDK with `encoding: 'msgpack'` against a real gateway node: it negotiates `apix.v1.msgpack`,
 * publishes a `Uint8Array` payload value as bytes, and receives it as bytes; a JSON client on the same
 * channel gets the value's JSON form; resume after a dropped connection works the same.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { startTcpProxy } from '../../../tests/support/tcp-proxy.ts';
import { ApiXClient, type ApiXEvent } from '../src/index.ts';
import { eventually, nextEmit } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

const BYTES = Uint8Array.from([0, 7, 128, 255]);

async function nodeUrl(): Promise<string> {
  const n = await startNode();
  cleanup.push(() => n.close());
  return `ws://127.0.0.1:${(n.server.address() as AddressInfo).port}`;
}

/** Records the subprotocol each socket of the client selected. */
function recordingWebSocket(selected: string[]): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols);
      this.once('open', () => selected.push(this.protocol));
    }
  } as typeof WebSocket;
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

describe('SDK with encoding msgpack against the real gateway', () => {
  it('negotiates MessagePack, sends and receives binary payload values as bytes', async () => {
    const url = await nodeUrl();
    const selected: string[] = [];
    const alice = client(url, { encoding: 'msgpack', WebSocket: recordingWebSocket(selected) });
    const bob = client(url, {
      encoding: 'msgpack',
      tokenProvider: () => token({ sub: 'bob', roles: ['service'] }),
    });
    const carol = client(url); // JSON
    await Promise.all([alice.connect(), bob.connect(), carol.connect()]);
    assert.deepEqual(selected, ['apix.v1.msgpack']);
    const seen: ApiXEvent[] = [];
    const seenJson: ApiXEvent[] = [];
    const sub = alice.subscribe('agent:bin');
    sub.on('*', (e) => void seen.push(e));
    const subJson = carol.subscribe('agent:bin');
    subJson.on('*', (e) => void seenJson.push(e));
    await Promise.all([sub.ready, subJson.ready]);
    const r = await bob.publish('agent:bin', 'blob_ready', { name: 'b', data: BYTES } as never);
    assert.equal(r.status, 'sent');
    await eventually(() => seen.length === 1 && seenJson.length === 1);
    const payload = seen[0]!.payload as { name: string; data: unknown };
    assert.equal(seen[0]!.id, r.id);
    assert.equal(payload.name, 'b');
    assert.ok(payload.data instanceof Uint8Array, 'bytes arrive as bytes');
    assert.deepEqual([...payload.data], [...BYTES]);
    assert.deepEqual((seenJson[0]!.payload as { data: unknown }).data, {
      $binary: Buffer.from(BYTES).toString('base64'),
    });
  });

  it('resumes after a dropped connection over MessagePack, once and in order', async () => {
    const url = await nodeUrl();
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port));
    cleanup.push(() => proxy.close());
    const alice = client(`ws://127.0.0.1:${proxy.port}`, { encoding: 'msgpack' });
    const bob = client(url, { tokenProvider: () => token({ sub: 'bob', roles: ['service'] }) });
    await Promise.all([alice.connect(), bob.connect()]);
    const seen: string[] = [];
    const sub = alice.subscribe('agent:a1');
    sub.on('*', (e) => void seen.push(e.id));
    await sub.ready;
    const publish = async () =>
      (await bob.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'waiting' })).id;
    const ids = [await publish()];
    await eventually(() => seen.length === 1);
    const away = nextEmit(alice, 'connection.disconnected');
    proxy.cut();
    await away;
    for (let i = 0; i < 3; i++) ids.push(await publish());
    const back = nextEmit(alice, 'connection.established', undefined, 5000);
    proxy.restore();
    assert.equal((await back).resumed, true);
    await eventually(() => seen.length === 4, 5000);
    assert.deepEqual(seen, ids);
  });
});
