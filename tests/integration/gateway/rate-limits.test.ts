/**
 * Rate limits on one node (docs/security.md#rate-limits): publishes per connection, per channel and per
 * organization (WebSocket and HTTP), subscribes per organization, connection attempts per address, and
 * what repeated refusals lead to (4008, or suspension with 4011). Rates are 1/s so that the refill
 * cannot blur the counts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { RawClient, config, startNode, token } from '../../support/gateway.ts';
import type { Frame } from '../../support/gateway.ts';
import type { Config } from '../../../src/config.ts';
import type { HookEvents } from '../../../src/hooks.ts';

/** Agent events are published by services (members only read agent channels). */
const agentService = () => token({ sub: 'agent-svc', roles: ['service'] });

type Limits = Config['rateLimits'];
const OFF = { perSec: 0, burst: 1 };
/** Every limit off except the ones given (and the abuse rule, which stays at its default unless given). */
function limits(over: Partial<Limits>): Limits {
  const base = config().rateLimits;
  return {
    ...base,
    connection: OFF,
    publish: OFF,
    channel: OFF,
    orgPublish: OFF,
    orgSubscribe: OFF,
    address: OFF,
    ...over,
  };
}

async function withNode(
  rateLimits: Limits,
  fn: (node: Awaited<ReturnType<typeof startNode>>, limited: HookEvents['onRateLimited'][]) => Promise<void>,
): Promise<void> {
  const limited: HookEvents['onRateLimited'][] = [];
  const node = await startNode({ rateLimits }, { hooks: [{ onRateLimited: (e) => limited.push(e) }] });
  try {
    await fn(node, limited);
  } finally {
    await node.close();
  }
}

async function publishN(c: RawClient, channel: string, n: number): Promise<Frame[]> {
  const replies: Frame[] = [];
  for (let i = 0; i < n; i++) replies.push(await c.publish(channel, 'note', { i }));
  return replies;
}

const failed = (f: Frame) => f.type === 'message.failed' && f.payload.code === 'RATE_LIMITED';

