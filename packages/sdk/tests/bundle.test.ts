/**
 * The browser bundle, built with the options `npm run build` uses (src/http/browser-assets.ts): it must
 * import nothing statically (no Zod, no Node modules), use no Node globals, stay small, and work when
 * loaded as is. The MessagePack codec is a file of its own (`apix-msgpack.js` beside `apix.js`), loaded
 * only by a client with `encoding: 'msgpack'`: loaded from files laid out as the gateway serves them,
 * such a client negotiates `apix.v1.msgpack` with a real gateway node.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { build } from 'esbuild';
import type { BuildOptions } from 'esbuild';
import { WebSocket } from 'ws';
import type * as Sdk from '../src/index.ts';
import { sdkBundleOptions, sdkMsgpackOptions } from '../../../src/http/browser-assets.ts';
import { startNode, token } from '../../../tests/support/gateway.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { eventually } from './support/helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url)).replace(/\/$/, '');

async function bundle(options: BuildOptions): Promise<string> {
  const result = await build({ ...options, write: false });
  return result.outputFiles?.[0]?.text ?? '';
}

describe('browser bundle', () => {
  let code = '';
  let codec = '';
  let dir = '';
  let gateway: FakeGateway;
  before(async () => {
    [code, codec] = await Promise.all([bundle(sdkBundleOptions(ROOT)), bundle(sdkMsgpackOptions(ROOT))]);
    // As GET /sdk/apix.js and GET /sdk/apix-msgpack.js lay them out: side by side.
    dir = mkdtempSync(join(tmpdir(), 'apix-sdk-bundle-'));
    writeFileSync(join(dir, 'apix.js'), code);
    writeFileSync(join(dir, 'apix-msgpack.js'), codec);
    gateway = await FakeGateway.start();
  });
  after(async () => {
    await gateway.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('imports nothing and carries no Zod, no Node globals and no MessagePack codec', () => {
    assert.doesNotMatch(code, /^\s*import\s/m);
    assert.doesNotMatch(code, /\brequire\(/);
    assert.doesNotMatch(code, /\bzod\b|\bz\.object\b/);
    assert.doesNotMatch(code, /\bprocess\.|\bBuffer\b|node:/);
    // The codec only through `import("./apix-msgpack.js")`, for `encoding: 'msgpack'`.
    assert.match(code, /import\("\.\/apix-msgpack\.js"\)/);
    assert.doesNotMatch(code, /class ExtData|DEFAULT_MAX_DEPTH/, '@msgpack/msgpack is not in the bundle');
    // ~104 KB unminified: the client, the HTTP/SSE transports, RPC and streams; the AG-UI adaptor is its own
    // entry (ag-ui.ts). The MessagePack codec (~45 KB) is apix-msgpack.js. The limit is the size + ~10 %.
    assert.ok(code.length < 115_000, `bundle is ${code.length} bytes`);
    assert.doesNotMatch(codec, /^\s*import\s/m, 'the codec file imports nothing either');
  });

  it('works when loaded as built: connect, subscribe, publish', async () => {
    const sdk = (await import(pathToFileURL(join(dir, 'apix.js')).href)) as typeof Sdk;
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

  it('loads the MessagePack codec beside itself for encoding msgpack, and speaks it to a gateway', async () => {
    const sdk = (await import(pathToFileURL(join(dir, 'apix.js')).href)) as typeof Sdk;
    const node = await startNode();
    const selected: string[] = [];
    const Recording = class extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        this.once('open', () => selected.push(this.protocol));
      }
    } as typeof WebSocket;
    const client = new sdk.ApiXClient({
      url: node.wsUrl,
      tokenProvider: () => token({ sub: 'alice', roles: ['service'] }),
      clientType: 'WEB_APP',
      WebSocket: Recording,
      encoding: 'msgpack',
      heartbeat: false,
    });
    try {
      await client.connect();
      assert.deepEqual(selected, ['apix.v1.msgpack']);
      const seen: unknown[] = [];
      const sub = client.subscribe('agent:bin');
      sub.on('*', (e) => void seen.push(e.payload));
      await sub.ready;
      const bytes = Uint8Array.from([1, 2, 255]);
      assert.equal((await client.publish('agent:bin', 'blob', { data: bytes } as never)).status, 'sent');
      await eventually(() => seen.length === 1);
      const data = (seen[0] as { data: unknown }).data;
      assert.ok(data instanceof Uint8Array, 'bytes arrive as bytes');
      assert.deepEqual([...data], [1, 2, 255]);
    } finally {
      await client.close();
      await node.close();
    }
  });
});
