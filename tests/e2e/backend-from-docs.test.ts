/**
 * Issue 17's "Done when": a backend written from docs/backend.md alone (examples/backend/backend.mjs)
 * receives and verifies webhooks, answers proxy calls and serves an RPC method, against `npm start`.
 * The gateway is `apix serve` (what `npm start` runs; tests/support/process.ts) configured only by the
 * environment variables docs/configuration.md names; the backend is a separate process; the clients speak
 * raw docs/protocol.md frames.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RawClient, TEST_SECRET, token } from '../support/gateway.ts';
import type { Frame } from '../support/gateway.ts';
import { spawnGateway } from '../support/process.ts';
import type { GatewayProcess } from '../support/process.ts';
import { freePort } from '../support/redis.ts';
import { waitFor } from '../support/wait.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const PROXY_SECRET = 'proxy-secret-from-the-docs-0123';

/** The backend's stdout: one JSON object a line. */
type Line = Record<string, any>;

let seq = 0;
/** Sends a frame with a fresh correlation id and waits for the frame answering it. */
async function ask(c: RawClient, type: string, payload: unknown): Promise<Frame> {
  const correlation_id = `e2e-${++seq}`;
  c.send({ type, payload, metadata: { correlation_id } });
  return c.next((f) => f.metadata?.correlation_id === correlation_id, 30_000);
}

