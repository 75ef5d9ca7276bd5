/**
 * The failover decision on round trips, against fake gateways with an injected clock: the client's clock
 * makes every heartbeat round trip look `extraMs` longer while `slow` is set. Only `rttSamples` slow
 * samples in a row move it; a fast one in between resets the count; one URL or `failover: false` never
 * moves; `qos: degraded` from the server moves it at once.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { ApiXClient, type ApiXClientOptions } from '../src/index.ts';
import { systemClock, type Clock } from '@apix/protocol/clock';
import { FakeGateway } from './support/fake-gateway.ts';
import { nextEmit, sleep } from './support/helpers.ts';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

/** Real timers; `now()` jumps `extraMs` ahead on every call while `link.slow`: each RTT sample grows. */
function skewedClock(link: { slow: boolean; extraMs: number }): Clock {
  let skew = 0;
  return {
    now: () => {
      if (link.slow) skew += link.extraMs;
      return Date.now() + skew;
    },
    setTimeout: systemClock.setTimeout,
    setInterval: systemClock.setInterval,
  };
}

async function setup(
  options: Partial<ApiXClientOptions>,
  urls = 2,
): Promise<{ client: ApiXClient; gateways: FakeGateway[]; link: { slow: boolean; extraMs: number } }> {
  const gateways: FakeGateway[] = [];
  for (let i = 0; i < urls; i++) {
    const g = await FakeGateway.start();
    gateways.push(g);
    cleanup.push(() => g.stop());
  }
  const link = { slow: false, extraMs: 5000 };
  const client = new ApiXClient({
    url: gateways.map((g) => g.url),
    token: 't',
    clientType: 'API_CLIENT',
    WebSocket,
    probeGateways: false,
    reconnect: { baseMs: 10, maxMs: 20, factor: 2 },
    heartbeat: { intervalMs: 20, timeoutMs: 60_000 },
    clock: skewedClock(link),
    random: () => 0.5,
    ...options,
  });
  cleanup.push(() => client.close());
  await client.connect();
  return { client, gateways, link };
}

/** Waits for `n` more RTT samples. */
async function samples(client: ApiXClient, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push((await nextEmit(client, 'heartbeat.rtt')).rttMs);
  return out;
}

describe('SDK failover decision', () => {
  it('moves after rttSamples slow round trips in a row, to the next URL, with the reason', async () => {
    const { client, gateways, link } = await setup({ failover: { rttThresholdMs: 1000, rttSamples: 3 } });
    assert.equal(client.url, gateways[0]!.url);
    const moving = nextEmit(client, 'gateway.moving');
    link.slow = true;
    const moved = await moving;
    assert.equal(moved.from, gateways[0]!.url);
    assert.equal(moved.to, gateways[1]!.url);
    assert.match(moved.reason, /round trip over 1000 ms for 3 heartbeats/);
    link.slow = false;
    await nextEmit(client, 'connection.established');
    assert.equal(client.url, gateways[1]!.url);
    assert.equal(gateways[1]!.framesOf('connect')[0]?.payload.sessionId, client.sessionId, 'same session');
  });

  it('a fast round trip between slow ones resets the count: no move', async () => {
    const { client, gateways, link } = await setup({ failover: { rttThresholdMs: 1000, rttSamples: 3 } });
    let moved = false;
    client.on('gateway.moving', () => void (moved = true));
    for (let round = 0; round < 3; round++) {
      link.slow = true;
      assert.ok((await samples(client, 2)).every((r) => r > 1000));
      link.slow = false;
      await samples(client, 1);
    }
    assert.equal(moved, false);
    assert.equal(client.url, gateways[0]!.url);
  });

  it('never moves with one URL or with failover: false', async () => {
    for (const [options, urls] of [
      [{ failover: { rttThresholdMs: 1000, rttSamples: 2 } }, 1],
      [{ failover: false }, 2],
    ] as const) {
      const { client, gateways, link } = await setup(options, urls);
      let moved = false;
      client.on('gateway.moving', () => void (moved = true));
      link.slow = true;
      await samples(client, 4);
      gateways[0]!.send(gateways[0]!.open.at(-1)!, {
        type: 'qos',
        payload: { state: 'degraded', reason: 'test' },
      });
      await sleep(50);
      assert.equal(moved, false);
      assert.equal(client.state, 'connected');
    }
  });

  it("moves at once on the server's qos: degraded, and emits the qos event", async () => {
    const { client, gateways } = await setup({ failover: { rttThresholdMs: 60_000 } });
    const qos = nextEmit(client, 'qos');
    const moving = nextEmit(client, 'gateway.moving');
    gateways[0]!.send(gateways[0]!.open.at(-1)!, {
      type: 'qos',
      payload: { state: 'degraded', reason: 'send buffer 2000000 bytes over 1048576' },
    });
    assert.deepEqual(await qos, {
      state: 'degraded',
      reason: 'send buffer 2000000 bytes over 1048576',
      coalesced: undefined,
    });
    assert.match((await moving).reason, /degraded this connection: send buffer/);
    await nextEmit(client, 'connection.established');
    assert.equal(client.url, gateways[1]!.url);
  });
});
