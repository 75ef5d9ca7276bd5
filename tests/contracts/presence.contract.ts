/** The Presence contract (src/presence/presence.ts), run against every engine by tests/contracts/presence.test.ts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, test } from 'node:test';
import { ManualClock } from '../../src/clock.ts';
import type { Presence, PresenceMember, PresenceOptions } from '../../src/presence/presence.ts';
import { sleep } from '../support/wait.ts';

export interface PresenceTestEngine {
  /** The presence of one more node over this engine's shared backend, on the given clock. */
  node(clock: ManualClock, options: PresenceOptions): Promise<Presence>;
  close(): Promise<void>;
}

const TTL = 60_000;

export function describePresenceContract(
  name: string,
  factory: () => Promise<PresenceTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`Presence contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: PresenceTestEngine;
    const open: Presence[] = [];
    // Nodes of one test share a clock (their clocks agree, as NTP makes them in production).
    const node = async (clock: ManualClock, opts: PresenceOptions = { ttlMs: TTL, refreshIntervalMs: 0 }) => {
      const p = await engine.node(clock, opts);
      open.push(p);
      return p;
    };
    before(async () => {
      engine = await factory();
    });
    afterEach(async () => {
      await Promise.all(open.splice(0).map((p) => p.close()));
    });
    after(async () => {
      await engine?.close();
    });

    test('join, list, join again replaces, leave', async () => {
      const clock = new ManualClock();
      const a = await node(clock);
      const room = roomKey();
      const m1 = member('a', { name: 'Ada', tags: ['x'] });
      const m2 = member('a');
      await a.join(room, m1);
      await a.join(room, m2);
      assert.deepEqual(sort(await a.list(room)), sort([m1, m2]));
      const renamed = { ...m1, info: { name: 'Ada L.' } };
      await a.join(room, renamed);
      assert.deepEqual(sort(await a.list(room)), sort([renamed, m2]));
      await a.leave(room, m1.connectionId);
      await a.leave(room, 'nobody');
      assert.deepEqual(await a.list(room), [m2]);
      assert.deepEqual(await a.list(roomKey()), []);
    });

    test('members of every node are listed by every node', async () => {
      const clock = new ManualClock();
      const [a, b] = [await node(clock), await node(clock)];
      const room = roomKey();
      const [ma, mb] = [member('a'), member('b')];
      await a.join(room, ma);
      await b.join(room, mb);
      assert.deepEqual(sort(await a.list(room)), sort([ma, mb]));
      assert.deepEqual(sort(await b.list(room)), sort([ma, mb]));
      await a.leave(room, ma.connectionId);
      assert.deepEqual(await b.list(room), [mb]);
    });

    test("a dead node's members expire; refreshed members stay", async () => {
      const clock = new ManualClock();
      const [dead, live] = [await node(clock), await node(clock)];
      const room = roomKey();
      const [md, ml] = [member('dead'), member('live')];
      await dead.join(room, md);
      await live.join(room, ml);
      clock.advance(TTL * 0.6);
      await live.refresh(); // `dead` never refreshes again: its node is gone
      clock.advance(TTL * 0.6);
      assert.deepEqual(await live.list(room), [ml]);
      clock.advance(TTL);
      assert.deepEqual(await live.list(room), []);
    });

    test('the refresh timer keeps members alive; close stops it', async () => {
      const clock = new ManualClock();
      const p = await node(clock, { ttlMs: TTL, refreshIntervalMs: TTL / 3 });
      const observer = await node(clock);
      const room = roomKey();
      const m = member('p');
      await p.join(room, m);
      for (let i = 0; i < 6; i++) {
        clock.advance(TTL / 3);
        await sleep(20); // the timer's refresh runs in the background
        assert.deepEqual(await observer.list(room), [m], `alive after ${i + 1} periods`);
      }
      await p.close();
      clock.advance(TTL + 1);
      assert.deepEqual(await observer.list(room), []);
    });
  });
}

function roomKey(): string {
  return `org1/room:${randomBytes(5).toString('hex')}`;
}

let seq = 0;
function member(nodeId: string, info?: Record<string, unknown>): PresenceMember {
  seq++;
  const m: PresenceMember = {
    connectionId: `conn-${seq}-${randomBytes(3).toString('hex')}`,
    clientId: `client-${seq}`,
    userId: `user-${seq}`,
    nodeId,
  };
  return info === undefined ? m : { ...m, info };
}

function sort(ms: PresenceMember[]): PresenceMember[] {
  return [...ms].sort((x, y) => x.connectionId.localeCompare(y.connectionId));
}
