/**
 * The write batcher's window logic (src/transport/websocket/write-batcher.ts), on a manual clock and
 * sockets that count their cork/uncork calls: one timer per window for the whole node (none per socket or
 * frame), each held socket uncorked once when the window closes, a released socket not uncorked twice, and
 * a write during the flush opening the next window, and the bound on the bytes one window holds. The socket side (one writev per window) is tested
 * on real sockets in tests/integration/transport/write-batching.test.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../../src/clock.ts';
import { WriteBatcher } from '../../../src/transport/websocket/write-batcher.ts';
import type { BatchedWriter } from '../../../src/transport/websocket/write-batcher.ts';

class CountingWriter implements BatchedWriter {
  batched = false;
  corked = 0;
  uncorks = 0;
  onUncork: (() => void) | undefined;
  readonly socket = {
    cork: () => void this.corked++,
    uncork: () => {
      this.corked--;
      this.uncorks++;
      this.onUncork?.();
    },
  };
}

describe('WriteBatcher', () => {
  it('one timer per window for all sockets; each held socket is uncorked once when it closes', () => {
    const clock = new ManualClock();
    const batcher = new WriteBatcher(2, clock);
    const writers = [new CountingWriter(), new CountingWriter(), new CountingWriter()];
    for (let frame = 0; frame < 4; frame++) for (const w of writers) batcher.hold(w, 0);
    assert.equal(clock.pending(), 1);
    assert.equal(batcher.pending, 3);
    assert.deepEqual(
      writers.map((w) => [w.corked, w.uncorks]),
      [
        [1, 0],
        [1, 0],
        [1, 0],
      ],
    );
    clock.advance(1);
    assert.equal(writers[0]!.uncorks, 0, 'the window is still open');
    clock.advance(1);
    assert.deepEqual(
      writers.map((w) => [w.corked, w.uncorks, w.batched]),
      [
        [0, 1, false],
        [0, 1, false],
        [0, 1, false],
      ],
    );
    assert.equal(clock.pending(), 0, 'no timer while nothing is held');
    assert.deepEqual([batcher.windows, batcher.writes, batcher.frames], [1, 3, 12]);
  });

  it('a socket released before the window closes (a close) is not uncorked again', () => {
    const clock = new ManualClock();
    const batcher = new WriteBatcher(1, clock);
    const w = new CountingWriter();
    batcher.hold(w, 0);
    batcher.release(w);
    assert.deepEqual([w.corked, w.uncorks], [0, 1]);
    clock.advance(1);
    assert.deepEqual([w.corked, w.uncorks], [0, 1]);
  });

  it('held again after a release in the same window: corked once more, uncorked once at the flush', () => {
    const clock = new ManualClock();
    const batcher = new WriteBatcher(1, clock);
    const w = new CountingWriter();
    batcher.hold(w, 0);
    batcher.release(w);
    batcher.hold(w, 0);
    clock.advance(1);
    assert.deepEqual([w.corked, w.uncorks, w.batched], [0, 2, false]);
  });

  it('a frame written while the window flushes opens the next window', () => {
    const clock = new ManualClock();
    const batcher = new WriteBatcher(1, clock);
    const a = new CountingWriter();
    const b = new CountingWriter();
    a.onUncork = () => batcher.hold(b, 0);
    batcher.hold(a, 0);
    clock.advance(1);
    assert.deepEqual([a.corked, b.corked, b.batched, batcher.pending, clock.pending()], [0, 1, true, 1, 1]);
    clock.advance(1);
    assert.deepEqual([b.corked, b.uncorks, b.batched, batcher.pending], [0, 1, false, 0]);
  });

  it('a socket holding maxHeldBytes is written at once; one already backed up is not held', () => {
    const clock = new ManualClock();
    const batcher = new WriteBatcher(1, clock, 1000);
    const w = new CountingWriter();
    batcher.hold(w, 0);
    batcher.check(w, 999);
    assert.deepEqual([w.corked, w.uncorks, w.batched], [1, 0, true]);
    batcher.hold(w, 999);
    batcher.check(w, 1000);
    assert.deepEqual([w.corked, w.uncorks, w.batched], [0, 1, false]);
    // Its bytes are still unsent (the kernel is full): the next frames are not held, nothing is enlisted.
    batcher.hold(w, 1200);
    assert.deepEqual([w.corked, w.batched, batcher.pending], [0, false, 1]);
    clock.advance(1);
    assert.deepEqual([w.corked, w.uncorks, batcher.pending], [0, 1, 0]);
  });
});
