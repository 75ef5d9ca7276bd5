import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { RawClient, config, startNode, token, sleep } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';

/** Agent, tool and workflow events are published by services (members only read those channels). */
const agentService = () => token({ sub: 'agent-svc', roles: ['service'] });

describe('publish and fan-out', () => {
  let node: ApiXNode;
  before(async () => {
    // ops is the platform's organization here: its services publish to the shared system: channels.
    node = await startNode({ auth: { ...config().auth, platformOrgs: ['ops'] } });
  });
  after(() => node.close());

  it('delivers every event to every subscriber, in publish order, with ordered ids', async () => {
    const subs = await Promise.all(
      Array.from({ length: 5 }, async (_, i) =>
        RawClient.connect(node.wsUrl, {
          token: await token({ sub: `u${i}` }),
          subscriptions: ['workflow:w1'],
        }),
      ),
    );
    const pub = await RawClient.connect(node.wsUrl, { token: await agentService() });
    const N = 200;
    for (let i = 0; i < N; i++)
      pub.send({
        type: 'workflow_state_change',
        channel: 'workflow:w1',
        payload: { workflowId: 'w1', to: `s${i}` },
      });
    for (const s of subs) {
      const events = await s.waitForEvents(N, 'workflow:w1');
      assert.deepEqual(
        events.map((e) => e.payload.to),
        Array.from({ length: N }, (_, i) => `s${i}`),
      );
      const ids = events.map((e) => e.id!.split('-').map(Number) as [number, number]);
      for (let i = 1; i < ids.length; i++) {
        const [am, as] = ids[i - 1]!;
        const [bm, bs] = ids[i]!;
        assert.ok(bm > am || (bm === am && bs > as), `ids increase: ${events[i - 1]!.id} < ${events[i]!.id}`);
      }
      assert.equal(events[0]!.type, 'workflow_state_change');
      assert.equal(typeof events[0]!.metadata.timestamp, 'number');
      assert.equal(events[0]!.metadata.version, '1');
      s.close();
    }
    pub.close();
  });

  it('answers message.sent with the event id and echoes correlation_id', async () => {
    const c = await RawClient.connect(node.wsUrl, {
      token: await agentService(),
      subscriptions: ['agent:a1'],
    });
    const reply = await c.publish('agent:a1', 'agent_status_update', { agentId: 'a1', status: 'running' });
    assert.equal(reply.type, 'message.sent');
    const ev = c.frames.find((f) => f.channel === 'agent:a1' && f.id === reply.payload.id);
    assert.ok(ev, 'the publisher, subscribed, received its own event');
    const traced = await c.publish('agent:a1', 'note', {}, { trace_id: 't-1' });
    const tev = c.frames.find((f) => f.id === traced.payload.id)!;
    assert.equal(tev.metadata.trace_id, 't-1', 'custom metadata travels with the event');
    assert.equal(tev.metadata.correlation_id, undefined, 'correlation ids stay between publisher and server');
    c.close();
  });

  it('checks domain payloads and names the bad field', async () => {
    const c = await RawClient.connect(node.wsUrl, { token: await agentService() });
    const r = await c.publish('tool:t1', 'tool_call_start', { toolName: 'search' });
    assert.equal(r.type, 'message.failed');
    assert.equal(r.payload.code, 'BAD_REQUEST');
    assert.match(r.payload.message, /payload\.toolCallId/);
    const ok = await c.publish('tool:t1', 'custom.event_x', { anything: [1, 2, 3] });
    assert.equal(ok.type, 'message.sent');
    c.close();
  });

  it('refuses reserved control types and bad event types', async () => {
    const c = await RawClient.connect(node.wsUrl, { token: await agentService() });
    for (const type of ['message.sent', 'connection.established', 'subscription.added', 'Bad-Type', '1abc']) {
      const r = await c.publish('agent:a1', type, {});
      assert.equal(r.type, 'message.failed', type);
      assert.equal(r.payload.code, 'BAD_REQUEST', type);
    }
    // Without a channel, an unknown type is a bad frame, and the connection stays up.
    c.send({ type: 'no_such_command', payload: {} });
    const err = await c.nextOfType('connection.error');
    assert.equal(err.payload.fatal, false);
    assert.equal((await c.publish('agent:a1', 'note', {})).type, 'message.sent');
    c.close();
  });

  it('applies the default permission rules', async () => {
    const member = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'm' }) });
    const viewer = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'v', roles: ['viewer'] }),
    });
    const admin = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'adm', roles: ['admin'] }),
    });
    const service = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'svc', roles: ['service'] }),
    });
    const expect = async (c: RawClient, channel: string, type: string, payload: unknown, outcome: string) => {
      const r = await c.publish(channel, type, payload);
      assert.equal(r.type, outcome, `${channel} ${type}: ${JSON.stringify(r.payload)}`);
      if (outcome === 'message.failed') assert.equal(r.payload.code, 'FORBIDDEN');
    };
    const note = { level: 'info', message: 'x' };
    await expect(member, 'system:all', 'system_notification', note, 'message.failed');
    await expect(admin, 'system:all', 'system_notification', note, 'message.failed');
    await expect(service, 'system:all', 'system_notification', note, 'message.failed'); // not the platform's
    await expect(member, 'org', 'note', {}, 'message.failed');
    await expect(admin, 'org', 'note', {}, 'message.sent');
    await expect(
      member,
      'provider:openai',
      'provider_health_update',
      { providerId: 'openai', status: 'down' },
      'message.failed',
    );
    await expect(
      service,
      'provider:openai',
      'provider_health_update',
      { providerId: 'openai', status: 'down' },
      'message.sent',
    );
    await expect(viewer, 'agent:a1', 'note', {}, 'message.failed');
    await expect(member, 'agent:a1', 'note', {}, 'message.failed');
    await expect(member, 'tool:t1', 'note', {}, 'message.failed');
    await expect(member, 'workflow:w1', 'note', {}, 'message.failed');
    await expect(admin, 'agent:a1', 'note', {}, 'message.sent');
    await expect(service, 'agent:a1', 'note', {}, 'message.sent');
    await expect(member, 'room:r1', 'note', {}, 'message.sent');
    await expect(member, 'user:m', 'note', {}, 'message.sent');
    await expect(member, 'user:other', 'note', {}, 'message.failed');
    await expect(service, 'user:other', 'note', {}, 'message.sent');
    const sub = await viewer.subscribe({
      channels: ['system:all', 'agent:a1', 'user:v', 'user:m', 'room:r1', 'bogus:x', 'a::b'],
    });
    assert.deepEqual(sub.payload.channels.map((c: { channel: string }) => c.channel).sort(), [
      'agent:a1',
      'room:r1',
      'system:all',
      'user:v',
    ]);
    assert.deepEqual(
      sub.payload.denied.map((d: { channel: string; code: string }) => `${d.channel}=${d.code}`).sort(),
      ['a::b=BAD_REQUEST', 'bogus:x=BAD_REQUEST', 'user:m=FORBIDDEN'],
    );
    for (const c of [member, viewer, admin, service]) c.close();
  });

  it('enforces channel permission overrides', async () => {
    await node.gateway['deps'].channels.set('acme', 'agent:secret', {
      permissions: { subscribe: { roles: ['admin'] }, publish: { roles: ['admin'] } },
    });
    const member = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'm2' }) });
    const admin = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'a2', roles: ['admin'] }),
    });
    const s = await member.subscribe({ channels: ['agent:secret'] });
    assert.equal(s.payload.denied[0].code, 'FORBIDDEN');
    assert.equal((await member.publish('agent:secret', 'note', {})).type, 'message.failed');
    const s2 = await admin.subscribe({ channels: ['agent:secret'] });
    assert.equal(s2.payload.channels[0].channel, 'agent:secret');
    assert.equal((await admin.publish('agent:secret', 'note', {})).type, 'message.sent');
    member.close();
    admin.close();
  });

  it('subscribe then unsubscribe in back-to-back frames ends unsubscribed (the unsubscribe waits for the subscribe)', async () => {
    const c = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'racer' }) });
    for (let round = 0; round < 20; round++) {
      c.send({ type: 'subscribe', payload: { channels: ['agent:race', 'room:race'] } });
      c.send({ type: 'unsubscribe', payload: { channels: ['agent:race', 'room:race'] } });
    }
    c.send({ type: 'subscribe', payload: { channels: ['agent:keep'] } });
    await c.next((f) => f.type === 'subscription.added' && JSON.stringify(f.payload).includes('agent:keep'));
    const sessions = [...node.gateway.sessions.values()].filter((s) => s.userId === 'racer');
    assert.equal(sessions.length, 1);
    assert.deepEqual(
      [...sessions[0]!.subscriptions.values()].map((sub) => sub.name),
      ['agent:keep'],
      'only the channel never unsubscribed is left',
    );
    const pub = await RawClient.connect(node.wsUrl, { token: await agentService() });
    await pub.publish('agent:race', 'note', { late: true });
    await pub.publish('agent:keep', 'note', { kept: true });
    await c.next((f) => f.channel === 'agent:keep');
    assert.equal(c.events('agent:race').length, 0, 'nothing arrives on the unsubscribed channel');
    c.close();
    pub.close();
  });
});

