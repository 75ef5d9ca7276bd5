/**
 * RPC from clients to services (docs/protocol.md §12) over three nodes, on the in-process memory bus and on
 * a real Redis (the same tests): the caller on one node, the service on another. Then, on one node, the
 * HTTP fallback against a real HTTP backend (APIX_RPC_PROXY_URL).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { findRedis, uniquePrefix, skipWithoutRedis } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { BackendReceiver, BACKEND_SECRET } from '../../support/backend-receiver.ts';
import { waitFor } from '../../support/wait.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createEngines, memoryEngines } from '../../../src/engines.ts';
import { MemoryBrokerBus } from '../../../src/broker/memory-broker.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';
import { testConfig } from '../../../src/config.ts';
import type { Config } from '../../../src/config.ts';

type Cluster = { nodes: ApiXNode[]; close(): Promise<void> };

async function memoryCluster(n: number): Promise<Cluster> {
  const bus = new MemoryBrokerBus(systemClock);
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = config({ nodeId: `m${i}` });
    const engines = memoryEngines(cfg, systemClock, bus);
    const node = createNode({ config: cfg, logger: createLogger('silent', `m${i}`), engines });
    await node.listen();
    nodes.push(node);
  }
  return { nodes, close: async () => void (await Promise.all(nodes.map((x) => x.close()))) };
}

async function redisCluster(n: number, url: string): Promise<Cluster> {
  const prefix = uniquePrefix();
  const nodes: ApiXNode[] = [];
  for (let i = 0; i < n; i++) {
    const cfg = config({ nodeId: `r${i}`, redisUrl: url, redisPrefix: prefix });
    const engines = await createEngines(cfg, { nodeId: cfg.nodeId! });
    const node = createNode({ config: cfg, logger: createLogger('silent', `r${i}`), engines });
    await node.listen();
    nodes.push(node);
  }
  return { nodes, close: async () => void (await Promise.all(nodes.map((x) => x.close()))) };
}

let seq = 0;
/** Sends a frame with a fresh correlation id and waits for the frame answering it. */
async function ask(c: RawClient, type: string, payload: unknown, timeoutMs = 5000): Promise<Frame> {
  const correlation_id = `c${++seq}`;
  const from = c.frames.length;
  c.send({ type, payload, metadata: { correlation_id } });
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const f = c.frames.slice(from).find((x) => x.metadata?.correlation_id === correlation_id);
    if (f) return f;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`no answer to ${type}; saw ${c.frames.map((f) => f.type).join(',')}`);
}

const rpc = (c: RawClient, method: string, payload: unknown, timeoutMs?: number) =>
  ask(c, 'rpc', { method, payload, ...(timeoutMs ? { timeoutMs } : {}) }, (timeoutMs ?? 5000) + 5000);

async function service(url: string, methods: unknown[]): Promise<RawClient> {
  const c = await RawClient.connect(url, { token: await token({ sub: 'svc', roles: ['service'] }) });
  const f = await ask(c, 'rpc.register', { methods });
  assert.equal(f.type, 'rpc.registered', JSON.stringify(f.payload));
  return c;
}

/** Answers every `rpc.request` the service gets with `fn`'s result, until stopped. */
function serve(c: RawClient, fn: (req: any) => unknown): () => void {
  let seen = 0;
  const timer = setInterval(() => {
    const reqs = c.frames.filter((f) => f.type === 'rpc.request');
    for (; seen < reqs.length; seen++) {
      const r = reqs[seen]!.payload;
      c.send({ type: 'rpc.response', payload: { requestId: r.requestId, result: fn(r) } });
    }
  }, 5);
  return () => clearInterval(timer);
}

