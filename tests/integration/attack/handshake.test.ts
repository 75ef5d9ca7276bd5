/**
 * Attack suite, handshake: raw TCP and HTTP against the upgrade path. Each case names the expected answer;
 * after each one the control connection still publishes and receives its own event.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { Control, portOf, rawHttp, until, upgradeRequest, watchProcess, WireClient } from './helpers.ts';

const watch = watchProcess();
after(() => watch.assertNone());

describe('attack: handshake', { concurrency: true }, () => {
  let node: ApiXNode;
  let port: number;
  let control: Control;
  before(async () => {
    node = await startNode(
      { connectTimeoutMs: 300, allowedOrigins: ['https://app.example'] },
      { httpTimeouts: { headersTimeoutMs: 500, requestTimeoutMs: 1000, checkIntervalMs: 100 } },
    );
    port = portOf(node);
    control = await Control.start(node);
  });
  after(async () => {
    await control.check();
    control.close();
    WireClient.destroyAll();
    await node.close();
  });

  it('Origin not on the allow-list (other host, suffix trick, other case, "null") -> HTTP 403 FORBIDDEN, no upgrade', async () => {
    for (const origin of [
      'https://evil.example',
      'https://app.example.evil.example',
      'https://app.example:443@evil.example',
      'HTTPS://APP.EXAMPLE',
      'http://app.example',
      'null',
    ]) {
      const r = await rawHttp(port, upgradeRequest(port, { headers: { Origin: origin } }));
      assert.equal(r.status, 403, origin);
      assert.equal(JSON.parse(r.body).code, 'FORBIDDEN');
      assert.ok(r.closedByServer);
    }
    // The allowed origin, exactly as listed: 101.
    const ok = await WireClient.open(
      port,
      upgradeRequest(port, { headers: { Origin: 'https://app.example' } }),
    );
    assert.equal(ok.status, 101);
    ok.destroy();
    await control.check();
  });

  it('a bad Sec-WebSocket-Key (missing, short, not base64, 17 bytes) -> HTTP 400, no upgrade', async () => {
    for (const key of [undefined, 'c2hvcnQ=', '!!!!!!!!!!!!!!!!!!!!!!==', 'AAAAAAAAAAAAAAAAAAAAAAA=']) {
      const r = await rawHttp(port, upgradeRequest(port, { headers: { 'Sec-WebSocket-Key': key } }));
      assert.equal(r.status, 400, `key ${key}: ${r.head}`);
      assert.match(r.head, /connection: close/i);
    }
    await control.check();
  });

  it('a wrong Sec-WebSocket-Version (missing, 12, 14, "abc") -> HTTP 400 naming the versions spoken', async () => {
    for (const version of [undefined, '12', '14', 'abc']) {
      const r = await rawHttp(port, upgradeRequest(port, { headers: { 'Sec-WebSocket-Version': version } }));
      assert.equal(r.status, 400, `version ${version}: ${r.head}`);
      assert.match(r.head, /sec-websocket-version: 13/i);
    }
    await control.check();
  });

  it('no Upgrade header -> plain HTTP 404 JSON (never 101); Upgrade: h2c -> 400; POST upgrade -> 405; other path -> 404', async () => {
    const noUpgrade = await rawHttp(port, upgradeRequest(port, { headers: { Upgrade: undefined } }));
    assert.equal(noUpgrade.status, 404);
    assert.equal(JSON.parse(noUpgrade.body).code, 'NOT_FOUND');
    const h2c = await rawHttp(port, upgradeRequest(port, { headers: { Upgrade: 'h2c' } }));
    assert.equal(h2c.status, 400);
    const post = await rawHttp(port, upgradeRequest(port, { method: 'POST' }));
    assert.equal(post.status, 405);
    const other = await rawHttp(port, upgradeRequest(port, { path: '/v1/ws/../admin' }));
    assert.equal(other.status, 404);
    const encoded = await rawHttp(port, upgradeRequest(port, { path: '/v1/%77s' }));
    assert.equal(encoded.status, 404);
    await control.check();
  });

  it('an unsupported subprotocol list of 15 KB -> HTTP 400 BAD_REQUEST; the list with apix.v1.json in it -> 101', async () => {
    const many = Array.from({ length: 1500 }, (_, i) => `p${i}`).join(', ');
    const bad = await rawHttp(port, upgradeRequest(port, { headers: { 'Sec-WebSocket-Protocol': many } }));
    assert.equal(bad.status, 400);
    assert.equal(JSON.parse(bad.body).code, 'BAD_REQUEST');
    const ok = await WireClient.open(
      port,
      upgradeRequest(port, {
        headers: { 'Sec-WebSocket-Protocol': `${many.split(', ').slice(0, 700).join(', ')}, apix.v1.json` },
      }),
    );
    assert.equal(ok.status, 101);
    assert.match(ok.responseHead, /sec-websocket-protocol: apix\.v1\.json/i);
    ok.destroy();
    await control.check();
  });

  it('header flood: one 20 KB header, 3000 small headers, and 50 such requests at once -> HTTP 431 each, no crash', async () => {
    const big = await rawHttp(port, upgradeRequest(port, { headers: { 'X-Big': 'a'.repeat(20 * 1024) } }));
    assert.equal(big.status, 431);
    assert.ok(big.closedByServer);
    const headers: Record<string, string> = {};
    for (let i = 0; i < 3000; i++) headers[`X-H${i}`] = 'v';
    const many = await rawHttp(port, upgradeRequest(port, { headers }));
    assert.equal(many.status, 431);
    const flood = await Promise.all(
      Array.from({ length: 50 }, () =>
        rawHttp(port, upgradeRequest(port, { headers: { Cookie: 'c'.repeat(17 * 1024) } })),
      ),
    );
    assert.ok(
      flood.every((r) => r.status === 431 && r.closedByServer),
      JSON.stringify(flood.map((r) => r.status)),
    );
    await control.check();
  });

  it('slowloris: a head trickled one header every 100 ms -> HTTP 408 and closed at headersTimeout (500 ms)', async () => {
    const r = await rawHttp(
      port,
      (socket) => {
        socket.write(`GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`);
        const t = setInterval(
          () => (socket.destroyed ? clearInterval(t) : socket.write('X-Slow: 1\r\n')),
          100,
        );
        socket.on('close', () => clearInterval(t));
      },
      4000,
    );
    assert.ok(r.closedByServer, 'the server cut the trickle');
    assert.equal(r.status, 408);
    assert.ok(r.elapsedMs >= 450 && r.elapsedMs < 1500, `cut after ${r.elapsedMs} ms`);
    await control.check();
  });

  it('slowloris: a socket that connects and sends nothing -> closed at headersTimeout (500 ms)', async () => {
    const r = await rawHttp(port, () => {}, 4000);
    assert.ok(r.closedByServer);
    assert.ok(r.elapsedMs < 1500, `cut after ${r.elapsedMs} ms`);
    await control.check();
  });

  it('slow body: POST /v1/publish trickling its body -> HTTP 408 and closed at requestTimeout (1000 ms)', async () => {
    const tok = await token({ roles: ['service'] });
    const r = await rawHttp(
      port,
      (socket) => {
        socket.write(
          `POST /v1/publish HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${tok}\r\n` +
            `Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{`,
        );
        const t = setInterval(() => (socket.destroyed ? clearInterval(t) : socket.write(' ')), 100);
        socket.on('close', () => clearInterval(t));
      },
      5000,
    );
    assert.ok(r.closedByServer, 'the server cut the slow body');
    assert.ok(r.elapsedMs >= 900 && r.elapsedMs < 2500, `cut after ${r.elapsedMs} ms`);
    await control.check();
  });

  it('upgraded but never authenticating -> connection.error BAD_REQUEST fatal, close 4004 at connectTimeoutMs', async () => {
    const c = await WireClient.open(port);
    assert.equal(c.status, 101);
    const started = Date.now();
    assert.equal(await c.waitClosed(2000), 4004);
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 250 && elapsed < 1500, `closed after ${elapsed} ms`);
    const err = c.json.find((f) => f.type === 'connection.error');
    assert.equal(err?.payload.code, 'BAD_REQUEST');
    assert.equal(err?.payload.fatal, true);
    c.destroy();
    await control.check();
  });

  it('never authenticating and ignoring the close frame -> the server drops the TCP connection itself (≤ 5 s after 4004)', async () => {
    const c = await WireClient.open(port);
    assert.equal(await c.waitClosed(2000), 4004);
    // We never answer the close frame; the sweeper terminates CLOSING sockets after 5 s.
    await c.waitEnded(7000);
    await until(() => node.gateway.connections.size === 1, 2000, 'only the control connection left');
    await control.check();
  });

  it('frames pipelined in the same packet as the upgrade, before any connect -> 4000 (first frame must be connect)', async () => {
    const c = await WireClient.open(port);
    // No library sends a frame before reading the 101; ws must still parse it as the first frame.
    c.sendJson({ type: 'subscribe', payload: { channels: ['agent:x'] } });
    assert.equal(await c.waitClosed(), 4000);
    c.destroy();
    await control.check();
  });
});

describe('attack: connection flood from one address', () => {
  it('300 sockets at once from 127.0.0.1 against APIX_MAX_CONNECTIONS=50 -> at most the 49 free slots upgraded, every other one answered HTTP 503 UNAVAILABLE (node cap) or 429 RATE_LIMITED (attempts per address), never a silent reset; slots come back', async (t) => {
    const node = await startNode({ maxConnections: 50, connectTimeoutMs: 500 });
    const control = await Control.start(node);
    try {
      const port = portOf(node);
      const clients = await Promise.all(
        Array.from({ length: 300 }, () => WireClient.open(port, undefined, 10_000)),
      );
      const upgraded = clients.filter((c) => c.status === 101);
      const full = clients.filter((c) => c.status === 503);
      const limited = clients.filter((c) => c.status === 429);
      assert.equal(upgraded.length + full.length + limited.length, 300, 'every attempt got an HTTP answer');
      assert.ok(upgraded.length <= 49, `${upgraded.length} upgraded`);
      assert.ok(node.gateway.connections.size <= 50);
      // Report what bounded the flood: the node-wide cap (503) and/or a per-address attempt rate (429).
      // Neither caps the number of *concurrent* connections one address may hold.
      t.diagnostic(`flood: ${upgraded.length} upgraded, ${full.length} x 503, ${limited.length} x 429`);
      await control.check();
      // The unauthenticated ones are cut at connectTimeoutMs (4004): the slots come back by themselves.
      await until(() => upgraded.every((c) => c.closeCode === 4004), 5000, 'every idle socket closed 4004');
      for (const c of clients) c.destroy();
      await until(() => node.gateway.connections.size === 1, 3000, 'back to the control connection only');
      await control.check();
    } finally {
      control.close();
      WireClient.destroyAll();
      await node.close();
    }
  });
});
