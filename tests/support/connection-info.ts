/** Builders for the hook payloads the gateway emits, for tests that drive a HookBus directly. */
import type { ConnectionInfo } from '../../src/hooks.ts';
import type { Peer, Principal } from '../../src/auth/principal.ts';

export const testPeer: Peer = { remoteAddress: '203.0.113.7', userAgent: 'apix-test/1.0', origin: undefined };

export function testPrincipal(orgId: string, userId: string, overrides: Partial<Principal> = {}): Principal {
  return {
    orgId,
    userId,
    roles: ['member'],
    kind: 'jwt',
    scopes: [],
    isService: false,
    expiresAt: undefined,
    keyId: undefined,
    ...overrides,
  };
}

export function testConnection(
  orgId: string,
  sessionId: string,
  connectionId: string,
  overrides: Partial<ConnectionInfo> = {},
): ConnectionInfo {
  return {
    connectionId,
    sessionId,
    clientType: 'WEB_APP',
    principal: testPrincipal(orgId, `user-${sessionId}`),
    peer: testPeer,
    status: 'CONNECTED',
    connectedAt: 1_700_000_000_000,
    channels: [],
    metadata: { app: 'test' },
    ...overrides,
  };
}