describe('a backend written from docs/backend.md, against apix serve', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-backend-doc-'));
  let gw: GatewayProcess;
  let backend: ChildProcess;
  let backendUrl: string;
  const lines: Line[] = [];
  let output = '';

  before(async () => {
    const backendPort = await freePort();
    backendUrl = `http://127.0.0.1:${backendPort}`;
    gw = await spawnGateway({
      APIX_DATA_DIR: join(dir, 'data'),
      APIX_JWT_SECRET: TEST_SECRET,
      APIX_PROXY_CONNECT_URL: `${backendUrl}/connect`,
      APIX_PROXY_SUBSCRIBE_URL: `${backendUrl}/subscribe`,
      APIX_PROXY_PUBLISH_URL: `${backendUrl}/publish`,
      APIX_RPC_PROXY_URL: `${backendUrl}/rpc`,
      APIX_PROXY_SECRET: PROXY_SECRET,
      // The backend is on this machine: a loopback webhook URL (docs/backend.md "Try it").
      APIX_WEBHOOK_ALLOW_PRIVATE: 'true',
    });
    backend = spawn(process.execPath, ['--import', 'tsx', 'examples/backend/backend.mjs'], {
      cwd: ROOT,
      env: {
        PATH: process.env.PATH ?? '',
        PORT: String(backendPort),
        APIX_URL: gw.httpUrl,
        APIX_TOKEN: await token({ sub: 'backend', roles: ['service'] }),
        APIX_PROXY_SECRET: PROXY_SECRET,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let partial = '';
    backend.stdout!.on('data', (d: Buffer) => {
      partial += d.toString();
      const parts = partial.split('\n');
      partial = parts.pop()!;
      for (const p of parts) if (p.trim()) lines.push(JSON.parse(p) as Line);
    });
    backend.stderr!.on('data', (d: Buffer) => (output += d.toString()));
    await waitFor(() => lines.some((l) => l.ready), 120_000, `the backend to be ready (${output})`);
  });

  after(async () => {
    if (backend && backend.exitCode === null) {
      const gone = new Promise((r) => backend.once('exit', r));
      backend.kill('SIGTERM');
      await gone;
    }
    await gw?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  const webhooks = () => lines.filter((l) => l.webhook).map((l) => l.webhook);
  const proxyCalls = (kind: string) => lines.filter((l) => l.proxy?.kind === kind).map((l) => l.proxy);

  it('connect, subscribe and publish are decided by the backend; its refusals reach the client with its code', async () => {
    const alice = await RawClient.connect(gw.wsUrl, { sessionId: 'alice-1', subscriptions: ['agent:alice'] });
    const established = alice.frames.find((f) => f.type === 'connection.established')!;
    assert.deepEqual(established.payload.data, { plan: 'pro' });
    assert.deepEqual(established.payload.subscriptions, ['agent:alice']);
    // Subscribe: someone else's agent is refused by the backend's rule, with its code and message.
    const added = await alice.subscribe({ channels: ['agent:bob'] });
    assert.deepEqual(added.payload.channels, []);
    assert.deepEqual(added.payload.denied, [
      { channel: 'agent:bob', code: 'FORBIDDEN', message: 'not your agent' },
    ]);
    // Connect: a closed account is refused, fatally.
    const closed = await RawClient.open(gw.wsUrl);
    closed.send({
      type: 'connect',
      payload: {
        sessionId: 'closed-1',
        clientType: 'WEB_APP',
        authentication: { token: await token({ sub: 'closed-account' }) },
        subscriptions: [],
      },
    });
    const refused = await closed.next((f) => f.type === 'connection.error', 30_000);
    assert.equal(refused.payload.code, 'FORBIDDEN');
    assert.equal(refused.payload.message, 'account closed');
    await closed.waitClosed(30_000);
    // Publish: the backend marks what it allows, and refuses spam with its code.
    const svc = await RawClient.connect(gw.wsUrl, {
      token: await token({ sub: 'agent-svc', roles: ['service'] }),
    });
    const ok = await svc.publish('agent:alice', 'agent_status_update', { agentId: 'a1', status: 'running' });
    assert.equal(ok.type, 'message.sent', JSON.stringify(ok.payload));
    const [event] = await alice.waitForEvents(1, 'agent:alice', 30_000);
    assert.deepEqual(event!.payload, { agentId: 'a1', status: 'running', checked: true });
    const spam = await svc.publish('agent:alice', 'custom_event', { text: 'buy spam' });
    assert.equal(spam.type, 'message.failed');
    assert.equal(spam.payload.code, 'BAD_REQUEST');
    assert.equal(spam.payload.message, 'no spam here');
    // The backend saw each kind, signed with the proxy secret (no signature was refused).
    assert.ok(proxyCalls('connect').some((p) => p.userId === 'closed-account' && p.answer.error));
    assert.ok(proxyCalls('subscribe').some((p) => p.target === 'agent:bob' && p.answer.error));
    assert.ok(proxyCalls('publish').some((p) => p.answer.error?.code === 'BAD_REQUEST'));
    assert.deepEqual(
      lines.filter((l) => l.rejected),
      [],
    );
    alice.close();
    svc.close();
  });

  it('an RPC from a client is answered by the backend’s method (service connection, and over HTTP)', async () => {
    const bob = await RawClient.connect(gw.wsUrl, { token: await token({ sub: 'bob' }) });
    // The service registers its method once connected: until then a call finds no service.
    let answer: Frame | undefined;
    await waitFor(
      async () => {
        answer = await ask(bob, 'rpc', { method: 'tool.approve', payload: { toolCallId: 't1' } });
        return answer.payload.code !== 'UNAVAILABLE';
      },
      60_000,
      'tool.approve to be served',
    );
    assert.equal(answer!.type, 'rpc.result', JSON.stringify(answer!.payload));
    assert.deepEqual(answer!.payload.result, { approved: true, toolCallId: 't1', by: 'bob' });
    const again = await ask(bob, 'rpc', { method: 'tool.approve', payload: { toolCallId: 't1' } });
    assert.equal(again.type, 'rpc.error');
    assert.deepEqual(again.payload, { code: 'CONFLICT', message: 'already decided' });
    // A method no service registered: the gateway POSTs it to APIX_RPC_PROXY_URL.
    const total = await ask(bob, 'rpc', { method: 'billing.total', payload: { month: 11 } });
    assert.equal(total.type, 'rpc.result', JSON.stringify(total.payload));
    assert.deepEqual(total.payload.result, { total: 42, for: 'bob' });
    bob.close();
  });

  it('webhooks reach the backend signed, and it verifies them (a forged one is refused)', async () => {
    const carol = await RawClient.connect(gw.wsUrl, {
      token: await token({ sub: 'carol' }),
      subscriptions: ['agent:carol'],
    });
    await waitFor(
      () =>
        webhooks().some((w) => w.type === 'connection.opened' && w.data.userId === 'carol') &&
        webhooks().some((w) => w.type === 'subscription.added' && w.data.channel === 'agent:carol') &&
        webhooks().some((w) => w.type === 'channel.occupied' && w.data.channel === 'agent:carol'),
      60_000,
      'the webhooks of carol',
    ).catch((err: Error) => {
      const saw = JSON.stringify(lines.filter((l) => !l.proxy));
      throw new Error(`${err.message}; the backend saw ${saw}; the gateway said ${gw.output().slice(-2000)}`);
    });
    assert.ok(webhooks().every((w) => w.organizationId === 'acme'));
    assert.deepEqual(
      lines.filter((l) => l.rejected),
      [],
    );
    // A POST without the endpoint's secret is refused by the backend's check.
    const body = JSON.stringify({ events: [{ id: 'evt_forged', type: 'channel.vacated', data: {} }] });
    const forged = await fetch(`${backendUrl}/webhooks`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-apix-signature': `t=${Math.floor(Date.now() / 1000)},v1=00`,
      },
      body,
    });
    assert.equal(forged.status, 401);
    await waitFor(() => lines.some((l) => l.rejected === 'webhook signature'), 10_000, 'the refusal');
    assert.ok(!webhooks().some((w) => w.id === 'evt_forged'));
    carol.close();
  });
});
