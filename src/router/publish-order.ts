/**
 * PublishOrder: the publishes of one connection get their ids in the order they were received.
 *
 * A publish goes through asynchronous steps before the broker gives it its id (the shared rate limits
 * wait for Redis when a node's token lease runs out, while the next publish may be served from the
 * lease), so publishes of one connection can reach the broker out of order. Each publish takes a ticket
 * when the gateway reads it (in receive order); its checks run concurrently with the others', but it
 * calls the broker only on its turn: once every earlier ticket has called the broker or failed. The turn
 * passes as soon as the broker was called, not when it answered: the brokers fix the id order at the
 * call (memory: synchronously; Redis: commands of one connection run in the order they were sent), so a
 * connection's publishes stay pipelined. Publishes of different connections never wait for each other.
 *
 * Bounded: a connection with more than `maxInFlight` publishes not yet answered is told to stop reading
 * (`pause`, the socket's backpressure) until half of them are answered (`resume`); the gateway's bound is
 * `APIX_MAX_PUBLISHES_IN_FLIGHT`. What was already read off the socket still comes in, so the bound is
 * `maxInFlight` plus one read's worth of frames.
 */

export interface PublishFlow {
  /** Publishes in flight (entered, not yet settled) above which `pause` is called. */
  readonly maxInFlight: number;
  /** Stop reading the connection (called once per pause). */
  pause(): void;
  /** Read the connection again (called once the in-flight count is back to half the bound). */
  resume(): void;
}

export class PublishOrder {
  /** The next ticket to hand out. */
  private next = 0;
  /** The ticket whose turn it is: every ticket below it has passed. */
  private head = 0;
  /**
   * Tickets above `head`: a waiting publish's wake-up, or `null` for one that already passed (it failed
   * before its turn). Holds at most the publishes in flight; empty while they finish in order.
   */
  private parked: Map<number, (() => void) | null> | undefined;
  /** Publishes entered and not yet settled. */
  inFlight = 0;
  paused = false;

  constructor(private readonly flow?: PublishFlow) {}

  /** A publish enters (in receive order): its ticket. */
  enter(): number {
    this.inFlight++;
    const flow = this.flow;
    if (flow !== undefined && !this.paused && this.inFlight > flow.maxInFlight) {
      this.paused = true;
      flow.pause();
    }
    return this.next++;
  }

  /** Whether every earlier publish has passed (the common case: nothing to wait for). */
  isTurn(ticket: number): boolean {
    return ticket === this.head;
  }

  /** Resolves on `ticket`'s turn. */
  wait(ticket: number): Promise<void> {
    return new Promise((resolve) => (this.parked ??= new Map()).set(ticket, resolve));
  }

  /**
   * `ticket` called the broker, or failed before it could: the next ticket's turn. Passing twice (or a
   * ticket already passed) does nothing.
   */
  pass(ticket: number): void {
    if (ticket < this.head) return;
    if (ticket > this.head) {
      const parked = (this.parked ??= new Map());
      if (!parked.has(ticket)) parked.set(ticket, null);
      return;
    }
    this.head++;
    const parked = this.parked;
    if (parked === undefined) return;
    for (;;) {
      const next = parked.get(this.head);
      if (next === undefined) return;
      parked.delete(this.head);
      if (next !== null) return next();
      this.head++;
    }
  }

  /** `ticket`'s publish is answered (sent or failed): passes it if it had not, and counts it out. */
  settle(ticket: number): void {
    this.pass(ticket);
    this.inFlight--;
    const flow = this.flow;
    if (flow !== undefined && this.paused && this.inFlight <= flow.maxInFlight >> 1) {
      this.paused = false;
      flow.resume();
    }
  }
}
