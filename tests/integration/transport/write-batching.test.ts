/**
 * Batched writes (src/transport/websocket/write-batcher.ts): the frames written to one socket within a
 * flush window go out in one socket write; `APIX_WRITE_FLUSH_MS=0` writes each frame on its own; the
 * order of the frames and the backpressure checks hold.
 *
 * The node's flush-window timers are the test's (`GatedTimers`): while they are held, no window closes, so
 * "within one window" does not depend on how fast the machine is. The writes are counted on the
 * server-side socket itself: `write` (a frame handed to the stream) and `_write`/`_writev` (what the
 * stream hands to the kernel, one system call each).
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { ApiXNode } from '../../../src/node.ts';
import type { Config } from '../../../src/config.ts';
import type { TimerHandle } from '../../../src/clock.ts';
import type { Connection } from '../../../src/connections/session.ts';
import type { WsTransport } from '../../../src/transport/websocket/ws-transport.ts';
import { config, RawClient, startNode, token } from '../../support/gateway.ts';
import { waitFor } from '../../support/wait.ts';

/**
 * Timers that run as real ones until `hold()`; then they wait for `release()`. `hold()` resolves once the
 * real ones armed before it have run, so that no window opened earlier closes while held.
 */
class GatedTimers {
  private held: Array<() => void> | undefined;
  private armed = 0;
  setTimeout(fn: () => void, ms: number): TimerHandle {
    if (this.held === undefined) {
      this.armed++;
      let done = false;
      const settle = () => {
        if (!done) this.armed--;
        done = true;
      };
      const t = setTimeout(() => {
        settle();
        fn();
      }, ms);
      return {
        cancel: () => {
          clearTimeout(t);
          settle();
        },
      };
    }
    let cancelled = false;
    this.held.push(() => {
      if (!cancelled) fn();
    });
    return { cancel: () => void (cancelled = true) };
  }
  async hold(): Promise<void> {
    this.held ??= [];
    await waitFor(() => this.armed === 0, 10_000, 'the flush windows opened before hold() to close');
  }
  /** Runs what waited, and lets later timers run as real ones again. */
  release(): void {
    const list = this.held ?? [];
    this.held = undefined;
    for (const fn of list) fn();
  }
}

/** Counts what the stream of a server-side socket is asked to write, and what it writes to the kernel. */
function countWrites(socket: Socket): { frames: number; syscalls: number; writev: number } {
  const counts = { frames: 0, syscalls: 0, writev: 0 };
  const s = socket as Socket & {
    _write: (...a: unknown[]) => unknown;
    _writev: (...a: unknown[]) => unknown;
  };
  const write = s.write.bind(s) as (...a: unknown[]) => boolean;
  const w1 = s._write.bind(s);
  const wv = s._writev.bind(s);
  s.write = ((...a: unknown[]) => {
    counts.frames++;
    return write(...a);
  }) as typeof s.write;
  s._write = (...a: unknown[]) => {
    counts.syscalls++;
    return w1(...a);
  };
  s._writev = (...a: unknown[]) => {
    counts.syscalls++;
    counts.writev++;
    return wv(...a);
  };
  return counts;
}

const noLimits = (): Partial<Config> => ({
  heartbeatIntervalMs: 600_000,
  compression: { enabled: false, thresholdBytes: 1024 },
  rateLimits: {
    ...config().rateLimits,
    connection: { perSec: 0, burst: 1 },
    publish: { perSec: 0, burst: 1 },
    channel: { perSec: 0, burst: 1 },
    orgPublish: { perSec: 0, burst: 1 },
  },
});

