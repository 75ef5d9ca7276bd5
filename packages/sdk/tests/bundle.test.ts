/**
 * The browser bundle: built the way `npm run build` builds it, it must import nothing (no Zod, no Node
 * modules), use no Node globals, and work when loaded as is. (esbuild comes with tsx; no browser is
 * installed here, so a Playwright run against the real gateway is left for later.)
 */
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import { WebSocket } from 'ws';
import type * as Sdk from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';

const entry = fileURLToPath(new URL('../src/index.ts', import.meta.url));

async function bundle(): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    // @msgpack/msgpack has no `exports` map: a neutral build needs its `module` field.
    mainFields: ['module', 'main'],
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  return result.outputFiles[0]?.text ?? '';
}

describe('browser bundle', () => {
  let code = '';
  let gateway: FakeGateway;
  before(async () => {
    code = await bundle();
    gateway = await FakeGateway.start();
  });
  after(() => gateway.stop());

  it('imports nothing and carries no Zod and no Node globals', () => {
    assert.doesNotMatch(code, /^\s*import\s/m);
    assert.doesNotMatch(code, /\brequire\(/);
    assert.doesNotMatch(code, /\bzod\b|\bz\.object\b/);
    assert.doesNotMatch(code, /\bprocess\.|\bBuffer\b|node:/);
    // 110 KB: the HTTP/SSE transports and RPC (main: ~85 KB) plus streams (stream-publisher.ts,
    // stream-reader.ts: ~17 KB); the AG-UI adaptor is its own entry (ag-ui.ts), not in this bundle.
    // 150 KB since `encoding: 'msgpack'`: the MessagePack codec (@msgpack/msgpack, unminified) is ~36 KB.
    assert.ok(code.length < 150_000, `bundle is ${code.length} bytes`);
  });

  it('works when loaded as built: connect, subscribe, publish', async () => {
    const sdk = (await import(
      `data:text/javascript;base64,${Buffer.from(code).toString('base64')}`
    )) as typeof Sdk;
    const client = new sdk.ApiXClient({
      url: gateway.url,
      token: 't',
      clientType: 'WEB_APP',
      WebSocket,
      heartbeat: false,
    });
    try {
      await client.connect();
      const seen: string[] = [];
      const sub = client.subscribe('org');
      sub.on('*', (e) => void seen.push(e.type));
      await sub.ready;
      const r = await client.publish('org', 'note', { text: 'hi' });
      assert.equal(r.status, 'sent');
      await gateway.until(() => seen.length === 1);
      assert.deepEqual(seen, ['note']);
      assert.ok(new sdk.ApiXError('FORBIDDEN', 'x') instanceof Error);
    } finally {
      await client.close();
    }
  });
});
