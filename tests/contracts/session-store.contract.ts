/** The SessionStore contract (src/sessions/session-store.ts), run by tests/contracts/session-store.test.ts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { ManualClock } from '../../src/clock.ts';
import type { SessionSnapshot, SessionStore } from '../../src/sessions/session-store.ts';

export interface SessionStoreTestEngine {
  /** A store reading time from `clock`. */
  store(clock: ManualClock): Promise<SessionStore>;
  close(): Promise<void>;
}

export function describeSessionStoreContract(
  name: string,
  factory: () => Promise<SessionStoreTestEngine>,
  makeClock: () => ManualClock,
  options: { skip?: string | false } = {},
): void {
  describe(`SessionStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: SessionStoreTestEngine;
    before(async () => {
      engine = await factory();
    });
    after(async () => {
      await engine?.close();
    });

    test('save, load, overwrite, delete', async () => {
      const clock = makeClock();
      const store = await engine.store(clock);
      const s = snapshot(clock.now() + 60_000);
      assert.equal(await store.load(s.sessionId), undefined);
      await store.save(s);
      assert.deepEqual(await store.load(s.sessionId), s);
      const moved = { ...s, nodeId: 'node-b', suspended: true, subscriptions: [] };
      await store.save(moved);
      assert.deepEqual(await store.load(s.sessionId), moved);
      await store.delete(s.sessionId);
      assert.equal(await store.load(s.sessionId), undefined);
      await store.delete(s.sessionId); // deleting twice is harmless
    });

    test('a session is forgotten once it expires', async () => {
      const clock = makeClock();
      const store = await engine.store(clock);
      const s = snapshot(clock.now() + 1000);
      await store.save(s);
      clock.advance(999);
      assert.deepEqual(await store.load(s.sessionId), s);
      clock.advance(1);
      assert.equal(await store.load(s.sessionId), undefined);
      // Saving an already expired snapshot stores nothing.
      const late = snapshot(clock.now() - 1);
      await store.save(late);
      assert.equal(await store.load(late.sessionId), undefined);
    });
  });
}

export function snapshot(expiresAt: number): SessionSnapshot {
  return {
    sessionId: `sess-${randomBytes(6).toString('hex')}`,
    orgId: 'org1',
    userId: 'user-1',
    clientType: 'WEB_APP',
    subscriptions: [
      { channel: 'agent:a', ack: false, filters: undefined, lastId: '1700000000000-3' },
      { channel: 'user:user-1', ack: true, filters: { eventTypes: ['x'] }, lastId: undefined },
    ],
    nodeId: 'node-a',
    expiresAt,
    suspended: false,
  };
}
