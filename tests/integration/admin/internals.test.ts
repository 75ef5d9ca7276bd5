/**
 * GET /v1/admin/internals (what the soak samples): admin only; memory, handles, the gateway's counters
 * and the sizes of the node's collections, which go back down when the clients leave.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';

async function internals(node: ApiXNode, auth?: string) {
  const r = await fetch(`${node.httpUrl}/v1/admin/internals?gc=1`, {
    headers: auth ? { authorization: `Bearer ${auth}` } : {},
  });
  return { status: r.status, body: (await r.json()) as any };
}

describe('GET /v1/admin/internals', () => {
  let node: ApiXNode;
  before(async () => {
    // The per-user cap is on here (it is off by default) so that its counts show in the sizes.
    node = await startNode({ sessionTtlMs: 0, connectionCaps: { perAddress: 100, perUser: 10, perOrg: 0 } });
  });
  after(() => node.close());

  it('no token -> 401; a member -> 403 FORBIDDEN; an admin -> 200 with memory, handles, counters and sizes', async () => {
    assert.equal((await internals(node)).status, 401);
    const member = await internals(node, await token({ sub: 'm' }));
    assert.equal(member.status, 403);
    assert.equal(member.body.code, 'FORBIDDEN');

    const admin = await token({ sub: 'root', roles: ['admin'] });
    const idle = await internals(node, admin);
    assert.equal(idle.status, 200);
    assert.equal(typeof idle.body.memory.heapUsed, 'number');
    assert.equal(typeof idle.body.handles, 'number');
    assert.equal(idle.body.gc, typeof (globalThis as { gc?: unknown }).gc === 'function');
    assert.equal(idle.body.counters.connections, 0);

    const c = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'alice' }),
      sessionId: 's1',
      subscriptions: ['agent:a', 'room:r'],
    });
    const busy = (await internals(node, admin)).body;
    assert.equal(busy.counters.connections, 1);
    assert.equal(busy.counters.sessions, 1);
    assert.equal(busy.counters.subscriptions, 2);
    assert.equal(busy.sizes['gateway.connections'], 1);
    assert.equal(busy.sizes['gateway.perUser'], 1);
    assert.equal(busy.sizes['engines.presence.local'], 1);
    // Sizes only: no key or value of any collection is in the answer.
    assert.doesNotMatch(JSON.stringify(busy), /alice|agent:a|room:r/);

    c.close();
    for (let i = 0; i < 100 && (await internals(node, admin)).body.counters.connections > 0; i++)
      await new Promise((r) => setTimeout(r, 20));
    const after = (await internals(node, admin)).body;
    assert.equal(after.counters.connections, 0);
    assert.equal(after.counters.sessions, 0);
    assert.equal(after.counters.subscriptions, 0);
    assert.equal(after.sizes['gateway.perUser'], 0);
    assert.equal(after.sizes['engines.presence.local'], 0);
  });
});
