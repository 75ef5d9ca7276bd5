/**
 * `apix serve` as a user runs it: embedded defaults keep connection records (sessions waiting for a resume
 * across the restart), keys and
 * the audit trail in the data dir across a restart; with DATABASE_URL they are kept in PostgreSQL. A bad setting stops the start
 * with one line naming it.
 */
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnGateway, runCli } from '../support/process.ts';
import { RawClient, token, TEST_SECRET } from '../support/gateway.ts';
import { createTestPostgres, postgresSkipReason } from '../support/postgres.ts';
import type { TestPostgres } from '../support/postgres.ts';
import { freePort } from '../support/redis.ts';

async function exercise(env: Record<string, string>) {
  // Run 1: a connection, a publish, an admin reading the audit trail.
  let gw = await spawnGateway(env);
  const c = await RawClient.connect(gw.wsUrl, {
    token: await token({ sub: 'alice', roles: ['admin'] }),
    subscriptions: ['agent:p'],
  });
  assert.equal((await c.publish('agent:p', 'note', { run: 1 })).type, 'message.sent');
  c.close();
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await gw.kill('SIGTERM'), 0, 'drains and exits 0');

  // Between runs: run 1's connection is on record, its session waiting for a resume (the memory engine's
  // state log in the data dir keeps it through the restart, within its TTL), not left as connected.
  const conns = runCli(['connections', 'list', '--org', 'acme'], env);
  assert.equal(conns.status, 0, conns.stderr);
  assert.match(conns.stdout, /RECONNECTING {2}user=alice {2}WEB_APP .*channels=agent:p/, conns.stdout);
  assert.doesNotMatch(conns.stdout, /\bCONNECTED/, conns.stdout);

  // Between runs: an API key created with the CLI against the same store.
  // `system` too: only the platform's keys publish to the shared system: channels.
  const created = runCli(['keys', 'create', '--org', 'acme', '--scopes', '*,system'], env);
  assert.equal(created.status, 0, created.stderr);
  const key = /apix_[A-Za-z0-9_-]+/.exec(created.stdout)?.[0];
  assert.ok(key, created.stdout);

  // Run 2: the key works, and the audit trail holds run 1's entries.
  gw = await spawnGateway(env);
  try {
    const svc = await RawClient.connect(gw.wsUrl, { token: key, clientType: 'INTERNAL_SERVICE' });
    assert.equal(
      (await svc.publish('system:x', 'system_notification', { level: 'info', message: 'run 2' })).type,
      'message.sent',
    );
    svc.close();
    const audit = await (
      await fetch(`${gw.httpUrl}/v1/audit?limit=100`, {
        headers: { authorization: `Bearer ${await token({ roles: ['admin'] })}` },
      })
    ).json();
    const actions = audit.entries.map((e: { action: string }) => e.action);
    assert.ok(actions.includes('connection.accepted'), actions.join());
    assert.ok(actions.includes('event.published'), actions.join());
    const member = await fetch(`${gw.httpUrl}/v1/audit`, {
      headers: { authorization: `Bearer ${await token({ roles: ['member'] })}` },
    });
    assert.equal(member.status, 403);
    const verify = (await gw.kill('SIGTERM'), runCli(['audit', 'verify', '--org', 'acme'], env));
    assert.equal(verify.status, 0, verify.stdout + verify.stderr);
  } finally {
    await gw.kill('SIGKILL');
  }
}

describe('apix serve', () => {
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'apix-serve-'));
    dirs.push(d);
    return d;
  };
  after(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('stops with one line naming a bad variable', () => {
    const r = runCli(['serve'], { APIX_PORT: 'eighty', APIX_DATA_DIR: tmp() });
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /APIX_PORT/);
  });

  it('embedded: a start that fails after the database began to open exits 1 and unlocks the data dir', async () => {
    // serve opens the embedded database first, beside the rest of the start; when the engines then fail
    // (Redis refuses), that engine must be closed: else its thread keeps the process alive and its lock.
    const dir = tmp();
    const r = runCli(['serve'], {
      APIX_DATA_DIR: dir,
      APIX_JWT_SECRET: TEST_SECRET,
      APIX_PORT: '0',
      REDIS_URL: `redis://127.0.0.1:${await freePort()}`,
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /cannot start the engines/);
    assert.equal(existsSync(join(dir, 'pgdata.lock')), false, 'the lock is released');
  });

  it('embedded: keeps records, keys and the audit trail in the data dir across a restart', async () => {
    await exercise({ APIX_DATA_DIR: tmp(), APIX_JWT_SECRET: TEST_SECRET });
  });

  it('with DATABASE_URL: keeps them in PostgreSQL', async (t) => {
    const skip = await postgresSkipReason();
    if (skip) return t.skip(skip);
    const pg: TestPostgres = await createTestPostgres();
    try {
      await exercise({ APIX_DATA_DIR: tmp(), APIX_JWT_SECRET: TEST_SECRET, DATABASE_URL: pg.url });
    } finally {
      await pg.drop();
    }
  });
});
