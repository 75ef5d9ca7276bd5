/** Connection lifecycle: close codes, heartbeats, token refresh, backoff events, gateway selection. */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ApiXClient, rankGateways, type ApiXError, type ClientState } from '../src/index.ts';
import { FakeGateway } from './support/fake-gateway.ts';
import { clientFor, eventually, fakeJwt, nextEmit, sleep } from './support/helpers.ts';

let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});
async function setup(options: Parameters<typeof FakeGateway.start>[0] = {}, clientOptions = {}) {
  const gateway = await FakeGateway.start(options);
  const client = clientFor(gateway, clientOptions);
  cleanup.push(
    () => gateway.stop(),
    () => client.close(),
  );
  return { gateway, client };
}

describe('connection lifecycle', () => {
  it('goes idle -> connecting -> connected -> reconnecting -> connecting -> connected -> closed', async () => {
    const { gateway, client } = await setup();
    const states: ClientState[] = [];
    client.on('state', (s) => void states.push(s.state));
    await client.connect();
    gateway.dropAll();
    await nextEmit(client, 'connection.established');
    await client.close();
    assert.deepEqual(states, [
      'connecting',
      'connected',
      'reconnecting',
      'connecting',
      'connected',
      'closed',
    ]);
  });

  it('does not reconnect after 4001: connect() rejects with the server error', async () => {
    const { gateway, client } = await setup({
      rejectToken: () => ({ code: 'UNAUTHORIZED', close: 4001 }),
    });
    const errors: ApiXError[] = [];
    client.on('error', (e) => void errors.push(e));
    await assert.rejects(
      client.connect(),
      (e: ApiXError) => e.code === 'UNAUTHORIZED' && e.message === 'token refused',
    );
    assert.equal(client.state, 'closed');
    await sleep(100);
    assert.equal(gateway.connections.length, 1);
    assert.equal(errors[0]?.code, 'UNAUTHORIZED');
  });

  for (const [code, expected] of [
    [4009, false],
    [4011, false],
    [4000, false],
    [1001, true],
    [4010, true],
    [1011, true],
  ] as const) {
    it(`close ${code}: ${expected ? 'reconnects' : 'stops'} (closeCodeAllowsReconnect)`, async () => {
      const { gateway, client } = await setup();
      await client.connect();
      const disconnected = nextEmit(client, 'connection.disconnected');
      gateway.closeAll(code, 'test', 'CONFLICT', expected);
      const d = await disconnected;
      assert.equal(d.code, code);
      assert.equal(d.serverCode, 'CONFLICT');
      assert.equal(d.willReconnect, expected);
      if (expected) await nextEmit(client, 'connection.established');
      else {
        await sleep(60);
        assert.equal(client.state, 'closed');
        assert.equal(gateway.connections.length, 1);
      }
    });
  }

  it('on 4002 (token expired) reconnects with a fresh token when it has a token provider', async () => {
    let n = 0;
    const { gateway, client } = await setup({}, { token: undefined, tokenProvider: () => `token-${++n}` });
    await client.connect();
    gateway.closeAll(4002, 'token expired', 'TOKEN_EXPIRED', false);
    await nextEmit(client, 'connection.established');
    assert.deepEqual(
      gateway.framesOf('connect').map((f) => f.payload.authentication.token),
      ['token-1', 'token-2'],
    );
  });

  it('backs off with growing delays while the gateway is down, then reconnects', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const attempts: Array<{ attempt: number; delayMs: number }> = [];
    client.on('reconnection.attempt', ({ attempt, delayMs }) => void attempts.push({ attempt, delayMs }));
    const port = Number(new URL(gateway.url).port);
    await gateway.stop();
    await eventually(() => attempts.length >= 4);
    // random 0.5 of min(80, 20 * 2^n): 10, 20, 40, 40
    assert.deepEqual(
      attempts.slice(0, 4).map((a) => a.delayMs),
      [10, 20, 40, 40],
    );
    assert.deepEqual(
      attempts.slice(0, 4).map((a) => a.attempt),
      [1, 2, 3, 4],
    );
    // Back up on the same port: the next attempt connects and the counter resets.
    const revived = await FakeGateway.startOn(port);
    cleanup.push(() => revived.stop());
    await nextEmit(client, 'connection.established');
    revived.dropAll();
    assert.equal((await nextEmit(client, 'reconnection.attempt')).attempt, 1);
  });

  it('answers the server heartbeat.ping with heartbeat.pong {ts}', async () => {
    const { gateway, client } = await setup();
    await client.connect();
    const conn = gateway.open[0] as NonNullable<(typeof gateway.open)[0]>;
    gateway.send(conn, { type: 'heartbeat.ping', payload: { ts: 12345 } });
    await gateway.until(() => gateway.framesOf('heartbeat.pong').length === 1);
    assert.deepEqual(gateway.framesOf('heartbeat.pong')[0]?.payload, { ts: 12345 });
  });

  it('pings, measures RTT, and reconnects when a pong does not come in time', async () => {
    const { gateway, client } = await setup({}, { heartbeat: { intervalMs: 30, timeoutMs: 60 } });
    await client.connect();
    const rtt = await nextEmit(client, 'heartbeat.rtt');
    assert.ok(rtt.rttMs >= 0 && rtt.rttMs < 1000);
    assert.equal(client.rttMs, rtt.rttMs);
    gateway.answerPings = false;
    const disconnected = await nextEmit(client, 'connection.disconnected');
    assert.equal(disconnected.reason, 'heartbeat timeout');
    assert.equal(disconnected.willReconnect, true);
    await nextEmit(client, 'connection.established');
  });

  it('refreshes a JWT before it expires with auth.refresh, and again after each refresh', async () => {
    let n = 0;
    // Expires within 1-2 s, shorter than the default 30 s margin: refreshed half-way through.
    const provider = () => fakeJwt({ sub: 'u1', org: 'o1', n: ++n, exp: Math.ceil(Date.now() / 1000) + 1 });
    const { gateway, client } = await setup({}, { token: undefined, tokenProvider: provider });
    await client.connect();
    const refreshed = await nextEmit(client, 'auth.refreshed');
    assert.ok(refreshed.expiresAt > Date.now());
    const refreshes = gateway.framesOf('auth.refresh');
    assert.equal(refreshes.length, 1);
    assert.equal(refreshes[0]?.payload.token.split('.').length, 3);
    assert.notEqual(
      refreshes[0]?.payload.token,
      gateway.framesOf('connect')[0]?.payload.authentication.token,
    );
    await gateway.until(() => gateway.framesOf('auth.refresh').length >= 2);
  });

  it('rejects when constructed without any transport (no WebSocket, no fetch) or a token', () => {
    const g = globalThis as { WebSocket?: unknown; fetch?: unknown };
    const saved = g.WebSocket;
    const savedFetch = g.fetch;
    delete g.WebSocket;
    try {
      // Without a WebSocket, HTTP streaming (then SSE) over fetch.
      const c = new ApiXClient({ url: 'ws://x', token: 't', clientType: 'WEB_APP' });
      assert.equal(c.transport, 'http-stream');
      delete g.fetch;
      assert.throws(() => new ApiXClient({ url: 'ws://x', token: 't', clientType: 'WEB_APP' }), /WebSocket/);
    } finally {
      if (saved !== undefined) g.WebSocket = saved;
      g.fetch = savedFetch;
    }
    assert.throws(() => new ApiXClient({ url: 'ws://x', clientType: 'WEB_APP', WebSocket }), /token/);
  });
});

