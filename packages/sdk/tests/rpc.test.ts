/**
 * The SDK's RPC against a real gateway node: `client.rpc` on one client, `service.handle` on another (a
 * service), errors with their codes, and the service registering again after its connection drops.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { startTcpProxy } from '../../../tests/support/tcp-proxy.ts';
import { ApiXClient, ApiXError, isApiXError } from '../src/index.ts';
import { nextEmit } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

async function gatewayUrl(): Promise<string> {
  const n = await startNode();
  cleanup.push(() => n.close());
  return `ws://127.0.0.1:${(n.server.address() as AddressInfo).port}`;
}

function client(url: string, sub: string, roles: string[]): ApiXClient {
  const c = new ApiXClient({
    url,
    tokenProvider: () => token({ sub, roles }),
    clientType: 'WEB_APP',
    WebSocket,
    reconnect: { baseMs: 20, maxMs: 100, factor: 2 },
  });
  cleanup.push(() => c.close());
  return c;
}

async function rejection(p: Promise<unknown>): Promise<ApiXError> {
  try {
    await p;
  } catch (err) {
    if (isApiXError(err)) return err;
    throw err;
  }
  assert.fail('expected a rejection');
}

/** Calls until the method is served (a registration is asynchronous), at most `tries` times. */
async function callServed(c: ApiXClient, method: string, payload: unknown, tries = 100): Promise<unknown> {
  for (let i = 0; ; i++) {
    try {
      return await c.rpc(method, payload);
    } catch (err) {
      if (!isApiXError(err) || err.code !== 'UNAVAILABLE' || i >= tries) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

describe('SDK RPC against the real gateway', () => {
  it('client.rpc is answered by service.handle; errors keep their codes', async () => {
    const url = await gatewayUrl();
    const service = client(url, 'svc', ['service']);
    await service.connect();
    service.handle('tool.approve', (payload, caller) => ({ ok: true, payload, by: caller.userId }));
    service.handle('tool.fail', () => {
      throw new ApiXError('CONFLICT', 'already decided');
    });
    service.handle('admin.only', () => 'yes', { roles: ['admin'] });
    const app = client(url, 'alice', ['member']);
    await app.connect();
    assert.deepEqual(await callServed(app, 'tool.approve', { id: 1 }), {
      ok: true,
      payload: { id: 1 },
      by: 'alice',
    });
    assert.equal((await rejection(app.rpc('tool.fail', {}))).code, 'CONFLICT');
    assert.equal((await rejection(app.rpc('admin.only', {}))).code, 'FORBIDDEN');
    assert.equal((await rejection(app.rpc('nobody.serves', {}))).code, 'UNAVAILABLE');
    service.handle('tool.never', () => new Promise(() => {}));
    await callServed(app, 'tool.approve', {});
    assert.equal((await rejection(app.rpc('tool.never', {}, { timeoutMs: 200 }))).code, 'TIMEOUT');
  });

  it('a service registers its methods again after it reconnects', async () => {
    const url = await gatewayUrl();
    const proxy = await startTcpProxy('127.0.0.1', Number(new URL(url).port));
    cleanup.push(() => proxy.close());
    const service = client(`ws://127.0.0.1:${proxy.port}`, 'svc', ['service']);
    await service.connect();
    service.handle('run.cancel', (p) => ({ cancelled: p }));
    const app = client(url, 'alice', ['member']);
    await app.connect();
    assert.deepEqual(await callServed(app, 'run.cancel', 'r1'), { cancelled: 'r1' });
    const away = nextEmit(service, 'connection.disconnected');
    proxy.cut();
    await away;
    // Gone with its connection (once the gateway saw it close): nobody serves the method.
    let code: string | undefined;
    for (let i = 0; i < 50 && code !== 'UNAVAILABLE'; i++)
      code = (await rejection(app.rpc('run.cancel', 'r2', { timeoutMs: 300 }))).code;
    assert.equal(code, 'UNAVAILABLE');
    const back = nextEmit(service, 'connection.established', undefined, 5000);
    proxy.restore();
    await back;
    assert.deepEqual(await callServed(app, 'run.cancel', 'r3'), { cancelled: 'r3' });
  });
});
