/**
 * The fault tests' checker on hand-written histories: each kind of anomaly is found, and a clean history
 * is valid.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Checker, summarize, UnknownOutcome } from '../../support/checker.ts';

/** A checker with `n` acknowledged publishes on `channel` (event ids 1000-1, 1000-2, ...). */
function published(n: number, channel = 'agent:a'): { c: Checker; uids: string[] } {
  const c = new Checker();
  const uids: string[] = [];
  for (let i = 1; i <= n; i++) {
    const op = c.invoke(channel);
    c.ok(op.uid, `1000-${i}`);
    uids.push(op.uid);
  }
  return { c, uids };
}

describe('Checker', () => {
  it('a clean history: every ok publish delivered once, in order', () => {
    const { c, uids } = published(5);
    c.expect('s1', ['agent:a']);
    uids.forEach((u, i) => c.deliver('s1', 'agent:a', u, `1000-${i + 1}`));
    assert.equal(c.complete(), true);
    const v = c.analyze();
    assert.equal(v.valid, true);
    assert.deepEqual(v.published, { total: 5, ok: 5, failed: 0, unknown: 0, pending: 0 });
    assert.equal(v.totals.expected, 5);
    assert.equal(v.totals.delivered, 5);
    assert.equal(v.totals.lost, 0);
    assert.match(summarize(v), /published 5 .*delivered 5 .*lost 0, duplicated 0/);
  });

  it('finds lost, duplicated and unexpected deliveries', () => {
    const { c, uids } = published(4);
    c.expect('s1', ['agent:a']);
    c.deliver('s1', 'agent:a', uids[0]!, '1000-1');
    c.deliver('s1', 'agent:a', uids[1]!, '1000-2');
    c.deliver('s1', 'agent:a', 'never-published', '1000-3');
    c.deliver('s1', 'agent:a', uids[3]!, '1000-4');
    c.deliver('s1', 'agent:a', uids[3]!, '1000-4'); // again
    assert.equal(c.complete(), false);
    const v = c.analyze();
    assert.equal(v.valid, false);
    const s1 = v.clients.find((x) => x.client === 's1')!;
    assert.deepEqual(s1.lost, [uids[2]]);
    assert.deepEqual(s1.duplicated, [uids[3]]);
    assert.deepEqual(s1.unexpected, ['never-published']);
    assert.equal(s1.delivered, 3);
    // The repeated id is also out of order (not strictly increasing).
    assert.equal(s1.order.length, 1);
    assert.equal(s1.order[0]!.kind, 'event-id');
  });

  it('an event delivered on the wrong channel is unexpected', () => {
    const { c, uids } = published(1, 'agent:a');
    c.expect('s1', ['agent:a', 'agent:b']);
    c.deliver('s1', 'agent:b', uids[0]!, '1000-1');
    const v = c.analyze();
    assert.deepEqual(v.clients[0]!.unexpected, [uids[0]]);
    assert.deepEqual(v.clients[0]!.lost, [uids[0]]);
  });

  it('checks order per channel, by event id and by publish sequence', () => {
    const c = new Checker();
    const a1 = c.invoke('agent:a');
    const b1 = c.invoke('agent:b');
    const a2 = c.invoke('agent:a');
    c.ok(a1.uid, '1000-1');
    c.ok(b1.uid, '999-9'); // another channel: ids are not compared across channels
    c.ok(a2.uid, '1000-10');
    c.expect('s1', ['agent:a', 'agent:b']);
    c.deliver('s1', 'agent:a', a1.uid, '1000-1');
    c.deliver('s1', 'agent:b', b1.uid, '999-9');
    c.deliver('s1', 'agent:a', a2.uid, '1000-10'); // numerically after 1000-1 (not as strings)
    assert.equal(c.analyze().valid, true);

    const d = new Checker();
    const x1 = d.invoke('agent:a');
    const x2 = d.invoke('agent:a');
    d.ok(x1.uid);
    d.ok(x2.uid);
    d.expect('s1', ['agent:a']);
    // Without event ids the publish sequence decides: x2 then x1 is out of order.
    d.deliver('s1', 'agent:a', x2.uid);
    d.deliver('s1', 'agent:a', x1.uid);
    const v = d.analyze();
    assert.equal(v.totals.orderViolations, 1);
    assert.equal(v.clients[0]!.order[0]!.kind, 'publish-seq');
    assert.equal(new Checker({ checkPublishOrder: false }).analyze().valid, true);
  });

  it('failed publishes must not be delivered; unknown ones may or may not be', () => {
    const c = new Checker();
    const ok = c.invoke('agent:a');
    const failed = c.invoke('agent:a');
    const failedSeen = c.invoke('agent:a');
    const unknownSeen = c.invoke('agent:a');
    const unknownMissing = c.invoke('agent:a');
    c.ok(ok.uid, '1-1');
    c.fail(failed.uid, 'UNAVAILABLE');
    c.fail(failedSeen.uid, 'UNAVAILABLE');
    c.unknown(unknownSeen.uid);
    c.expect('s1', ['agent:a']);
    c.deliver('s1', 'agent:a', ok.uid, '1-1');
    c.deliver('s1', 'agent:a', failedSeen.uid, '1-2');
    c.deliver('s1', 'agent:a', unknownSeen.uid, '1-3');
    assert.equal(c.cutPending(), 1, 'the one still pending becomes unknown');
    const v = c.analyze();
    assert.deepEqual(v.published, { total: 5, ok: 1, failed: 2, unknown: 2, pending: 0 });
    const s1 = v.clients[0]!;
    assert.deepEqual(s1.failedButDelivered, [failedSeen.uid]);
    assert.deepEqual(s1.unknownDelivered, [unknownSeen.uid]);
    assert.deepEqual(s1.unknownMissing, [unknownMissing.uid]);
    assert.deepEqual(s1.lost, []);
    assert.equal(v.valid, false, 'a failed publish that took effect is a violation');
  });

  it('record() maps outcomes: resolved = ok, thrown = failed, UnknownOutcome = unknown', async () => {
    const c = new Checker();
    const a = await c.record('agent:a', async () => '5-1');
    const b = await c.record('agent:a', async () => {
      throw Object.assign(new Error('down'), { code: 'UNAVAILABLE' });
    });
    const u = await c.record('agent:a', async () => {
      throw new UnknownOutcome('socket closed');
    });
    assert.equal(a.status, 'ok');
    assert.equal(a.eventId, '5-1');
    assert.equal(b.status, 'failed');
    assert.equal(b.reason, 'UNAVAILABLE');
    assert.equal(u.status, 'unknown');
    assert.deepEqual([a.seq, b.seq, u.seq], [1, 2, 3]);
    assert.equal(c.okOn('agent:a').length, 1);
  });

  it('clients only answer for the channels they expect; lost counts per client', () => {
    const { c, uids } = published(3);
    c.expect('s1', ['agent:a']);
    c.expect('s2', ['agent:a']);
    c.expect('other', ['agent:zzz']);
    for (const [i, u] of uids.entries()) c.deliver('s1', 'agent:a', u, `1000-${i + 1}`);
    c.deliver('s2', 'agent:a', uids[0]!, '1000-1');
    const v = c.analyze();
    assert.equal(v.totals.expected, 6);
    assert.equal(v.totals.lost, 2);
    assert.deepEqual(v.clients.find((x) => x.client === 'other')!.lost, []);
  });
});
