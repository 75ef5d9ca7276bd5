/**
 * The RevocationStore contract (src/auth/revocation-store.ts), run against every engine by
 * tests/contracts/revocation.test.ts. `node()` gives the store of one more node sharing the backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { RevocationStore } from '../../src/auth/revocation-store.ts';
import { notBeforeFor } from '../../src/auth/revocation-store.ts';
import type { Principal } from '../../src/auth/principal.ts';
import { sleep } from '../support/wait.ts';

export interface RevocationTestEngine {
  node(): Promise<RevocationStore>;
  close(): Promise<void>;
}

export function jwt(over: Partial<Principal> = {}): Principal {
  return {
    orgId: 'acme',
    userId: 'bob',
    roles: [],
    kind: 'jwt',
    scopes: [],
    isService: false,
    expiresAt: undefined,
    keyId: undefined,
    ...over,
  };
}

export function describeRevocationContract(
  name: string,
  factory: () => Promise<RevocationTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`RevocationStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: RevocationTestEngine;
    let a: RevocationStore;
    let b: RevocationStore;
    before(async () => {
      engine = await factory();
      [a, b] = [await engine.node(), await engine.node()];
    });
    after(() => engine?.close());

    test('a token revoked on one node is revoked on the other; only that jti of that organization', async () => {
      await a.revoke({ kind: 'token', orgId: 'acme', jti: 'j1', expiresAt: Date.now() + 60_000 });
      assert.equal(await b.isRevoked(jwt({ tokenId: 'j1' })), true);
      assert.equal(await b.isRevoked(jwt({ tokenId: 'j2' })), false);
      assert.equal(await b.isRevoked(jwt({ tokenId: undefined })), false);
      assert.equal(await b.isRevoked(jwt({ tokenId: 'j1', orgId: 'globex' })), false, 'never across tenants');
      assert.equal(await b.isRevoked({ ...jwt(), kind: 'apiKey', keyId: 'j1', tokenId: 'j1' }), false);
    });

    test("a user's tokens issued before notBefore are revoked, later ones and other users' are not", async () => {
      const now = Date.now();
      const nb = notBeforeFor(now);
      await a.revoke({
        kind: 'user',
        orgId: 'acme',
        userId: 'carol',
        notBefore: nb,
        expiresAt: now + 60_000,
      });
      const carol = (issuedAt: number | undefined) => jwt({ userId: 'carol', issuedAt });
      assert.equal(
        await b.isRevoked(carol(Math.floor(now / 1000))),
        true,
        'issued in the same second: revoked',
      );
      assert.equal(await b.isRevoked(carol(nb - 100)), true);
      assert.equal(await b.isRevoked(carol(undefined)), true, 'no iat: cannot prove it is newer');
      assert.equal(await b.isRevoked(carol(nb)), false, 'issued from notBefore on: valid');
      assert.equal(await b.isRevoked(jwt({ userId: 'dave', issuedAt: 1 })), false);
      assert.equal(await b.isRevoked(jwt({ userId: 'carol', orgId: 'globex', issuedAt: 1 })), false);
    });

    test("a user's revocation only moves forward (an older one written later does not lower it)", async () => {
      const now = Date.now();
      await a.revoke({
        kind: 'user',
        orgId: 'acme',
        userId: 'erin',
        notBefore: 2000,
        expiresAt: now + 60_000,
      });
      await b.revoke({
        kind: 'user',
        orgId: 'acme',
        userId: 'erin',
        notBefore: 1000,
        expiresAt: now + 1_000,
      });
      assert.equal(await a.isRevoked(jwt({ userId: 'erin', issuedAt: 1500 })), true);
      await sleep(1200);
      assert.equal(
        await a.isRevoked(jwt({ userId: 'erin', issuedAt: 1500 })),
        true,
        'the longer life is kept',
      );
    });

    test('a revocation lapses at expiresAt', async () => {
      await a.revoke({ kind: 'token', orgId: 'acme', jti: 'short', expiresAt: Date.now() + 200 });
      assert.equal(await b.isRevoked(jwt({ tokenId: 'short' })), true);
      await sleep(350);
      assert.equal(await b.isRevoked(jwt({ tokenId: 'short' })), false);
      await a.revoke({ kind: 'token', orgId: 'acme', jti: 'past', expiresAt: Date.now() - 1 });
      assert.equal(await b.isRevoked(jwt({ tokenId: 'past' })), false, 'already lapsed: nothing stored');
    });
  });
}
