/**
 * What HTTP streaming and SSE add to the shared semantics (the conformance table covers those): the
 * headers a proxy must see, CORS preflight, the token in Authorization, `POST /v1/frames` (arrays, an
 * unknown token), single-use SSE tickets, `id:` lines and `Last-Event-ID`, a session dropped on WebSocket
 * and resumed over SSE and HTTP streaming, and the slow-consumer cut on the response's buffer.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import type { ApiXNode } from '../../../src/node.ts';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import { StreamClient } from '../../support/stream-client.ts';
import { waitFor } from '../../support/wait.ts';

const service = () => token({ sub: 'svc', roles: ['service'] });

function connectFrame(tok: string, extra: Record<string, unknown> = {}) {
  return {
    type: 'connect',
    payload: {
      sessionId: `s-${Math.random().toString(36).slice(2)}`,
      clientType: 'WEB_APP',
      subscriptions: [],
      ...extra,
      authentication: { token: tok },
    },
  };
}

describe('HTTP streaming and SSE', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({ allowedOrigins: ['https://app.example'], sessionTtlMs: 10_000 });
  });
  after(() => node.close());

  it('answers with the headers that keep a proxy from buffering or compressing the stream', async () => {
    const abort = new AbortController();
    const res = await fetch(`${node.httpUrl}/v1/stream`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(connectFrame(await token())),
      signal: abort.signal,
    });
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /^application\/x-ndjson/);
    assert.equal(res.headers.get('x-accel-buffering'), 'no');
    assert.match(res.headers.get('cache-control')!, /no-cache/);
    assert.match(res.headers.get('cache-control')!, /no-transform/);
    assert.equal(res.headers.get('content-encoding'), null);
    abort.abort();
    const sse = await StreamClient.connect(node.httpUrl, 'sse');
    sse.close();
  });

  it('answers the CORS preflight of the POSTs with the headers they need', async () => {
    for (const path of ['/v1/stream', '/v1/frames', '/v1/sse/ticket']) {
      const res = await fetch(`${node.httpUrl}${path}`, {
        method: 'OPTIONS',
        headers: {
          Origin: 'https://app.example',
          'Access-Control-Request-Method': 'POST',
          'Access-Control-Request-Headers': 'x-apix-session-token, content-type',
        },
      });
      assert.equal(res.status, 204);
      assert.equal(res.headers.get('access-control-allow-origin'), 'https://app.example');
      assert.match(res.headers.get('access-control-allow-headers')!, /X-Apix-Session-Token/);
      assert.match(res.headers.get('access-control-allow-methods')!, /POST/);
    }
    const evil = await fetch(`${node.httpUrl}/v1/stream`, {
      method: 'POST',
      headers: { Origin: 'https://evil.example', 'Content-Type': 'application/json' },
      body: JSON.stringify(connectFrame(await token())),
    });
    assert.equal(evil.status, 403);
  });

  it('takes the token from Authorization when the connect frame has none', async () => {
    const frame = connectFrame('');
    delete (frame.payload as { authentication?: unknown }).authentication;
    const c = await StreamClient.open(node.httpUrl, 'http-stream', frame as never, {
      Authorization: `Bearer ${await token({ sub: 'hdr' })}`,
    });
    const est = await c.nextOfType('connection.established');
    assert.equal(est.payload.userId, 'hdr');
    c.close();
  });

  it('POST /v1/frames takes an array of frames, answered in order on the stream; an unknown token is 404', async () => {
    const c = await StreamClient.connect(node.httpUrl, 'http-stream', { token: await service() });
    const r = await c.post(
      JSON.stringify([
        { type: 'subscribe', payload: { channels: ['agent:arr'] }, metadata: { correlation_id: 'a1' } },
        { type: 'note', channel: 'agent:arr', payload: { n: 1 }, metadata: { correlation_id: 'a2' } },
        { type: 'heartbeat.ping', payload: { ts: 7 }, metadata: { correlation_id: 'a3' } },
      ]),
    );
    assert.equal(r.status, 202);
    assert.deepEqual(JSON.parse(r.body), { accepted: 3 });
    const replyTo = (id: string) => c.frames.find((f) => f.metadata?.correlation_id === id)?.type;
    await waitFor(() => ['a1', 'a2', 'a3'].every(replyTo), 5000, 'the three replies');
    assert.deepEqual(['a1', 'a2', 'a3'].map(replyTo), [
      'subscription.added',
      'message.sent',
      'heartbeat.pong',
    ]);
    await c.waitForEvents(1, 'agent:arr');
    const unknown = await fetch(`${node.httpUrl}/v1/frames`, {
      method: 'POST',
      headers: { 'X-Apix-Session-Token': 'nope' },
      body: '{"type":"heartbeat.ping","payload":{}}',
    });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'NOT_FOUND');
    c.close();
  });

  it('SSE: a ticket is single-use, and a real token in connect= is refused', async () => {
    const tok = await token();
    const t = await fetch(`${node.httpUrl}/v1/sse/ticket`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${tok}` },
    });
    const { ticket, expiresAt } = (await t.json()) as { ticket: string; expiresAt: number };
    assert.ok(expiresAt > Date.now());
    const url = (tk: string) =>
      `${node.httpUrl}/v1/sse?connect=${Buffer.from(JSON.stringify(connectFrame(tk))).toString('base64url')}`;
    const abort = new AbortController();
    const first = await fetch(url(ticket), { signal: abort.signal });
    assert.equal(first.status, 200);
    const again = await fetch(url(ticket));
    assert.equal(again.status, 401);
    const raw = await fetch(url(tok));
    assert.equal(raw.status, 401);
    const noTicket = await fetch(`${node.httpUrl}/v1/sse/ticket`, { method: 'POST' });
    assert.equal(noTicket.status, 401);
    abort.abort();
  });

  it('SSE: events carry id: <channel>/<event id>, and Last-Event-ID resumes after it', async () => {
    const pub = await RawClient.connect(node.wsUrl, { token: await service() });
    const c1 = await StreamClient.connect(node.httpUrl, 'sse', { subscriptions: ['agent:le'] });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push((await pub.publish('agent:le', 'tick', { i })).payload.id);
    await c1.waitForEvents(3, 'agent:le');
    assert.equal(c1.lastEventId, `agent:le/${ids[2]}`);
    c1.close();
    for (let i = 3; i < 6; i++) await pub.publish('agent:le', 'tick', { i });
    const c2 = await StreamClient.connect(node.httpUrl, 'sse', {
      subscriptions: ['agent:le'],
      lastEventId: c1.lastEventId,
    });
    const events = await c2.waitForEvents(3, 'agent:le');
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [3, 4, 5],
    );
    c2.close();
    pub.close();
  });

  for (const to of ['sse', 'http-stream'] as const) {
    it(`a session dropped on WebSocket resumes over ${to} with what it missed`, async () => {
      const tok = await token({ sub: 'erin' });
      const sessionId = `x-${to}`;
      const ws = await RawClient.connect(node.wsUrl, {
        token: tok,
        sessionId,
        subscriptions: [`agent:x-${to}`],
      });
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      await pub.publish(`agent:x-${to}`, 'tick', { i: 0 });
      await ws.waitForEvents(1);
      ws.terminate();
      await waitFor(
        () => node.gateway.sessions.get(`acme/erin/${sessionId}`)?.isLive === false,
        5000,
        'away',
      );
      for (let i = 1; i < 4; i++) await pub.publish(`agent:x-${to}`, 'tick', { i });
      const c = await StreamClient.connect(node.httpUrl, to, { token: tok, sessionId });
      const est = c.frames.find((f) => f.type === 'connection.established')!;
      assert.equal(est.payload.resumed, true);
      const events = await c.waitForEvents(3);
      assert.deepEqual(
        events.map((e) => e.payload.i),
        [1, 2, 3],
      );
      c.close();
      pub.close();
    });
  }
});

describe('HTTP stream admission', () => {
  it('counts streams under the per-address cap with WebSockets (429), and APIX_HTTP_TRANSPORTS=false removes the routes', async () => {
    const base = config();
    const node = await startNode({ connectionCaps: { ...base.connectionCaps, perAddress: 1 } });
    try {
      const ws = await RawClient.connect(node.wsUrl);
      const refused = await fetch(`${node.httpUrl}/v1/stream`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(connectFrame(await token())),
      });
      assert.equal(refused.status, 429);
      assert.equal(((await refused.json()) as { code: string }).code, 'RATE_LIMITED');
      ws.close();
    } finally {
      await node.close();
    }
    const off = await startNode({ httpTransports: { ...base.httpTransports, enabled: false } });
    try {
      for (const [method, path] of [
        ['POST', '/v1/stream'],
        ['POST', '/v1/frames'],
        ['POST', '/v1/sse/ticket'],
        ['GET', '/v1/sse'],
      ] as const)
        assert.equal((await fetch(`${off.httpUrl}${path}`, { method })).status, 404, path);
    } finally {
      await off.close();
    }
  });
});

describe('HTTP stream lifetime', () => {
  it("outlives the HTTP server's request timeout (that bounds reading a request, not a response)", async () => {
    const node = await startNode(
      { heartbeatIntervalMs: 200 },
      { httpTimeouts: { headersTimeoutMs: 500, requestTimeoutMs: 600, checkIntervalMs: 50 } },
    );
    try {
      const c = await StreamClient.connect(node.httpUrl, 'http-stream');
      const pings = () => c.frames.filter((f) => f.type === 'heartbeat.ping').length;
      await waitFor(() => pings() >= 8, 10_000, 'pings for longer than the request timeout');
      assert.equal(c.closed, undefined);
      c.close();
    } finally {
      await node.close();
    }
  });
});

describe('HTTP streaming backpressure', () => {
  it('cuts a stream whose client stops reading (slow consumer), with the others unaffected', async () => {
    const rateLimits = { ...config().rateLimits, publish: { perSec: 0, burst: 1 } };
    const node = await startNode({ maxBufferedBytes: 256 * 1024, rateLimits });
    try {
      const fast = await StreamClient.connect(node.httpUrl, 'http-stream', { subscriptions: ['agent:hose'] });
      const body = JSON.stringify(connectFrame(await token(), { subscriptions: ['agent:hose'] }));
      await new Promise<void>((resolve, reject) => {
        const req = request(`${node.httpUrl}/v1/stream`, { method: 'POST' }, (res) => {
          res.once('data', () => {
            res.pause();
            res.socket.pause();
            resolve();
          });
        });
        req.on('error', reject);
        req.end(body);
      });
      await waitFor(() => node.gateway.connections.size === 2, 5000, 'both streams connected');
      const pub = await RawClient.connect(node.wsUrl, { token: await service() });
      const blob = 'x'.repeat(16 * 1024);
      for (let i = 0; i < 380; i++) pub.send({ type: 'note', channel: 'agent:hose', payload: { i, blob } });
      await fast.waitForEvents(380, 'agent:hose', 20_000);
      await waitFor(() => node.gateway.slowConsumers === 1, 10_000, 'the paused stream cut');
      fast.close();
      pub.close();
    } finally {
      await node.close();
    }
  });
});