describe('gateway selection', () => {
  it('ranks reachable gateways by handshake time, unreachable last', async () => {
    const a = await FakeGateway.start();
    const b = await FakeGateway.start();
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
    );
    const dead = 'ws://127.0.0.1:1/v1/ws';
    const ranked = await rankGateways([dead, a.url, b.url], { WebSocket, timeoutMs: 500 });
    assert.equal(ranked.length, 3);
    assert.equal(ranked[2]?.url, dead);
    assert.equal(ranked[2]?.rttMs, Infinity);
    assert.ok(Number.isFinite(ranked[0]?.rttMs) && Number.isFinite(ranked[1]?.rttMs));
    assert.deepEqual(new Set(ranked.slice(0, 2).map((r) => r.url)), new Set([a.url, b.url]));
  });

  it('a client given several urls connects to a reachable one, and moves on when its node goes away', async () => {
    const a = await FakeGateway.start();
    const b = await FakeGateway.start();
    const client = new ApiXClient({
      url: ['ws://127.0.0.1:1', a.url, b.url],
      token: 't',
      clientType: 'API_CLIENT',
      WebSocket,
      heartbeat: false,
      reconnect: { baseMs: 10, maxMs: 20, factor: 2 },
      random: () => 0.5,
    });
    cleanup.push(
      () => a.stop(),
      () => b.stop(),
      () => client.close(),
    );
    await client.connect();
    const first = client.url;
    assert.notEqual(first, 'ws://127.0.0.1:1/v1/ws');
    const [from, to] = first === a.url ? [a, b] : [b, a];
    from.closeAll(1001, 'draining');
    await nextEmit(client, 'connection.established');
    assert.equal(client.url, to.url);
    assert.equal(to.framesOf('connect')[0]?.payload.sessionId, client.sessionId);
  });
});
