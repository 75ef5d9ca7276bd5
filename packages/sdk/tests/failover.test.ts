/**
 * The SDK moves off a degraded gateway (issue 6 item 2): two real gateway nodes sharing one memory bus,
 * session store and offline queue (as two Redis nodes share Redis); the client is given both URLs and
 * starts on A, whose link is then made slow (the client sees A's frames 200 ms late, like a congested path).
 * Either A's QoS notices the slow heartbeat round trips and sends `qos: degraded`, or the client's own
 * round trips stay above its threshold: the client moves to B, resumes its session there, and the
 * application sees every event published before, during and after the move once, in order.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { createNode } from '../../../src/node.ts';
import { memoryEngines } from '../../../src/engines.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { MemorySessionStore } from '../../../src/sessions/memory-session-store.ts';
import { MemoryOfflineQueue } from '../../../src/queue/memory-queue.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import { config, RawClient, token } from '../../../tests/support/gateway.ts';
import { ApiXClient, type ApiXClientOptions } from '../src/index.ts';
import type { WebSocketConstructor } from '../src/transport.ts';
import { eventually, nextEmit, sleep } from './support/helpers.ts';

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const fn of cleanup.reverse()) await fn();
  cleanup = [];
});

/** Two nodes acting as one (shared bus, sessions and queues). */
async function twoNodes(a: Partial<Config>, b: Partial<Config>): Promise<[ApiXNode, ApiXNode]> {
  const bus = new MemoryBrokerBus(systemClock);
  const sessionStore = new MemorySessionStore(systemClock);
  const offlineQueue = new MemoryOfflineQueue(1000);
  const nodes: ApiXNode[] = [];
  for (const [i, overrides] of [a, b].entries()) {
    const cfg = config({ heartbeatIntervalMs: 300, ...overrides, nodeId: `n${i}` });
    const node = createNode({
      config: cfg,
      logger: createLogger('silent', `n${i}`),
      engines: { ...memoryEngines(cfg, systemClock, bus), sessionStore, offlineQueue },
    });
    await node.listen();
    cleanup.push(() => node.close());
    nodes.push(node);
  }
  return nodes as [ApiXNode, ApiXNode];
}

/**
 * `ws`, except that once `link.delayMs` is set, frames from `slowUrl` reach the client that late (in
 * order): a congested link. ws defines `onmessage` on its prototype; the instance gets an accessor that
 * wraps the handler.
 */
function slowLinkTo(slowUrl: string, link: { delayMs: number }): WebSocketConstructor {
  const desc = Object.getOwnPropertyDescriptor(WebSocket.prototype, 'onmessage')!;
  return function SlowLinkWebSocket(url: string, protocols?: string | string[]) {
    const ws = new WebSocket(url, protocols);
    if (url === slowUrl)
      Object.defineProperty(ws, 'onmessage', {
        configurable: true,
        get: () => desc.get!.call(ws),
        set: (fn: ((ev: unknown) => void) | null) =>
          desc.set!.call(
            ws,
            fn === null
              ? null
              : (ev: unknown) => (link.delayMs > 0 ? setTimeout(() => fn(ev), link.delayMs) : fn(ev)),
          ),
      });
    return ws;
  } as unknown as WebSocketConstructor;
}

async function moveScenario(
  nodeA: ApiXNode,
  nodeB: ApiXNode,
  options: Partial<ApiXClientOptions>,
): Promise<{ reason: string }> {
  const link = { delayMs: 0 };
  // Slower than both thresholds below (100 ms), faster than the server's heartbeat interval (300 ms: a
  // pong later than the next ping would not be an RTT sample).
  const slowMs = 200;
  const client = new ApiXClient({
    url: [nodeA.wsUrl, nodeB.wsUrl],
    tokenProvider: () => token({ sub: 'mover' }),
    clientType: 'WEB_APP',
    WebSocket: slowLinkTo(nodeA.wsUrl, link),
    probeGateways: false, // start on A (the ranking itself is tested in connection.test.ts)
    reconnect: { baseMs: 20, maxMs: 100, factor: 2 },
    heartbeat: { intervalMs: 50, timeoutMs: 5000 },
    ...options,
  });
  cleanup.push(() => client.close());
  const moving = nextEmit(client, 'gateway.moving', () => true, 15_000);
  const seen: Array<{ id: string; i: number }> = [];
  const sub = client.subscribe('agent:m1');
  sub.on('*', (e) => void seen.push({ id: e.id, i: (e.payload as { i: number }).i }));
  await client.connect();
  assert.equal(client.url, nodeA.wsUrl, 'starts on A');
  await sub.ready;

  const pub = await RawClient.connect(nodeB.wsUrl, {
    token: await token({ sub: 'svc', roles: ['service'] }),
  });
  cleanup.push(() => pub.close());
  let i = 0;
  const publish = async (n: number) => {
    for (const end = i + n; i < end; i++) {
      const r = await pub.publish('agent:m1', 'agent_tick', { i });
      assert.equal(r.type, 'message.sent');
      await sleep(5);
    }
  };
  await publish(20); // before the move, on a fast link to A
  await eventually(() => seen.length >= 20, 10_000).catch(() => {
    throw new Error(`not all of the first 20 events arrived: ${JSON.stringify(seen)}`);
  });
  assert.equal(client.url, nodeA.wsUrl, 'still on A');
  link.delayMs = slowMs; // A's link gets slow: the move follows within a few heartbeats
  const moved = await moving;
  await publish(20); // while it moves
  await eventually(() => client.state === 'connected' && client.url === nodeB.wsUrl, 10_000);
  await publish(20); // after
  await eventually(() => seen.length >= 60, 10_000);
  await sleep(100);
  assert.deepEqual(
    seen.map((e) => e.i),
    Array.from({ length: 60 }, (_, k) => k),
    'every event once, in order',
  );
  for (let k = 1; k < seen.length; k++) assert.notEqual(seen[k]!.id, seen[k - 1]!.id);
  assert.equal(client.url, nodeB.wsUrl, 'stays on B');
  return moved;
}

describe('SDK: moving off a degraded gateway', () => {
  it("on the server's qos: degraded (A's QoS sees heartbeat round trips over 100 ms), resumes on B with no loss and no duplicate", async () => {
    const [a, b] = await twoNodes({ qos: { ...config().qos, degradeRttMs: 100, minDegradedMs: 0 } }, {});
    const moved = await moveScenario(a, b, {
      // Only the server's verdict moves it here.
      failover: { rttThresholdMs: 60_000 },
    });
    assert.match(moved.reason, /degraded this connection: heartbeat round trip \d+ ms over 100 ms/);
  });

  it('on its own measured round trip above rttThresholdMs for rttSamples heartbeats, resumes on B with no loss and no duplicate', async () => {
    const [a, b] = await twoNodes({ qos: { ...config().qos, degradeRttMs: 0 } }, {});
    const moved = await moveScenario(a, b, {
      failover: { rttThresholdMs: 100, rttSamples: 3, onQosDegraded: false },
    });
    assert.match(moved.reason, /round trip over 100 ms for 3 heartbeats/);
  });
});
