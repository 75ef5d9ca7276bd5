import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AuditEntryInput } from '../../../src/audit/audit-logger.ts';
import { DenialAggregator } from '../../../src/audit/denial-aggregator.ts';
import { ManualClock } from '../../../src/clock.ts';

const denial = (target: string): AuditEntryInput => ({
  orgId: 'acme',
  actor: 'mallory',
  action: 'subscription.denied',
  target,
  detail: { code: 'FORBIDDEN' },
});

test('the first denial of a window is recorded as it comes, the rest as one summary with a count', () => {
  const clock = new ManualClock(1_000);
  const out: AuditEntryInput[] = [];
  const agg = new DenialAggregator({ clock, windowMs: 100, record: (e) => out.push(e) });
  for (let i = 0; i < 1000; i++) agg.deny('connection c1', denial(`user:v${i}`));
  agg.deny('connection c2', denial('user:other'));
  assert.deepEqual(
    out.map((e) => e.target),
    ['user:v0', 'user:other'],
  );
  clock.advance(50);
  agg.deny('connection c1', denial('user:late'));
  clock.advance(60); // the window of c1 (and c2) ended: summarized by the sweep
  assert.equal(out.length, 3);
  const summary = out[2]!;
  assert.equal(summary.action, 'subscription.denied');
  assert.equal(summary.actor, 'mallory');
  assert.equal(summary.target, undefined);
  assert.deepEqual(summary.detail, {
    code: 'FORBIDDEN',
    aggregated: true,
    count: 1000,
    targets: Array.from({ length: 10 }, (_, i) => `user:v${i + 1}`),
    firstAt: 1_000,
    lastAt: 1_050,
  });
  assert.equal(agg.size, 0, 'ended windows are forgotten');
  // A new window: recorded as it comes again.
  agg.deny('connection c1', denial('user:again'));
  assert.equal(out.at(-1)!.target, 'user:again');
  agg.flush();
  assert.equal(out.length, 4, 'a window with nothing counted makes no summary');
});

test('bounded: the oldest source is summarized early to make room; window 0 records every denial', () => {
  const clock = new ManualClock(0);
  const out: AuditEntryInput[] = [];
  const agg = new DenialAggregator({ clock, windowMs: 1000, maxSources: 2, record: (e) => out.push(e) });
  agg.deny('a', denial('x'));
  agg.deny('a', denial('y'));
  agg.deny('b', denial('x'));
  agg.deny('c', denial('x'));
  assert.equal(agg.size, 2);
  assert.deepEqual(
    out.map((e) => [e.target, (e.detail as { count?: number }).count]),
    [
      ['x', undefined],
      ['x', undefined],
      ['y', 1],
      ['x', undefined],
    ],
  );
  const every: AuditEntryInput[] = [];
  const off = new DenialAggregator({ clock, windowMs: 0, record: (e) => every.push(e) });
  for (let i = 0; i < 5; i++) off.deny('a', denial(`t${i}`));
  assert.equal(every.length, 5);
  assert.equal(off.size, 0);
});
