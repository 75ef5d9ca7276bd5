/** The page cut of HTTP history (src/http/history-page.ts): a byte budget in UTF-8, the first event always. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { historyPage } from '../../../src/http/history-page.ts';

const ev = (id: string, text: string) => ({ id, frame: JSON.stringify({ id, text }) });

describe('historyPage', () => {
  it('keeps the events whose frames (and the commas between them) fit, and points at the next page', () => {
    const events = [ev('1-0', 'a'.repeat(40)), ev('2-0', 'b'.repeat(40)), ev('3-0', 'c'.repeat(40))];
    const size = Buffer.byteLength(events[0]!.frame);
    const page = historyPage(events, '3-0', size * 2 + 1);
    assert.deepEqual(page.frames, [events[0]!.frame, events[1]!.frame]);
    assert.equal(page.bytes, size * 2 + 1);
    assert.equal(page.hasMore, true);
    assert.equal(page.next, '2-0');
    // One byte less: the comma does not fit.
    assert.equal(historyPage(events, '3-0', size * 2).frames.length, 1);
  });

  it('counts UTF-8 bytes, not characters', () => {
    const events = [ev('1-0', 'é'.repeat(50)), ev('2-0', 'é'.repeat(50))];
    const chars = events[0]!.frame.length;
    assert.equal(historyPage(events, '2-0', chars * 2 + 1).frames.length, 1);
  });

  it('answers the first event even when it is over the budget', () => {
    const page = historyPage([ev('1-0', 'x'.repeat(1000)), ev('2-0', 'y')], '2-0', 10);
    assert.equal(page.frames.length, 1);
    assert.equal(page.next, '1-0');
  });

  it('hasMore when the channel holds newer events than the page, even if every event fit', () => {
    assert.equal(historyPage([ev('1-0', 'a')], '5-0', 1 << 20).hasMore, true);
    const last = historyPage([ev('1-0', 'a'), ev('5-0', 'b')], '5-0', 1 << 20);
    assert.equal(last.hasMore, false);
    assert.equal(last.next, undefined);
    assert.deepEqual(historyPage([], undefined, 100), {
      frames: [],
      bytes: 0,
      hasMore: false,
      next: undefined,
    });
  });
});