function rpcSuite(name: string, make: (n: number) => Promise<Cluster>) {
  describe(`RPC across nodes (${name})`, () => {
    let cluster: Cluster;
    let nodes: ApiXNode[];
    before(async () => {
      cluster = await make(3);
      nodes = cluster.nodes;
    });
    after(() => cluster.close());

    it('a call on one node is served by the service on another, with the caller named', async () => {
      const svc = await service(nodes[1]!.wsUrl, [{ name: 'agent.approve' }]);
      const stop = serve(svc, (r) => ({ approved: true, echo: r.payload, by: r.caller.userId }));
      const caller = await RawClient.connect(nodes[0]!.wsUrl, { token: await token({ sub: 'bob' }) });
      const f = await rpc(caller, 'agent.approve', { toolCallId: 't1' });
      assert.equal(f.type, 'rpc.result', JSON.stringify(f.payload));
      assert.deepEqual(f.payload.result, { approved: true, echo: { toolCallId: 't1' }, by: 'bob' });
      const req = svc.frames.find((x) => x.type === 'rpc.request')!.payload;
      assert.equal(req.method, 'agent.approve');
      assert.deepEqual(req.caller, {
        userId: 'bob',
        organizationId: 'acme',
        roles: ['member'],
        clientType: 'WEB_APP',
        connectionId: req.caller.connectionId,
      });
      // And from the third node, an error answer of the service reaches the caller with its code.
      stop();
      const caller3 = await RawClient.connect(nodes[2]!.wsUrl);
      const answered = ask(caller3, 'rpc', { method: 'agent.approve', payload: {} });
      const r = await svc.next(
        (x) => x.type === 'rpc.request' && x.payload.caller.connectionId !== req.caller.connectionId,
      );
      svc.send({
        type: 'rpc.response',
        payload: { requestId: r.payload.requestId, error: { code: 'CONFLICT', message: 'already decided' } },
      });
      const e = await answered;
      assert.equal(e.type, 'rpc.error');
      assert.deepEqual(e.payload, { code: 'CONFLICT', message: 'already decided' });
      for (const c of [svc, caller, caller3]) c.close();
    });

    it('UNAVAILABLE without a service; FORBIDDEN without one of the roles; TIMEOUT without an answer', async () => {
      const svc = await service(nodes[2]!.wsUrl, [
        { name: 'run.cancel', roles: ['admin'] },
        { name: 'run.slow' },
      ]);
      const caller = await RawClient.connect(nodes[0]!.wsUrl);
      const none = await rpc(caller, 'no.such.method', {});
      assert.equal(none.type, 'rpc.error');
      assert.equal(none.payload.code, 'UNAVAILABLE');
      const forbidden = await rpc(caller, 'run.cancel', {});
      assert.equal(forbidden.payload.code, 'FORBIDDEN');
      const admin = await RawClient.connect(nodes[1]!.wsUrl, {
        token: await token({ sub: 'ann', roles: ['admin'] }),
      });
      const stop = serve(svc, () => 'cancelled');
      assert.deepEqual((await rpc(admin, 'run.cancel', {})).payload, { result: 'cancelled' });
      stop();
      const slow = await rpc(caller, 'run.slow', {}, 300);
      assert.equal(slow.type, 'rpc.error');
      assert.equal(slow.payload.code, 'TIMEOUT');
      for (const c of [svc, caller, admin]) c.close();
    });

    it('a service that disconnects mid-call fails the call with UNAVAILABLE, and its methods go', async () => {
      const svc = await service(nodes[1]!.wsUrl, [{ name: 'agent.leave' }]);
      const caller = await RawClient.connect(nodes[0]!.wsUrl);
      const answered = ask(caller, 'rpc', { method: 'agent.leave', payload: {}, timeoutMs: 60_000 });
      await svc.nextOfType('rpc.request');
      svc.terminate();
      const f = await answered;
      assert.equal(f.type, 'rpc.error');
      assert.equal(f.payload.code, 'UNAVAILABLE');
      // Unregistered on close: the next call finds no service (not a timeout).
      let after: Frame | undefined;
      for (let i = 0; i < 100; i++) {
        after = await rpc(caller, 'agent.leave', {}, 60_000);
        if (after.payload.code === 'UNAVAILABLE') break;
      }
      assert.equal(after!.payload.code, 'UNAVAILABLE');
      caller.close();
    });

    it('a caller that leaves mid-call frees its pending slot at once (apix_rpc_pending)', async () => {
      const svc = await service(nodes[2]!.wsUrl, [{ name: 'agent.hold' }]);
      const caller = await RawClient.connect(nodes[0]!.wsUrl);
      const pending = async () =>
        (await nodes[0]!.metrics.getSingleMetric('apix_rpc_pending')!.get()).values[0]?.value;
      caller.send({
        type: 'rpc',
        payload: { method: 'agent.hold', payload: {}, timeoutMs: 600_000 },
        metadata: { correlation_id: 'hold' },
      });
      await svc.nextOfType('rpc.request');
      assert.equal(await pending(), 1);
      caller.close();
      await waitFor(async () => (await pending()) === 0, 5000, 'the pending call to be dropped');
      svc.close();
    });

    it('refuses a call without a correlation id, and a register from a client that is not a service', async () => {
      const caller = await RawClient.connect(nodes[0]!.wsUrl);
      caller.send({ type: 'rpc', payload: { method: 'x.y', payload: 1 } });
      const bad = await caller.nextOfType('rpc.error');
      assert.equal(bad.payload.code, 'BAD_REQUEST');
      const reg = await ask(caller, 'rpc.register', { methods: [{ name: 'x.y' }] });
      assert.equal(reg.type, 'rpc.error');
      assert.equal(reg.payload.code, 'FORBIDDEN');
      const badName = await ask(caller, 'rpc', { method: 'Bad Name' });
      assert.equal(badName.type, 'connection.error');
      assert.equal(badName.payload.code, 'BAD_REQUEST');
      caller.close();
    });
  });
}

