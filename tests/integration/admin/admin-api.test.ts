import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { RawClient, startNode, token, sleep } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { HookEvents } from '../../../src/hooks.ts';

async function api(node: ApiXNode, method: string, path: string, tok?: string, body?: unknown) {
  const res = await fetch(node.httpUrl + path, {
    method,
    headers: {
      ...(tok ? { Authorization: `Bearer ${tok}` } : {}),
      ...(body !== undefined ? { 'Content-Type': 'application/json' } : {}),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as any };
}

describe('admin API', () => {
  let node: ApiXNode;
  let acmeAdmin: string;
  let globexAdmin: string;
  let member: string;
  const adminActions: Array<HookEvents['onAdminAction']> = [];
  const clients: RawClient[] = [];
  const track = (c: RawClient) => (clients.push(c), c);

  before(async () => {
    node = await startNode({}, { hooks: [{ onAdminAction: (e) => adminActions.push(e) }] });
    acmeAdmin = await token({ sub: 'ops', org: 'acme', roles: ['admin'] });
    globexAdmin = await token({ sub: 'ops', org: 'globex', roles: ['admin'] });
    member = await token({ sub: 'alice', org: 'acme', roles: ['member'] });
  });
  after(async () => {
    for (const c of clients) c.terminate();
    await node.close();
  });

  it('needs a valid token (401) with role admin (403)', async () => {
    assert.equal((await api(node, 'GET', '/v1/admin/stats')).status, 401);
    assert.equal((await api(node, 'GET', '/v1/admin/stats', 'not-a-jwt')).status, 401);
    const forbidden = [
      await api(node, 'GET', '/v1/admin/stats', member),
      await api(node, 'POST', '/v1/admin/sessions/s1/suspend', member, { userId: 'alice' }),
      await api(node, 'POST', '/v1/admin/sessions/s1/resume', member, { userId: 'alice' }),
      await api(node, 'POST', '/v1/admin/connections/x/kick', member),
    ];
    for (const r of forbidden) {
      assert.equal(r.status, 403);
      assert.equal(r.body.code, 'FORBIDDEN');
    }
    const ok = await api(node, 'GET', '/v1/admin/stats', acmeAdmin);
    assert.equal(ok.status, 200);
    assert.equal(ok.body.organization.id, 'acme');
    assert.equal(ok.body.nodeId, node.nodeId);
    assert.equal(ok.headers.get('cache-control'), 'no-store');
  });

  it("reports the organization's traffic, latency and busiest channels, and no other organization's", async () => {
    const sub = track(await RawClient.connect(node.wsUrl, { token: member, subscriptions: ['agent:busy'] }));
    const pub = track(
      await RawClient.connect(node.wsUrl, { token: await token({ sub: 'bob', roles: ['service'] }) }),
    );
    for (let i = 0; i < 30; i++)
      await pub.publish('agent:busy', 'agent_status_update', { agentId: 'busy', status: 'running' });
    for (let i = 0; i < 3; i++)
      await pub.publish('agent:quiet', 'agent_status_update', { agentId: 'q', status: 'idle' });
    await sub.waitForEvents(30, 'agent:busy');
    await sleep(300); // connection counts come from a census cached for 250 ms
    const acme = (await api(node, 'GET', '/v1/admin/stats', acmeAdmin)).body;
    assert.ok(acme.organization.throughput.eventsPerSec > 0);
    assert.ok(acme.organization.throughput.deliveriesPerSec > 0);
    assert.ok(acme.organization.latency.publishToDeliver.count >= 30);
    assert.deepEqual(
      acme.organization.busiestChannels.slice(0, 2).map((c: any) => c.channel),
      ['agent:busy', 'agent:quiet'],
    );
    assert.ok(acme.organization.connections.total >= 2);
    assert.ok(acme.node.connections.byClientType.WEB_APP >= 2);
    assert.ok(acme.node.connections.byStatus.CONNECTED >= 2);
    assert.ok(acme.node.byChannelType.AGENT_EVENTS.publishToDeliver.count >= 30);

    const globex = (await api(node, 'GET', '/v1/admin/stats', globexAdmin)).body;
    assert.equal(globex.organization.id, 'globex');
    assert.deepEqual(globex.organization.busiestChannels, []);
    assert.equal(globex.organization.connections.total, 0);
    assert.equal(globex.organization.throughput.eventsPerSec, 0);
    assert.ok(!JSON.stringify(globex).includes('agent:busy'));
  });

  it('suspend closes the live connection with 4011 and refuses the session until it is resumed', async () => {
    const victim = track(await RawClient.connect(node.wsUrl, { token: member, sessionId: 'sess-9' }));
    const r = await api(node, 'POST', '/v1/admin/sessions/sess-9/suspend', acmeAdmin, {
      userId: 'alice',
      reason: 'abuse',
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { sessionId: 'sess-9', userId: 'alice', suspended: true, disconnected: true });
    const notice = await victim.nextOfType('connection.disconnected');
    assert.equal(notice.payload.reconnect, false);
    assert.equal((await victim.waitClosed()).code, 4011);

    const again = track(await RawClient.open(node.wsUrl));
    again.send({
      type: 'connect',
      payload: {
        sessionId: 'sess-9',
        clientType: 'WEB_APP',
        authentication: { token: member },
        subscriptions: [],
      },
    });
    assert.equal((await again.waitClosed()).code, 4011);
    // Another session of the same user is not affected.
    track(await RawClient.connect(node.wsUrl, { token: member, sessionId: 'sess-10' }));

    const resumed = await api(node, 'POST', '/v1/admin/sessions/sess-9/resume', acmeAdmin, {
      userId: 'alice',
    });
    assert.equal(resumed.status, 200);
    assert.equal(resumed.body.suspended, false);
    const back = track(await RawClient.connect(node.wsUrl, { token: member, sessionId: 'sess-9' }));
    assert.equal(back.closed, undefined);

    const actions = adminActions.filter((a) => a.target === 'alice/sess-9').map((a) => a.action);
    assert.deepEqual(actions, ['suspend', 'resume']);
    const stats = (await api(node, 'GET', '/v1/admin/stats', acmeAdmin)).body;
    assert.ok(
      stats.organization.recentActivity.some((e: any) => e.kind === 'admin' && e.action === 'suspend'),
    );
  });

  it('finds the user of a session held by this node when userId is not given', async () => {
    const c = track(await RawClient.connect(node.wsUrl, { token: member, sessionId: 'only-one' }));
    const r = await api(node, 'POST', '/v1/admin/sessions/only-one/suspend', acmeAdmin);
    assert.equal(r.status, 200);
    assert.equal(r.body.userId, 'alice');
    assert.equal((await c.waitClosed()).code, 4011);
    await api(node, 'POST', '/v1/admin/sessions/only-one/resume', acmeAdmin);
    const unknown = await api(node, 'POST', '/v1/admin/sessions/nobody-here/suspend', acmeAdmin);
    assert.equal(unknown.status, 400);
    assert.match(unknown.body.message, /userId/);
  });

  it("cannot touch another organization's sessions or connections", async () => {
    const c = track(await RawClient.connect(node.wsUrl, { token: member, sessionId: 'iso-1' }));
    const established = c.frames.find((f) => f.type === 'connection.established')!;
    const connectionId = established.payload.connectionId as string;
    const kick = await api(node, 'POST', `/v1/admin/connections/${connectionId}/kick`, globexAdmin);
    assert.equal(kick.status, 404);
    // globex's "alice/iso-1" is another session key: acme's connection stays.
    const sus = await api(node, 'POST', '/v1/admin/sessions/iso-1/suspend', globexAdmin, { userId: 'alice' });
    assert.equal(sus.status, 200);
    assert.equal(sus.body.disconnected, false);
    await sleep(100);
    assert.equal(c.closed, undefined);
    const pong = await c.publish('room:iso', 'agent_status_update', { agentId: 'iso', status: 'idle' });
    assert.equal(pong.type, 'message.sent');
    await api(node, 'POST', '/v1/admin/sessions/iso-1/resume', globexAdmin, { userId: 'alice' });
  });

  it('kick closes one connection with connection.disconnected and 4008', async () => {
    const c = track(await RawClient.connect(node.wsUrl, { token: member }));
    const connectionId = c.frames.find((f) => f.type === 'connection.established')!.payload.connectionId;
    const r = await api(node, 'POST', `/v1/admin/connections/${connectionId}/kick`, acmeAdmin, {
      reason: 'bye',
    });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { connectionId, kicked: true });
    const notice = await c.nextOfType('connection.disconnected');
    assert.equal(notice.payload.reason, 'bye');
    assert.equal(notice.payload.reconnect, false);
    assert.equal((await c.waitClosed()).code, 4008);
    assert.equal(
      (await api(node, 'POST', `/v1/admin/connections/${connectionId}/kick`, acmeAdmin)).status,
      404,
    );
    const last = adminActions.at(-1)!;
    assert.equal(last.action, 'kick');
    assert.equal(last.target, connectionId);
    assert.equal(last.principal.userId, 'ops');
    const metrics = await (await fetch(`${node.httpUrl}/metrics`)).text();
    assert.match(metrics, /apix_admin_actions_total\{action="kick",node="[^"]+"\} 1/);
  });

  it('rejects unknown body fields and bad ids', async () => {
    const r = await api(node, 'POST', '/v1/admin/sessions/s1/suspend', acmeAdmin, { userId: 'a', extra: 1 });
    assert.equal(r.status, 400);
  });

  it('feeds the dashboard channel to admins only', async () => {
    const plain = track(await RawClient.connect(node.wsUrl, { token: member }));
    const denied = await plain.subscribe({ channels: ['org:apix-dashboard'] });
    assert.equal(denied.payload.denied[0].code, 'FORBIDDEN');
    const history = await api(node, 'GET', '/v1/channels/org:apix-dashboard/history', member);
    assert.equal(history.status, 403);
    const spoof = await plain.publish('org:apix-dashboard', 'apix.stats', {});
    assert.equal(spoof.type, 'message.failed');

    const admin = track(await RawClient.connect(node.wsUrl, { token: acmeAdmin }));
    const granted = await admin.subscribe({ channels: ['org:apix-dashboard'] });
    assert.deepEqual(granted.payload.denied, []);
    const ev = await admin.next((f) => f.type === 'apix.stats', 3000);
    assert.equal(ev.channel, 'org:apix-dashboard');
    assert.equal(ev.payload.organization.id, 'acme');
    assert.equal(ev.payload.nodeId, node.nodeId);
    // The feed's own events are not counted as the organization's traffic.
    assert.ok(!ev.payload.organization.busiestChannels.some((c: any) => c.channel === 'org:apix-dashboard'));
  });

  it('serves the dashboard with a strict CSP and the security headers', async () => {
    const res = await fetch(`${node.httpUrl}/dashboard`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type')!, /text\/html/);
    const csp = res.headers.get('content-security-policy')!;
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /connect-src 'self' ws: wss:/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.equal(res.headers.get('x-frame-options'), 'DENY');
    assert.equal(res.headers.get('x-content-type-options'), 'nosniff');
    assert.match(await res.text(), /<script type="module" src="\/dashboard\/app.js">/);
    for (const file of ['app.js', 'charts.js', 'style.css'])
      assert.equal((await fetch(`${node.httpUrl}/dashboard/${file}`)).status, 200);
    assert.equal((await fetch(`${node.httpUrl}/dashboard/..%2Fadmin-api.ts`)).status, 404);
    assert.equal((await fetch(`${node.httpUrl}/dashboard/secret.ts`)).status, 404);
  });

  it('apix admin kick|suspend|resume drive the same API from the command line', async () => {
    const c = track(await RawClient.connect(node.wsUrl, { token: member, sessionId: 'cli-1' }));
    const connectionId = c.frames.find((f) => f.type === 'connection.established')!.payload.connectionId;
    // Asynchronous: the gateway under test runs in this process and must keep answering.
    const cli = (...args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', 'src/cli/main.ts', 'admin', ...args],
          { encoding: 'utf8', env: { ...process.env, APIX_ADMIN_TOKEN: acmeAdmin }, timeout: 30_000 },
          (err, stdout, stderr) =>
            resolve({ status: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const bad = await cli('kick', connectionId, '--url', node.httpUrl, '--token', member);
    assert.equal(bad.status, 1, bad.stderr);
    assert.match(bad.stderr, /FORBIDDEN/);
    const kicked = await cli('kick', connectionId, '--url', node.httpUrl, '--reason', 'from the cli');
    assert.equal(kicked.status, 0, kicked.stderr);
    assert.equal((await c.waitClosed()).code, 4008);
    const s = await cli('suspend', 'cli-1', '--user', 'alice', '--url', node.httpUrl);
    assert.equal(s.status, 0, s.stderr);
    assert.equal(JSON.parse(s.stdout).suspended, true);
    const r = await cli('resume', 'cli-1', '--user', 'alice', '--url', node.httpUrl);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await cli('frobnicate')).status, 2);
  });
});
