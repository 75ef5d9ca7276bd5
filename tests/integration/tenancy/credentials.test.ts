/**
 * What a credential may publish (issue 12): only the platform publishes to the shared `system:` channels
 * (hole 4); a static API key's scopes are read whole, `publish:tool` included (hole 7); agent, tool,
 * workflow and provider events come from services and admins unless a channel's rule opens it (hole 10);
 * no tenant may take the shared namespace's organization id `_`. Permissions do not depend on the engine:
 * the memory engine, over WebSocket and HTTP; the audit route with records on a PGlite copy.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RawClient, config, startNode, token } from '../../support/gateway.ts';
import { pgliteTemplate } from '../../support/databases.ts';
import type { ApiXNode } from '../../../src/node.ts';
import { MemoryChannelRegistry } from '../../../src/subscriptions/channel-registry.ts';
import { StaticApiKeyStore, parseStaticApiKey } from '../../../src/auth/api-keys.ts';
import { loadConfig } from '../../../src/config.ts';
import { openRecords } from '../../../src/records.ts';
import type { Records } from '../../../src/records.ts';
import { createLogger } from '../../../src/log.ts';
import { systemClock } from '../../../src/clock.ts';

const KEYS = {
  acmeAll: 'apix_acme_all_0123456789',
  acmeSystem: 'apix_acme_sys_0123456789',
  acmeTool: 'apix_acme_tool_0123456789',
  acmeAudit: 'apix_acme_audit_0123456789',
  platformAll: 'apix_platform_all_0123456789',
};
const API_KEYS = [
  `acme:${KEYS.acmeAll}`,
  `acme:${KEYS.acmeSystem}:system`,
  `acme:${KEYS.acmeTool}:publish:tool`,
  `acme:${KEYS.acmeAudit}:audit:read`,
  `platform:${KEYS.platformAll}:*`,
];

async function httpPublish(
  node: ApiXNode,
  credential: string,
  channel: string,
  type: string,
  payload: unknown,
) {
  const res = await fetch(`${node.httpUrl}/v1/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${credential}`, 'content-type': 'application/json' },
    body: JSON.stringify({ channel, type, payload }),
  });
  return { status: res.status, body: (await res.json()) as { id?: string; code?: string } };
}

const notice = { level: 'info', message: 'maintenance at noon' };
const agentStatus = { agentId: 'research-bot', status: 'running' };

describe('who publishes to system: channels (hole 4)', () => {
  describe('no APIX_PLATFORM_ORGS (the default)', () => {
    let node: ApiXNode;
    before(async () => {
      const base = config();
      node = await startNode({ auth: { ...base.auth, apiKeys: API_KEYS } });
    });
    after(() => node.close());

    it("a tenant's API key with scope * and a tenant's service token are refused", async () => {
      const key = await httpPublish(node, KEYS.acmeAll, 'system:x', 'system_notification', notice);
      assert.equal(key.status, 403, JSON.stringify(key.body));
      const svc = await RawClient.connect(node.wsUrl, {
        token: await token({ sub: 'svc', org: 'acme', roles: ['service'] }),
        clientType: 'INTERNAL_SERVICE',
      });
      const r = await svc.publish('system:x', 'system_notification', notice);
      assert.equal(r.type, 'message.failed');
      assert.equal(r.payload.code, 'FORBIDDEN');
      svc.close();
    });

    it('an API key with the explicit `system` scope publishes, and only to system:', async () => {
      const ok = await httpPublish(node, KEYS.acmeSystem, 'system:x', 'system_notification', notice);
      assert.equal(ok.status, 200, JSON.stringify(ok.body));
      const elsewhere = await httpPublish(
        node,
        KEYS.acmeSystem,
        'agent:x',
        'agent_status_update',
        agentStatus,
      );
      assert.equal(elsewhere.status, 403, JSON.stringify(elsewhere.body));
    });
  });

  describe('APIX_PLATFORM_ORGS=platform', () => {
    let node: ApiXNode;
    before(async () => {
      const base = config();
      node = await startNode({ auth: { ...base.auth, apiKeys: API_KEYS, platformOrgs: ['platform'] } });
    });
    after(() => node.close());

    it("the platform's service token and API key publish; a tenant's service and the platform's members do not", async () => {
      const key = await httpPublish(node, KEYS.platformAll, 'system:x', 'system_notification', notice);
      assert.equal(key.status, 200, JSON.stringify(key.body));
      const publishAs = async (org: string, roles: string[]) => {
        const c = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'p', org, roles }) });
        const r = await c.publish('system:x', 'system_notification', notice);
        c.close();
        return r.type === 'message.sent' ? 'sent' : String(r.payload.code);
      };
      assert.equal(await publishAs('platform', ['service']), 'sent');
      assert.equal(await publishAs('platform', ['member']), 'FORBIDDEN');
      assert.equal(await publishAs('platform', ['admin']), 'FORBIDDEN');
      assert.equal(await publishAs('acme', ['service']), 'FORBIDDEN');
    });

    it('the setting refuses the shared namespace and malformed organization ids', () => {
      assert.deepEqual(loadConfig({ APIX_PLATFORM_ORGS: 'platform, ops' }).auth.platformOrgs, [
        'platform',
        'ops',
      ]);
      assert.throws(() => loadConfig({ APIX_PLATFORM_ORGS: '_' }), /APIX_PLATFORM_ORGS/);
      assert.throws(() => loadConfig({ APIX_PLATFORM_ORGS: 'a/b' }), /APIX_PLATFORM_ORGS/);
    });
  });
});

describe('static API-key scopes are read whole (hole 7)', () => {
  let node: ApiXNode;
  let records: Records;
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'apix-scopes-'));
    cpSync(join(await pgliteTemplate(), 'pgdata'), join(dataDir, 'pgdata'), { recursive: true });
    const base = config();
    const cfg = config({ dataDir, auth: { ...base.auth, apiKeys: API_KEYS } });
    records = await openRecords(cfg, {
      clock: systemClock,
      random: Math.random,
      log: createLogger('silent', 't'),
    });
    node = await startNode(cfg, {
      apiKeys: records.apiKeys,
      channels: records.channels,
      hooks: [...records.hooks],
    });
    records.attach(node);
  });
  after(async () => {
    await node.close();
    await records.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('the grammar: org:key[:scopes], scopes after the second ":" separated by | or +', () => {
    assert.deepEqual(parseStaticApiKey('acme:apix_t_s:publish:tool', 0), {
      orgId: 'acme',
      key: 'apix_t_s',
      scopes: ['publish:tool'],
    });
    assert.deepEqual(parseStaticApiKey('acme:apix_t_s:publish:tool|history+audit:read', 0).scopes, [
      'publish:tool',
      'history',
      'audit:read',
    ]);
    assert.deepEqual(parseStaticApiKey('acme:apix_t_s', 0).scopes, ['*']);
    assert.throws(() => new StaticApiKeyStore(['_:apix_t_s']), /organization/);
    assert.throws(() => new StaticApiKeyStore(['ac/me:apix_t_s']), /organization/);
    assert.throws(() => new StaticApiKeyStore(['acme:not_a_key']), /apix_/);
  });

  it('a `publish:tool` key publishes to tool: only, and may not read the audit trail', async () => {
    const tool = await httpPublish(node, KEYS.acmeTool, 'tool:x', 'note', { step: 1 });
    assert.equal(tool.status, 200, JSON.stringify(tool.body));
    const agent = await httpPublish(node, KEYS.acmeTool, 'agent:x', 'agent_status_update', agentStatus);
    assert.equal(agent.status, 403, JSON.stringify(agent.body));
    const org = await httpPublish(node, KEYS.acmeTool, 'org', 'note', {});
    assert.equal(org.status, 403, JSON.stringify(org.body));
    const audit = await fetch(`${node.httpUrl}/v1/audit`, {
      headers: { authorization: `Bearer ${KEYS.acmeTool}` },
    });
    assert.equal(audit.status, 403);
  });

  it('an `audit:read` key reads the audit trail, and publishes nothing', async () => {
    const audit = await fetch(`${node.httpUrl}/v1/audit`, {
      headers: { authorization: `Bearer ${KEYS.acmeAudit}` },
    });
    assert.equal(audit.status, 200, await audit.text());
    const agent = await httpPublish(node, KEYS.acmeAudit, 'agent:x', 'agent_status_update', agentStatus);
    assert.equal(agent.status, 403, JSON.stringify(agent.body));
  });
});

describe('agent, tool, workflow and provider events come from services and admins (hole 10)', () => {
  let node: ApiXNode;
  const channels = new MemoryChannelRegistry();
  before(async () => {
    node = await startNode({}, { channels });
    await channels.set('acme', 'agent:chat', { permissions: { publish: { roles: ['member'] } } });
  });
  after(() => node.close());

  const publishAs = async (roles: string[], channel: string) => {
    const c = await RawClient.connect(node.wsUrl, { token: await token({ sub: 'u', roles }) });
    const r = await c.publish(channel, 'agent_status_update', agentStatus);
    c.close();
    return r.type === 'message.sent' ? 'sent' : String(r.payload.code);
  };

  it('members and viewers subscribe, but may not publish', async () => {
    for (const channel of ['agent:research-bot', 'tool:search', 'workflow:w1', 'provider:openai']) {
      assert.equal(await publishAs(['member'], channel), 'FORBIDDEN', `member -> ${channel}`);
      assert.equal(await publishAs(['viewer'], channel), 'FORBIDDEN', `viewer -> ${channel}`);
    }
    const member = await RawClient.connect(node.wsUrl, { subscriptions: ['agent:research-bot'] });
    const svc = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'bot', roles: ['service'] }),
    });
    assert.equal(
      (await svc.publish('agent:research-bot', 'agent_status_update', agentStatus)).type,
      'message.sent',
    );
    await member.waitForEvents(1, 'agent:research-bot');
    member.close();
    svc.close();
  });

  it('services, API keys and admins publish; a channel rule can open a channel to members', async () => {
    assert.equal(await publishAs(['service'], 'tool:search'), 'sent');
    assert.equal(await publishAs(['admin'], 'workflow:w1'), 'sent');
    const key = await httpPublish(
      node,
      'apix_static_acmekey',
      'agent:research-bot',
      'agent_status_update',
      agentStatus,
    );
    assert.equal(key.status, 200, JSON.stringify(key.body));
    assert.equal(await publishAs(['member'], 'agent:chat'), 'sent');
    assert.equal(await publishAs(['member'], 'room:lobby'), 'sent', 'rooms stay open to members');
  });
});

describe('the organization id "_" is reserved for the shared namespace', () => {
  let node: ApiXNode;
  before(async () => {
    node = await startNode();
  });
  after(() => node.close());

  it('a token for org "_" is refused', async () => {
    await assert.rejects(
      RawClient.connect(node.wsUrl, { token: await token({ sub: 'x', org: '_', roles: ['service'] }) }),
      /UNAUTHORIZED/,
    );
  });
});
