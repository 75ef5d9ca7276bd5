/**
 * The transport seam: what the managers (connections, subscriptions, queue, publish) use to talk to one
 * client, and what a transport calls when something happens on its side. The WebSocket transport
 * (websocket/ws-transport.ts) is the first implementation; another one (HTTP streaming, SSE, an
 * in-process one for tests) is one file implementing `ClientTransport` and calling a `TransportHost`.
 */
import type { EventFrames } from '../gateway/frames.ts';
import type { Peer } from '../auth/principal.ts';
import type { WireEncoding } from './encoding.ts';

/** A frame as a transport received it: JSON text, or bytes of it. */
export type IncomingFrame = string | Buffer;

/** One client, as the managers see it. */
export interface ClientTransport {
  /** Frames can be written (the handshake of the transport is done and it is not closing). */
  readonly isOpen: boolean;
  /** Bytes written but not yet sent to the client (backpressure). */
  readonly bufferedBytes: number;
  /**
   * A transport whose client sends its frames in separate requests (HTTP streaming, SSE) names its stream
   * with this token: `connection.established` carries it as `sessionToken`.
   */
  readonly sessionToken?: string;
  /** The encoding of the client's frames and of those written to it; JSON when absent. */
  readonly encoding?: WireEncoding;
  /** Whether the client takes compressed event frames (`EventFrames.forConnection(true)`). */
  readonly compresses: boolean;
  /**
   * Writes a control frame (JSON text), uncompressed, in order with the event frames. Like `sendEvent`, a
   * transport may hold it briefly to write several frames at once (the WebSocket transport: a flush window,
   * websocket/write-batcher.ts): held frames keep their order, count in `bufferedBytes`, and go out before
   * a close.
   */
  send(text: string): void;
  /** Writes an event's frames, built once for all subscribers (possibly held, as for `send`). */
  sendEvent(frames: EventFrames): void;
  /** Writes the heartbeat's ping frame, and the transport's own ping if it has one, in one write. */
  ping(frames: EventFrames): void;
  /** Closes with a code and a reason (the close handshake, if the transport has one). */
  close(code: number, reason: string): void;
  /** Closes without waiting for what is buffered (a slow consumer): the reason may never arrive. */
  cut(code: number, reason: string): void;
  /** Drops the client at once, no close handshake. */
  terminate(): void;
  /** Stops reading the client's frames (too much of its work in flight) until `resumeReading`. */
  pauseReading(): void;
  resumeReading(): void;
  /** Calls `listener` when the buffered bytes were sent (backpressure relieved), until `offDrain`. */
  onDrain(listener: () => void): void;
  offDrain(listener: () => void): void;
  /** Frees what an idle client holds (called between frames, by the heartbeat). */
  releaseIdle(): void;
}

/** What a transport calls: the gateway implements it. */
export interface TransportHost<C> {
  /** A client is there (upgraded, or otherwise connected): answers the handle passed back below. */
  onOpen(transport: ClientTransport, peer: Peer): C;
  onFrame(conn: C, data: IncomingFrame, isBinary: boolean): void;
  onClose(conn: C, code: number, reason: string): void;
  /** The client answered the transport's own ping (transports without one never call it). */
  onPong(conn: C): void;
}
