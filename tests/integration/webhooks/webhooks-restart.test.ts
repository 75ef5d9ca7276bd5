/**
 * `apix serve` (embedded: PGlite records, no Redis) killed with SIGKILL while a webhook batch waits for
 * its next attempt, then started again on the same data dir: the endpoint and the batch were in the
 * database, so the batch is delivered, with its event's id unchanged; the endpoint's creation is in the
 * audit trail. Runs the built CLI (dist/).
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, TEST_SECRET, token } from '../../support/gateway.ts';
import { spawnGateway } from '../../support/process.ts';
import type { GatewayProcess } from '../../support/process.ts';
import { freePort } from '../../support/redis.ts';
import { waitFor } from '../../support/wait.ts';
import { readLog, startReceiver } from '../../support/webhook-receiver.ts';

describe('webhooks across a SIGKILL of apix serve (embedded database)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'apix-whk-'));
  const running: GatewayProcess[] = [];
  after(async () => {
    for (const g of running) await g.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('a batch waiting for its retry is delivered by the restarted gateway', async () => {
    const env = {
      APIX_DATA_DIR: join(dir, 'data'),
      APIX_JWT_SECRET: TEST_SECRET,
      APIX_WEBHOOK_ALLOW_PRIVATE: 'true',
      APIX_WEBHOOK_FLUSH_MS: '50',
      APIX_WEBHOOK_RETRY_BASE_MS: '300',
      APIX_WEBHOOK_RETRY_MAX_MS: '600',
    };
    const admin = await token({ sub: 'ops', roles: ['admin'] });
    const call = async (gw: GatewayProcess, method: string, path: string, body?: unknown) => {
      const res = await fetch(`${gw.httpUrl}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${admin}`,
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        body: body ? JSON.stringify(body) : undefined,
      });
      return (await res.json()) as any;
    };
    const metric = async (gw: GatewayProcess, name: string) => {
      const text = await (await fetch(`${gw.httpUrl}/metrics`)).text();
      return Number(new RegExp(`^${name}\\{[^}]*\\} (\\d+)`, 'm').exec(text)?.[1] ?? 'NaN');
    };
    const port = await freePort();
    const gw = await spawnGateway(env);
    running.push(gw);
    const made = await call(gw, 'POST', '/v1/admin/webhooks', {
      url: `http://127.0.0.1:${port}/hooks`,
      events: ['connection.opened'],
    });
    assert.match(made.secret, /^whsec_/);
    const c = await RawClient.connect(gw.wsUrl, { token: await token({ sub: 'killed-user' }) });
    c.close();
    // No receiver: the batch failed at least once and waits in the database for its retry.
    await waitFor(
      async () => (await metric(gw, 'apix_webhook_failed_attempts')) > 0,
      60_000,
      'a failed attempt',
    );
    // The endpoint's creation is in the audit trail.
    await waitFor(
      async () =>
        (await call(gw, 'GET', '/v1/audit?type=admin.webhook')).entries.some(
          (e: { action: string; target: string }) => e.action === 'admin.webhook.add' && e.target === made.id,
        ),
      60_000,
      'the audit entry',
    );
    await gw.kill('SIGKILL');
    const log = join(dir, 'restart.jsonl');
    const receiver = await startReceiver({ port, secret: made.secret, log });
    try {
      const again = await spawnGateway(env, { port: gw.port });
      running.push(again);
      await waitFor(
        () =>
          readLog(log).events.some((e) => e.type === 'connection.opened' && e.data.userId === 'killed-user'),
        60_000,
        'delivered after the restart',
      );
      const { events, rejected } = readLog(log);
      assert.deepEqual(rejected, []);
      assert.equal(new Set(events.filter((e) => e.data.userId === 'killed-user').map((e) => e.id)).size, 1);
      assert.equal(
        (await call(again, 'GET', '/v1/admin/webhooks')).webhooks[0].id,
        made.id,
        'the endpoint was kept',
      );
    } finally {
      await receiver.kill();
    }
  });
});
