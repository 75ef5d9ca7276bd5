/**
 * The SuspensionStore contract (src/suspension/suspension-store.ts), run against every engine by
 * tests/contracts/suspension.test.ts. `node()` gives the store of one more node sharing the backend.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { SuspensionStore } from '../../src/suspension/suspension-store.ts';
import { apiKeyUser } from '../../src/suspension/suspension-store.ts';
import { sleep } from '../support/wait.ts';

export interface SuspensionTestEngine {
  node(): Promise<SuspensionStore>;
  close(): Promise<void>;
}

export function describeSuspensionContract(
  name: string,
  factory: () => Promise<SuspensionTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`SuspensionStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: SuspensionTestEngine;
    let a: SuspensionStore;
    let b: SuspensionStore;
    before(async () => {
      engine = await factory();
      [a, b] = [await engine.node(), await engine.node()];
    });
    after(() => engine?.close());
    const later = () => Date.now() + 60_000;

    test('a session suspended on one node is found on the other; only that session of that user and organization', async () => {
      await a.suspend({ orgId: 'acme', userId: 'bob', sessionId: 's1', reason: 'spam', expiresAt: later() });
      assert.deepEqual(await b.find('acme', 'bob', 's1'), { scope: 'session', reason: 'spam' });
      assert.equal(await b.find('acme', 'bob', 's2'), undefined, 'another session id');
      assert.equal(await b.find('acme', 'bobby', 's1'), undefined, 'another user');
      assert.equal(await b.find('globex', 'bob', 's1'), undefined, 'never across tenants');
    });

    test('a user suspended covers every session id, a new one included; an API key is its user', async () => {
      await a.suspend({ orgId: 'acme', userId: 'carol', reason: 'fraud', expiresAt: later() });
      for (const sid of ['s1', 'fresh', `r-${Math.random()}`])
        assert.deepEqual(await b.find('acme', 'carol', sid), { scope: 'user', reason: 'fraud' });
      assert.equal(await b.find('globex', 'carol', 's1'), undefined);
      await a.suspend({ orgId: 'acme', userId: apiKeyUser('k1'), reason: 'leaked', expiresAt: later() });
      assert.equal((await b.find('acme', 'apikey:k1', 'any'))?.scope, 'user');
      assert.equal(await b.find('acme', 'apikey:k2', 'any'), undefined);
    });

    test('ids with separators and hash-tag characters do not collide', async () => {
      await a.suspend({
        orgId: 'acme',
        userId: 'team/a}',
        sessionId: 'x:{y}',
        reason: 'r',
        expiresAt: later(),
      });
      assert.equal((await b.find('acme', 'team/a}', 'x:{y}'))?.scope, 'session');
      assert.equal(await b.find('acme', 'team', 'a}/x:{y}'), undefined);
      assert.equal(await b.find('acme', 'team/a}', 'x:{y'), undefined);
    });

    test('a lift removes exactly its target; a user lift leaves a session suspension', async () => {
      await a.suspend({ orgId: 'acme', userId: 'dan', reason: 'u', expiresAt: later() });
      await a.suspend({ orgId: 'acme', userId: 'dan', sessionId: 'd1', reason: 's', expiresAt: later() });
      await b.lift({ orgId: 'acme', userId: 'dan' });
      assert.equal(await a.find('acme', 'dan', 'd2'), undefined);
      assert.deepEqual(await a.find('acme', 'dan', 'd1'), { scope: 'session', reason: 's' });
      await b.lift({ orgId: 'acme', userId: 'dan', sessionId: 'd1' });
      assert.equal(await a.find('acme', 'dan', 'd1'), undefined);
    });

    test('a suspension lapses at expiresAt', async () => {
      await a.suspend({ orgId: 'acme', userId: 'eve', reason: 'short', expiresAt: Date.now() + 200 });
      assert.equal((await b.find('acme', 'eve', 'e'))?.reason, 'short');
      await sleep(350);
      assert.equal(await b.find('acme', 'eve', 'e'), undefined);
      await a.suspend({ orgId: 'acme', userId: 'old', reason: 'past', expiresAt: Date.now() - 1 });
      assert.equal(await b.find('acme', 'old', 'e'), undefined, 'already lapsed: nothing stored');
    });
  });
}