describe('rate limits', () => {
  it('publishes per connection: the burst passes, then message.failed RATE_LIMITED with retryAfterMs; onRateLimited once per burst', async () => {
    await withNode(limits({ publish: { perSec: 1, burst: 3 } }), async (node, limited) => {
      const c = await RawClient.connect(node.wsUrl, { token: await agentService() });
      const replies = await publishN(c, 'agent:a', 6);
      assert.deepEqual(
        replies.map((r) => r.type),
        [
          'message.sent',
          'message.sent',
          'message.sent',
          'message.failed',
          'message.failed',
          'message.failed',
        ],
      );
      const f = replies[3]!;
      assert.equal(f.payload.code, 'RATE_LIMITED');
      assert.equal(f.payload.channel, 'agent:a');
      assert.ok(f.payload.retryAfterMs > 0 && f.payload.retryAfterMs <= 1000, JSON.stringify(f.payload));
      assert.deepEqual(
        limited.map((e) => e.scope),
        ['publish'],
      );
      assert.equal(limited[0]!.principal?.userId, 'agent-svc');
      // Another connection has its own bucket.
      const d = await RawClient.connect(node.wsUrl, { token: await agentService() });
      assert.equal((await d.publish('agent:a', 'note', {})).type, 'message.sent');
      c.close();
      d.close();
    });
  });

  it('publishes per channel: shared by every publisher of the organization; other channels and organizations unaffected', async () => {
    await withNode(limits({ channel: { perSec: 1, burst: 4 } }), async (node, limited) => {
      const a = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'a', roles: ['service'] }) });
      const b = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'b', roles: ['service'] }) });
      const other = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'x', org: 'globex', roles: ['service'] }),
      });
      const sent = [...(await publishN(a, 'agent:hot', 2)), ...(await publishN(b, 'agent:hot', 2))];
      assert.ok(sent.every((r) => r.type === 'message.sent'));
      assert.ok(failed(await a.publish('agent:hot', 'note', {})));
      assert.ok(failed(await b.publish('agent:hot', 'note', {})));
      assert.equal((await a.publish('agent:cold', 'note', {})).type, 'message.sent');
      assert.equal((await other.publish('agent:hot', 'note', {})).type, 'message.sent');
      assert.deepEqual(
        limited.map((e) => e.scope),
        ['channel'],
      );
      for (const c of [a, b, other]) c.close();
    });
  });

  it('publishes per organization, over WebSocket and HTTP: 429 with Retry-After and {code, message, retryAfterMs}', async () => {
    await withNode(limits({ orgPublish: { perSec: 1, burst: 3 } }), async (node, limited) => {
      const c = await RawClient.connect(node.wsUrl, { token: await agentService() });
      assert.ok((await publishN(c, 'agent:one', 2)).every((r) => r.type === 'message.sent'));
      const http = (channel: string, key = 'apix_static_acmekey') =>
        fetch(`${node.httpUrl}/v1/publish`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
          body: JSON.stringify({ channel, type: 'note', payload: {} }),
        });
      assert.equal((await http('agent:two')).status, 200);
      const res = await http('agent:three');
      assert.equal(res.status, 429);
      const retryAfter = Number(res.headers.get('retry-after'));
      assert.ok(retryAfter >= 1, `Retry-After ${retryAfter}`);
      const body = (await res.json()) as { code: string; message: string; retryAfterMs: number };
      assert.equal(body.code, 'RATE_LIMITED');
      assert.match(body.message, /organization/);
      assert.ok(body.retryAfterMs > 0 && body.retryAfterMs <= 1000);
      // The same organization's bucket refuses the WebSocket too. It refills a token a second: on a busy
      // machine a second may pass before this publish, so a few tries (each well within the next second).
      let f = await c.publish('agent:four', 'note', {});
      for (let i = 0; i < 3 && !failed(f); i++) f = await c.publish('agent:four', 'note', {});
      assert.ok(failed(f), JSON.stringify(f));
      assert.ok(limited.length >= 1);
      assert.deepEqual(new Set(limited.map((e) => e.scope)), new Set(['org']));
      c.close();
    });
  });

  it('subscribes per organization: denied with RATE_LIMITED in subscription.added (and in connect), the connection stays', async () => {
    await withNode(limits({ orgSubscribe: { perSec: 1, burst: 3 } }), async (node, limited) => {
      const c = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:a'] });
      const r = await c.subscribe({ channels: ['agent:b', 'agent:c', 'agent:d', 'agent:e'] });
      assert.equal(r.type, 'subscription.added');
      assert.deepEqual(
        r.payload.channels.map((x: { channel: string }) => x.channel),
        ['agent:b', 'agent:c'],
      );
      assert.deepEqual(
        r.payload.denied.map((d: { channel: string; code: string }) => [d.channel, d.code]),
        [
          ['agent:d', 'RATE_LIMITED'],
          ['agent:e', 'RATE_LIMITED'],
        ],
      );
      assert.ok(r.payload.denied[0].retryAfterMs > 0);
      // Already subscribed: no token needed.
      assert.deepEqual((await c.subscribe({ channels: ['agent:a'] })).payload.denied, []);
      const d = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:f'] });
      const est = d.frames.find((f) => f.type === 'connection.established')!;
      assert.equal(est.payload.denied[0].code, 'RATE_LIMITED');
      assert.equal(c.closed, undefined);
      assert.deepEqual(
        limited.map((e) => e.scope),
        ['org'],
      );
      c.close();
      d.close();
    });
  });

  it('connection attempts per address: 429 with Retry-After at the upgrade, before any other check', async () => {
    await withNode(limits({ address: { perSec: 1, burst: 2 } }), async (node, limited) => {
      const a = await RawClient.open(node.wsUrl);
      const b = await RawClient.open(node.wsUrl);
      const res = await new Promise<{ status: number; retryAfter: string | undefined; body: string }>(
        (resolve, reject) => {
          // A bad subprotocol would be a 400: the address limit answers first.
          const ws = new WebSocket(node.wsUrl, ['nope']);
          ws.on('unexpected-response', (_req, r) => {
            let body = '';
            r.on('data', (d: Buffer) => (body += d.toString()));
            r.on('end', () =>
              resolve({ status: r.statusCode ?? 0, retryAfter: r.headers['retry-after'], body }),
            );
          });
          ws.on('open', () => reject(new Error('upgraded')));
          ws.on('error', () => {});
        },
      );
      assert.equal(res.status, 429);
      assert.equal(res.retryAfter, '1');
      const body = JSON.parse(res.body) as { code: string; retryAfterMs: number };
      assert.equal(body.code, 'RATE_LIMITED');
      assert.ok(body.retryAfterMs > 0);
      await assert.rejects(RawClient.open(node.wsUrl), /HTTP 429/);
      assert.deepEqual(
        limited.map((e) => e.scope),
        ['address'],
      );
      assert.equal(node.gateway.connections.size, 2);
      a.close();
      b.close();
    });
  });

  it('repeated refusals close the connection with 4008 (connection.disconnected RATE_LIMITED)', async () => {
    const rl = limits({
      publish: { perSec: 1, burst: 1 },
      abuse: { refusals: 5, windowMs: 10_000, suspend: false },
    });
    await withNode(rl, async (node) => {
      const c = await RawClient.connect(node.wsUrl, { token: await agentService() });
      for (let i = 0; i < 6; i++) c.send({ type: 'note', channel: 'agent:a', payload: { i } });
      const d = await c.nextOfType('connection.disconnected');
      assert.equal(d.payload.code, 'RATE_LIMITED');
      assert.equal(d.payload.reconnect, false);
      assert.equal((await c.waitClosed()).code, 4008);
      assert.equal(c.frames.filter(failed).length, 5);
      // Not suspended: the same session may come back.
      const again = await RawClient.connect(node.wsUrl, { sessionId: 'back' });
      again.close();
    });
  });

  it('with APIX_SUSPEND_ON_ABUSE the session is suspended (4011) and refused when it comes back', async () => {
    const rl = limits({
      orgSubscribe: { perSec: 1, burst: 1 },
      abuse: { refusals: 3, windowMs: 10_000, suspend: true },
    });
    const suspends: HookEvents['onSuspend'][] = [];
    const node = await startNode({ rateLimits: rl }, { hooks: [{ onSuspend: (e) => suspends.push(e) }] });
    try {
      const c = await RawClient.connect(node.wsUrl, { sessionId: 'greedy', subscriptions: ['agent:a'] });
      for (let i = 0; i < 3; i++) await c.subscribe({ channels: [`agent:x${i}`] });
      const d = await c.nextOfType('connection.disconnected');
      assert.match(d.payload.reason, /abuse/);
      assert.equal((await c.waitClosed()).code, 4011);
      assert.equal(suspends.length, 1);
      assert.equal(suspends[0]!.sessionId, 'greedy');
      const back = await RawClient.open(node.wsUrl);
      back.send({
        type: 'connect',
        payload: {
          sessionId: 'greedy',
          clientType: 'WEB_APP',
          authentication: { token: await token() },
          subscriptions: [],
        },
      });
      assert.equal((await back.waitClosed()).code, 4011);
      // Another session of the same user is not affected.
      const other = await RawClient.connect(node.wsUrl, { sessionId: 'polite' });
      other.close();
    } finally {
      await node.close();
    }
  });

  it('inbound frames per connection come from APIX_RATE_CONNECTION_*: refused frames answer connection.error, then 4008', async () => {
    const rl = limits({
      connection: { perSec: 1, burst: 3 },
      abuse: { refusals: 4, windowMs: 10_000, suspend: false },
    });
    await withNode(rl, async (node, limited) => {
      const c = await RawClient.connect(node.wsUrl); // the connect frame takes one token
      for (let i = 0; i < 8; i++) c.send({ type: 'heartbeat.ping', payload: { ts: i } });
      assert.equal((await c.waitClosed()).code, 4008);
      const err = c.frames.find((f) => f.type === 'connection.error')!;
      assert.equal(err.payload.code, 'RATE_LIMITED');
      assert.equal(err.payload.fatal, false);
      assert.deepEqual(
        limited.map((e) => e.scope),
        ['connection'],
      );
    });
  });
});
