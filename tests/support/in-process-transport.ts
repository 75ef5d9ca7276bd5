/**
 * Test support: a transport with no socket. It implements the seam (src/transport/transport.ts) in one
 * file: the client side writes frames straight into the host (the gateway) and reads what the managers
 * send as parsed frames. It shows that a new transport needs nothing from the managers but the seam.
 */
import type { EventFrames } from '../../src/gateway/frames.ts';
import type { Peer } from '../../src/auth/principal.ts';
import type { ClientTransport, TransportHost } from '../../src/transport/transport.ts';
import { waitFor } from './wait.ts';

export interface InProcessFrame {
  type: string;
  channel?: string;
  id?: string;
  payload?: any;
  metadata?: any;
}

export class InProcessTransport<C> implements ClientTransport {
  /** Every frame the server sent, in order. */
  readonly frames: InProcessFrame[] = [];
  /** How the server (or the client) closed it. */
  closed: { code: number; reason: string } | undefined;
  readonly compresses = false;
  private conn!: C;
  private paused = false;
  /** Frames the client wrote while the server did not read (pauseReading). */
  private readonly inbox: string[] = [];
  private readonly drainListeners = new Set<() => void>();
  private seen = 0;

  private constructor(private readonly host: TransportHost<C>) {}

  /** A client opens: the host makes its connection, as it would after a WebSocket upgrade. */
  static open<C>(host: TransportHost<C>, peer: Partial<Peer> = {}): InProcessTransport<C> {
    const t = new InProcessTransport(host);
    t.conn = host.onOpen(t, {
      remoteAddress: peer.remoteAddress ?? '127.0.0.1',
      userAgent: peer.userAgent ?? 'in-process',
      origin: peer.origin,
    });
    return t;
  }

  // ---------------------------------------------------------------- the client's side

  /** Writes a frame to the server. */
  write(frame: object): void {
    if (this.closed) throw new Error('transport closed');
    const text = JSON.stringify(frame);
    if (this.paused) this.inbox.push(text);
    else this.host.onFrame(this.conn, text, false);
  }

  /** The client closes. */
  end(code = 1000, reason = ''): void {
    if (this.closed) return;
    this.closed = { code, reason };
    this.host.onClose(this.conn, code, reason);
  }

  /** The next frame (after the last one returned) matching `pred`. */
  async next(pred: (f: InProcessFrame) => boolean, timeoutMs = 5000): Promise<InProcessFrame> {
    let found: InProcessFrame | undefined;
    await waitFor(
      () => {
        const i = this.frames.findIndex((f, n) => n >= this.seen && pred(f));
        if (i < 0) return false;
        found = this.frames[i];
        this.seen = i + 1;
        return true;
      },
      timeoutMs,
      `a frame (seen: ${this.frames.map((f) => f.type).join(', ')})`,
    );
    return found!;
  }

  nextOfType(type: string, timeoutMs?: number): Promise<InProcessFrame> {
    return this.next((f) => f.type === type, timeoutMs);
  }

  // ---------------------------------------------------------------- ClientTransport (the server's side)

  get isOpen(): boolean {
    return this.closed === undefined;
  }

  get bufferedBytes(): number {
    return 0;
  }

  send(text: string): void {
    if (this.isOpen) this.frames.push(JSON.parse(text) as InProcessFrame);
  }

  sendEvent(frames: EventFrames): void {
    this.send(frames.text);
  }

  ping(frames: EventFrames): void {
    this.sendEvent(frames);
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = { code, reason };
    // As a socket's close event: after the call that closed it has returned.
    setImmediate(() => this.host.onClose(this.conn, code, reason));
  }

  cut(code: number, reason: string): void {
    this.close(code, reason);
  }

  terminate(): void {
    this.close(1006, '');
  }

  pauseReading(): void {
    this.paused = true;
  }

  resumeReading(): void {
    this.paused = false;
    while (!this.paused && this.inbox.length > 0) this.host.onFrame(this.conn, this.inbox.shift()!, false);
    for (const listener of this.drainListeners) listener();
  }

  onDrain(listener: () => void): void {
    this.drainListeners.add(listener);
  }

  offDrain(listener: () => void): void {
    this.drainListeners.delete(listener);
  }

  releaseIdle(): void {}
}
