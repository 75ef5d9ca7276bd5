import assert from 'node:assert/strict';
import { test } from 'node:test';
import { credentialClientType, isClientType } from '../../../src/auth/client-type.ts';
import type { Principal } from '../../../src/auth/principal.ts';

const who = (over: Partial<Principal> = {}): Principal => ({
  orgId: 'acme',
  userId: 'u',
  roles: ['member'],
  kind: 'jwt',
  scopes: [],
  isService: false,
  expiresAt: undefined,
  keyId: undefined,
  ...over,
});

test('the client type permission rules see is the credential’s: claim, else API key or service, else none', () => {
  assert.equal(credentialClientType(who()), undefined, 'a member token vouches for nothing');
  assert.equal(credentialClientType(who({ clientType: 'MOBILE_APP' })), 'MOBILE_APP');
  assert.equal(credentialClientType(who({ clientType: 'INTERNAL_SERVICE' })), 'INTERNAL_SERVICE');
  assert.equal(credentialClientType(who({ roles: ['service'], isService: true })), 'INTERNAL_SERVICE');
  assert.equal(
    credentialClientType(who({ kind: 'apiKey', roles: ['service'], isService: true, keyId: 'k' })),
    'INTERNAL_SERVICE',
  );
  assert.equal(
    credentialClientType(who({ roles: ['service'], clientType: 'WEB_APP' })),
    'WEB_APP',
    'the claim wins',
  );
});

test('isClientType accepts the five types only', () => {
  for (const t of ['WEB_APP', 'MOBILE_APP', 'SDK_WIDGET', 'API_CLIENT', 'INTERNAL_SERVICE'])
    assert.ok(isClientType(t));
  for (const t of ['ROOT', 'web_app', '', 1, null, undefined, ['WEB_APP']]) assert.ok(!isClientType(t));
});
