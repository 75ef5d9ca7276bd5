/**
 * The HTTP streaming and SSE transport of one client: server frames go down one long HTTP response
 * (ndjson lines or Server-Sent Events, stream-format.ts), the client's frames come up in separate
 * `POST /v1/frames` requests (http-transports.ts) that name the stream by its session token. It
 * implements the seam (../transport.ts) like the WebSocket transport: the managers see no difference.
 */
import type { ServerResponse } from 'node:http';
import { CloseCode, closeCodeAllowsReconnect, ERRORS, PROTOCOL_VERSION } from '@apix/protocol';
import type { ErrorCode } from '@apix/protocol';
import type { EventFrames } from '../../gateway/frames.ts';
import type { ClientTransport, TransportHost } from '../transport.ts';
import { encodeStreamFrame, SSE_KEEPALIVE } from './stream-format.ts';
import type { StreamFormat } from './stream-format.ts';

const DISCONNECTED_PREFIX = '{"type":"connection.disconnected"';

export class HttpStreamTransport<C> implements ClientTransport {
  readonly compresses = false;
  private connection: C | undefined;
  private closeInfo: { code: number; reason: string } | undefined;
  /** The managers' `connection.disconnected`, held so the final frame also carries the close code. */
  private heldDisconnect: string | undefined;
  private paused = false;
  private readonly resumeWaiters: Array<() => void> = [];

  constructor(
    private readonly res: ServerResponse,
    readonly format: StreamFormat,
    /** Names this stream in `POST /v1/frames` (`X-Apix-Session-Token`); sent in `connection.established`. */
    readonly sessionToken: string,
    private readonly host: TransportHost<C>,
    private readonly onGone: (transport: HttpStreamTransport<C>) => void,
    private readonly now: () => number,
  ) {
    res.on('close', () => this.gone());
    res.on('error', () => {});
  }

  /** The host's handle of this client (set once by the routes, right after `onOpen`). */
  get conn(): C {
    return this.connection as C;
  }
  set conn(conn: C) {
    this.connection = conn;
  }

  get isOpen(): boolean {
    return this.closeInfo === undefined && !this.res.destroyed && this.res.writable;
  }

  /** The response's buffer and its socket's: what the client has not read yet. */
  get bufferedBytes(): number {
    return this.res.writableLength;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  send(text: string): void {
    if (!this.isOpen) return;
    if (text.startsWith(DISCONNECTED_PREFIX)) {
      this.heldDisconnect = text;
      return;
    }
    this.res.write(encodeStreamFrame(this.format, text));
  }

  /** Written once per event for every subscriber on this kind of stream. */
  sendEvent(frames: EventFrames): void {
    if (!this.isOpen) return;
    const format = this.format;
    this.res.write(frames.encoded(format, (text) => encodeStreamFrame(format, text)));
  }

  /** The heartbeat's ping frame; on SSE after a comment line (what proxies and EventSource expect). */
  ping(frames: EventFrames): void {
    if (!this.isOpen) return;
    if (this.format === 'sse') this.res.write(SSE_KEEPALIVE);
    this.sendEvent(frames);
  }

  /** Ends the stream with a final `connection.disconnected` that says why (and the close code). */
  close(code: number, reason: string): void {
    if (!this.isOpen) return;
    this.res.write(encodeStreamFrame(this.format, this.finalFrame(code, reason)));
    this.closeInfo = { code, reason };
    this.res.end();
  }

  /** Its buffer is full: the final frame would wait behind megabytes. */
  cut(code: number, reason: string): void {
    this.closeInfo ??= { code, reason };
    this.res.destroy();
  }

  terminate(): void {
    this.closeInfo ??= { code: 1006, reason: '' };
    this.res.destroy();
  }

  /** The client's frames wait (their `POST /v1/frames` is not read) until `resumeReading`. */
  pauseReading(): void {
    this.paused = true;
  }

  resumeReading(): void {
    this.paused = false;
    for (const waiter of this.resumeWaiters.splice(0)) waiter();
  }

  /** Resolves when reading is not paused (at once, or at `resumeReading` or the stream's end). */
  whenReading(): Promise<void> {
    if (!this.paused) return Promise.resolve();
    return new Promise((resolve) => this.resumeWaiters.push(resolve));
  }

  onDrain(listener: () => void): void {
    this.res.on('drain', listener);
  }

  offDrain(listener: () => void): void {
    this.res.off('drain', listener);
  }

  releaseIdle(): void {}

  /** The `connection.disconnected` the managers sent, with the close code; or one made from the code. */
  private finalFrame(code: number, reason: string): string {
    const held = this.heldDisconnect;
    this.heldDisconnect = undefined;
    if (held !== undefined) {
      const frame = JSON.parse(held) as { payload: Record<string, unknown> };
      frame.payload.closeCode = code;
      return JSON.stringify(frame);
    }
    const payload = {
      code: errorCodeOfClose(code),
      reason,
      reconnect: closeCodeAllowsReconnect(code),
      closeCode: code,
    };
    const metadata = { timestamp: this.now(), version: PROTOCOL_VERSION };
    return JSON.stringify({ type: 'connection.disconnected', payload, metadata });
  }

  /** The response closed (ended by us, or the client went away): the host hears it once. */
  private gone(): void {
    const info = this.closeInfo ?? { code: 1006, reason: 'the client closed the stream' };
    this.closeInfo = info;
    for (const waiter of this.resumeWaiters.splice(0)) waiter();
    this.onGone(this);
    if (this.connection !== undefined) this.host.onClose(this.connection, info.code, info.reason);
  }
}

function errorCodeOfClose(code: number): string {
  if (code === CloseCode.NORMAL) return 'NORMAL';
  if (code === CloseCode.CONNECT_TIMEOUT) return 'BAD_REQUEST';
  if (code === CloseCode.SLOW_CONSUMER) return 'SLOW_CONSUMER';
  const match = (Object.keys(ERRORS) as ErrorCode[]).find((c) => ERRORS[c].closeCode === code);
  return match ?? 'UNAVAILABLE';
}
