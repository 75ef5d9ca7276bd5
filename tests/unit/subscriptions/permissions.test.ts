import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { authorize } from '../../../src/subscriptions/permissions.ts';
import { compileFilter } from '../../../src/subscriptions/filters.ts';
import { parseChannel } from '@apix/protocol';
import type { Principal } from '../../../src/auth/principal.ts';

const who = (p: Partial<Principal> = {}): Principal => ({
  orgId: 'acme',
  userId: 'alice',
  roles: ['member'],
  kind: 'jwt',
  scopes: [],
  isService: false,
  expiresAt: undefined,
  keyId: undefined,
  ...p,
});
const ch = (name: string) => {
  const r = parseChannel(name);
  assert.ok(r.ok);
  return r.channel;
};

describe('permission rules', () => {
  it('default rules by channel type', () => {
    const member = who();
    const service = who({ roles: ['service'], isService: true });
    const platform = who({ roles: ['service'], isService: true, isPlatform: true });
    const admin = who({ roles: ['admin'] });
    const viewer = who({ roles: ['viewer'] });
    const table: Array<[Principal, string, 'subscribe' | 'publish' | 'history', boolean]> = [
      [member, 'agent:a', 'subscribe', true],
      [member, 'agent:a', 'publish', false],
      [member, 'tool:a', 'publish', false],
      [member, 'workflow:a', 'publish', false],
      [admin, 'agent:a', 'publish', true],
      [service, 'agent:a', 'publish', true],
      [viewer, 'agent:a', 'publish', false],
      [viewer, 'agent:a', 'history', true],
      [member, 'system:x', 'subscribe', true],
      [member, 'system:x', 'publish', false],
      [admin, 'system:x', 'publish', false],
      [service, 'system:x', 'publish', false],
      [platform, 'system:x', 'publish', true],
      [member, 'user:alice', 'subscribe', true],
      [member, 'user:bob', 'subscribe', false],
      [member, 'user:bob', 'history', false],
      [member, 'user:bob', 'publish', false],
      [admin, 'user:bob', 'publish', true],
      [service, 'user:bob', 'publish', true],
      [member, 'org', 'publish', false],
      [admin, 'org', 'publish', true],
      [member, 'provider:x', 'publish', false],
      [member, 'room:r', 'publish', true],
    ];
    for (const [p, name, action, allowed] of table)
      assert.equal(
        authorize(action, p, 'WEB_APP', ch(name)).allowed,
        allowed,
        `${p.roles} ${action} ${name}`,
      );
  });

  it('channel overrides replace the default rule but not the invariants', () => {
    const rule = { subscribe: { roles: ['admin'] }, publish: { clientTypes: ['INTERNAL_SERVICE' as const] } };
    assert.equal(authorize('subscribe', who(), 'WEB_APP', ch('agent:s'), rule).allowed, false);
    assert.equal(
      authorize('subscribe', who({ roles: ['admin'] }), 'WEB_APP', ch('agent:s'), rule).allowed,
      true,
    );
    assert.equal(authorize('publish', who(), 'WEB_APP', ch('agent:s'), rule).allowed, false);
    assert.equal(authorize('publish', who(), 'INTERNAL_SERVICE', ch('agent:s'), rule).allowed, true);
    // An override cannot open someone else's user channel.
    assert.equal(authorize('subscribe', who(), 'WEB_APP', ch('user:bob'), { subscribe: {} }).allowed, false);
    assert.equal(authorize('publish', who(), 'WEB_APP', ch('system:x'), { publish: {} }).allowed, false);
  });

  it('API keys are limited by scope', () => {
    const key = (scopes: string[]) => who({ kind: 'apiKey', scopes, isService: true, roles: ['service'] });
    assert.equal(authorize('publish', key(['*']), undefined, ch('agent:a')).allowed, true);
    assert.equal(authorize('publish', key(['subscribe']), undefined, ch('agent:a')).allowed, false);
    assert.equal(authorize('publish', key(['publish:tool']), undefined, ch('tool:a')).allowed, true);
    assert.equal(authorize('publish', key(['publish:tool']), undefined, ch('agent:a')).allowed, false);
    // system: only a key with the explicit `system` scope (or of a platform organization).
    assert.equal(authorize('publish', key(['*']), undefined, ch('system:x')).allowed, false);
    assert.equal(authorize('publish', key(['publish:system']), undefined, ch('system:x')).allowed, false);
    assert.equal(authorize('publish', key(['system']), undefined, ch('system:x')).allowed, true);
    assert.equal(authorize('publish', key(['system']), undefined, ch('agent:a')).allowed, false);
    assert.equal(
      authorize('publish', { ...key(['*']), isPlatform: true }, undefined, ch('system:x')).allowed,
      true,
    );
  });

  it('a channel rule can open an agent channel to members', () => {
    const open = { publish: { roles: ['member'] } };
    assert.equal(authorize('publish', who(), 'WEB_APP', ch('agent:chat'), open).allowed, true);
    assert.equal(authorize('publish', who(), 'WEB_APP', ch('agent:chat')).allowed, false);
  });
});

describe('subscription filters', () => {
  it('filter by type and by top-level payload fields', () => {
    const f = compileFilter({ types: ['tool_call_start'], agentId: 'a1' })!;
    const ev = (type: string, payload: unknown) => ({ type, payload: () => payload });
    assert.equal(f(ev('tool_call_start', { agentId: 'a1' })), true);
    assert.equal(f(ev('tool_call_start', { agentId: 'a2' })), false);
    assert.equal(f(ev('tool_call_result', { agentId: 'a1' })), false);
    assert.equal(f(ev('tool_call_start', 'str')), false);
    assert.throws(() => compileFilter({ nested: { a: 1 } }), /filters\.nested/);
    assert.equal(compileFilter({}), undefined);
  });
});
