/**
 * Proxy calls (docs/backend.md "Proxy calls") against a real HTTP backend (tests/support/backend-receiver.ts):
 * connect, subscribe and publish decided by the backend, its refusal's code sent on to the client, the
 * failure policy when it is slow, down or answers garbage, the subscribe decision cache, and every decision
 * on the audit hook.
 */
import { describe, it, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import { BackendReceiver, BACKEND_SECRET } from '../../support/backend-receiver.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import type { HookEvents } from '../../../src/hooks.ts';
import { testConfig } from '../../../src/config.ts';

type Decision = HookEvents['onProxyDecision'];

async function connectFrame(url: string, extra: Record<string, unknown> = {}): Promise<[RawClient, Frame]> {
  const c = await RawClient.open(url);
  c.send({
    type: 'connect',
    payload: {
      sessionId: `s-${Math.random().toString(36).slice(2)}`,
      clientType: 'WEB_APP',
      authentication: { token: await token() },
      subscriptions: [],
      ...extra,
    },
  });
  const f = await c.next((f) => f.type === 'connection.established' || f.type === 'connection.error');
  return [c, f];
}

function proxyConfig(backend: BackendReceiver, over: Partial<Config['proxy']> = {}): Partial<Config> {
  return {
    proxy: {
      ...testConfig().proxy,
      connectUrl: `${backend.url}/connect`,
      subscribeUrl: `${backend.url}/subscribe`,
      publishUrl: `${backend.url}/publish`,
      secret: BACKEND_SECRET,
      timeoutMs: 500,
      ...over,
    },
  };
}

describe('proxy calls', () => {
  let backend: BackendReceiver;
  let node: ApiXNode;
  const decisions: Decision[] = [];
  before(async () => {
    backend = await BackendReceiver.start();
    node = await startNode(proxyConfig(backend), {
      hooks: [{ onProxyDecision: (d) => void decisions.push(d) }],
    });
  });
  after(async () => {
    await node.close();
    await backend.close();
  });
  beforeEach(() => {
    backend.calls.length = 0;
    decisions.length = 0;
    backend.answer = () => ({ json: { result: {} } });
  });

  it('connect: the backend gets the principal, signed, and its changes apply', async () => {
    const expiresAt = Date.now() + 60_000;
    backend.answer = (c) =>
      c.body.kind === 'connect'
        ? { json: { result: { channels: ['agent:extra'], data: { plan: 'pro' }, expiresAt } } }
        : { json: { result: {} } };
    const [c, f] = await connectFrame(node.wsUrl, { subscriptions: ['agent:a1'] });
    assert.equal(f.type, 'connection.established', JSON.stringify(f.payload));
    assert.deepEqual(f.payload.data, { plan: 'pro' });
    assert.deepEqual([...f.payload.subscriptions].sort(), ['agent:a1', 'agent:extra']);
    assert.equal(f.payload.expiresAt, Math.ceil(expiresAt / 1000) * 1000);
    const call = backend.callsTo('connect')[0]!;
    assert.equal(call.signatureError, undefined);
    assert.equal(call.path, '/connect');
    assert.equal(call.body.principal.userId, 'alice');
    assert.equal(call.body.principal.organizationId, 'acme');
    assert.deepEqual(call.body.principal.roles, ['member']);
    assert.deepEqual(call.body.subscriptions, ['agent:a1']);
    // The subscribe proxy was asked about the client's channel, not about the one the backend added.
    assert.deepEqual(
      backend.callsTo('subscribe').map((s) => s.body.channel),
      ['agent:a1'],
    );
    assert.ok(decisions.some((d) => d.kind === 'connect' && d.allowed && d.source === 'backend'));
    c.close();
  });

  it("connect: the backend's refusal reaches the client with its code, and is audited", async () => {
    backend.answer = () => ({ json: { error: { code: 'FORBIDDEN', message: 'plan expired' } } });
    const [c, f] = await connectFrame(node.wsUrl);
    assert.equal(f.type, 'connection.error');
    assert.equal(f.payload.code, 'FORBIDDEN');
    assert.equal(f.payload.message, 'plan expired');
    assert.equal(f.payload.fatal, true);
    await c.waitClosed();
    const d = decisions.find((x) => x.kind === 'connect')!;
    assert.equal(d.allowed, false);
    assert.equal(d.code, 'FORBIDDEN');
    assert.equal(d.source, 'backend');
  });

  it('subscribe: a refusal per channel with its code; an unknown code becomes FORBIDDEN; decisions are cached', async () => {
    backend.answer = (c) => {
      if (c.body.kind !== 'subscribe') return { json: { result: {} } };
      if (c.body.channel === 'agent:limited')
        return { json: { error: { code: 'RATE_LIMITED', message: 'slow down' } } };
      if (c.body.channel === 'agent:secret')
        return { json: { error: { code: 'NOT_YOURS', message: 'not your agent' } } };
      return { json: { result: {} } };
    };
    const [c] = await connectFrame(node.wsUrl);
    const added = await c.subscribe({ channels: ['agent:ok', 'agent:limited', 'agent:secret'] });
    assert.deepEqual(
      added.payload.channels.map((x: { channel: string }) => x.channel),
      ['agent:ok'],
    );
    const denied = Object.fromEntries(
      added.payload.denied.map((d: { channel: string; code: string }) => [d.channel, d.code]),
    );
    assert.deepEqual(denied, { 'agent:limited': 'RATE_LIMITED', 'agent:secret': 'FORBIDDEN' });
    const asked = backend.callsTo('subscribe').length;
    // The same user asks again (another connection): answered from the cache, audited as such.
    const [c2] = await connectFrame(node.wsUrl);
    const again = await c2.subscribe({ channels: ['agent:ok', 'agent:secret'] });
    assert.deepEqual(
      again.payload.channels.map((x: { channel: string }) => x.channel),
      ['agent:ok'],
    );
    assert.equal(backend.callsTo('subscribe').length, asked);
    assert.equal(decisions.filter((d) => d.kind === 'subscribe' && d.source === 'cache').length, 2);
    c.close();
    c2.close();
  });

  it('publish: the backend may replace the payload, or refuse with its code', async () => {
    backend.answer = (c) => {
      if (c.body.kind !== 'publish') return { json: { result: {} } };
      if (c.body.payload?.status === 'bad')
        return { json: { error: { code: 'BAD_REQUEST', message: 'status not allowed' } } };
      return { json: { result: { data: { ...c.body.payload, checked: true } } } };
    };
    const [sub] = await connectFrame(node.wsUrl, { subscriptions: ['agent:pub'] });
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'agent-svc', roles: ['service'] }),
    });
    const ok = await pub.publish('agent:pub', 'agent_status_update', { agentId: 'a1', status: 'running' });
    assert.equal(ok.type, 'message.sent');
    const [event] = await sub.waitForEvents(1, 'agent:pub');
    assert.deepEqual(event!.payload, { agentId: 'a1', status: 'running', checked: true });
    const refused = await pub.publish('agent:pub', 'custom_event', { status: 'bad' });
    assert.equal(refused.type, 'message.failed');
    assert.equal(refused.payload.code, 'BAD_REQUEST');
    assert.equal(refused.payload.message, 'status not allowed');
    // Over HTTP too: the same refusal, as the HTTP status of its code.
    const http = await fetch(`${node.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await token({ sub: 'agent-svc', roles: ['service'] })}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ channel: 'agent:pub', type: 'custom_event', payload: { status: 'bad' } }),
    });
    assert.equal(http.status, 400);
    assert.equal(((await http.json()) as { code: string }).code, 'BAD_REQUEST');
    const call = backend.callsTo('publish')[0]!;
    assert.equal(call.body.channel, 'agent:pub');
    assert.equal(call.body.type, 'agent_status_update');
    assert.equal(call.body.principal.userId, 'agent-svc');
    sub.close();
    pub.close();
  });
});

describe('proxy calls: a backend that is slow, down or answers garbage', () => {
  let backend: BackendReceiver;
  before(async () => {
    backend = await BackendReceiver.start();
  });
  after(() => backend.close());

  for (const [what, answer] of [
    ['slow', () => 'hang' as const],
    ['garbage', () => ({ raw: '<html>oops</html>' })],
    ['a 500', () => ({ raw: 'boom', status: 500 })],
    ['a result that is not an object', () => ({ json: { result: 42 } })],
  ] as const)
    it(`deny policy: a ${what} backend refuses with UNAVAILABLE and the node stays healthy`, async () => {
      const decisions: Decision[] = [];
      backend.answer = answer;
      const node = await startNode(proxyConfig(backend, { timeoutMs: 200 }), {
        hooks: [{ onProxyDecision: (d) => void decisions.push(d) }],
      });
      try {
        const [c, f] = await connectFrame(node.wsUrl);
        assert.equal(f.type, 'connection.error');
        assert.equal(f.payload.code, 'UNAVAILABLE');
        assert.match(f.payload.message, /connect proxy failed/);
        await c.waitClosed();
        assert.equal(decisions[0]?.source, 'policy');
        assert.equal(decisions[0]?.allowed, false);
        const health = await fetch(`${node.httpUrl}/healthz`);
        assert.equal(health.status, 200);
      } finally {
        await node.close();
      }
    });

  it('allow policy: a backend that is down lets the connection through, audited as the policy', async () => {
    const decisions: Decision[] = [];
    const down = await BackendReceiver.start();
    await down.close();
    const node = await startNode(proxyConfig(down, { failurePolicy: 'allow' }), {
      hooks: [{ onProxyDecision: (d) => void decisions.push(d) }],
    });
    try {
      const [c, f] = await connectFrame(node.wsUrl, { subscriptions: ['agent:a1'] });
      assert.equal(f.type, 'connection.established');
      assert.deepEqual(f.payload.subscriptions, ['agent:a1']);
      assert.ok(decisions.length >= 2);
      assert.ok(decisions.every((d) => d.allowed && d.source === 'policy'));
      c.close();
    } finally {
      await node.close();
    }
  });
});
