/**
 * The pending journal (src/retry/pending-journal.ts) with the RetryManager, on a ManualClock: in-flight
 * state reaches the store once per tick (never per delivery), with its attempts and due time; an ack
 * within the tick of the first delivery writes nothing; a new holder takes the entries over and the
 * schedule continues (retryCount = attempts); a session nobody resumes is dead-lettered by the sweep
 * at its deadline, by the one node holding the lease.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.ts';
import { RetryManager } from '../../../src/retry/retry-manager.ts';
import { PendingJournal } from '../../../src/retry/pending-journal.ts';
import { MemoryDeadLetterStore } from '../../../src/retry/dead-letter.ts';
import { MemoryPendingStore } from '../../../src/pending/pending-store.ts';
import type { PendingBatch, PendingEntry, PendingOwner } from '../../../src/pending/pending-store.ts';
import { Session, Subscription, type Connection } from '../../../src/connections/session.ts';
import { parseChannel } from '@apix/protocol';
import type { BrokerEvent } from '../../../src/broker/broker.ts';

const FLUSH_MS = 100;
const SWEEP_MS = 500;
const TTL_MS = 10_000;

class CountingStore extends MemoryPendingStore {
  batches: PendingBatch[] = [];
  failNext = 0;
  override async write(batch: PendingBatch): Promise<void> {
    if (this.failNext > 0) {
      this.failNext--;
      throw new Error('store down');
    }
    this.batches.push(batch);
    return super.write(batch);
  }
}

function node(clock: ManualClock, store: CountingStore, nodeId: string) {
  const sent: Array<{ id: string; retryCount: number | undefined }> = [];
  const conn = {
    sendEvent: (frames: { text: string }) => {
      const f = JSON.parse(frames.text) as { id: string; metadata: { retryCount?: number } };
      sent.push({ id: f.id, retryCount: f.metadata.retryCount });
    },
  } as unknown as Connection;
  const session = new Session('acme/u/s', 's', { orgId: 'acme', userId: 'u' } as never, 'WEB_APP');
  session.connection = conn;
  const parsed = parseChannel('tool:jobs');
  assert.ok(parsed.ok);
  const sub = new Subscription(session, 'acme/tool:jobs', parsed.channel, true, undefined, undefined);
  session.subscriptions.set(sub.key, sub);
  const letters = new MemoryDeadLetterStore(100);
  const expired: Array<{ owner: PendingOwner; entries: readonly PendingEntry[] }> = [];
  const rm = new RetryManager(
    {
      ackTimeoutMs: 1000,
      baseMs: 100,
      maxMs: 400,
      maxAttempts: 3,
      maxInflight: 10,
      maxWaiting: 10,
      compressThresholdBytes: 1024,
    },
    clock,
    () => 0.5,
    letters,
    { queueAway: () => {}, deadLettered: () => {}, acked: () => {} },
  );
  const journal = new PendingJournal(
    store,
    clock,
    { nodeId, flushMs: FLUSH_MS, sweepMs: SWEEP_MS, sessionTtlMs: TTL_MS },
    (owner, entries) => expired.push({ owner, entries }),
  );
  rm.pending = journal;
  journal.start();
  return { rm, journal, session, sub, sent, expired };
}

const event = (id: string): BrokerEvent => ({
  key: 'acme/tool:jobs',
  id,
  type: 'job',
  timestamp: 1,
  frame: `{"type":"job","channel":"tool:jobs","id":"${id}","payload":{},"metadata":{"timestamp":1,"version":"1"}}`,
  publisher: { nodeId: 'n0', connectionId: 'c0' },
});

/** Lets the store's promises settle between clock steps. */
async function tick(clock: ManualClock, ms: number): Promise<void> {
  clock.advance(ms);
  for (let i = 0; i < 5; i++) await Promise.resolve();
}

