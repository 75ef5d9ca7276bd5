/**
 * The WebSocket transport: one `WsTransport` per socket, and the listeners that pass a socket's events
 * to the host. The listeners are shared by every socket of a host (ws calls them with `this` = the
 * socket, which carries its connection under a symbol): no closures per connection.
 */
import type { Socket } from 'node:net';
import type { WebSocket, RawData } from 'ws';
import { msgpackFromJson } from '@apix/protocol/msgpack';
import { binaryFrame } from '../../gateway/frames.ts';
import type { EventFrames } from '../../gateway/frames.ts';
import { encodingOf } from '../encoding.ts';
import type { WireEncoding } from '../encoding.ts';
import type { Peer } from '../../auth/principal.ts';
import type { ClientTransport, IncomingFrame, TransportHost } from '../transport.ts';
import type { BatchedWriter, WriteBatcher } from './write-batcher.ts';

export class WsTransport implements ClientTransport, BatchedWriter {
  readonly socket: Socket;
  /** Whether permessage-deflate was negotiated: such sockets must go through ws's sender. */
  readonly compresses: boolean;
  /** From the negotiated subprotocol: JSON text frames, or MessagePack binary frames. */
  readonly encoding: WireEncoding;
  /** Corked by the batcher until its window closes (write-batcher.ts). */
  batched = false;

  /** @param batcher batches this socket's writes per flush window; undefined: every frame is written at once. */
  constructor(
    readonly ws: WebSocket,
    private readonly batcher?: WriteBatcher,
  ) {
    this.socket = (ws as unknown as { _socket: Socket })._socket;
    this.compresses = ws.extensions.includes('permessage-deflate');
    this.encoding = encodingOf(ws.protocol);
  }

  get isOpen(): boolean {
    return this.ws.readyState === 1;
  }

  /** Bytes waiting to be sent (ws never queues: every send below is synchronous). */
  get bufferedBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Sends a control frame (JSON text), uncompressed: ws's own compressor is never used, so ws never
   * queues a frame while deflating and the raw event writes below stay in order with these. On a
   * MessagePack connection it goes out as a binary frame (a control frame is for one client: encoded here).
   */
  send(text: string): void {
    if (this.ws.readyState !== 1) return;
    const data = this.encoding === 'msgpack' ? msgpackFromJson(text) : text;
    const batcher = this.batcher;
    if (batcher === undefined) return this.ws.send(data, { compress: false });
    batcher.hold(this, this.socket.writableLength);
    this.ws.send(data, { compress: false });
    if (this.batched) batcher.check(this, this.socket.writableLength);
  }

  /**
   * Writes an event whose frames were built once for all subscribers: the compressed frame to a
   * connection that negotiated permessage-deflate, else the plain one. No copy; with a batcher, it goes
   * out with the other frames of its flush window, in one socket write.
   */
  sendEvent(frames: EventFrames): void {
    if (this.ws.readyState !== 1) return;
    const batcher = this.batcher;
    const frame = this.eventFrame(frames);
    if (batcher === undefined) {
      this.socket.write(frame);
      return;
    }
    batcher.hold(this, this.socket.writableLength);
    this.socket.write(frame);
    if (this.batched) batcher.check(this, this.socket.writableLength);
  }

  /**
   * The event's frame for this connection, built once per event for all connections alike: MessagePack
   * (never compressed: binary payloads rarely deflate well), else the JSON text frame, compressed or not.
   */
  private eventFrame(frames: EventFrames): Buffer {
    if (this.encoding === 'msgpack') return frames.encoded('ws-msgpack', msgpackWsFrame);
    return frames.forConnection(this.compresses);
  }

  /**
   * The app-level ping and a WebSocket ping, both in one write, not held for a flush window (the heartbeat
   * pings every connection at once: enlisting them all would only delay the round trip it measures). On a
   * socket already held, they go out with its window, in order.
   */
  ping(frames: EventFrames): void {
    if (this.ws.readyState !== 1) return;
    this.socket.cork();
    this.socket.write(this.eventFrame(frames));
    try {
      this.ws.ping();
    } catch {
      // socket already closing
    }
    this.socket.uncork();
  }

