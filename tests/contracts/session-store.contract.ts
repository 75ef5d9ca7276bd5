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
      // Long spans on the manual clock: Redis also expires the key (PX) on its own clock, which must not
      // come first however slow the machine is.
      const s = snapshot(clock.now() + 60_000);
      await store.save(s);
      clock.advance(59_999);
      assert.deepEqual(await store.load(s.sessionId), s);
      clock.advance(1);
      assert.equal(await store.load(s.sessionId), undefined);
      // Saving an already expired snapshot stores nothing.
      const late = snapshot(clock.now() - 1);
      await store.save(late);
      assert.equal(await store.load(late.sessionId), undefined);
    });

    test('privateChannelState: live when a session receiving user:<id> is connected, away when all wait, else none', async () => {
      const clock = makeClock();
      const store = await engine.store(clock);
      const user = `u-${randomBytes(4).toString('hex')}`;
      const mk = (live: boolean, expiresAt: number, channel = `user:${user}`): SessionSnapshot => ({
        ...snapshot(expiresAt),
        userId: user,
        subscriptions: [{ channel, ack: false, filters: undefined, lastId: undefined }],
        live,
      });
      const state = () => store.privateChannelState('org1', user);
      assert.equal(await state(), 'none');
      const away = mk(false, clock.now() + 10_000);
      await store.save(away);
      assert.equal(await state(), 'away');
      await store.save(mk(true, clock.now() + 10_000, 'agent:a'));
      assert.equal(await state(), 'away', 'a live session that does not receive the channel does not count');
      const live = mk(true, clock.now() + 10_000);
      await store.save(live);
      assert.equal(await state(), 'live');
      assert.equal(await store.privateChannelState('org2', user), 'none', 'per organization');
      await store.save({ ...live, live: false });
      assert.equal(await state(), 'away');
      await store.save({ ...live, subscriptions: [] });
      await store.delete(away.sessionId);
      assert.equal(await state(), 'none', 'deleted, or no longer receiving the channel');
      await store.save(mk(false, clock.now() + 60_000));
      assert.equal(await state(), 'away');
      clock.advance(60_000);
      assert.equal(await state(), 'none', 'expired');
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