describe('tenant isolation', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({ auth: { ...config().auth, platformOrgs: ['ops'] } }); // ops: the platform
  });
  after(() => node.close());

  it('never delivers one organization’s events to another, whatever the channel is called', async () => {
    const spellings = ['agent:a1', 'org', 'room:r1', 'tool:t'];
    const acme = await RawClient.connect(node.wsUrl, {
      token: await token({ org: 'acme', sub: 'x' }),
      subscriptions: spellings,
    });
    const globex = await RawClient.connect(node.wsUrl, {
      token: await token({ org: 'globex', sub: 'x', roles: ['admin'] }),
      subscriptions: spellings,
    });
    // Attempts by globex to name acme's channels: every one is refused by the grammar or stays in globex.
    for (const name of [
      'acme:agent:a1',
      'acme/agent:a1',
      '../acme/agent:a1',
      'acme%2Fagent:a1',
      'agent:a1/../../acme',
      '_/system:x',
      'agent:a1\u0000acme',
      'AGENT:a1',
      'agent:*',
      'agent:a1*',
      '{acme}agent:a1',
      'аgent:a1',
    ]) {
      const r = await globex.publish(name, 'note', { leak: true });
      assert.equal(r.type, 'message.failed', name);
      assert.equal(r.payload.code, 'BAD_REQUEST', name);
    }
    for (const name of spellings)
      assert.equal((await globex.publish(name, 'note', { from: 'globex' })).type, 'message.sent');
    await sleep(100);
    const notes = (c: RawClient) => c.events().filter((e) => e.type === 'note');
    assert.equal(notes(acme).length, 0, 'acme received nothing from globex');
    assert.equal(notes(globex).length, spellings.length);
    assert.ok(acme.events().every((e) => e.payload.userId !== 'x' || e.type.startsWith('presence.')));
    // And history: globex's history of agent:a1 holds only globex's events.
    const r = await fetch(`${node.httpUrl}/v1/channels/agent:a1/history`, {
      headers: { authorization: `Bearer ${await token({ org: 'acme' })}` },
    });
    assert.deepEqual((await r.json()).events, []);
    acme.close();
    globex.close();
  });

  it('shares system channels across organizations, read-only for clients', async () => {
    const acme = await RawClient.connect(node.wsUrl, {
      token: await token({ org: 'acme' }),
      subscriptions: ['system:status'],
    });
    const globex = await RawClient.connect(node.wsUrl, {
      token: await token({ org: 'globex' }),
      subscriptions: ['system:status'],
    });
    const svc = await RawClient.connect(node.wsUrl, {
      token: await token({ org: 'ops', roles: ['service'] }),
    });
    await svc.publish('system:status', 'system_notification', { level: 'warning', message: 'maintenance' });
    assert.equal((await acme.waitForEvents(1))[0]!.payload.message, 'maintenance');
    assert.equal((await globex.waitForEvents(1))[0]!.payload.message, 'maintenance');
    for (const c of [acme, globex, svc]) c.close();
  });
});

