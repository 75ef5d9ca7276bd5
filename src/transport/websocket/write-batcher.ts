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
 * Backpressure is unchanged: corked bytes count in the socket's `writableLength`, which is what the
 * slow-consumer and QoS checks read (src/connections/qos*.ts), and a write past the high-water mark still
 * gets its 'drain' once the batch is sent.
 */
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
  /** Windows flushed, socket writes they made, and frames written through them (since start). */
  windows = 0;
  writes = 0;
  frames = 0;

  /**
   * @param windowMs the longest a frame waits for others to the same socket; 0: no batching (`hold` must
   *   not be called: see `enabled`).
   * @param timers where the window's timer comes from (real, unref'd timers by default; tests pass a manual
   *   clock to close windows themselves).
   */
  constructor(
    readonly windowMs: number,
    private readonly timers: Pick<Clock, 'setTimeout'> = systemClock,
  ) {}

  get enabled(): boolean {
    return this.windowMs > 0;
  }

  /** Sockets holding frames now, waiting for the flush. */
  get pending(): number {
    return this.current.length;
  }

  /** Called before a frame is written to `w`'s socket: the window's first frame corks it. */
  hold(w: BatchedWriter): void {
    this.frames++;
    if (w.batched) return;
    w.batched = true;
    w.socket.cork();
    this.current.push(w);
    this.timer ??= this.timers.setTimeout(this.flushAll, this.windowMs);
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
