/** The pure parts of revocation: who a revocation covers, the control message, the bounded stores. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  HeardRevocations,
  notBeforeFor,
  parseRevocationControl,
  revocationControlMessage,
  revokes,
} from '../../../src/auth/revocation-store.ts';
import type { Revocation } from '../../../src/auth/revocation-store.ts';
import { MemoryRevocationStore } from '../../../src/auth/memory-revocation.ts';
import { ManualClock } from '../../../src/clock.ts';
import { jwt } from '../../contracts/revocation.contract.ts';

describe('revocations', () => {
  it('revokes(): by jti, by user before notBefore, by API key; never across organizations or kinds', () => {
    const token: Revocation = { kind: 'token', orgId: 'acme', jti: 'j', expiresAt: 9e15 };
    assert.equal(revokes(token, jwt({ tokenId: 'j' })), true);
    assert.equal(revokes(token, jwt({ tokenId: 'j', orgId: 'globex' })), false);
    const user: Revocation = { kind: 'user', orgId: 'acme', userId: 'bob', notBefore: 100, expiresAt: 9e15 };
    assert.equal(revokes(user, jwt({ issuedAt: 99 })), true);
    assert.equal(revokes(user, jwt({ issuedAt: 100 })), false);
    assert.equal(revokes(user, jwt({ issuedAt: undefined })), true);
    const key: Revocation = { kind: 'apiKey', orgId: 'acme', keyId: 'k1' };
    const apiKey = jwt({ kind: 'apiKey', keyId: 'k1', userId: 'apikey:k1' });
    assert.equal(revokes(key, apiKey), true);
    assert.equal(revokes(user, { ...apiKey, userId: 'bob' }), false, 'a user revocation is for JWTs');
    assert.equal(revokes(key, jwt({ keyId: 'k1' })), false);
  });

  it('notBeforeFor covers every token issued in the current second', () => {
    assert.equal(notBeforeFor(1_700_000_000_999), 1_700_000_001);
    assert.equal(notBeforeFor(1_700_000_000_000), 1_700_000_001);
  });

  it('control messages round-trip, and malformed ones are ignored', () => {
    const r: Revocation = { kind: 'user', orgId: 'acme', userId: 'bob', notBefore: 5, expiresAt: 6 };
    const msg = JSON.parse(JSON.stringify(revocationControlMessage(r, 'n1', 'why')));
    assert.deepEqual(parseRevocationControl(msg), { revocation: r, reason: 'why' });
    for (const bad of [
      { kind: 'credentials.revoked', from: 'x' },
      { kind: 'credentials.revoked', from: 'x', revocation: null },
      { kind: 'credentials.revoked', from: 'x', revocation: { kind: 'token', orgId: 'acme', jti: 'j' } },
      {
        kind: 'credentials.revoked',
        from: 'x',
        revocation: { kind: 'user', orgId: 'acme', userId: 1, notBefore: 1, expiresAt: 1 },
      },
      { kind: 'session.suspend', from: 'x', revocation: r },
    ])
      assert.equal(parseRevocationControl(bad), undefined, JSON.stringify(bad));
  });

  it('HeardRevocations: bounded, expires, keeps the latest notBefore', () => {
    const clock = new ManualClock(1_000_000);
    const heard = new HeardRevocations(() => clock.now(), 3, 1000);
    heard.add({ kind: 'token', orgId: 'acme', jti: 'a', expiresAt: 1_000_500 });
    assert.equal(heard.covers(jwt({ tokenId: 'a' })), true);
    clock.advance(600);
    assert.equal(heard.covers(jwt({ tokenId: 'a' })), false, 'lapsed');
    for (const j of ['b', 'c', 'd', 'e'])
      heard.add({ kind: 'token', orgId: 'acme', jti: j, expiresAt: 9e15 });
    assert.equal(heard.covers(jwt({ tokenId: 'b' })), false, 'the oldest went past the bound');
    assert.equal(heard.covers(jwt({ tokenId: 'e' })), true);
    heard.add({ kind: 'user', orgId: 'acme', userId: 'bob', notBefore: 50, expiresAt: 9e15 });
    heard.add({ kind: 'user', orgId: 'acme', userId: 'bob', notBefore: 10, expiresAt: 9e15 });
    assert.equal(heard.covers(jwt({ issuedAt: 40 })), true);
    heard.add({ kind: 'apiKey', orgId: 'acme', keyId: 'k' });
    assert.equal(heard.covers(jwt({ kind: 'apiKey', keyId: 'k' })), true);
    clock.advance(1001);
    assert.equal(
      heard.covers(jwt({ kind: 'apiKey', keyId: 'k' })),
      false,
      'the key store is the truth after that',
    );
  });

  it('MemoryRevocationStore refuses a new revocation when full of unexpired ones (never forgets one silently)', async () => {
    const clock = new ManualClock(1000);
    const store = new MemoryRevocationStore(clock, 2);
    await store.revoke({ kind: 'token', orgId: 'o', jti: '1', expiresAt: 2000 });
    await store.revoke({ kind: 'token', orgId: 'o', jti: '2', expiresAt: 9000 });
    await assert.rejects(store.revoke({ kind: 'token', orgId: 'o', jti: '3', expiresAt: 9000 }), /too many/);
    clock.advance(1000);
    await store.revoke({ kind: 'token', orgId: 'o', jti: '3', expiresAt: 9000 });
    assert.equal(store.size, 2);
    assert.equal(await store.isRevoked(jwt({ orgId: 'o', tokenId: '2' })), true);
  });
});
