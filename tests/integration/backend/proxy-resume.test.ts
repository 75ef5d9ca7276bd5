/**
 * A resumed session's subscriptions are asked of the backend's subscribe proxy again (docs/backend.md
 * "Proxy calls"), against a real HTTP backend (tests/support/backend-receiver.ts): the backend allows, the
 * client subscribes, the backend then refuses, the client drops and resumes -> the subscription is removed
 * (`subscription.removed`) with the backend's code in `connection.established.denied`. On the node that
 * held the session (a resume or a takeover), and on another node restoring it from the shared store
 * (Redis). The decision cache still answers within APIX_PROXY_CACHE_MS.
 */
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, startNode } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { BackendReceiver, BACKEND_SECRET } from '../../support/backend-receiver.ts';
import { findRedis, skipWithoutRedis, uniquePrefix } from '../../support/redis.ts';
import type { FoundRedis } from '../../support/redis.ts';
import { createNode } from '../../../src/node.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { createEngines } from '../../../src/engines.ts';
import { createLogger } from '../../../src/log.ts';
import { testConfig } from '../../../src/config.ts';
import type { Config } from '../../../src/config.ts';

const CHANNEL = 'agent:resumed';

function proxyConfig(backend: BackendReceiver, cacheMs: number): Partial<Config> {
  return {
    proxy: {
      ...testConfig().proxy,
      subscribeUrl: `${backend.url}/subscribe`,
      secret: BACKEND_SECRET,
      timeoutMs: 2000,
      cacheMs,
    },
  };
}

/** The backend allows CHANNEL until `refuse` is set, then refuses it with its own code. */
function backendDecides(backend: BackendReceiver, state: { refuse: boolean }): void {
  backend.answer = (c) =>
    state.refuse && c.body.channel === CHANNEL
      ? { json: { error: { code: 'NOT_FOUND', message: 'agent deleted' } } }
      : { json: { result: {} } };
}

const established = (c: RawClient): Frame => c.frames.find((f) => f.type === 'connection.established')!;

/** Subscribes on `first`, drops, the backend changes its mind, resumes on `second`: the resumed client. */
async function dropAndResume(
  first: ApiXNode,
  second: ApiXNode,
  state: { refuse: boolean },
  sessionId: string,
): Promise<RawClient> {
  const c = await RawClient.connect(first.wsUrl, { sessionId, subscriptions: [CHANNEL] });
  assert.deepEqual(established(c).payload.subscriptions, [CHANNEL]);
  c.terminate();
  await c.waitClosed();
  state.refuse = true;
  return RawClient.connect(second.wsUrl, { sessionId });
}

async function assertRevoked(c: RawClient, backend: BackendReceiver): Promise<void> {
  const f = established(c);
  assert.equal(f.payload.resumed, true, JSON.stringify(f.payload));
  assert.deepEqual(f.payload.subscriptions, []);
  assert.deepEqual(f.payload.denied, [{ channel: CHANNEL, code: 'NOT_FOUND', message: 'agent deleted' }]);
  const removed = await c.nextOfType('subscription.removed');
  assert.deepEqual(removed.payload.channels, [CHANNEL]);
  const calls = backend.callsTo('subscribe');
  assert.ok(calls.length >= 2, `the backend was asked ${calls.length} time(s)`);
  assert.ok(calls.every((x) => x.signatureError === undefined && x.body.channel === CHANNEL));
}

describe('subscribe proxy on a resume (same node)', () => {
  let backend: BackendReceiver;
  const state = { refuse: false };
  before(async () => {
    backend = await BackendReceiver.start();
  });
  after(() => backend.close());
  beforeEach(() => {
    state.refuse = false;
    backend.calls.length = 0;
    backendDecides(backend, state);
  });

  it('a refusal after the client left revokes the subscription with the backend’s code', async () => {
    const node = await startNode(proxyConfig(backend, 0));
    try {
      const c = await dropAndResume(node, node, state, `s-${Math.random().toString(36).slice(2)}`);
      await assertRevoked(c, backend);
      c.close();
    } finally {
      await node.close();
    }
  });

  it('within APIX_PROXY_CACHE_MS the cached allow keeps it (the backend is not asked again)', async () => {
    const node = await startNode(proxyConfig(backend, 600_000));
    try {
      const c = await dropAndResume(node, node, state, `s-${Math.random().toString(36).slice(2)}`);
      const f = established(c);
      assert.equal(f.payload.resumed, true);
      assert.deepEqual(f.payload.subscriptions, [CHANNEL]);
      assert.deepEqual(f.payload.denied, []);
      assert.equal(backend.callsTo('subscribe').length, 1);
      c.close();
    } finally {
      await node.close();
    }
  });
});

let redis: FoundRedis | undefined;
describe('subscribe proxy on a resume on another node (Redis)', { skip: skipWithoutRedis() }, () => {
  let backend: BackendReceiver;
  const nodes: ApiXNode[] = [];
  const state = { refuse: false };
  before(async () => {
    redis = await findRedis();
    backend = await BackendReceiver.start();
    backendDecides(backend, state);
    const prefix = uniquePrefix();
    for (const id of ['ra', 'rb']) {
      const cfg = config({
        nodeId: id,
        redisUrl: redis.url,
        redisPrefix: prefix,
        ...proxyConfig(backend, 0),
      });
      const engines = await createEngines(cfg, { nodeId: id });
      const node = createNode({ config: cfg, logger: createLogger('silent', id), engines });
      await node.listen();
      nodes.push(node);
    }
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.close()));
    await backend.close();
    await redis?.release();
  });

  it('the node restoring the snapshot asks the backend, and its refusal revokes the subscription', async () => {
    const c = await dropAndResume(nodes[0]!, nodes[1]!, state, `s-${Math.random().toString(36).slice(2)}`);
    await assertRevoked(c, backend);
    c.close();
  });
});
