import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryHistory } from '../../../src/history/memory-history.ts';

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
});