describe('batched writes: one socket write per connection and flush window', () => {
  const nodes: ApiXNode[] = [];
  const clients: RawClient[] = [];
  after(async () => {
    for (const c of clients) c.terminate();
    for (const n of nodes) await n.close();
  });

  async function setUp(overrides: Partial<Config>, channel: string) {
    const timers = new GatedTimers();
    const node = await startNode({ ...noLimits(), ...overrides }, { writeTimers: timers });
    nodes.push(node);
    const pub = await RawClient.connect(node.wsUrl, {
      token: await token({ sub: 'svc', roles: ['service'] }),
    });
    const sub = await RawClient.connect(node.wsUrl, { subscriptions: [channel] });
    clients.push(pub, sub);
    const port = (sub.ws as unknown as { _socket: Socket })._socket.localPort;
    const conn = [...node.gateway.connections.values()].find(
      (c) => (c.transport as WsTransport).socket.remotePort === port,
    )!;
    const socket = (conn.transport as WsTransport).socket;
    return { node, timers, pub, sub, conn, socket };
  }

  const publish = (pub: RawClient, channel: string, n: number, blob = '') => {
    for (let i = 0; i < n; i++) pub.send({ type: 'batch.step', channel, payload: { i, blob } });
  };

  it('frames within one window go out in one write, in order', async () => {
    const channel = 'agent:batch-on';
    const { timers, pub, sub, socket } = await setUp({ writeFlushMs: 2 }, channel);
    await timers.hold();
    const counts = countWrites(socket);
    publish(pub, channel, 5);
    await waitFor(() => counts.frames === 5, 10_000, 'the 5 events queued on the subscriber socket');
    // The window is still open: nothing reached the kernel, and the bytes count as buffered.
    assert.equal(counts.syscalls, 0);
    assert.ok(socket.writableLength > 0);
    assert.equal(sub.events(channel).length, 0);
    timers.release();
    const events = await sub.waitForEvents(5, channel, 10_000);
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(counts, { frames: 5, syscalls: 1, writev: 1 });
  });

  it('APIX_WRITE_FLUSH_MS=0: every frame is written on its own, at once', async () => {
    const channel = 'agent:batch-off';
    const { timers, pub, sub, socket } = await setUp({ writeFlushMs: 0 }, channel);
    await timers.hold(); // no window to close: nothing waits for it
    const counts = countWrites(socket);
    publish(pub, channel, 5);
    const events = await sub.waitForEvents(5, channel, 10_000);
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [0, 1, 2, 3, 4],
    );
    assert.deepEqual(counts, { frames: 5, syscalls: 5, writev: 0 });
  });

  it('a close goes out at once, after the frames held for the window', async () => {
    const channel = 'agent:batch-close';
    const { timers, pub, sub, conn, socket } = await setUp({ writeFlushMs: 2 }, channel);
    await timers.hold();
    const counts = countWrites(socket);
    publish(pub, channel, 3);
    await waitFor(() => counts.frames === 3, 10_000, 'the 3 events queued on the subscriber socket');
    (conn as Connection).close(4000, 'test close', Date.now());
    // The window never closes (timers held): the close itself wrote what was held, then the close frame,
    // in one write, before it returned.
    assert.equal(socket.writableCorked, 0);
    assert.equal(counts.writev, 1);
    const closed = await sub.waitClosed(10_000);
    assert.equal(closed.code, 4000);
    assert.deepEqual(
      sub.events(channel).map((e) => e.payload.i),
      [0, 1, 2],
    );
    assert.equal(counts.writev, 1);
    timers.release();
  });

  it('a window holds at most 64 KiB for one socket: a bigger burst is written before the window closes', async () => {
    const channel = 'agent:batch-burst';
    const { timers, pub, sub, socket } = await setUp({ writeFlushMs: 2 }, channel);
    await timers.hold();
    const counts = countWrites(socket);
    // 10 events of 16 KiB: the 4th brings the held bytes past 64 KiB, and the window is never closed.
    publish(pub, channel, 10, 'x'.repeat(16 * 1024));
    await waitFor(() => counts.frames === 10, 10_000, 'the 10 events handed to the subscriber socket');
    await sub.waitForEvents(4, channel, 10_000);
    assert.ok(counts.writev >= 1);
    assert.ok(socket.writableLength < 64 * 1024 + 17 * 1024, `held: ${socket.writableLength} bytes`);
    timers.release();
    const events = await sub.waitForEvents(10, channel, 10_000);
    assert.deepEqual(
      events.map((e) => e.payload.i),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });

  it('a subscriber that stops reading is still cut past APIX_MAX_BUFFERED_BYTES, windows held open or not', async () => {
    const channel = 'agent:batch-slow';
    const { node, timers, pub, sub } = await setUp(
      { writeFlushMs: 2, maxBufferedBytes: 256 * 1024 },
      channel,
    );
    const cutBefore = node.gateway.slowConsumers;
    await timers.hold();
    sub.ws.pause(); // stops reading: the kernel's buffers fill, then the socket's own
    const blob = 'x'.repeat(16 * 1024);
    for (let i = 0; i < 2000 && node.gateway.slowConsumers === cutBefore; i++) {
      pub.send({ type: 'batch.step', channel, payload: { i, blob } });
      if (i % 20 === 19) await new Promise((r) => setImmediate(r));
    }
    await waitFor(() => node.gateway.slowConsumers > cutBefore, 10_000, 'the slow-consumer cut');
    timers.release();
  });
});