rpcSuite('in-process bus', memoryCluster);

let redis: FoundRedis | undefined;
describe('redis', { skip: skipWithoutRedis() }, () => {
  before(async () => {
    redis = await findRedis();
  });
  after(() => redis?.release());
  rpcSuite('Redis', (n) => redisCluster(n, redis!.url));
});

describe('RPC over HTTP (APIX_RPC_PROXY_URL)', () => {
  let backend: BackendReceiver;
  let node: ApiXNode;
  before(async () => {
    backend = await BackendReceiver.start();
    const over: Partial<Config> = {
      rpc: { ...testConfig().rpc, proxyUrl: `${backend.url}/rpc` },
      proxy: { ...testConfig().proxy, secret: BACKEND_SECRET },
    };
    node = await startNode(over);
  });
  after(async () => {
    await node.close();
    await backend.close();
  });

  it('serves a method no service registered by a signed POST; its error keeps its code; a slow one times out', async () => {
    backend.answer = (c) =>
      c.body.method === 'billing.refund'
        ? { json: { error: { code: 'FORBIDDEN', message: 'not refundable' } } }
        : c.body.method === 'billing.slow'
          ? 'hang'
          : { json: { result: { total: 42, method: c.body.method } } };
    const caller = await RawClient.connect(node.wsUrl);
    const ok = await rpc(caller, 'billing.total', { month: 11 });
    assert.equal(ok.type, 'rpc.result');
    assert.deepEqual(ok.payload.result, { total: 42, method: 'billing.total' });
    const call = backend.calls[0]!;
    assert.equal(call.signatureError, undefined);
    assert.equal(call.path, '/rpc');
    assert.equal(call.body.kind, 'rpc');
    assert.deepEqual(call.body.payload, { month: 11 });
    assert.equal(call.body.caller.userId, 'alice');
    const refused = await rpc(caller, 'billing.refund', {});
    assert.deepEqual(refused.payload, { code: 'FORBIDDEN', message: 'not refundable' });
    const slow = await rpc(caller, 'billing.slow', {}, 300);
    assert.equal(slow.payload.code, 'TIMEOUT');
    caller.close();
  });
});

describe('RPC rate limit (APIX_RATE_RPC_PER_SEC)', () => {
  it('refuses calls over the connection’s rate with RATE_LIMITED', async () => {
    const base = testConfig().rateLimits;
    // A rate below the settings' integer step: no token comes back during the test, however slow the box.
    const node = await startNode({ rateLimits: { ...base, rpc: { perSec: 0.001, burst: 2 } } });
    try {
      const caller = await RawClient.connect(node.wsUrl);
      const codes = [];
      for (let i = 0; i < 3; i++) codes.push((await rpc(caller, 'no.service', {})).payload.code);
      assert.deepEqual(codes, ['UNAVAILABLE', 'UNAVAILABLE', 'RATE_LIMITED']);
      caller.close();
    } finally {
      await node.close();
    }
  });
});
