import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  isSharedChannelKey,
  mayNotifyPublisher,
  publisherIdempotencyKey,
  publisherScopeKey,
} from '../../../src/tenancy/scope-keys.ts';
import { channelKey, isValidOrgId, parseChannel } from '@apix/protocol';

const key = (org: string, name: string) => {
  const r = parseChannel(name);
  assert.ok(r.ok);
  return channelKey(org, r.channel);
};

describe('publisher scope keys', () => {
  it("an organization's own channel: the channel key itself", () => {
    const k = key('acme', 'agent:x');
    assert.equal(isSharedChannelKey(k), false);
    assert.equal(publisherScopeKey({ orgId: 'acme' }, k), 'acme/agent:x');
    assert.equal(publisherIdempotencyKey({ orgId: 'acme' }, k, 'k1'), 'k1');
  });

  it('a shared system channel: one scope per publishing organization, none equal to a channel key', () => {
    const k = key('acme', 'system:x');
    assert.equal(k, key('globex', 'system:x'));
    assert.equal(isSharedChannelKey(k), true);
    const a = publisherScopeKey({ orgId: 'acme' }, k);
    const g = publisherScopeKey({ orgId: 'globex' }, k);
    assert.notEqual(a, g);
    assert.equal(a, '_/system:x/acme');
    assert.notEqual(a, key('acme', 'system:x'));
    assert.notEqual(
      publisherIdempotencyKey({ orgId: 'acme' }, k, 'k1'),
      publisherIdempotencyKey({ orgId: 'globex' }, k, 'k1'),
    );
    // A key that looks like another organization's prefix stays apart.
    assert.notEqual(
      publisherIdempotencyKey({ orgId: 'acme' }, k, 'k1'),
      publisherIdempotencyKey({ orgId: 'globex' }, k, 'acme/k1'),
    );
  });

  it('dead-letter notices stay within one organization; "_" is no organization', () => {
    assert.equal(mayNotifyPublisher('acme', 'acme'), true);
    assert.equal(mayNotifyPublisher('acme', 'globex'), false);
    assert.equal(isValidOrgId('_'), false);
    assert.equal(isValidOrgId('__'), true);
  });
});
