/**
 * `coalesceKey`, the operator setting of docs/protocol.md's quality of service, set on a running node:
 * `POST /v1/admin/channels/<channel>/settings` and `apix admin channel-settings` write it into the node's
 * channel registry (the one the hub asks for a channel's coalesceKey, see tests/integration/gateway/
 * qos.test.ts for what it does to a slow subscriber), keep the channel's other settings, and are audited.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { startNode, token } from '../../support/gateway.ts';
import type { ApiXNode } from '../../../src/node.ts';
import type { HookEvents } from '../../../src/hooks.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';

describe('channel settings through the admin API: coalesceKey', () => {
  let node: ApiXNode;
  let admin: string;
  const channels = new MemoryChannelRegistry();
  const actions: Array<HookEvents['onAdminAction']> = [];

  before(async () => {
    await channels.set('acme', 'agent:fleet', { durable: true });
    node = await startNode({}, { channels, hooks: [{ onAdminAction: (e) => void actions.push(e) }] });
    admin = await token({ sub: 'ops', roles: ['admin'] });
  });
  after(() => node.close());

  const api = async (method: string, channel: string, body?: unknown, jwt = admin) => {
    const res = await fetch(`${node.httpUrl}/v1/admin/channels/${encodeURIComponent(channel)}/settings`, {
      method,
      headers: { authorization: `Bearer ${jwt}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    return { status: res.status, body: (await res.json()) as any };
  };

  it('sets and clears it, keeping the other settings; audited; admins only', async () => {
    const set = await api('POST', 'agent:fleet', { coalesceKey: 'agentId' });
    assert.equal(set.status, 200, JSON.stringify(set.body));
    assert.deepEqual(channels.get('acme', 'agent:fleet'), { durable: true, coalesceKey: 'agentId' });
    assert.deepEqual((await api('GET', 'agent:fleet')).body, {
      channel: 'agent:fleet',
      settings: { durable: true, coalesceKey: 'agentId' },
    });
    const audited = actions.find((a) => a.action === 'channels.set_settings');
    assert.equal(audited?.target, 'agent:fleet');

    assert.equal((await api('POST', 'agent:fleet', { coalesceKey: 'a.b' })).status, 400);
    assert.equal((await api('POST', 'agent:fleet', {})).status, 400);
    assert.equal((await api('POST', 'not a channel', { coalesceKey: 'x' })).status, 400);
    assert.equal((await api('POST', 'agent:fleet', { coalesceKey: 'x' }, await token({}))).status, 403);
    // Another organization's admin writes its own organization's channel, not acme's.
    const globex = await token({ sub: 'ops', org: 'globex', roles: ['admin'] });
    assert.equal((await api('POST', 'agent:fleet', { coalesceKey: 'id' }, globex)).status, 200);
    assert.equal(channels.get('acme', 'agent:fleet')?.coalesceKey, 'agentId');

    const cleared = await api('POST', 'agent:fleet', { coalesceKey: null });
    assert.deepEqual(cleared.body.settings, { durable: true });
    assert.deepEqual(channels.get('acme', 'agent:fleet'), { durable: true });
  });

  it('apix admin channel-settings sets and shows it', async () => {
    const cli = (...args: string[]) =>
      new Promise<{ status: number; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          ['--import', 'tsx', 'src/cli/main.ts', 'admin', 'channel-settings', ...args, '--url', node.httpUrl],
          { encoding: 'utf8', env: { ...process.env, APIX_ADMIN_TOKEN: admin }, timeout: 60_000 },
          (err, stdout, stderr) =>
            resolve({ status: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout, stderr }),
        );
      });
    const set = await cli('tool:status', '--coalesce-key', 'toolName');
    assert.equal(set.status, 0, set.stderr);
    assert.equal(channels.get('acme', 'tool:status')?.coalesceKey, 'toolName');
    const shown = await cli('tool:status');
    assert.deepEqual(JSON.parse(shown.stdout).settings, { coalesceKey: 'toolName' });
    assert.equal((await cli('tool:status', '--coalesce-key', 'none')).status, 0);
    assert.deepEqual(channels.get('acme', 'tool:status'), {});
  });
});