describe('PendingJournal', () => {
  it('writes in-flight state once per tick, with attempts and due time; removes on ack', async () => {
    const clock = new ManualClock();
    const store = new CountingStore(100, () => clock.now());
    const a = node(clock, store, 'a');
    for (const id of ['1-0', '1-1', '1-2']) a.rm.deliver(a.sub, event(id), undefined);
    assert.equal(store.batches.length, 0, 'nothing written on the delivery path');
    await tick(clock, FLUSH_MS);
    assert.equal(store.batches.length, 1, 'one batch for three deliveries');
    assert.equal(store.batches[0]!.puts.length, 3);
    const due = store.batches[0]!.puts[0]!.entry.dueAt;
    // ack timeout 1000 + backoff(0) = floor(0.5 * 100) = 50
    assert.equal(due, clock.now() - FLUSH_MS + 1050);
    a.rm.ack(a.session, 'acme/tool:jobs', ['1-0']);
    await tick(clock, FLUSH_MS);
    assert.deepEqual(
      store.batches[1]!.removes.map((r) => r.id),
      ['1-0'],
    );
    assert.equal(store.size, 2);
  });

  it('an ack within the tick of the first delivery writes nothing', async () => {
    const clock = new ManualClock();
    const store = new CountingStore(100, () => clock.now());
    const a = node(clock, store, 'a');
    a.rm.deliver(a.sub, event('2-0'), undefined);
    a.rm.ack(a.session, 'acme/tool:jobs', ['2-0']);
    await tick(clock, FLUSH_MS * 3);
    const touched = store.batches.flatMap((b) => [
      ...b.puts.map((p) => p.entry.id),
      ...b.removes.map((r) => r.id),
    ]);
    assert.deepEqual(touched, []);
  });

  it('redeliveries update attempts; another holder continues the schedule (retryCount goes on)', async () => {
    const clock = new ManualClock();
    const store = new CountingStore(100, () => clock.now());
    const a = node(clock, store, 'a');
    a.rm.deliver(a.sub, event('3-0'), undefined);
    await tick(clock, 1050); // first redelivery, retryCount 1
    assert.deepEqual(a.sent, [
      { id: '3-0', retryCount: undefined },
      { id: '3-0', retryCount: 1 },
    ]);
    await tick(clock, FLUSH_MS);
    // Node a dies (its timers stop, nothing more is written); node b takes the session over.
    a.journal.close().catch(() => {});
    const b = node(clock, store, 'b');
    const taken = await b.journal.take('acme/u/s');
    assert.equal(taken.owner?.sessionId, 's');
    assert.deepEqual(
      taken.entries.map((e) => [e.id, e.attempts]),
      [['3-0', 2]],
    );
    for (const e of taken.entries)
      b.rm.deliver(b.sub, { ...event(e.id), frame: e.frame }, undefined, e.attempts);
    assert.deepEqual(b.sent, [{ id: '3-0', retryCount: 2 }], 'the count continues, not restarts');
    await tick(clock, FLUSH_MS);
    assert.equal((await store.take('acme/u/s')).entries[0]?.attempts, 3, 'b persisted the third delivery');
  });

  it('a session nobody resumes is dead-lettered at its deadline, by one node (lease)', async () => {
    const clock = new ManualClock();
    const store = new CountingStore(100, () => clock.now());
    const a = node(clock, store, 'a');
    const b = node(clock, store, 'b');
    a.rm.deliver(a.sub, event('4-0'), undefined);
    a.rm.deliver(a.sub, event('4-1'), undefined);
    a.session.connection = undefined;
    a.rm.suspend(a.session);
    await tick(clock, FLUSH_MS);
    a.journal.close().catch(() => {}); // the holder dies
    await tick(clock, TTL_MS / 2);
    assert.equal(b.expired.length, 0, 'not before the deadline');
    for (let i = 0; i < 20 && b.expired.length === 0; i++) await tick(clock, SWEEP_MS);
    assert.equal(b.expired.length, 1);
    assert.deepEqual(
      b.expired[0]!.entries.map((e) => e.id),
      ['4-0', '4-1'],
    );
    assert.equal(b.expired[0]!.owner.orgId, 'acme');
    assert.equal(store.size, 0);
    assert.equal(await store.lease('a', 1000), false, 'b holds the sweep lease');
  });

  it('a failed write is retried at the next tick', async () => {
    const clock = new ManualClock();
    const store = new CountingStore(100, () => clock.now());
    const a = node(clock, store, 'a');
    store.failNext = 1;
    a.rm.deliver(a.sub, event('5-0'), undefined);
    await tick(clock, FLUSH_MS);
    assert.equal(a.journal.failures, 1);
    assert.equal(store.size, 0);
    await tick(clock, FLUSH_MS);
    assert.equal(store.size, 1);
  });
});
