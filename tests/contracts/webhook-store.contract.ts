/**
 * The contract of a webhook store and a channel-occupancy store (src/webhooks/webhook-store.ts,
 * occupancy.ts), run against the memory and the Redis implementations.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { WebhookStore } from '../../src/webhooks/webhook-store.ts';
import type { ChannelOccupancy } from '../../src/webhooks/occupancy.ts';
import type { WebhookBatch } from '../../src/webhooks/events.ts';

export interface WebhookStoreFactory {
  store: WebhookStore;
  occupancy: ChannelOccupancy;
  close(): Promise<void>;
}

const batch = (id: string, orgId = 'acme'): WebhookBatch => ({
  id,
  orgId,
  endpointId: 'wh_1',
  events: [{ id: `e-${id}`, type: 'connection.opened', organizationId: orgId, time: 1, data: {} }],
  attempts: 0,
});

export function describeWebhookStoreContract(
  name: string,
  make: () => Promise<WebhookStoreFactory>,
  opts: { skip?: string | false } = {},
): void {
  describe(`webhook store contract (${name})`, { skip: opts.skip }, () => {
    let f: WebhookStoreFactory;
    before(async () => {
      f = await make();
    });
    after(() => f.close());

    it('endpoints are per organization; removing needs the right organization', async () => {
      const e = {
        id: 'wh_1',
        orgId: 'acme',
        url: 'http://x/',
        events: ['connection.opened' as const],
        secret: 's',
        createdAt: 1,
      };
      await f.store.addEndpoint(e);
      assert.deepEqual(await f.store.endpoints('acme'), [e]);
      assert.deepEqual(await f.store.endpoints('globex'), []);
      assert.deepEqual(await f.store.endpoint('wh_1'), e);
      assert.equal(await f.store.removeEndpoint('globex', 'wh_1'), false);
      assert.equal(await f.store.removeEndpoint('acme', 'wh_1'), true);
      assert.equal(await f.store.endpoint('wh_1'), undefined);
    });

    it('claim leases due batches; retry moves the due time; done forgets; the queue is bounded', async () => {
      assert.equal(await f.store.add(batch('a'), 100, 2), true);
      assert.equal(await f.store.add(batch('b'), 200, 2), true);
      assert.equal(await f.store.add(batch('c'), 100, 2), false, 'full');
      assert.equal(await f.store.nextDue(), 100);
      assert.deepEqual(
        (await f.store.claim(150, 1000, 10)).map((b) => b.id),
        ['a'],
      );
      assert.deepEqual(
        (await f.store.claim(250, 1000, 10)).map((b) => b.id),
        ['b'],
        'a is leased',
      );
      await f.store.retry({ ...batch('a'), attempts: 1, lastError: 'HTTP 500' }, 300);
      const again = await f.store.claim(300, 1000, 10);
      assert.deepEqual(
        again.map((b) => [b.id, b.attempts, b.lastError]),
        [['a', 1, 'HTTP 500']],
      );
      assert.equal(await f.store.nextDue(), 1250, "b's lease");
      await f.store.done('a');
      await f.store.done('b');
      assert.equal(await f.store.queued(), 0);
      assert.equal(await f.store.nextDue(), undefined);
    });

    it('dead letters: per organization, bounded (oldest first), taken once', async () => {
      for (const [i, id] of ['d1', 'd2', 'd3'].entries()) {
        await f.store.add(batch(id), 0, 10);
        await f.store.deadLetter({ ...batch(id), attempts: 3, failedAt: 1000 + i }, 2);
      }
      await f.store.deadLetter({ ...batch('g1', 'globex'), attempts: 3, failedAt: 2000 }, 10);
      assert.equal(await f.store.queued(), 0);
      const acme = await f.store.deadLetters('acme');
      assert.ok(
        acme.every((d) => d.id !== 'd1'),
        'the oldest went past the bound',
      );
      assert.equal(await f.store.takeDeadLetter('globex', acme[0]!.id), undefined);
      assert.equal((await f.store.takeDeadLetter('acme', acme[0]!.id))?.id, acme[0]!.id);
      assert.equal(await f.store.takeDeadLetter('acme', acme[0]!.id), undefined, 'taken once');
    });

    it('occupancy: the first node in and the last node out are told, no one else', async () => {
      const k = 'acme/agent:occ';
      assert.equal(await f.occupancy.change(k, 'n1', true), true);
      assert.equal(await f.occupancy.change(k, 'n2', true), false);
      assert.equal(await f.occupancy.change(k, 'n1', true), false, 'again: no change');
      assert.equal(await f.occupancy.change(k, 'n1', false), false);
      assert.equal(await f.occupancy.change(k, 'n3', false), false, 'a node that was not in');
      assert.equal(await f.occupancy.change(k, 'n2', false), true);
      assert.equal(await f.occupancy.change(k, 'n2', true), true, 'occupied again');
      assert.equal(await f.occupancy.change(k, 'n2', false), true);
    });
  });
}