describe('HTTP API', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode({ allowedOrigins: ['https://app.example'] });
  });
  after(() => node.close());

  const post = (body: unknown, auth?: string) =>
    fetch(`${node.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(auth ? { authorization: `Bearer ${auth}` } : {}) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  it('publishes with an API key and a service JWT; subscribers receive it', async () => {
    const sub = await RawClient.connect(node.wsUrl, { subscriptions: ['tool:t1'] });
    const r = await post(
      { channel: 'tool:t1', type: 'tool_call_start', payload: { toolCallId: 'c1', toolName: 'search' } },
      'apix_static_acmekey',
    );
    assert.equal(r.status, 200);
    const { id } = await r.json();
    const ev = await sub.next((f) => f.channel === 'tool:t1');
    assert.equal(ev.id, id);
    const r2 = await post(
      { channel: 'tool:t1', type: 'tool_call_result', payload: { toolCallId: 'c1', output: 42 } },
      await token({ roles: ['service'] }),
    );
    assert.equal(r2.status, 200);
    sub.close();
  });

  it('answers errors as JSON {code, message} with the matching status', async () => {
    const cases: Array<[unknown, string | undefined, number, string]> = [
      [{ channel: 'tool:t1', type: 'x', payload: 1 }, undefined, 401, 'UNAUTHORIZED'],
      [{ channel: 'tool:t1', type: 'x', payload: 1 }, 'apix_bad_key', 401, 'UNAUTHORIZED'],
      ['{not json', 'apix_static_acmekey', 400, 'BAD_REQUEST'],
      [{ channel: 'nope:x', type: 'x', payload: 1 }, 'apix_static_acmekey', 400, 'BAD_REQUEST'],
      [{ channel: 'tool:t1', type: 'x', payload: 1, extra: true }, 'apix_static_acmekey', 400, 'BAD_REQUEST'],
      [{ channel: 'tool:t1', type: 'message.sent', payload: 1 }, 'apix_static_acmekey', 400, 'BAD_REQUEST'],
      [
        { channel: 'tool:t1', type: 'x', payload: 'y'.repeat(1_100_000) },
        'apix_static_acmekey',
        413,
        'PAYLOAD_TOO_LARGE',
      ],
    ];
    for (const [body, auth, status, code] of cases) {
      const r = await post(body, auth);
      assert.equal(r.status, status, JSON.stringify(body).slice(0, 60));
      const j = await r.json();
      assert.equal(j.code, code);
      assert.equal(typeof j.message, 'string');
    }
    const member = await token({ roles: ['viewer'] });
    const r = await post({ channel: 'agent:a', type: 'note', payload: {} }, member);
    assert.equal(r.status, 403);
    assert.equal((await r.json()).code, 'FORBIDDEN');
  });

  it('serves history with since and limit, and recovered:false for a forged since', async () => {
    const auth = await token({ roles: ['service'] });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const r = await post({ channel: 'agent:h', type: 'note', payload: { i } }, auth);
      ids.push((await r.json()).id);
    }
    const get = async (q: string) =>
      (
        await fetch(`${node.httpUrl}/v1/channels/agent:h/history${q}`, {
          headers: { authorization: `Bearer ${auth}` },
        })
      ).json();
    const all = await get('');
    assert.deepEqual(
      all.events.map((e: { id: string }) => e.id),
      ids,
    );
    assert.equal(all.recovered, true);
    const after2 = await get(`?since=${ids[1]}&limit=2`);
    assert.deepEqual(
      after2.events.map((e: { payload: { i: number } }) => e.payload.i),
      [2, 3],
    );
    assert.equal((await get('?since=9999999999999-0')).recovered, false);
    assert.equal((await get('?since=garbage')).recovered, false);
    const [ms, seq] = ids[2]!.split('-');
    assert.equal((await get(`?since=${ms}-${Number(seq) + 1000}`)).recovered, false);
  });

  it('serves /healthz, /readyz and Prometheus /metrics', async () => {
    assert.equal((await fetch(`${node.httpUrl}/healthz`)).status, 200);
    const ready = await fetch(`${node.httpUrl}/readyz`);
    assert.equal(ready.status, 200);
    assert.equal((await ready.json()).checks.broker, 'ok');
    const m = await (await fetch(`${node.httpUrl}/metrics`)).text();
    assert.match(m, /apix_connections\{node="/);
    assert.match(m, /apix_events_published_total/);
    assert.equal((await fetch(`${node.httpUrl}/nope`)).status, 404);
  });

  it('sends CORS headers only for allowed origins', async () => {
    const ok = await fetch(`${node.httpUrl}/healthz`, { headers: { origin: 'https://app.example' } });
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://app.example');
    const bad = await fetch(`${node.httpUrl}/healthz`, { headers: { origin: 'https://evil.example' } });
    assert.equal(bad.headers.get('access-control-allow-origin'), null);
    assert.equal(ok.headers.get('x-content-type-options'), 'nosniff');
  });
});

describe('server-revoked subscriptions', () => {
  it('removes subscriptions that new channel rules or a refreshed token deny, with subscription.removed', async () => {
    const node = await startNode();
    try {
      const member = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'm', roles: ['member', 'ops'] }),
        subscriptions: ['agent:ops', 'agent:open'],
      });
      await node.gateway['deps'].channels.set('acme', 'agent:ops', {
        permissions: { subscribe: { roles: ['admin'] } },
      });
      const removed = await member.nextOfType('subscription.removed');
      assert.deepEqual(removed.payload.channels, ['agent:ops']);
      assert.match(removed.payload.reason, /permissions changed/);
      const pub = await RawClient.connect(node.wsUrl, { token: await token({ roles: ['service'] }) });
      await pub.publish('agent:ops', 'note', { secret: true });
      await pub.publish('agent:open', 'note', { open: true });
      await member.waitForEvents(1, 'agent:open');
      await sleep(50);
      assert.equal(member.events('agent:ops').length, 0, 'no event after the revocation');

      // A refreshed token with fewer roles loses what only the old roles allowed.
      await node.gateway['deps'].channels.set('acme', 'agent:team', {
        permissions: { subscribe: { roles: ['ops'] } },
      });
      await member.subscribe({ channels: ['agent:team'] });
      member.send({ type: 'auth.refresh', payload: { token: await token({ sub: 'm', roles: ['member'] }) } });
      const removed2 = await member.nextOfType('subscription.removed');
      assert.deepEqual(removed2.payload.channels, ['agent:team']);
      member.close();
      pub.close();
    } finally {
      await node.close();
    }
  });
});
