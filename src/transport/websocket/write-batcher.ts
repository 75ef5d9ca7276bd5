/**
 * Batched writes: the frames written to one socket within a flush window go out in one write. Frames to
 * a connection come one at a time (each event of each channel it holds is fanned out on its own), and a
 * write per frame is a system call per frame: with many channels per client (dashboards) that call is most
 * of the cost of a delivery.
 *
 * The first frame of a window corks its socket (`net.Socket.cork()`: Node keeps the writes in the stream's
 * buffer) and enlists it; one timer per window, for the whole node, uncorks every enlisted socket, and Node
 * hands each one's frames to the kernel in one `writev`. Nothing is copied or allocated per frame here (the
 * event's frame bytes are the same Buffer for every subscriber), and there is no timer per connection or
 * per frame. The window is short (at most `APIX_WRITE_FLUSH_MS`, 2 ms): under load, when a turn of the
 * event loop takes longer than that, a window lasts one turn, so batches grow with the load by themselves
 * (centrifuge's writer does the same with its per-client queue, `WriteDelay` and `MaxMessagesInFrame`).
 *
 * Backpressure is unchanged: held bytes count in the socket's `writableLength`, which is what the
 * slow-consumer and QoS checks read (src/connections/qos*.ts), and a write past the high-water mark still
 * gets its 'drain' once the batch is sent. A window holds at most `maxHeldBytes` (64 KiB) per socket, so
 * that the bytes held here never make a reading client look slow, and a socket already backed up is not
 * held (Node queues its writes behind the one in progress and sends them in one `writev` anyway).
 */
import { gaugesOn } from '../../metrics/read-gauge.ts';

import type { Registry } from 'prom-client';
import type { Clock, TimerHandle } from '../../clock.ts';
import { systemClock } from '../../clock.ts';

/** What the batcher needs of a socket: Node's `net.Socket` cork and uncork. */
export interface CorkableSocket {
  cork(): void;
  uncork(): void;
}

/** A writer whose socket can be held for a window: its `batched` flag belongs to the batcher. */
export interface BatchedWriter {
  readonly socket: CorkableSocket;
  /** Its socket is corked by the batcher and enlisted for the next flush. */
  batched: boolean;
}

/** A window writes a socket's frames at once when they reach this (64 KiB: 4 of Node's 16 KiB chunks). */
export const DEFAULT_MAX_HELD_BYTES = 64 * 1024;

export class WriteBatcher {
  /**
   * The writers corked in the current window, in the order of their first frame, and a spare list for the
   * next one (a flush swaps them: a write during the flush starts the next window, no list is allocated).
   * Each writer is in it at most once per window: bounded by the open connections.
   */
  private current: BatchedWriter[] = [];
  private spare: BatchedWriter[] = [];
  private timer: TimerHandle | undefined;
  private readonly flushAll = (): void => this.flush();
  /** Windows flushed, socket writes of held frames, and frames held (since start). */
  windows = 0;
  writes = 0;
  frames = 0;

  /**
   * @param windowMs the longest a frame waits for others to the same socket; 0: no batching (`hold` must
   *   not be called: see `enabled`).
   * @param timers where the window's timer comes from (real, unref'd timers by default; tests pass a manual
   *   clock to close windows themselves).
   * @param maxHeldBytes the most a window holds for one socket (default 64 KiB).
   */
  constructor(
    readonly windowMs: number,
    private readonly timers: Pick<Clock, 'setTimeout'> = systemClock,
    /** The most a window holds for one socket (see `check`). */
    readonly maxHeldBytes = DEFAULT_MAX_HELD_BYTES,
  ) {}

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  /** Sockets holding frames now, waiting for the flush. */
  get pending(): number {
    return this.current.length;
  }

  /**
   * Called before a frame is written to `w`'s socket, with the bytes it has not sent yet: the window's first
   * frame corks it. A socket already backed up (`maxHeldBytes` unsent) is not held: Node queues the frame
   * behind the write in progress and sends the queue in one `writev` when it completes.
   */
  hold(w: BatchedWriter, bufferedBytes: number): void {
    if (w.batched) {
      this.frames++;
      return;
    }
    if (bufferedBytes >= this.maxHeldBytes) return;
    this.frames++;
    w.batched = true;
    w.socket.cork();
    this.current.push(w);
    this.timer ??= this.timers.setTimeout(this.flushAll, this.windowMs);
  }

  /**
   * Called after a frame was written to a held socket: once it holds `maxHeldBytes`, they are written at
   * once. A window never holds more than that per socket, so that held bytes alone never make a reading
   * client look slow (QoS degrade, the slow-consumer cut) and waiting gains nothing (the write is big).
   */
  check(w: BatchedWriter, bufferedBytes: number): void {
    if (bufferedBytes >= this.maxHeldBytes) this.release(w);
  }

  /**
   * Writes what `w` holds now (it is closing, or must not wait). It stays in the window's list until the
   * flush, which skips it unless it was held again.
   */
  release(w: BatchedWriter): void {
    if (!w.batched) return;
    w.batched = false;
    this.writes++;
    w.socket.uncork();
  }

  /** Its gauges: held frames and their socket writes since start (frames per write), sockets held now. */
  registerMetrics(registry: Registry): void {
    const gauge = gaugesOn(registry);
    gauge(
      'apix_write_batches',
      'Socket writes of held frames, per connection and flush window',
      () => this.writes,
    );
    gauge(
      'apix_write_batched_frames',
      'Frames held for a flush window (since start); over apix_write_batches: frames per write',
      () => this.frames,
    );
    gauge(
      'apix_write_batch_pending',
      'Connections holding frames for the current window',
      () => this.pending,
    );
  }

  /** Closes the window: every held socket writes its frames, each in one write. */
  flush(): void {
    this.timer?.cancel();
    this.timer = undefined;
    const list = this.current;
    if (list.length === 0) return;
    this.current = this.spare;
    this.windows++;
    for (let i = 0; i < list.length; i++) this.release(list[i]!);
    list.length = 0;
    this.spare = list;
  }
}
