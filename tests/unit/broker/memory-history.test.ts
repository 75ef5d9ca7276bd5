import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryHistory } from '../../../src/broker/memory-history.ts';

const opts = { size: 3, ttlMs: 1000 };
const make = (key: string, now: number) => (id: string) => ({
  key,
  id,
  type: 't',
  timestamp: now,
  frame: id,
  publisher: undefined,
});

describe('MemoryHistory', () => {
  it('gives ordered ids within a millisecond and across', () => {
    const h = new MemoryHistory(10, 1000);
    const ids = [
      h.append('k', 2000, opts, make('k', 2000)).id,
      h.append('k', 2000, opts, make('k', 2000)).id,
      h.append('k', 1999, opts, make('k', 1999)).id,
      h.append('k', 2001, opts, make('k', 2001)).id,
    ];
    assert.deepEqual(ids, ['2000-0', '2000-1', '2000-2', '2001-0']);
  });

  it('trims by size and age and reports recovered honestly', () => {
    const h = new MemoryHistory(10, 1000);
    const ids = [1, 2, 3, 4].map((i) => h.append('k', 2000 + i, opts, make('k', 2000 + i)).id);
    assert.deepEqual(
      h.query('k', {}, 2005, opts).events.map((e) => e.id),
      ids.slice(1),
    );
    assert.equal(
      h.query('k', { since: ids[0] }, 2005, opts).recovered,
      true,
      'the last trimmed id is the floor',
    );
    assert.equal(h.query('k', { since: '1000-0' }, 2005, opts).recovered, false);
    assert.deepEqual(
      h.query('k', { since: ids[1] }, 2005, opts).events.map((e) => e.id),
      ids.slice(2),
    );
    assert.equal(h.query('k', { since: '2003-5' }, 2005, opts).recovered, false, 'not an id of this channel');
    assert.equal(h.query('k', { since: '9999-0' }, 2005, opts).recovered, false, 'above the top');
    assert.deepEqual(
      h.query('k', { last: 2 }, 2005, opts).events.map((e) => e.id),
      ids.slice(2),
    );
    // Age: everything expires.
    const aged = h.query('k', { since: ids[3] }, 5000, opts);
    assert.equal(aged.recovered, true, 'nothing after the top: nothing missed');
    assert.equal(h.query('k', { since: ids[1] }, 5000, opts).recovered, false);
  });

  it('bounds the number of channels and stays conservative for evicted ones', () => {
    const h = new MemoryHistory(2, 1000);
    const a = h.append('a', 2000, opts, make('a', 2000)).id;
    h.append('b', 2001, opts, make('b', 2001));
    h.append('c', 2002, opts, make('c', 2002));
    assert.equal(h.channelCount, 2);
    assert.equal(h.query('a', { since: a }, 2003, opts).recovered, false, 'evicted: cannot vouch for it');
    const next = h.append('a', 2003, opts, make('a', 2003)).id;
    assert.ok(next > a);
  });
  it('keeps all channels together under the byte budget, oldest events of the quietest channels first', () => {
    const big = { size: 1000, ttlMs: 0 };
    const frame = 'x'.repeat(840); // 840 + 160 bytes of overhead: 1000 bytes per event
    const ev = (key: string) => (id: string) => ({
      key,
      id,
      type: 't',
      timestamp: 2000,
      frame,
      publisher: undefined,
    });
    const h = new MemoryHistory(100, 1000, 10_000);
    for (let i = 0; i < 6; i++) h.append('quiet', 2000, big, ev('quiet'));
    for (let i = 0; i < 30; i++) h.append('busy', 2000 + i, big, ev('busy'));
    assert.ok(h.bytes <= 10_000, `${h.bytes} bytes retained`);
    assert.equal(h.bytes, 10_000, 'the budget is used, not more');
    assert.equal(h.channelCount, 1, 'the quiet channel went first, then was forgotten');
    const busy = h.query('busy', {}, 2100, big).events;
    assert.equal(busy.length, 10);
    assert.equal(busy.at(-1)!.id, '2029-0', 'the newest events stay');
    const since = h.query('busy', { since: '2000-0' }, 2100, big);
    assert.equal(since.recovered, false, 'a resume from a dropped event says so');
    // A channel that forgot its history still gives increasing ids.
    assert.ok(h.append('quiet', 2000, big, ev('quiet')).id > '2000-5');
  });

  it('a single channel larger than the budget keeps its newest event', () => {
    const h = new MemoryHistory(100, 1000, 100);
    const frame = 'y'.repeat(500);
    h.append('k', 2000, { size: 10, ttlMs: 0 }, (id) => ({
      key: 'k',
      id,
      type: 't',
      timestamp: 2000,
      frame,
      publisher: undefined,
    }));
    h.append('k', 2001, { size: 10, ttlMs: 0 }, (id) => ({
      key: 'k',
      id,
      type: 't',
      timestamp: 2001,
      frame,
      publisher: undefined,
    }));
    assert.deepEqual(
      h.query('k', {}, 2002, { size: 10, ttlMs: 0 }).events.map((e) => e.id),
      ['2001-0'],
    );
  });
});
