/**
 * PublishOrder (src/router/publish-order.ts): turns in ticket order whatever order the checks finish in,
 * a failed publish passes its turn, and the in-flight bound pauses and resumes reading.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PublishOrder } from '../../../src/router/publish-order.ts';

/** Runs publish `ticket` the way the router does: checks (resolved by the test), turn, broker call. */
async function publish(
  order: PublishOrder,
  ticket: number,
  checks: Promise<void>,
  calls: number[],
): Promise<void> {
  try {
    await checks;
    if (!order.isTurn(ticket)) await order.wait(ticket);
    calls.push(ticket);
    order.pass(ticket);
  } finally {
    order.settle(ticket);
  }
}

function deferred(): { promise: Promise<void>; resolve(): void; reject(err: Error): void } {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('PublishOrder', () => {
  it('calls the broker in ticket order when the checks finish in reverse', async () => {
    const order = new PublishOrder();
    const calls: number[] = [];
    const checks = [deferred(), deferred(), deferred(), deferred()];
    const done = checks.map((c) => publish(order, order.enter(), c.promise, calls));
    for (const c of [...checks].reverse()) c.resolve();
    await Promise.all(done);
    assert.deepEqual(calls, [0, 1, 2, 3]);
    assert.equal(order.inFlight, 0);
  });

  it('a publish that fails its checks passes its turn, before or after the later ones are ready', async () => {
    const order = new PublishOrder();
    const calls: number[] = [];
    const checks = [deferred(), deferred(), deferred(), deferred()];
    const done = checks.map((c) => publish(order, order.enter(), c.promise, calls).catch(() => {}));
    checks[3]!.resolve();
    checks[1]!.reject(new Error('rate limited'));
    checks[2]!.resolve();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(calls, [], 'all wait for the first');
    checks[0]!.resolve();
    await Promise.all(done);
    assert.deepEqual(calls, [0, 2, 3]);
    // And a new publish after all that goes at once.
    await publish(order, order.enter(), Promise.resolve(), calls);
    assert.deepEqual(calls, [0, 2, 3, 4]);
  });

  it('pauses reading above maxInFlight and resumes at half', async () => {
    const events: string[] = [];
    const order = new PublishOrder({
      maxInFlight: 4,
      pause: () => events.push('pause'),
      resume: () => events.push('resume'),
    });
    const calls: number[] = [];
    const checks = Array.from({ length: 6 }, () => deferred());
    const done = checks.map((c) => publish(order, order.enter(), c.promise, calls));
    assert.deepEqual(events, ['pause'], 'paused once, at the fifth');
    assert.equal(order.inFlight, 6);
    for (const c of checks.slice(0, 3)) c.resolve();
    await Promise.all(done.slice(0, 3));
    assert.deepEqual(events, ['pause'], 'three in flight: above half');
    checks[3]!.resolve();
    await done[3];
    assert.deepEqual(events, ['pause', 'resume']);
    for (const c of checks.slice(4)) c.resolve();
    await Promise.all(done);
    assert.deepEqual(calls, [0, 1, 2, 3, 4, 5]);
    assert.equal(order.paused, false);
  });
});
