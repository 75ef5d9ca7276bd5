/** The OfflineQueue contract (src/queue/queue.ts), run against every engine by tests/contracts/queue.test.ts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { OfflineQueue, QueuedFrame } from '../../src/queue/queue.ts';

export interface QueueTestEngine {
  queue(maxPerSession: number): Promise<OfflineQueue>;
  close(): Promise<void>;
}

export function describeQueueContract(
  name: string,
  factory: () => Promise<QueueTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`OfflineQueue contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: QueueTestEngine;
    before(async () => {
      engine = await factory();
    });
    after(async () => {
      await engine?.close();
    });

    test('push then drain gives the frames in order, once', async () => {
      const q = await engine.queue(10);
      const sid = session();
      const items = [frame(1), frame(2, true), frame(3)];
      for (const it of items) assert.equal(await q.push(sid, it), true);
      assert.equal(await q.size(sid), 3);
      assert.deepEqual(await q.drain(sid), { frames: items, overflowed: 0 });
      assert.deepEqual(await q.drain(sid), { frames: [], overflowed: 0 });
      assert.equal(await q.size(sid), 0);
    });

    test('a full queue drops the oldest and counts it', async () => {
      const q = await engine.queue(3);
      const sid = session();
      const items = [1, 2, 3, 4, 5].map((n) => frame(n));
      const accepted = [];
      for (const it of items) accepted.push(await q.push(sid, it));
      assert.deepEqual(accepted, [true, true, true, false, false]);
      assert.equal(await q.size(sid), 3);
      assert.deepEqual(await q.drain(sid), { frames: items.slice(2), overflowed: 2 });
      // The count starts again after a drain.
      await q.push(sid, frame(6));
      assert.deepEqual(await q.drain(sid), { frames: [frame(6)], overflowed: 0 });
    });

    test('sessions are separate; clear drops one session', async () => {
      const q = await engine.queue(10);
      const [s1, s2] = [session(), session()];
      await q.push(s1, frame(1));
      await q.push(s2, frame(2));
      await q.push(s2, frame(3));
      await q.clear(s2);
      assert.equal(await q.size(s2), 0);
      assert.deepEqual((await q.drain(s1)).frames, [frame(1)]);
      await q.clear(session()); // unknown session: nothing happens
    });

    test('frames of any text survive; session ids of any text work', async () => {
      const q = await engine.queue(10);
      const sid = `odd {id}% ${randomBytes(4).toString('hex')}\n`;
      const tricky: QueuedFrame = {
        ...frame(1),
        frame: '{"payload":"line\\nbreak","raw":"a\nb","u":"é😀"}\n',
      };
      await q.push(sid, tricky);
      assert.deepEqual((await q.drain(sid)).frames, [tricky]);
    });

    test('totalSize follows pushes and drains', async () => {
      const q = await engine.queue(2);
      const base = q.totalSize();
      const sid = session();
      await q.push(sid, frame(1));
      await q.push(sid, frame(2));
      await q.push(sid, frame(3));
      assert.equal(q.totalSize(), base + 2);
      await q.drain(sid);
      assert.equal(q.totalSize(), base);
    });
  });
}

function session(): string {
  return `s-${randomBytes(6).toString('hex')}`;
}

function frame(n: number, ack = false): QueuedFrame {
  return {
    key: 'org1/agent:a',
    id: `1700000000000-${n}`,
    type: 'test.event',
    timestamp: 1_700_000_000_000 + n,
    attempts: 0,
    frame: JSON.stringify({ type: 'test.event', channel: 'agent:a', payload: n, id: `1700000000000-${n}` }),
    ack,
  };
}