  /** The close frame goes out at once, after the frames held for the window (in the same write). */
  close(code: number, reason: string): void {
    try {
      this.ws.close(code, reason);
    } catch {
      this.ws.terminate();
    }
    this.batcher?.release(this);
  }

  /** Its buffer is full: a close frame would wait behind megabytes. Cut it. */
  cut(code: number, reason: string): void {
    this.ws.close(code, reason);
    this.batcher?.release(this);
    this.socket.destroySoon?.();
    setImmediate(() => this.ws.terminate());
  }

  terminate(): void {
    this.batcher?.release(this);
    this.ws.terminate();
  }

  pauseReading(): void {
    this.ws.pause();
  }

  resumeReading(): void {
    this.ws.resume();
  }

  onDrain(listener: () => void): void {
    this.socket.on('drain', listener);
  }

  offDrain(listener: () => void): void {
    this.socket.off('drain', listener);
  }

  /**
   * Frees the zlib inflate stream ws keeps for a connection whose client compresses what it sends (as
   * browsers do): ws resets it between messages instead of closing it, which holds about 16 KB per idle
   * connection. Called by the heartbeat sweep, only between messages (no frame being read or inflated);
   * ws creates a new stream at the next compressed message.
   */
  releaseIdle(): void {
    if (!this.compresses) return;
    const ws = this.ws as unknown as WsInternals;
    const pmd = ws._extensions?.['permessage-deflate'];
    const receiver = ws._receiver;
    if (!pmd?._inflate || !receiver || receiver._state !== 0 || receiver._fragmented !== 0) return;
    pmd._inflate.close();
    pmd._inflate = null;
  }
}

function msgpackWsFrame(text: string): Buffer {
  return binaryFrame(msgpackFromJson(text));
}

/** The parts of ws's internals that releaseIdle() reads (ws 8: lib/websocket.js, receiver.js). */
interface WsInternals {
  _extensions?: Record<string, { _inflate: { close(): void } | null } | undefined>;
  _receiver?: { _state: number; _fragmented: number } | null;
}

const kConnection = Symbol('apix.connection');
type TaggedSocket<C> = WebSocket & { [kConnection]: C };

/** Passes the events of a host's sockets to it, with listeners shared by all of them. */
export class WsSockets<C> {
  private readonly message: (this: WebSocket, data: RawData, isBinary: boolean) => void;
  private readonly close: (this: WebSocket, code: number, reason: Buffer) => void;
  private readonly pong: (this: WebSocket) => void;

  /** Batches each socket's writes per flush window, or undefined (every frame is written at once). */
  private readonly batcher: WriteBatcher | undefined;

  constructor(
    private readonly host: TransportHost<C>,
    batcher?: WriteBatcher,
  ) {
    this.batcher = batcher?.enabled ? batcher : undefined;
    this.message = function (this: WebSocket, data: RawData, isBinary: boolean): void {
      host.onFrame((this as TaggedSocket<C>)[kConnection], data as IncomingFrame, isBinary);
    };
    this.close = function (this: WebSocket, code: number, reason: Buffer): void {
      host.onClose((this as TaggedSocket<C>)[kConnection], code, reason.toString());
    };
    this.pong = function (this: WebSocket): void {
      host.onPong((this as TaggedSocket<C>)[kConnection]);
    };
  }

  /** A socket ws has just upgraded: its connection is made by the host, its events go to the host. */
  open(ws: WebSocket, peer: Peer): C {
    const transport = new WsTransport(ws, this.batcher);
    const conn = this.host.onOpen(transport, peer);
    transport.socket.setNoDelay(true);
    (ws as TaggedSocket<C>)[kConnection] = conn;
    ws.on('message', this.message);
    ws.on('pong', this.pong);
    ws.on('error', onSocketError);
    ws.on('close', this.close);
    return conn;
  }
}

function onSocketError(): void {
  // ws reports protocol errors (bad frames, invalid UTF-8, oversize) here and closes the socket itself.
}
