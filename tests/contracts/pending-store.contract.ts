/** The PendingStore contract (src/pending/pending-store.ts), run against every engine by pending-store.test.ts. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type { PendingEntry, PendingOwner, PendingStore } from '../../src/pending/pending-store.ts';

export interface PendingTestEngine {
  store(): Promise<PendingStore>;
  close(): Promise<void>;
}

export function describePendingStoreContract(
  name: string,
  factory: () => Promise<PendingTestEngine>,
  options: { skip?: string | false } = {},
): void {
  describe(`PendingStore contract: ${name}`, { skip: options.skip ?? false }, () => {
    let engine: PendingTestEngine;
    before(async () => {
      engine = await factory();
    });
    after(async () => {
      await engine?.close();
    });

    test('a batch writes entries, removes and deadlines; take returns them ordered, once', async () => {
      const s = await engine.store();
      const o = owner();
      await s.write({
        puts: [e(o, '10-0', 1), e(o, '9-0', 2), e(o, '10-1', 1), e(o, '10-2', 1)].map((entry) => ({
          owner: o,
          entry,
        })),
        removes: [],
        deadlines: [{ owner: o, at: 1_000 }],
      });
      await s.write({
        puts: [{ owner: o, entry: e(o, '10-0', 2) }],
        removes: [{ sessionKey: o.sessionKey, key: 'acme/agent:a', id: '10-2' }],
        deadlines: [],
      });
      const taken = await s.take(o.sessionKey);
      assert.deepEqual(taken.owner, o);
      assert.deepEqual(
        taken.entries.map((x) => [x.id, x.attempts]),
        [
          ['9-0', 2],
          ['10-0', 2],
          ['10-1', 1],
        ],
        'ordered by event id numerically; the later put wins; the removed one is gone',
      );
      assert.deepEqual(taken.entries[0], e(o, '9-0', 2), 'entries round-trip');
      assert.deepEqual((await s.take(o.sessionKey)).entries, [], 'taken once');
      assert.deepEqual(await s.expired(2_000, 10), [], 'a taken session is no longer due');
    });

    test('expired lists sessions whose deadline passed; a deadline only moves later', async () => {
      const s = await engine.store();
      const [a, b] = [owner(), owner()];
      await s.write({
        puts: [
          { owner: a, entry: e(a, '1-0', 1) },
          { owner: b, entry: e(b, '1-0', 1) },
        ],
        removes: [],
        deadlines: [
          { owner: a, at: 100 },
          { owner: b, at: 500 },
        ],
      });
      await s.write({ puts: [], removes: [], deadlines: [{ owner: b, at: 50 }] }); // stale: ignored
      const due = await s.expired(200, 10);
      assert.ok(due.includes(a.sessionKey));
      assert.ok(!due.includes(b.sessionKey), 'an earlier deadline never replaces a later one');
      assert.ok((await s.expired(600, 10)).includes(b.sessionKey));
      // The sweep's take checks the deadline again, atomically: a session held anew is left alone.
      assert.equal(await s.takeExpired(b.sessionKey, 400), undefined);
      assert.equal((await s.takeExpired(a.sessionKey, 200))?.entries.length, 1);
      assert.deepEqual(
        (await s.takeExpired(b.sessionKey, 600))?.entries.map((x) => x.id),
        ['1-0'],
      );
      assert.deepEqual(await s.expired(10_000, 10), []);
    });

    test('the sweep lease is held by one node until it expires; its holder renews it', async () => {
      const s = await engine.store();
      const n1 = `n-${randomBytes(3).toString('hex')}`;
      const n2 = `n-${randomBytes(3).toString('hex')}`;
      assert.equal(await s.lease(n1, 150), true);
      assert.equal(await s.lease(n2, 150), false);
      assert.equal(await s.lease(n1, 150), true, 'renewed');
      await new Promise((r) => setTimeout(r, 250));
      assert.equal(await s.lease(n2, 150), true, 'free once expired');
    });
  });
}

function owner(): PendingOwner {
  const sessionId = `s-${randomBytes(4).toString('hex')}`;
  return { sessionKey: `acme/alice/${sessionId}`, orgId: 'acme', sessionId };
}

function e(_o: PendingOwner, id: string, attempts: number): PendingEntry {
  return {
    key: 'acme/agent:a',
    id,
    type: 'demo',
    timestamp: 5,
    frame: `{"id":"${id}"}`,
    publisher: { nodeId: 'n1', connectionId: 'c1' },
    attempts,
    dueAt: 1234,
  };
}
