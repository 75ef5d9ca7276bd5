/**
 * API keys and channel settings of a RUNNING node (`apix serve` as a process, embedded database): the CLI
 * cannot open the database the node holds, so `apix keys` and `apix channels` go through the node's admin
 * API, by themselves (the data dir's lock names the node) or with `--url`; and the admin API itself.
 * The node runs on its development secret, as `npm start` does: the CLI mints its admin token with it.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, spawnGateway } from '../support/process.ts';
import type { GatewayProcess } from '../support/process.ts';
import { request as httpRequest } from 'node:http';
import { SignJWT } from 'jose';
import { RawClient, token } from '../support/gateway.ts';

/**
 * fetch's job on a socket of its own (node:http, no agent): runCli blocks this process (spawnSync) for
 * seconds, past the node's keep-alive timeout, and a pooled socket whose close this process has not yet
 * seen would fail the next request ("other side closed").
 */
function request(
  url: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
) {
  return new Promise<Response>((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: init.method ?? 'GET', headers: init.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(new Response(Buffer.concat(chunks), { status: res.statusCode ?? 0 })));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(init.body);
  });
}

describe('keys and channel settings on a running node', { timeout: 300_000 }, () => {
  let dir: string;
  let node: GatewayProcess;
  let secret: string;
  let env: Record<string, string>;
  const jwt = (roles: string[], sub = 'alice') => token({ sub, org: 'acme', roles, secret });
  const publish = (credential: string, channel: string) =>
    request(`${node.httpUrl}/v1/publish`, {
      method: 'POST',
      headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
      body: JSON.stringify({ channel, type: 'note', payload: { text: 'hi' } }),
    });

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'apix-admin-running-'));
    node = await spawnGateway({ APIX_DATA_DIR: dir });
    secret = readFileSync(join(dir, 'dev-jwt-secret'), 'utf8').trim();
    env = { APIX_DATA_DIR: dir, APIX_PORT: String(node.port), APIX_HOST: '127.0.0.1' };
  });
  after(async () => {
    await node?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('apix keys create/list/revoke reach the node that holds the database; the key works at once', async () => {
    const created = runCli(
      ['keys', 'create', '--org', 'acme', '--scopes', 'publish', '--name', 'agents'],
      env,
    );
    assert.equal(created.status, 0, created.stderr);
    assert.match(created.stderr, /in use by process \d+/);
    assert.match(created.stderr, /asking the running node's admin API at http:\/\/127\.0\.0\.1:\d+/);
    const key = created.stdout.trim();
    const keyId = /^apix_([a-z0-9]{8,32})_[A-Za-z0-9_-]{16,128}$/.exec(key)?.[1];
    assert.ok(keyId, `security.md's format apix_<keyId>_<secret>: ${key}`);
    assert.equal((await publish(key, 'agent:a1')).status, 200);

    const listed = runCli(['keys', 'list', '--org', 'acme', '--json'], env);
    assert.equal(listed.status, 0, listed.stderr);
    const rows = JSON.parse(listed.stdout) as { id: string; scopes: string[]; name: string }[];
    assert.deepEqual(
      rows.map((r) => [r.id, r.scopes, r.name]),
      [[keyId, ['publish'], 'agents']],
    );

    // With --url, the same through the node named (its own admin token minted with the data dir's secret).
    const revoked = runCli(['keys', 'revoke', keyId, '--org', 'acme', '--url', node.httpUrl], {
      APIX_DATA_DIR: dir,
    });
    assert.equal(revoked.status, 0, revoked.stderr);
    assert.match(revoked.stdout, new RegExp(`revoked ${keyId}`));
    assert.equal((await publish(key, 'agent:a1')).status, 401);
    const again = runCli(['keys', 'revoke', keyId, '--org', 'acme', '--url', node.httpUrl], {
      APIX_DATA_DIR: dir,
    });
    assert.equal(again.status, 1);
    assert.match(again.stderr, /NOT_FOUND/);
  });

  it('apix channels set, set-permissions and get on the running node apply at once', async () => {
    const set = runCli(
      ['channels', 'set', 'room:board', '--org', 'acme', '--coalesce-key', 'agentId', '--durable', 'true'],
      env,
    );
    assert.equal(set.status, 0, set.stderr);
    const got = runCli(['channels', 'get', 'room:board', '--org', 'acme'], env);
    assert.equal(got.status, 0, got.stderr);
    assert.deepEqual(JSON.parse(got.stdout), { coalesceKey: 'agentId', durable: true });

    const member = await jwt(['member'], 'bob');
    const history = () =>
      request(`${node.httpUrl}/v1/channels/room:board/history`, {
        headers: { authorization: `Bearer ${member}` },
      });
    assert.equal((await history()).status, 200);
    const perms = runCli(
      ['channels', 'set-permissions', 'room:board', '--org', 'acme', '--json', '{"history":{"deny":true}}'],
      env,
    );
    assert.equal(perms.status, 0, perms.stderr);
    assert.equal((await history()).status, 403);
    const after = runCli(['channels', 'get', 'room:board', '--org', 'acme'], env);
    assert.deepEqual(JSON.parse(after.stdout), {
      coalesceKey: 'agentId',
      durable: true,
      permissions: { history: { deny: true } },
    });

    const list = runCli(['channels', 'list', '--org', 'acme'], env);
    assert.equal(list.status, 1);
    assert.match(list.stderr, /reads the database/);
  });

  it('a token without roles connects (roles is optional, docs/protocol.md §7); a rule naming roles refuses it', async () => {
    const roleless = await new SignJWT({ org: 'acme' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('carol')
      .setIssuedAt()
      .setExpirationTime('10m')
      .sign(new TextEncoder().encode(secret));
    const ws = await RawClient.connect(`ws://127.0.0.1:${node.port}/v1/ws`, { token: roleless });
    ws.close();
    const history = async (credential: string) =>
      (
        await request(`${node.httpUrl}/v1/channels/room:crew/history`, {
          headers: { authorization: `Bearer ${credential}` },
        })
      ).status;
    assert.equal(await history(roleless), 200);
    const admin = await jwt(['admin']);
    const set = await request(`${node.httpUrl}/v1/admin/channels/room:crew/permissions`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ permissions: { history: { roles: ['member'] } } }),
    });
    assert.equal(set.status, 200, await set.text());
    assert.equal(await history(roleless), 403);
    assert.equal(await history(await jwt(['member'])), 200);
  });

  it('the admin API refuses a non-admin, a bad body, and an encrypted channel without keys; audits changes', async () => {
    const admin = await jwt(['admin']);
    const call = async (method: string, path: string, credential: string, body?: unknown) => {
      const r = await request(`${node.httpUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: r.status, body: (await r.json()) as Record<string, unknown> };
    };
    assert.equal((await call('GET', '/v1/admin/keys', await jwt(['member']))).status, 403);
    assert.equal((await call('POST', '/v1/admin/keys', admin, { scopes: ['a b'] })).status, 400);
    assert.equal((await call('POST', '/v1/admin/channels/room:x/settings', admin, {})).status, 400);
    const enc = await call('POST', '/v1/admin/channels/room:x/settings', admin, { encrypted: true });
    assert.equal(enc.status, 503, JSON.stringify(enc.body));
    const created = await call('POST', '/v1/admin/keys', admin, { name: 'ci' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    assert.deepEqual(created.body.scopes, ['*']);
    let actions: string[] = [];
    for (let i = 0; i < 100 && !actions.includes('admin.keys.create'); i++) {
      await new Promise((r) => setTimeout(r, 200)); // the audit trail is written in batches
      const audit = await call('GET', '/v1/audit?limit=100', admin);
      actions = ((audit.body.entries ?? []) as { action: string }[]).map((e) => e.action);
    }
    for (const a of [
      'admin.keys.create',
      'admin.keys.revoke',
      'admin.channels.set_settings',
      'admin.channels.set_permissions',
    ])
      assert.ok(actions.includes(a), `${a} in ${actions.join(', ')}`);
  });
});
